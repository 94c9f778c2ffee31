"""Signals: how the host shop learns what happened to Amazon orders.

Every signal is sent *after* the database commit, so a receiver sees the
persisted rows and a failing receiver cannot lose synced data. The sender is
always the Flask app object; the payload is in keyword arguments, and receivers
should accept ``**extra`` so that new arguments can be added later::

    from flask_amazon_orders import signals

    @signals.order_imported.connect
    def on_new_amazon_order(app, *, store, order, **extra):
        ...

The string name of each signal is its Python name with dashes.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

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

__all__ = [
    "order_imported",
    "order_status_changed",
    "order_updated",
    "sync_failed",
    "sync_finished",
]
