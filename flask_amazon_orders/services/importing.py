"""Import routing: which Amazon orders become host orders, when, and exactly once.

With a store's order import enabled, :func:`import_host_orders`

* creates a host order, through the host contract (:mod:`flask_amazon_orders.host`),
  for every eligible order placed since the store was connected: a
  merchant-fulfilled order once Amazon marks it ``Unshipped`` (an order first seen
  already shipped is created as ``Complete``), an Amazon-fulfilled order only at
  ``Shipped``, created as ``Complete``; ``Pending`` orders wait;
* marks an order *blocked*, with the host's reason, when the host cannot create
  it (unknown SKU, disabled product, the host raised); blocked orders are tried
  again at every run and can be retried by hand (:func:`retry_host_order`);
* moves the host order to ``Complete`` when Amazon shipped or cancelled the order.

Exactly one host order per Amazon order: each order is claimed with a
compare-and-set ``UPDATE`` (which also locks its row on PostgreSQL until the
commit), the host order is created in the same transaction, and both commit
together. A crash before the commit leaves neither; a second worker's claim
finds the order taken and skips it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import current_app

from .. import events, signals
from ..extension import get_extension
from ..host import COMPLETE, HostAdapter, HostOrderError
from ..i18n import N_
from ..models import AmazonOrder, OrderEvent, Store, utcnow
from .stores import get_store, record

log = logging.getLogger("flask_amazon_orders.importing")

#: Statuses at which an order becomes a host order, by fulfilment channel.
IMPORTABLE = {"MFN": ("Unshipped", "PartiallyShipped", "Shipped"), "AFN": ("Shipped",)}
#: Amazon statuses after which the host order is complete.
FINAL = ("Shipped", "Canceled")


@dataclasses.dataclass
class ImportResult:
    """What one run of :func:`import_host_orders` did."""

    created: list[int] = dataclasses.field(default_factory=list)
    blocked: list[int] = dataclasses.field(default_factory=list)
    completed: list[int] = dataclasses.field(default_factory=list)
    #: Host orders that could not be moved to Complete (retried next time).
    failed: list[int] = dataclasses.field(default_factory=list)
    #: Why nothing could be imported (no host adapter registered …), if so.
    problem: str | None = None


def _eligible(store_id: int) -> sa.ColumnElement[bool]:
    """The SQL condition for "this order should get a host order now"."""
    channel_rules = [
        sa.and_(AmazonOrder.fulfillment_channel == channel, AmazonOrder.status.in_(statuses))
        for channel, statuses in IMPORTABLE.items()
    ]
    importing_store = (
        sa.select(Store.id)
        .where(
            Store.id == store_id,
            Store.order_import_enabled.is_(True),
            AmazonOrder.purchased_at >= Store.connected_at,
        )
        .exists()
    )
    return sa.and_(
        AmazonOrder.store_id == store_id,
        AmazonOrder.host_order_ref.is_(None),
        sa.or_(*channel_rules),
        importing_store,
    )


def _eligible_ids(session: Any, store: Store, *, after_id: int, limit: int) -> list[int]:
    query = (
        sa.select(AmazonOrder.id)
        .where(_eligible(store.id), AmazonOrder.id > after_id)
        .order_by(AmazonOrder.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def _claim(session: Any, store_id: int, order_id: int) -> bool:
    """Take the order for import in the current transaction (compare-and-set).

    The UPDATE re-checks everything that made the order eligible (no host order
    yet, status and channel, the store's toggle still on), and on PostgreSQL locks
    the row until the commit, so a second worker's claim waits and then fails.
    """
    result = session.execute(
        sa.update(AmazonOrder)
        .where(AmazonOrder.id == order_id, _eligible(store_id))
        .values(host_import_attempts=AmazonOrder.host_import_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


@contextlib.contextmanager
def adapter_may_not_commit(session: Any) -> Iterator[None]:
    """Refuse a commit from inside the host adapter: it would end our claim early."""

    def refuse(_session: Any) -> None:
        raise HostOrderError(
            "The host adapter committed the session; it must leave the commit to "
            "Flask-Amazon-Orders (see the host contract)."
        )

    target = session() if callable(session) and not isinstance(session, sa.orm.Session) else session
    sa.event.listen(target, "before_commit", refuse)
    try:
        yield
    finally:
        sa.event.remove(target, "before_commit", refuse)


def _create_one(
    adapter: HostAdapter, session: Any, store: Store, order_id: int, actor: str
) -> tuple[str, AmazonOrder, str | None]:
    """Create the host order for one claimed Amazon order; the caller commits."""
    order = session.get(AmazonOrder, order_id, populate_existing=True)
    status = store.import_initial_status
    if order.status == "Shipped":
        status = COMPLETE
    number = order.amazon_order_id if store.order_number_source == "amazon" else None
    with adapter_may_not_commit(session):
        reference = adapter.find_order(order)
        if reference is None:
            reference = adapter.create_order(order, store=store, status=status, number=number)
    if not isinstance(reference, str) or not reference:
        raise HostOrderError("The host's create_order returned no order reference.")
    order.host_order_ref = reference
    with adapter_may_not_commit(session):
        order.host_order_number = adapter.order_number(reference) or reference
    order.host_import_state = "created"
    order.host_import_error = None
    order.host_imported_at = utcnow()
    order.host_status = status
    session.add(
        OrderEvent(
            order_id=order.id,
            kind="host_order_created",
            actor=actor,
            to_status=order.status,
            **events.columns(
                events.Text(
                    "host_order_created", number=order.host_order_number, host_status=status
                )
            ),
        )
    )
    return reference, order, status


def _block(session: Any, order_id: int, why: events.Text | str, actor: str) -> bool | None:
    """Mark the order blocked unless a host order exists by now (compare-and-set):
    ``why`` is the shop's error (or ours around it).

    Returns ``None`` if a host order exists after all, else whether the block is
    news (a new reason): the timeline gets an entry and ``host_order_blocked`` is
    sent once per new reason, not at every retry.
    """
    reason = str(why)
    order = session.get(AmazonOrder, order_id, populate_existing=True)
    first = order.host_import_state != "blocked" or order.host_import_error != reason
    result = session.execute(
        sa.update(AmazonOrder)
        .where(AmazonOrder.id == order_id, AmazonOrder.host_order_ref.is_(None))
        .values(
            host_import_state="blocked",
            host_import_error=reason[:2000],
            host_import_attempts=AmazonOrder.host_import_attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return None
    if not first:
        return False
    session.add(
        OrderEvent(
            order_id=order_id,
            kind="host_order_blocked",
            actor=actor,
            **events.columns(events.Text("host_order_blocked", reason=why)),
        )
    )
    return True


NO_HOST = N_(
    "Order import is enabled, but the shop registered no host adapter "
    "(AmazonOrders(..., host=...)): no shop orders can be created."
)


def host_problem() -> str | None:
    """Why order import cannot work right now, or ``None``: a store has import
    enabled but the host registered no adapter. The worker logs it when it
    starts, the CLI prints it, the admin pages show it."""
    ext = get_extension()
    if ext.host is not None:
        return None
    enabled = ext.session.scalar(
        sa.select(sa.func.count()).select_from(Store).where(Store.order_import_enabled.is_(True))
    )
    return NO_HOST if enabled else None


def import_host_orders(
    store: Store | int, *, actor: str = "sync", batch: int = 500
) -> ImportResult:
    """Create host orders for a store's eligible Amazon orders and complete finished ones.

    Does nothing while the store's order import is disabled. Safe to run from
    several workers at once and to run again after a crash.
    """
    ext = get_extension()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    session = ext.session
    store = get_store(store)
    store_id = store.id
    result = ImportResult()
    if not store.order_import_enabled:
        return result
    adapter = ext.host
    if adapter is None:
        result.problem = NO_HOST
        log.warning("%s: %s", store.name, result.problem)
        return result

    # A blocked order that Amazon cancelled will never need a shop order.
    session.execute(
        sa.update(AmazonOrder)
        .where(
            AmazonOrder.store_id == store_id,
            AmazonOrder.host_import_state == "blocked",
            AmazonOrder.host_order_ref.is_(None),
            AmazonOrder.status == "Canceled",
        )
        .values(host_import_state=None, host_import_error=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    last_id = 0
    while True:
        ids = _eligible_ids(session, store, after_id=last_id, limit=batch)
        if not ids:
            break
        last_id = ids[-1]
        for order_id in ids:
            if not _claim(session, store_id, order_id):
                session.rollback()
                continue
            try:
                reference, order, status = _create_one(adapter, session, store, order_id, actor)
                session.commit()
            except Exception as exc:
                session.rollback()
                why: events.Text | str = str(exc)
                if not isinstance(exc, HostOrderError):
                    why = events.Text("shop_raised", error_type=type(exc).__name__, error=str(exc))
                    log.exception("host adapter failed for Amazon order id %s", order_id)
                news = _block(session, order_id, why, actor)
                session.commit()
                if news is not None:
                    result.blocked.append(order_id)
                if news:
                    blocked = session.get(AmazonOrder, order_id, populate_existing=True)
                    signals.send(
                        signals.host_order_blocked, app, store=store, order=blocked, reason=str(why)
                    )
                continue
            result.created.append(order_id)
            signals.send(
                signals.host_order_created,
                app,
                store=store,
                order=order,
                reference=reference,
                status=status,
            )
        store = session.get(Store, store_id) or store

    _complete_finished(adapter, session, app, store, result, actor)
    return result


def _complete_finished(
    adapter: HostAdapter, session: Any, app: Any, store: Store, result: ImportResult, actor: str
) -> None:
    """Move host orders to Complete once Amazon shipped or cancelled the order."""
    ids = list(
        session.scalars(
            sa.select(AmazonOrder.id).where(
                AmazonOrder.store_id == store.id,
                AmazonOrder.host_order_ref.is_not(None),
                AmazonOrder.status.in_(FINAL),
                sa.or_(AmazonOrder.host_status.is_(None), AmazonOrder.host_status != COMPLETE),
            )
        )
    )
    for order_id in ids:
        # Claim the completion (compare-and-set on host_status, a row lock on
        # PostgreSQL), tell the host, and commit both together: once per order.
        claimed = session.execute(
            sa.update(AmazonOrder)
            .where(
                AmazonOrder.id == order_id,
                sa.or_(AmazonOrder.host_status.is_(None), AmazonOrder.host_status != COMPLETE),
            )
            .values(host_status=COMPLETE)
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:
            session.rollback()
            continue
        order = session.get(AmazonOrder, order_id, populate_existing=True)
        reference = order.host_order_ref or ""
        try:
            with adapter_may_not_commit(session):
                adapter.set_status(reference, COMPLETE, amazon_order=order)
            order.host_import_error = None
            session.add(
                OrderEvent(
                    order_id=order.id,
                    kind="host_order_completed",
                    actor=actor,
                    to_status=order.status,
                    **events.columns(
                        events.Text(
                            "host_order_completed",
                            number=reference,
                            host_status=COMPLETE,
                            status=order.status,
                        )
                    ),
                )
            )
            session.commit()
        except Exception as exc:
            session.rollback()
            log.exception("could not complete shop order %s", reference)
            failed = session.get(AmazonOrder, order_id, populate_existing=True)
            failed.host_import_error = f"Setting the shop order to {COMPLETE} failed: {exc}"
            session.commit()
            result.failed.append(order_id)
            continue
        result.completed.append(order_id)
        signals.send(
            signals.host_order_status_changed,
            app,
            store=store,
            order=order,
            reference=reference,
            status=COMPLETE,
        )


def retry_host_order(order: AmazonOrder | int, *, actor: str = "admin") -> ImportResult:
    """Try again, now, to create the host order of one (blocked) Amazon order."""
    ext = get_extension()
    session = ext.session
    order_id = order if isinstance(order, int) else order.id
    loaded = session.get(AmazonOrder, order_id)
    if loaded is None:
        raise LookupError(f"No Amazon order with id {order_id}.")
    return import_host_orders(loaded.store_id, actor=actor)


def set_order_import(store: Store | int, enabled: bool, *, actor: str = "admin") -> ImportResult:
    """Switch a store's order import on or off.

    Switching it on creates host orders for the eligible orders placed since the
    store was connected, at once. Switching it off stops creating new ones; host
    orders that exist are never deleted.
    """
    ext = get_extension()
    session = ext.session
    loaded = get_store(store)
    store_id = loaded.id
    if loaded.order_import_enabled != enabled:
        loaded.order_import_enabled = enabled
        change = events.Text("order_import_on" if enabled else "order_import_off")
        record(loaded, "settings_changed", actor, events.Text("settings_changed", changes=[change]))
    session.commit()
    log.info("%s: order import %s by %s", loaded.name, "enabled" if enabled else "disabled", actor)
    if enabled:
        return import_host_orders(store_id, actor=actor)
    return ImportResult()
