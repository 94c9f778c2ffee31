"""Cancelling unshipped Amazon orders: the one code path for the admin pages, the CLI and the API.

:func:`cancel_orders` accepts a cancellation only for an order that is
``Unshipped`` when the admin confirms, decided by the database, not the button:
a compare-and-set ``UPDATE … WHERE status = 'Unshipped'`` (a row lock on
PostgreSQL until the commit) moves the order to ``Canceled``, so double clicks,
two admins or a sync at the same moment produce exactly one cancellation. In
the same transaction the cancellation is stored (the outbox), the timeline gets
its entry and the linked host order becomes ``Complete`` through the host
contract. The request answers at once; :mod:`flask_amazon_orders.jobs.feeds`
sends the store's queued cancellations to Amazon in one feed and settles each
with :func:`confirm` or :func:`reject`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from .. import events, signals
from ..errors import AmazonOrdersError
from ..extension import get_extension
from ..host import COMPLETE
from ..i18n import N_, _
from ..models import AmazonOrder, Cancellation, OrderEvent, Shipment, Store, utcnow
from .importing import adapter_may_not_commit
from .stores import get_store

log = logging.getLogger("flask_amazon_orders.cancelling")


@dataclasses.dataclass(frozen=True)
class Reason:
    """A reason for cancellation as Seller Central offers it."""

    #: The feed's CancelReason value.
    value: str
    label: str
    description: str


#: Seller Central's six reasons for cancellation, with their feed values.
REASONS = (
    Reason(
        "NoInventory",
        N_("No Inventory"),
        N_(
            "Use if you are out of stock for the ordered product(s) and you are unable to "
            "fulfill the order by the required delivery date."
        ),
    ),
    Reason(
        "BuyerCanceled",
        N_("Buyer Cancelled"),
        N_("Use if the buyer has contacted you and requested that you cancel the order."),
    ),
    Reason(
        "GeneralAdjustment",
        N_("General Adjustment"),
        N_("Use for all other general cancellation reasons."),
    ),
    Reason(
        "PricingError",
        N_("Pricing Error"),
        N_("Use if the order resulted from an incorrectly priced product."),
    ),
    Reason(
        "ShippingAddressUndeliverable",
        N_("Shipping Address Undeliverable"),
        N_(
            "Use if the order was returned to you because the package was sent to an "
            "undeliverable address."
        ),
    ),
    Reason(
        "CustomerExchange",
        N_("Customer Exchange"),
        N_("Use if the buyer has contacted you and requested an exchange for the product(s)."),
    ),
)
REASON_VALUES = {reason.value: reason for reason in REASONS}
#: The longest seller memo kept.
MEMO_MAX = 1000
#: Cancellation states in which the cancellation is on its way to Amazon.
PENDING = ("queued", "sent")


class CancelError(AmazonOrdersError):
    """A cancellation request that cannot be accepted at all (a bad reason or memo)."""


@dataclasses.dataclass
class CancelResult:
    """What :func:`cancel_orders` did."""

    #: The accepted cancellations.
    accepted: list[Cancellation] = dataclasses.field(default_factory=list)
    #: The Amazon order ids of the cancelled orders.
    cancelled: list[str] = dataclasses.field(default_factory=list)
    #: Amazon order id -> why it was not cancelled (for the admin).
    refused: dict[str, str] = dataclasses.field(default_factory=dict)


def order_of(order_id: int, *, fresh: bool = False) -> AmazonOrder:
    """The order with this id (it exists: the caller holds a row that points to it)."""
    order = get_extension().session.get(AmazonOrder, order_id, populate_existing=fresh)
    if order is None:
        raise LookupError(f"No Amazon order with id {order_id}.")
    return order


def lock_order(order: AmazonOrder | int) -> AmazonOrder:
    """Take the order's row lock until the commit, and read the order again.

    Shipments and item cancellations of an order go one at a time, and after a
    cancellation of it, and Amazon's answers are applied to the order as it is
    then: the lock (a row lock on PostgreSQL, the database's write lock on
    SQLite) makes the second wait for the first one's commit, and the order read
    afterwards is the order as it is now, not as a page or an earlier step
    loaded it (a sync may have stored a newer status meanwhile).
    """
    order_id = order if isinstance(order, int) else order.id
    get_extension().session.execute(
        sa.update(AmazonOrder)
        .where(AmazonOrder.id == order_id)
        .values(updated_at=AmazonOrder.updated_at)
        .execution_options(synchronize_session=False)
    )
    return order_of(order_id, fresh=True)


def shipping_orders(order_ids: list[int]) -> set[int]:
    """The orders among ``order_ids`` with a shipment on its way to Amazon."""
    if not order_ids:
        return set()
    return set(
        get_extension().session.scalars(
            sa.select(Shipment.order_id).where(
                Shipment.order_id.in_(order_ids), Shipment.state == "queued"
            )
        )
    )


def why_not_cancellable(order: AmazonOrder, shipping: set[int] | None = None) -> str | None:
    """Why ``order`` cannot be cancelled here now, or ``None`` if it can.

    :param shipping: the ids of orders with a shipment on its way (read once for
        many orders); ``None`` reads it for this order.
    """
    if order.cancellation_state in PENDING:
        return _("A cancellation of this order is already on its way to Amazon.")
    if shipping is None:
        shipping = shipping_orders([order.id])
    if order.id in shipping:
        return _("The shop shipped items of this order; the shipment is being confirmed.")
    if order.status != "Unshipped":
        if order.status in ("Pending", "PendingAvailability", "PartiallyShipped"):
            return _(
                "The order is %(status)s: it can be cancelled only in Seller Central.",
                status=order.status_label,
            )
        return _(
            "The order is %(status)s; only Unshipped orders can be cancelled.",
            status=order.status_label,
        )
    return None


def validate(reason: str, memo: str | None) -> str | None:
    """Check the reason and memo; returns the memo to store. :raises CancelError:"""
    if reason not in REASON_VALUES:
        raise CancelError(_("Choose a reason for cancellation."))
    memo = (memo or "").strip() or None
    if memo is not None and len(memo) > MEMO_MAX:
        raise CancelError(_("The seller memo is longer than %(max)s characters.", max=MEMO_MAX))
    return memo


def _ask_receivers(
    store: Store, order: AmazonOrder, reason: str, memo: str | None, actor: str
) -> str | None:
    """Send :data:`~flask_amazon_orders.signals.cancellation_requested`; a refusal's reason."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for receiver in signals.cancellation_requested.receivers_for(app):
        try:
            receiver(app, store=store, order=order, reason=reason, memo=memo, actor=actor)
        except signals.CancellationRefused as exc:
            return str(exc) or _("The shop refused the cancellation.")
        except Exception:
            log.exception("a cancellation-requested receiver failed")
            return _("A check of the shop failed; nothing was cancelled. Try again later.")
    return None


