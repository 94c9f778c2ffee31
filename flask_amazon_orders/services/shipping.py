"""Confirming shipments to Amazon: the host ships, the extension tells Amazon.

With order import on, the shop ships merchant-fulfilled orders in its own
workflow. It tells the extension with :func:`confirm_shipment` (or by sending the
:data:`~flask_amazon_orders.signals.host_order_shipped` signal, which calls it):
which items and how many, the carrier, the tracking number. The shipment is
stored at once (the outbox) and confirmed to Amazon by the feed job's run with
Orders v0 ``confirmShipment``: durably (a crash or an Amazon outage only delays
it) and idempotently (the same shipment is sent with the same
``packageReferenceId`` at every retry, and the same host reference twice is one
shipment). When Amazon accepts it, the order's shipped quantities and status
follow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .. import events
from ..errors import AmazonOrdersError
from ..extension import get_extension
from ..i18n import _
from ..models import AmazonOrder, OrderEvent, Shipment, Store, utcnow

log = logging.getLogger("flask_amazon_orders.shipping")

#: Statuses in which an order can (still) be shipped.
SHIPPABLE = ("Unshipped", "PartiallyShipped")
_TEXT_MAX = 60


class ShipmentError(AmazonOrdersError):
    """A shipment that cannot be accepted; nothing was stored."""


def _find_order(order: AmazonOrder | int | str, store: Store | int | None) -> AmazonOrder:
    session = get_extension().session
    if isinstance(order, AmazonOrder):
        found = session.get(AmazonOrder, order.id)
    elif isinstance(order, int):
        found = session.get(AmazonOrder, order)
    else:
        query = sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order)
        if store is not None:
            query = query.where(
                AmazonOrder.store_id == (store if isinstance(store, int) else store.id)
            )
        found = session.scalars(query).first()
    if found is None or (
        store is not None and found.store_id != (store if isinstance(store, int) else store.id)
    ):
        raise ShipmentError(_("There is no such order in this store."))
    return found


def queued_quantities(order: AmazonOrder) -> dict[str, int]:
    """Per order item, the quantity in shipments not yet confirmed by Amazon."""
    session = get_extension().session
    pending: dict[str, int] = {}
    for (items,) in session.execute(
        sa.select(Shipment.items).where(Shipment.order_id == order.id, Shipment.state == "queued")
    ):
        for line in json.loads(items):
            pending[line["order_item_id"]] = (
                pending.get(line["order_item_id"], 0) + line["quantity"]
            )
    return pending


def confirmed_quantities(order: AmazonOrder) -> dict[str, int]:
    """Per order item, the quantity in shipments Amazon confirmed."""
    session = get_extension().session
    done: dict[str, int] = {}
    for (items,) in session.execute(
        sa.select(Shipment.items).where(
            Shipment.order_id == order.id, Shipment.state == "confirmed"
        )
    ):
        for line in json.loads(items):
            done[line["order_item_id"]] = done.get(line["order_item_id"], 0) + line["quantity"]
    return done


def units_to_ship(order: AmazonOrder) -> dict[str, int]:
    """Per order item, the units neither shipped, nor in a shipment on its way, nor
    cancelled (or being cancelled) by an item adjustment."""
    from .adjusting import taken

    queued = queued_quantities(order)
    adjusted = taken(order)
    return {
        item.order_item_id: max(
            item.quantity_ordered
            - item.quantity_shipped
            - queued.get(item.order_item_id, 0)
            - adjusted.get(item.order_item_id, {}).get("quantity", 0),
            0,
        )
        for item in order.items
        if not item.cancelled_by
    }


def _text(value: str | None, what: str, *, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise ShipmentError(_("%(what)s is required.", what=what))
        return None
    if len(text) > _TEXT_MAX:
        raise ShipmentError(
            _("%(what)s is longer than %(max)s characters.", what=what, max=_TEXT_MAX)
        )
    return text


def confirm_shipment(
    order: AmazonOrder | int | str,
    *,
    carrier_code: str,
    tracking_number: str,
    items: Mapping[str, int] | None = None,
    ship_date: dt.datetime | None = None,
    carrier_name: str | None = None,
    shipping_method: str | None = None,
    host_reference: str | None = None,
    store: Store | int | None = None,
    actor: str = "host",
) -> Shipment:
    """Record that the shop shipped items of a merchant-fulfilled order; the feed
    job's run confirms it to Amazon.

    :param order: the order, its id or its Amazon order id.
    :param items: Amazon order item id -> quantity shipped; ``None`` ships every
        unshipped unit.
    :param carrier_code: Amazon's carrier code (``DHL``, ``UPS`` …; ``Other`` with
        ``carrier_name``).
    :param ship_date: when it left (default: now), timezone-aware.
    :param host_reference: the shop's reference of this shipment; sending the same
        reference again returns the stored shipment instead of a second one.
    :param store: the order's store, to refuse another store's order.
    :raises ShipmentError: the order cannot be shipped so, or a value is invalid;
        nothing is stored.
    """
    from .cancelling import lock_order

    session = get_extension().session
    # One shipment, item cancellation or cancellation of an order at a time: its
    # row lock, then the order as it is now (not as the caller loaded it).
    found = lock_order(_find_order(order, store))
    try:
        shipment = _store_shipment(
            found,
            carrier_code=carrier_code,
            tracking_number=tracking_number,
            items=items,
            ship_date=ship_date,
            carrier_name=carrier_name,
            shipping_method=shipping_method,
            host_reference=host_reference,
            actor=actor,
        )
    except ShipmentError:
        session.rollback()  # the row lock goes with it
        raise
    get_extension().wake_worker("feeds", shipment.store_id)
    return shipment


def _store_shipment(
    found: AmazonOrder,
    *,
    carrier_code: str,
    tracking_number: str,
    items: Mapping[str, int] | None,
    ship_date: dt.datetime | None,
    carrier_name: str | None,
    shipping_method: str | None,
    host_reference: str | None,
    actor: str,
) -> Shipment:
    """The checks and the new shipment (committed) for a locked order."""
    session = get_extension().session
    if host_reference is not None:
        host_reference = _text(host_reference, _("The shipment reference"), required=True)
        existing = session.scalars(
            sa.select(Shipment).where(
                Shipment.order_id == found.id, Shipment.host_reference == host_reference
            )
        ).first()
        if existing is not None:
            session.rollback()  # nothing to store: let go of the row lock
            return existing  # the same shipment again (a retry or a double submit)
    if found.fulfillment_channel != "MFN":
        raise ShipmentError(_("Amazon ships this order itself (fulfilled by Amazon)."))
    if found.cancellation_state in ("queued", "sent", "confirmed") or found.status not in SHIPPABLE:
        raise ShipmentError(
            _(
                "The order is %(status)s; only unshipped orders can be shipped.",
                status=found.status_label,
            )
        )
    code = _text(carrier_code, _("The carrier"), required=True)
    tracking = _text(tracking_number, _("The tracking number"), required=True)
    name = _text(carrier_name, _("The carrier name"), required=code == "Other")
    method = _text(shipping_method, _("The shipping method"), required=False)
    when = ship_date or utcnow()
    if when.tzinfo is None:
        raise ShipmentError(_("The ship date needs a time zone."))
    open_units = units_to_ship(found)
    if items is None:
        lines = {item_id: units for item_id, units in open_units.items() if units > 0}
        if not lines:
            raise ShipmentError(_("Every item of this order is shipped already."))
    else:
        lines = {}
        for item_id, quantity in items.items():
            if item_id not in open_units:
                raise ShipmentError(_("%(item)s is not an item of this order.", item=item_id))
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise ShipmentError(_("Ship at least one unit of %(item)s.", item=item_id))
            if quantity > open_units[item_id]:
                raise ShipmentError(
                    _(
                        "Only %(open)s unit(s) of %(item)s are left to ship.",
                        open=max(open_units[item_id], 0),
                        item=item_id,
                    )
                )
            lines[item_id] = quantity
        if not lines:
            raise ShipmentError(_("Choose the items that were shipped."))
    shipment = Shipment(
        store_id=found.store_id,
        order_id=found.id,
        host_reference=host_reference,
        carrier_code=code,
        carrier_name=name,
        shipping_method=method,
        tracking_number=tracking,
        ship_date=when,
        items=json.dumps(
            [{"order_item_id": item_id, "quantity": units} for item_id, units in lines.items()]
        ),
        state="queued",
        actor=actor[:120],
    )
    session.add(shipment)
    try:
        session.flush()
    except sa.exc.IntegrityError:
        # The same host reference at the same moment (a double submit): one shipment.
        session.rollback()
        existing = session.scalars(
            sa.select(Shipment).where(
                Shipment.order_id == found.id, Shipment.host_reference == host_reference
            )
        ).first()
        if existing is None:
            raise
        return existing
    units = sum(lines.values())
    session.add(
        OrderEvent(
            order_id=found.id,
            kind="shipment_queued",
            actor=actor[:120],
            **events.columns(
                events.Text("shipment_queued", num=units, carrier=name or code, tracking=tracking)
            ),
        )
    )
    session.commit()
    return shipment


def shipment_lines(shipment: Shipment) -> list[dict[str, Any]]:
    """The shipment's items: ``[{"order_item_id": …, "quantity": …}]``."""
    return list(json.loads(shipment.items))


