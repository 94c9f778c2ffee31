"""Signals: how the host shop learns what happened to Amazon orders.

Every signal is sent *after* the database commit, so a receiver sees the
persisted rows. A receiver that raises is logged and skipped: it can neither
lose synced data nor keep other receivers from their signal. The sender is
always the Flask app object; the payload is in keyword arguments, and receivers
should accept ``**extra`` so that new arguments can be added later::

    from flask_amazon_orders import signals

    @signals.order_imported.connect
    def on_new_amazon_order(app, *, store, order, **extra):
        ...

The string name of each signal is its Python name with dashes.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

_signals = Namespace()
_log = logging.getLogger("flask_amazon_orders.signals")


def send(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` to each receiver in turn; a receiver that raises is logged
    and does not keep the others from hearing of the event.

    The extension sends every signal this way, after its data is committed, so a
    broken receiver in the host can neither lose synced data nor cost other
    receivers their signal.
    """
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            _log.exception("a receiver of the %r signal failed", signal.name)


#: A new Amazon order was stored for the first time.
#: Keyword arguments: ``store`` (:class:`~flask_amazon_orders.models.Store`),
#: ``order`` (:class:`~flask_amazon_orders.models.AmazonOrder`).
order_imported = _signals.signal("order-imported")

#: A stored order's status changed (``Unshipped`` -> ``Shipped`` …).
#: Keyword arguments: ``store``, ``order``, ``old_status``, ``new_status``
#: (Seller Central's names).
order_status_changed = _signals.signal("order-status-changed")

#: Amazon changed a stored order without changing its status (items shipped,
#: a buyer asked to cancel, new delivery window …).
#: Keyword arguments: ``store``, ``order``.
order_updated = _signals.signal("order-updated")

#: A sync run of one store finished successfully.
#: Keyword arguments: ``store``, ``run`` (:class:`~flask_amazon_orders.models.SyncRun`).
sync_finished = _signals.signal("sync-finished")

#: A sync run of one store failed. What was stored before the failure stays
#: stored, and the sync cursor is where it was.
#: Keyword arguments: ``store``, ``run``, ``error`` (the exception).
sync_failed = _signals.signal("sync-failed")

#: A host order was created for an Amazon order (order import enabled).
#: Keyword arguments: ``store``, ``order``, ``reference`` (the host's order
#: reference), ``status`` (the host status it was created in).
host_order_created = _signals.signal("host-order-created")

#: The host could not create the order; the Amazon order is *blocked* and will be
#: tried again. Sent once per new reason, not at every retry.
#: Keyword arguments: ``store``, ``order``, ``reason``.
host_order_blocked = _signals.signal("host-order-blocked")

#: The extension changed a host order's status: ``Complete`` after an admin
#: cancelled the order or Amazon shipped or cancelled it, or back to its status
#: from before after Amazon rejected a cancellation. Keyword arguments:
#: ``store``, ``order``, ``reference``, ``status``.
host_order_status_changed = _signals.signal("host-order-status-changed")

#: An admin (or the CLI, or the API) asked to cancel an order; sent *before* the
#: cancellation is accepted, so a receiver can refuse it by raising
#: :class:`CancellationRefused` with a reason for the admin. Nothing is stored yet.
#: Keyword arguments: ``store``, ``order``, ``reason`` (the feed's CancelReason,
#: e.g. ``NoInventory``), ``memo``, ``actor``.
cancellation_requested = _signals.signal("cancellation-requested")

#: A cancellation was accepted and stored: the order is ``Canceled`` here, the
#: linked host order ``Complete``, and the cancellation waits to be sent to
#: Amazon. Keyword arguments: ``store``, ``order``, ``cancellation``
#: (:class:`~flask_amazon_orders.models.Cancellation`).
cancellation_queued = _signals.signal("cancellation-queued")

#: Amazon processed the cancellation: the order is cancelled on Amazon, and Amazon
#: tells the buyer. Keyword arguments: ``store``, ``order``, ``cancellation``.
cancellation_confirmed = _signals.signal("cancellation-confirmed")

#: Amazon rejected the cancellation (the order shipped meanwhile …), or the order
#: was no longer Unshipped when it was to be sent: the order has Amazon's real
#: status again and the host order its status from before. Keyword arguments:
#: ``store``, ``order``, ``cancellation``, ``message`` (why).
cancellation_rejected = _signals.signal("cancellation-rejected")


#: The shop shipped items of an Amazon order: the *host* sends this signal (or
#: calls :func:`~flask_amazon_orders.services.shipping.confirm_shipment`) and the
#: extension confirms the shipment to Amazon. Keyword arguments: ``order`` (an
#: :class:`~flask_amazon_orders.models.AmazonOrder`, its id or its Amazon order
#: id), ``carrier_code``, ``tracking_number``, and optionally ``items`` (order item
#: id -> quantity; default every unshipped unit), ``ship_date``, ``carrier_name``,
#: ``shipping_method``, ``host_reference``, ``store``, ``actor``.
host_order_shipped = _signals.signal("host-order-shipped")

#: Amazon accepted a shipment confirmation; the order's shipped quantities and
#: status follow. Keyword arguments: ``store``, ``order``, ``shipment``
#: (:class:`~flask_amazon_orders.models.Shipment`).
shipment_confirmed = _signals.signal("shipment-confirmed")

#: Amazon refused a shipment confirmation (an item shipped already, an unknown
#: item …). Keyword arguments: ``store``, ``order``, ``shipment``.
shipment_rejected = _signals.signal("shipment-rejected")


#: Amazon applied an item adjustment (units cancelled and refunded). Keyword
#: arguments: ``store``, ``order``, ``adjustment``
#: (:class:`~flask_amazon_orders.models.Adjustment`).
adjustment_confirmed = _signals.signal("adjustment-confirmed")

#: Amazon rejected an item adjustment (more than was ordered, a refund above what
#: was paid …). Keyword arguments: ``store``, ``order``, ``adjustment``, ``message``.
adjustment_rejected = _signals.signal("adjustment-rejected")


class CancellationRefused(Exception):
    """Raised by a :data:`cancellation_requested` receiver to refuse a cancellation;
    the message is shown to the admin and nothing changes."""


__all__ = [
    "CancellationRefused",
    "adjustment_confirmed",
    "adjustment_rejected",
    "cancellation_confirmed",
    "cancellation_queued",
    "cancellation_rejected",
    "cancellation_requested",
    "host_order_blocked",
    "host_order_created",
    "host_order_shipped",
    "host_order_status_changed",
    "order_imported",
    "order_status_changed",
    "order_updated",
    "shipment_confirmed",
    "shipment_rejected",
    "sync_failed",
    "sync_finished",
]