def _load(
    store: Store, orders: Sequence[AmazonOrder | int | str]
) -> tuple[list[AmazonOrder], dict[str, str]]:
    session = get_extension().session
    if orders and all(isinstance(o, AmazonOrder) and o in session for o in orders):
        # Loaded in this session already (the bulk page): no second read; the
        # compare-and-set below decides on the rows as they are now.
        mine = [o for o in orders if isinstance(o, AmazonOrder) and o.store_id == store.id]
        others = {
            o.amazon_order_id: _("There is no such order in this store.")
            for o in orders
            if isinstance(o, AmazonOrder) and o.store_id != store.id
        }
        return mine, others
    ids: list[int] = [o.id for o in orders if isinstance(o, AmazonOrder)]
    ids += [o for o in orders if isinstance(o, int)]
    names = [o for o in orders if isinstance(o, str)]
    found = list(
        session.scalars(
            sa.select(AmazonOrder)
            .options(sa.orm.lazyload(AmazonOrder.items))
            .where(
                AmazonOrder.store_id == store.id,
                sa.or_(AmazonOrder.id.in_(ids), AmazonOrder.amazon_order_id.in_(names)),
            )
        )
    )
    refs: list[int | str] = [*ids, *names]
    position = {ref: index for index, ref in enumerate(refs)}
    found.sort(key=lambda o: position.get(o.id, position.get(o.amazon_order_id, 0)))
    known_ids = {o.id for o in found}
    known_names = {o.amazon_order_id for o in found}
    missing = {
        str(ref): _("There is no such order in this store.")
        for ref in refs
        if ref not in known_ids and ref not in known_names
    }
    return found, missing


