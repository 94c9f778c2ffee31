"""Receivers for every signal Flask-Amazon-Orders sends: a complete example.

Call ``connect_receivers(app)`` once per app, after ``AmazonOrders(app, db=db)``
(in the app factory). Each receiver names the keyword arguments it uses and
accepts ``**extra``, so that arguments added in a later version do not break it.
Here they write the shop's log; a real shop would e-mail its staff, update its
stock or its accounting. Log order ids, never buyer data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from flask_amazon_orders import signals
from flask_amazon_orders.models import (
    Adjustment,
    AmazonOrder,
    Cancellation,
    Shipment,
    Store,
    SyncRun,
)

log = logging.getLogger("shop.amazon")


def connect_receivers(
    app: Flask, *, parcel_packed: Callable[[AmazonOrder], bool] = lambda order: False
) -> None:
    """Connect a receiver to every signal the extension sends, for ``app`` only.

    :param parcel_packed: the shop's answer to "is this order packed already?";
        the cancellation of a packed order is refused.
    """

    # -- Amazon orders: the sync (and push notifications) stored them ----------------

    @signals.order_imported.connect_via(app)
    def order_imported(sender: Flask, *, store: Store, order: AmazonOrder, **extra: Any) -> None:
        log.info("%s: new Amazon order %s (%s)", store.name, order.amazon_order_id, order.status)

    @signals.order_status_changed.connect_via(app)
    def order_status_changed(
        sender: Flask,
        *,
        store: Store,
        order: AmazonOrder,
        old_status: str,
        new_status: str,
        **extra: Any,
    ) -> None:
        log.info("Amazon order %s: %s -> %s", order.amazon_order_id, old_status, new_status)

    @signals.order_updated.connect_via(app)
    def order_updated(sender: Flask, *, store: Store, order: AmazonOrder, **extra: Any) -> None:
        if order.buyer_cancel_requested:
            log.warning("Amazon order %s: the buyer asks to cancel it", order.amazon_order_id)
        else:
            log.info("Amazon order %s changed", order.amazon_order_id)

    @signals.sync_finished.connect_via(app)
    def sync_finished(sender: Flask, *, store: Store, run: SyncRun, **extra: Any) -> None:
        log.info(
            "%s: sync done, %d orders seen, %d new", store.name, run.orders_seen, run.orders_created
        )

    @signals.sync_failed.connect_via(app)
    def sync_failed(
        sender: Flask, *, store: Store, run: SyncRun, error: BaseException, **extra: Any
    ) -> None:
        # store.last_sync_error_needs_action: a person must act (authorize the app again …).
        log.warning("%s: sync failed: %s", store.name, error)

    # -- shop orders (order import enabled) -----------------------------------------

    @signals.host_order_created.connect_via(app)
    def host_order_created(
        sender: Flask,
        *,
        store: Store,
        order: AmazonOrder,
        reference: str,
        status: str,
        **extra: Any,
    ) -> None:
        log.info("Shop order %s (%s) for Amazon order %s", reference, status, order.amazon_order_id)

    @signals.host_order_blocked.connect_via(app)
    def host_order_blocked(
        sender: Flask, *, store: Store, order: AmazonOrder, reason: str, **extra: Any
    ) -> None:
        log.warning("Amazon order %s is blocked: %s", order.amazon_order_id, reason)

    @signals.host_order_status_changed.connect_via(app)
    def host_order_status_changed(
        sender: Flask,
        *,
        store: Store,
        order: AmazonOrder,
        reference: str,
        status: str,
        **extra: Any,
    ) -> None:
        log.info("Shop order %s is %s now", reference, status)

    # -- cancellations ----------------------------------------------------------------

    @signals.cancellation_requested.connect_via(app)
    def cancellation_requested(
        sender: Flask,
        *,
        store: Store,
        order: AmazonOrder,
        reason: str,
        memo: str | None,
        actor: str,
        **extra: Any,
    ) -> None:
        # Sent before anything is stored: raising CancellationRefused keeps the order.
        if parcel_packed(order):
            raise signals.CancellationRefused("The parcel is packed already.")
        log.info("%s cancels Amazon order %s (%s)", actor, order.amazon_order_id, reason)

    @signals.cancellation_queued.connect_via(app)
    def cancellation_queued(
        sender: Flask, *, store: Store, order: AmazonOrder, cancellation: Cancellation, **extra: Any
    ) -> None:
        log.info("Amazon order %s cancelled here; telling Amazon", order.amazon_order_id)

    @signals.cancellation_confirmed.connect_via(app)
    def cancellation_confirmed(
        sender: Flask, *, store: Store, order: AmazonOrder, cancellation: Cancellation, **extra: Any
    ) -> None:
        log.info("Amazon cancelled order %s", order.amazon_order_id)

    @signals.cancellation_rejected.connect_via(app)
    def cancellation_rejected(
        sender: Flask,
        *,
        store: Store,
        order: AmazonOrder,
        cancellation: Cancellation,
        message: str,
        **extra: Any,
    ) -> None:
        log.warning("Amazon did not cancel order %s: %s", order.amazon_order_id, message)

    # -- shipments (the shop sends host_order_shipped) and item adjustments ------------

    @signals.shipment_confirmed.connect_via(app)
    def shipment_confirmed(
        sender: Flask, *, store: Store, order: AmazonOrder, shipment: Shipment, **extra: Any
    ) -> None:
        log.info(
            "Amazon took the shipment %s of %s", shipment.tracking_number, order.amazon_order_id
        )

    @signals.shipment_rejected.connect_via(app)
    def shipment_rejected(
        sender: Flask, *, store: Store, order: AmazonOrder, shipment: Shipment, **extra: Any
    ) -> None:
        log.warning("Amazon refused the shipment of %s: %s", order.amazon_order_id, shipment.result)

    @signals.adjustment_confirmed.connect_via(app)
    def adjustment_confirmed(
        sender: Flask, *, store: Store, order: AmazonOrder, adjustment: Adjustment, **extra: Any
    ) -> None:
        log.info(
            "Amazon refunded %s %s for %d cancelled unit(s) of order %s",
            adjustment.total,
            adjustment.currency,
            adjustment.quantity_cancelled,
            order.amazon_order_id,
        )

    @signals.adjustment_rejected.connect_via(app)
    def adjustment_rejected(
        sender: Flask,
        *,
        store: Store,
        order: AmazonOrder,
        adjustment: Adjustment,
        message: str,
        **extra: Any,
    ) -> None:
        log.warning("Amazon did not adjust order %s: %s", order.amazon_order_id, message)
