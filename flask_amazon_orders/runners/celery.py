"""Celery: the jobs as tasks, for many stores and several worker processes.

The tasks call the same job functions as the CLI and the embedded worker::

    # shop/tasks.py — the module the Celery worker and beat load
    from celery import Celery
    from flask_amazon_orders.runners.celery import init_celery

    from shop import create_app

    flask_app = create_app()
    celery = Celery("shop", broker="redis://127.0.0.1:6379/0")
    init_celery(celery, flask_app)

and ``celery -A shop.tasks worker`` plus ``celery -A shop.tasks beat``. Each task
runs in an app context of ``flask_app``.

Tasks (their names are prefixed ``amazon_orders.``):

``sync_all``
    Queues ``sync_store`` for every active store, those an admin asked to sync
    first. Beat runs it every ``AMAZON_ORDERS_SYNC_INTERVAL_SECONDS``.
``sync_store(store_id)``
    :func:`~flask_amazon_orders.jobs.sync.sync_store`. One sync per store at a time
    (the store's lease): a second task for a store being synced ends at once as
    ``skipped``. A sync whose next page would wait longer than
    ``AMAZON_ORDERS_SYNC_MAX_RATE_WAIT_SECONDS`` for Amazon's rate limit ends
    ``paused`` and queues its continuation for when the limit allows it (a
    countdown), so the worker slot serves other stores meanwhile; after
    ``PAGES_PER_TURN`` pages it queues its continuation at once, behind the
    other stores' tasks.
``feeds_all``
    Queues ``process_feeds`` for every store with cancellations, adjustments or
    shipments on their way. Beat runs it every ``AMAZON_ORDERS_FEED_POLL_SECONDS``.
``process_feeds(store_id)``
    :func:`~flask_amazon_orders.jobs.feeds.process_feeds`: sends the store's queued
    cancellations and adjustments as feeds, polls submitted feeds that are due,
    settles Amazon's reports, and confirms queued shipments.
``purge``
    :func:`~flask_amazon_orders.jobs.purge.purge_all`, hourly.
``poll_notifications``
    :func:`~flask_amazon_orders.jobs.notifications.poll_notifications`: reads
    Amazon's ``ORDER_CHANGE`` notifications from the SQS queue and refreshes the
    orders they name. In the beat schedule only when ``AMAZON_ORDERS_SQS_QUEUE_URL``
    is set, every ``AMAZON_ORDERS_SQS_WAIT_SECONDS`` (at least 1 s); each run
    long-polls the queue that long, so about one worker slot waits on the queue.

``init_celery`` also makes "Sync now", a cancellation, an item adjustment and a
shipment queue their store's task at once (through
:meth:`AmazonOrders.wake_worker <flask_amazon_orders.AmazonOrders.wake_worker>`)
instead of waiting for beat. Use a shared rate limiter
(``AMAZON_ORDERS_RATE_LIMIT_STORAGE``) with several worker processes.

Needs Celery (``pip install flask-amazon-orders[celery]``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

#: Seconds between purges in the beat schedule.
PURGE_INTERVAL = 3600.0


@dataclasses.dataclass(frozen=True)
class Tasks:
    """The registered tasks (Celery task objects)."""

    sync_all: Any
    sync_store: Any
    feeds_all: Any
    process_feeds: Any
    purge: Any
    poll_notifications: Any


def init_celery(celery: Any, app: Flask, *, beat: bool = True) -> Tasks:
    """Register the jobs as tasks of ``celery``, each running in an app context of
    ``app``; add them to the beat schedule unless ``beat`` is false.

    :returns: the tasks, e.g. ``tasks.sync_store.delay(store_id)``.
    """
    from ..extension import get_extension

    def in_app(function: Any, name: str, **options: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                try:
                    return function(*args, **kwargs)
                finally:
                    get_extension().session.remove()

        run.__name__ = run.__qualname__ = name
        run.__doc__ = function.__doc__
        return celery.task(name=f"amazon_orders.{name}", shared=False, **options)(run)

    def sync_store(store_id: int) -> dict[str, Any]:
        """Sync one store (skipped when another sync holds it); a sync that gives
        way to Amazon's rate limit queues its own continuation for when the limit
        allows the next page."""
        from ..jobs.sync import PAGES_PER_TURN
        from ..jobs.sync import sync_store as job
        from ..models import utcnow

        settings = get_extension().settings
        run = job(
            store_id,
            trigger="celery",
            max_rate_wait=settings.sync_max_rate_wait_seconds,
            max_pages=PAGES_PER_TURN,
        )
        if run.status == "paused" and run.resume_at is not None:
            countdown = max(0.0, (run.resume_at - utcnow()).total_seconds())
            tasks["sync_store"].apply_async((store_id,), countdown=countdown)
        return {"store_id": store_id, "status": run.status, "run_id": run.id}

    def process_feeds(store_id: int) -> dict[str, Any]:
        """Send, poll and settle one store's feeds; confirm its shipments."""
        from ..jobs.feeds import process_feeds as job

        run = job(store_id)
        return {
            "store_id": store_id,
            "submitted": list(run.submitted),
            "confirmed": run.confirmed,
            "rejected": run.rejected,
            "errors": list(run.errors),
        }

    def purge() -> int:
        """Delete buyer data past its retention period."""
        from ..jobs.purge import purge_all

        return sum(run.purged for run in purge_all())

    def poll_notifications() -> dict[str, Any]:
        """Handle the notifications waiting in the SQS queue."""
        from ..jobs.notifications import poll_notifications as job

        run = job()
        return {
            "received": run.received,
            "refreshed": [result.amazon_order_id for result in run.refreshed],
            "dropped": run.dropped,
            "retried": run.retried,
        }

    tasks: dict[str, Any] = {}

    def sync_all() -> list[int]:
        """Queue a sync of every active store."""
        from ..jobs.sync import stores_to_sync

        ids = stores_to_sync()
        for store_id in ids:
            tasks["sync_store"].delay(store_id)
        return ids

    def feeds_all() -> list[int]:
        """Queue the feed job of every store with work on its way."""
        from ..jobs.feeds import stores_with_feed_work

        ids = stores_with_feed_work()
        for store_id in ids:
            tasks["process_feeds"].delay(store_id)
        return ids

    tasks["sync_store"] = in_app(sync_store, "sync_store")
    tasks["process_feeds"] = in_app(process_feeds, "process_feeds")
    tasks["purge"] = in_app(purge, "purge")
    tasks["poll_notifications"] = in_app(poll_notifications, "poll_notifications")
    tasks["sync_all"] = in_app(sync_all, "sync_all")
    tasks["feeds_all"] = in_app(feeds_all, "feeds_all")
    registered = Tasks(**tasks)

    def dispatch(job: str, store_id: int | None) -> None:
        if store_id is None:
            task = registered.sync_all if job == "sync" else registered.feeds_all
            task.delay()
        elif job == "sync":
            registered.sync_store.delay(store_id)
        else:
            registered.process_feeds.delay(store_id)

    with app.app_context():
        extension = get_extension()
        extension._state().dispatch = dispatch
        settings = extension.settings
    if beat:
        celery.conf.beat_schedule = {
            **(celery.conf.beat_schedule or {}),
            **beat_schedule(
                sync_seconds=settings.sync_interval_seconds,
                feed_seconds=settings.feed_poll_seconds,
                notification_seconds=max(1.0, settings.sqs_wait_seconds)
                if settings.sqs_queue_url
                else None,
            ),
        }
    return registered


def beat_schedule(
    *, sync_seconds: float, feed_seconds: float, notification_seconds: float | None = None
) -> dict[str, dict[str, Any]]:
    """The beat entries :func:`init_celery` adds (for hosts that build their own);
    the notifications' entry only with ``notification_seconds``."""
    schedule = {
        "amazon-orders-sync": {
            "task": "amazon_orders.sync_all",
            "schedule": dt.timedelta(seconds=sync_seconds),
        },
        "amazon-orders-feeds": {
            "task": "amazon_orders.feeds_all",
            "schedule": dt.timedelta(seconds=feed_seconds),
        },
        "amazon-orders-purge": {
            "task": "amazon_orders.purge",
            "schedule": dt.timedelta(seconds=PURGE_INTERVAL),
        },
    }
    if notification_seconds is not None:
        schedule["amazon-orders-notifications"] = {
            "task": "amazon_orders.poll_notifications",
            "schedule": dt.timedelta(seconds=notification_seconds),
        }
    return schedule