def cancel_orders(
    store: Store | int,
    orders: Sequence[AmazonOrder | int | str],
    *,
    reason: str,
    memo: str | None = None,
    actor: str = "api",
) -> CancelResult:
    """Cancel unshipped orders of ``store``: the server decides, once.

    :param orders: the orders, their ids or their Amazon order ids; orders of
        another store are refused.
    :param reason: the feed's CancelReason (one of :data:`REASONS`).
    :param memo: the seller's note, kept with the cancellation.
    :param actor: who cancels (``admin:<name>``, ``cli`` …), for the records.
    :raises CancelError: the reason or memo is not valid; nothing changes.

    Orders that cannot be cancelled (not ``Unshipped``, a cancellation pending,
    refused by a :data:`~flask_amazon_orders.signals.cancellation_requested`
    receiver) are named in :attr:`CancelResult.refused`; the others are
    cancelled together in one transaction.
    """
    memo = validate(reason, memo)
    ext = get_extension()
    session = ext.session
    loaded = get_store(store)
    result = CancelResult()
    candidates, result.refused = _load(loaded, orders)
    shipping = shipping_orders([order.id for order in candidates])
    allowed: dict[int, AmazonOrder] = {}
    for order in candidates:
        why = why_not_cancellable(order, shipping) or _ask_receivers(
            loaded, order, reason, memo, actor
        )
        if why:
            result.refused[order.amazon_order_id] = why
        else:
            allowed[order.id] = order
    if not allowed:
        session.rollback()
        return result

    # The rows' locks first, in id order (two bulk cancellations, or one and a
    # sync page, never wait for each other in a circle); the claim below is a
    # statement of its own, so on PostgreSQL it sees what a shipment or another
    # cancellation that held a lock committed meanwhile.
    session.execute(
        sa.select(AmazonOrder.id)
        .where(AmazonOrder.id.in_(list(allowed)))
        .order_by(AmazonOrder.id)
        .with_for_update(key_share=True)
    )
    # The decision: only orders that are Unshipped *now*, with no cancellation on
    # its way and no shipment being confirmed.
    returned = list(
        session.execute(
            sa.update(AmazonOrder)
            .where(
                AmazonOrder.id.in_(list(allowed)),
                AmazonOrder.store_id == loaded.id,
                AmazonOrder.status == "Unshipped",
                sa.or_(
                    AmazonOrder.cancellation_state.is_(None),
                    AmazonOrder.cancellation_state.not_in(PENDING),
                ),
                ~sa.exists().where(Shipment.order_id == AmazonOrder.id, Shipment.state == "queued"),
            )
            .values(status="Canceled", cancellation_state="queued")
            # The row as it is now (locked by this UPDATE on PostgreSQL): an
            # import that committed meanwhile may have linked a host order.
            .returning(
                AmazonOrder.id,
                AmazonOrder.host_order_ref,
                AmazonOrder.host_status,
                AmazonOrder.host_order_number,
            )
            .execution_options(synchronize_session=False)
        )
    )
    claimed = {row[0] for row in returned}
    lost = [order_id for order_id in allowed if order_id not in claimed]
    shipped_meanwhile = shipping_orders(lost)
    for order_id in lost:
        result.refused[allowed[order_id].amazon_order_id] = (
            _("The shop shipped items of this order; the shipment is being confirmed.")
            if order_id in shipped_meanwhile
            else _("The order changed meanwhile and is no longer Unshipped; nothing was cancelled.")
        )
    adapter = ext.host
    if memo:
        text = events.Text("cancel_requested_memo", cancel_reason=reason, memo=memo)
    else:
        text = events.Text("cancel_requested", cancel_reason=reason)
    said = events.columns(text)
    if not claimed:
        session.rollback()
        return result
    for order_id, reference, host_status, number in returned:
        order = allowed[order_id]
        for name, value in (
            ("status", "Canceled"),
            ("cancellation_state", "queued"),
            ("host_order_ref", reference),
            ("host_status", host_status),
            ("host_order_number", number),
        ):
            set_committed_value(order, name, value)
    claimed_orders = {order_id: order for order_id, order in allowed.items() if order_id in claimed}
    to_complete: list[AmazonOrder] = []
    rows: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    now = utcnow()
    host_before = _host_statuses_before(adapter, session, list(claimed_orders.values()))
    for order_id in [order_id for order_id in allowed if order_id in claimed]:
        order = claimed_orders[order_id]
        if order.host_order_ref and adapter is not None and host_before[order_id] != COMPLETE:
            to_complete.append(order)
        rows.append(
            {
                "store_id": loaded.id,
                "order_id": order_id,
                "reason": reason,
                "memo": memo,
                "state": "queued",
                "actor": actor[:120],
                "status_before": "Unshipped",
                "host_status_before": host_before[order_id],
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        timeline.append(
            {
                "order_id": order_id,
                "created_at": now,
                "kind": "cancel_requested",
                "actor": actor[:120],
                "from_status": "Unshipped",
                "to_status": "Canceled",
                **said,
            }
        )
        result.cancelled.append(order.amazon_order_id)
    # Plain multi-row inserts: one statement each, however many orders.
    session.execute(sa.insert(Cancellation), rows)
    session.execute(sa.insert(OrderEvent), timeline)
    result.accepted = list(
        session.scalars(
            sa.select(Cancellation)
            .where(Cancellation.order_id.in_(list(claimed)), Cancellation.state == "queued")
            .order_by(Cancellation.id)
        )
    )
    completed = _complete_host_orders(session, adapter, to_complete, actor)
    # What the signals need, read before the commit expires the objects.
    queued = [(c, claimed_orders[c.order_id]) for c in result.accepted]
    moved = [(order, order.host_order_ref) for order in completed]
    session.commit()
    log.info(
        "%s: %d cancellations queued by %s, %d refused",
        loaded.name,
        len(result.accepted),
        actor,
        len(result.refused),
    )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if signals.cancellation_queued.receivers or signals.host_order_status_changed.receivers:
        _refresh(session, [c for c, _o in queued], [o for _c, o in queued])
    for cancellation, order in queued:
        signals.send(
            signals.cancellation_queued, app, store=loaded, order=order, cancellation=cancellation
        )
    for order, reference in moved:
        signals.send(
            signals.host_order_status_changed,
            app,
            store=loaded,
            order=order,
            reference=reference,
            status=COMPLETE,
        )
    ext.wake_worker("feeds", loaded.id)
    return result


def _refresh(session: Any, cancellations: list[Cancellation], orders: list[AmazonOrder]) -> None:
    """Load committed (expired) objects again in two queries, not one each, before
    receivers read them."""
    groups: tuple[tuple[Any, list[Any]], ...] = (
        (Cancellation, cancellations),
        (AmazonOrder, orders),
    )
    for model, objects in groups:
        ids = [sa.inspect(obj).identity[0] for obj in objects]  # no load for the id
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            session.scalars(
                sa.select(model)
                .where(model.id.in_(chunk))
                .options(sa.orm.lazyload("*"))
                .execution_options(populate_existing=True)
            ).all()


def _host_statuses_before(
    adapter: Any, session: Any, orders: list[AmazonOrder]
) -> dict[int, str | None]:
    """Each order's host order status now (the host's word, else what we last set)."""
    before: dict[int, str | None] = {order.id: order.host_status for order in orders}
    linked = {order.host_order_ref: order.id for order in orders if order.host_order_ref}
    if not linked or adapter is None:
        return before
    try:
        # No autoflush: the host's reads must not flush our rows one at a time.
        with adapter_may_not_commit(session), session.no_autoflush:
            statuses = adapter.order_statuses(list(linked))
    except Exception:
        log.exception("order_statuses failed; restoring would use the last status we set")
        return before
    for reference, order_id in linked.items():
        before[order_id] = statuses.get(reference) or before[order_id]
    return before


def _complete_host_orders(
    session: Any, adapter: Any, orders: list[AmazonOrder], actor: str
) -> list[AmazonOrder]:
    """Move the orders' host orders to Complete; returns those that moved.

    All at once inside one savepoint (fast for a bulk cancel); if the host fails
    for one of them, the savepoint is undone and each goes on its own, so one
    failing host order costs neither the others nor the cancellations.
    """
    if not orders:
        return []
    try:
        now = utcnow()
        with session.begin_nested(), adapter_may_not_commit(session), session.no_autoflush:
            for order in orders:
                adapter.set_status(order.host_order_ref, COMPLETE, amazon_order=order)
                order.host_status = COMPLETE
            session.execute(
                sa.insert(OrderEvent),
                [
                    {
                        "order_id": order.id,
                        "created_at": now,
                        "kind": "host_order_status_changed",
                        "actor": actor[:120],
                        **events.columns(_host_text(order, COMPLETE)),
                    }
                    for order in orders
                ],
            )
        return list(orders)
    except Exception:
        log.info("completing %d shop orders at once failed; one by one", len(orders))
    return [o for o in orders if _set_host_status(session, adapter, o, COMPLETE, actor)]


def _host_text(order: AmazonOrder, status: str) -> events.Text:
    return events.Text(
        "host_order_status_changed",
        number=order.host_order_number or order.host_order_ref,
        host_status=status,
    )


def _host_event(order: AmazonOrder, status: str, actor: str) -> OrderEvent:
    return OrderEvent(
        order_id=order.id,
        kind="host_order_status_changed",
        actor=actor[:120],
        **events.columns(_host_text(order, status)),
    )


def _set_host_status(
    session: Any, adapter: Any, order: AmazonOrder, status: str, actor: str
) -> bool:
    """Move the host order to ``status`` inside a savepoint; record either outcome."""
    reference = order.host_order_ref
    try:
        with session.begin_nested(), adapter_may_not_commit(session):
            adapter.set_status(reference, status, amazon_order=order)
    except Exception as exc:
        log.exception("could not set shop order %s to %s", reference, status)
        session.add(
            OrderEvent(
                order_id=order.id,
                kind="host_order_failed",
                actor=actor[:120],
                **events.columns(
                    events.Text(
                        "host_order_status_failed",
                        number=order.host_order_number or reference,
                        host_status=status,
                        error=str(exc),
                    )
                ),
            )
        )
        return False
    order.host_status = status
    session.add(_host_event(order, status, actor))
    return True


def confirm(cancellation: Cancellation, message: events.Text, *, actor: str = "amazon") -> None:
    """Amazon cancelled the order (in the session; the caller commits and signals).
    ``message`` says how we know; it is the cancellation's ``result`` (in English)
    and the timeline's entry."""
    session = get_extension().session
    order = lock_order(cancellation.order_id)
    cancellation.state = "confirmed"
    cancellation.result = str(message)
    order.cancellation_state = "confirmed"
    order.status = "Canceled"
    session.add(
        OrderEvent(
            order_id=order.id,
            kind="cancel_confirmed",
            actor=actor,
            to_status="Canceled",
            **events.columns(message),
        )
    )


def reject(
    cancellation: Cancellation,
    message: events.Text,
    *,
    amazon_status: str | None,
    actor: str = "amazon",
) -> bool:
    """Amazon did not cancel the order: back to Amazon's status, the host order
    back to its status from before (in the session; the caller commits and
    signals). Returns whether the host order's status was changed."""
    ext = get_extension()
    session = ext.session
    order = lock_order(cancellation.order_id)
    cancellation.state = "rejected"
    cancellation.result = str(message)
    order.cancellation_state = "rejected"
    status = amazon_status or cancellation.status_before
    session.add(
        OrderEvent(
            order_id=order.id,
            kind="cancel_rejected",
            actor=actor,
            from_status=order.status,
            to_status=status,
            **events.columns(message),
        )
    )
    order.status = status
    before = cancellation.host_status_before
    adapter = ext.host
    if not (order.host_order_ref and adapter is not None and before and before != COMPLETE):
        return False
    if order.host_status != COMPLETE:
        return False
    # Only if the shop order is still Complete: staff may have moved it since.
    now = _host_statuses_before(adapter, session, [order])[order.id]
    if now not in (None, COMPLETE):
        return False
    return _set_host_status(session, adapter, order, before, actor)