def apply_confirmed(order: AmazonOrder, shipment: Shipment) -> bool:
    """Amazon accepted the shipment: shipped quantities and status follow (in the
    session; the caller commits). Returns ``False`` if it was applied already
    (another run got there first)."""
    from .adjusting import taken
    from .cancelling import lock_order

    session: Any = get_extension().session
    claimed = session.execute(
        sa.update(Shipment)
        .where(Shipment.id == shipment.id, Shipment.state == "queued")
        .values(state="confirmed", result="Amazon confirmed the shipment.")
        .execution_options(synchronize_session="fetch")
    )
    if not claimed.rowcount:
        return False
    # The order as it is now (locked): it was loaded before Amazon was asked, and
    # a sync may have stored more shipped units or a newer status meanwhile.
    order = lock_order(order)
    # What Amazon has shipped is at least every confirmed shipment (a sync may
    # have brought Amazon's count already: never count a shipment twice).
    confirmed = confirmed_quantities(order)
    for item in order.items:
        item.quantity_shipped = min(
            item.quantity_ordered,
            max(item.quantity_shipped, confirmed.get(item.order_item_id, 0)),
        )
    old = order.status
    cancelled = taken(order)
    done = all(
        i.quantity_shipped + cancelled.get(i.order_item_id, {}).get("quantity", 0)
        >= i.quantity_ordered
        for i in order.items
        if not i.cancelled_by
    )
    order.status = "Shipped" if done else "PartiallyShipped"
    session.add(
        OrderEvent(
            order_id=order.id,
            kind="shipment_confirmed",
            actor="amazon",
            from_status=old,
            to_status=order.status,
            **events.columns(
                events.Text(
                    "shipment_confirmed",
                    carrier=shipment.carrier_name or shipment.carrier_code,
                    tracking=shipment.tracking_number,
                )
            ),
        )
    )
    return True


def on_host_order_shipped(sender: Any, **kwargs: Any) -> Shipment | None:
    """The receiver of :data:`~flask_amazon_orders.signals.host_order_shipped`
    (connected by ``init_app``): :func:`confirm_shipment` with the signal's
    arguments, for the current app (the sender may be the app or ``current_app``).
    A :class:`ShipmentError` reaches the host's ``send``."""
    from flask import current_app, has_app_context

    app = getattr(sender, "_get_current_object", lambda: sender)()
    if not has_app_context() or app is not current_app._get_current_object():  # type: ignore[attr-defined]
        return None
    if "amazon_orders" not in app.extensions:
        return None
    order = kwargs.pop("order")
    return confirm_shipment(order, **kwargs)
