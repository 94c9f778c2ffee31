"""Push: Amazon's ``ORDER_CHANGE`` notifications from an SQS queue, each a targeted refresh.

With ``AMAZON_ORDERS_SQS_QUEUE_URL`` set (and ``boto3`` installed,
``pip install flask-amazon-orders[sqs]``), :func:`poll_notifications` receives
the queue's messages and for each one

1. reads it (:func:`~flask_amazon_orders.client.notifications.parse_order_change`),
2. finds the store by the seller id and marketplace id it names,
3. reads the order again (:func:`~flask_amazon_orders.jobs.sync.refresh_order`:
   one ``getOrder``, stored as the sync stores it, with its events, signals and
   host import), and
4. deletes the message once it is handled.

The sync goes on as before: a notification never moves its cursor, so a change
whose notification was lost, late or dropped is still read by the next sync.

What happens to a message:

*refreshed*
    The order was read and stored (or found as stored: SQS delivers at least
    once, and a repeated delivery changes nothing). The message is deleted.
    Several messages about one order in one batch cost one ``getOrder``.
*dropped*
    The message is not an ``ORDER_CHANGE`` notification that can be read, names
    a seller and marketplace with no active store here, or Amazon refuses the
    order for good (it does not know it, or the store's authorization is gone).
    Receiving it again cannot change that, so it is logged (a warning with the
    SQS message id, the notification id and the reason; never the body) and
    deleted instead of coming back every visibility timeout until the queue's
    retention ends. The sync is the backstop for whatever it was about.
*retried*
    Amazon or the database failed in a way that may pass (throttling that
    outlasted the retries, a 5xx, a timeout, a busy database), or an unexpected
    error. The message is left in the queue and comes again after
    ``AMAZON_ORDERS_SQS_VISIBILITY_TIMEOUT`` seconds; a dead-letter queue, if the
    queue has a redrive policy, catches one that keeps failing. The run stops at
    its batch, so an outage of Amazon is not hammered.

Use one queue per deployment for ``ORDER_CHANGE`` only: every message in it is
taken as meant for this shop.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ..client.notifications import OrderChange, parse_order_change
from ..client.sqs import SQSQueue
from ..config import Settings
from ..errors import (
    AmazonOrdersError,
    ConfigurationError,
    NotificationError,
    QueueError,
    SPAPIError,
)
from ..extension import get_extension
from ..models import Store
from .sync import RefreshResult, refresh_order

log = logging.getLogger("flask_amazon_orders.notifications")

#: What became of a message (see the module's docs).
REFRESHED = "refreshed"
DROPPED = "dropped"
RETRIED = "retried"


@dataclasses.dataclass
class NotificationOutcome:
    """What :func:`handle_notification` did with one message."""

    #: ``refreshed``, ``dropped`` or ``retried``.
    action: str
    #: Why, for ``dropped`` and ``retried``.
    reason: str | None = None
    #: The notification, when it could be read.
    change: OrderChange | None = None
    #: The refresh, for ``refreshed``.
    refresh: RefreshResult | None = None

    @property
    def delete(self) -> bool:
        """Whether the message is done with (deleted from the queue)."""
        return self.action != RETRIED


@dataclasses.dataclass
class NotificationRun:
    """What one :func:`poll_notifications` did."""

    received: int = 0
    #: The refreshes made (one per order; repeated messages are not listed twice).
    refreshed: list[RefreshResult] = dataclasses.field(default_factory=list)
    #: Messages about an order refreshed already in the same batch.
    repeated: int = 0
    dropped: int = 0
    retried: int = 0
    #: The reasons of the dropped and retried messages, and queue errors.
    errors: list[str] = dataclasses.field(default_factory=list)


def notifications_configured() -> bool:
    """Whether the current app reads notifications (``AMAZON_ORDERS_SQS_QUEUE_URL``)."""
    return get_extension().settings.sqs_queue_url is not None


def _find_store(session: Any, change: OrderChange) -> Store | None:
    return session.scalar(  # type: ignore[no-any-return]
        sa.select(Store).where(
            Store.seller_id == change.seller_id,
            Store.marketplace_id == change.marketplace_id,
            Store.active.is_(True),
        )
    )


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, SPAPIError):
        return exc.retryable
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def _handle(
    body: Any,
    message_id: str | None,
    refreshed: dict[tuple[int, str], RefreshResult],
) -> NotificationOutcome:
    ext = get_extension()
    where = f"SQS message {message_id}" if message_id else "notification"
    try:
        change = parse_order_change(body)
    except NotificationError as exc:
        log.warning("%s dropped, not an ORDER_CHANGE notification we can read: %s", where, exc)
        return NotificationOutcome(DROPPED, str(exc))
    where = f"{where} (notification {change.notification_id})"
    session = ext.session
    try:
        store = _find_store(session, change)
    except Exception as exc:
        session.rollback()
        log.warning("%s left for later: the store could not be read: %s", where, exc)
        return NotificationOutcome(RETRIED, f"database: {type(exc).__name__}", change)
    if store is None:
        reason = (
            f"no active store for seller {change.seller_id} in marketplace {change.marketplace_id}"
        )
        log.warning("%s about order %s dropped: %s", where, change.amazon_order_id, reason)
        return NotificationOutcome(DROPPED, reason, change)
    key = (store.id, change.amazon_order_id)
    if key in refreshed:
        return NotificationOutcome(REFRESHED, "repeated in this batch", change, refreshed[key])
    try:
        result = refresh_order(store, change.amazon_order_id)
    except Exception as exc:
        session.rollback()
        if _is_transient(exc):
            log.warning("%s about order %s left for later: %s", where, change.amazon_order_id, exc)
            return NotificationOutcome(RETRIED, str(exc), change)
        if isinstance(exc, AmazonOrdersError):
            log.warning(
                "%s about order %s dropped: %s (the sync reads the order's changes)",
                where,
                change.amazon_order_id,
                exc,
            )
            return NotificationOutcome(DROPPED, str(exc), change)
        log.exception("%s about order %s failed unexpectedly", where, change.amazon_order_id)
        return NotificationOutcome(RETRIED, f"unexpected {type(exc).__name__}", change)
    refreshed[key] = result
    return NotificationOutcome(REFRESHED, None, change, result)


def handle_notification(body: Any, *, message_id: str | None = None) -> NotificationOutcome:
    """Handle one ``ORDER_CHANGE`` notification (a message body, or its parsed JSON).

    For hosts that receive the notifications another way; :func:`poll_notifications`
    calls it for every SQS message. Never raises for a bad notification or an
    Amazon error: the outcome says whether the message is done with
    (:attr:`NotificationOutcome.delete`).
    """
    return _handle(body, message_id, {})


_queues: dict[tuple[str, str | None, str | None], SQSQueue] = {}
_queues_lock = threading.Lock()


def notification_queue(settings: Settings | None = None) -> SQSQueue:
    """The configured queue (one :class:`~.client.sqs.SQSQueue` per configuration and process).

    :raises ConfigurationError: when ``AMAZON_ORDERS_SQS_QUEUE_URL`` is not set.
    """
    settings = settings or get_extension().settings
    if settings.sqs_queue_url is None:
        raise ConfigurationError(
            "AMAZON_ORDERS_SQS_QUEUE_URL is not set: there is no queue to read notifications from."
        )
    key = (settings.sqs_queue_url, settings.sqs_region, settings.sqs_endpoint_url)
    with _queues_lock:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = SQSQueue(
                settings.sqs_queue_url,
                region=settings.sqs_region,
                endpoint_url=settings.sqs_endpoint_url,
                timeout=max(settings.http_timeout),
            )
        return queue


def poll_notifications(
    *,
    wait_seconds: float | None = None,
    max_batches: int = 10,
    should_stop: Callable[[], bool] | None = None,
) -> NotificationRun:
    """Receive and handle the queue's notifications, up to ``max_batches`` batches of 10.

    The first receive waits up to ``wait_seconds`` (default
    ``AMAZON_ORDERS_SQS_WAIT_SECONDS``) for a message; the next ones only take what
    is there. The run ends with an empty batch, after a batch that left a message
    for later (see the module's docs), or when ``should_stop()`` says so.

    :raises ConfigurationError: when no queue is configured or boto3 is missing.
    :raises QueueError: when the queue cannot be read.
    """
    ext = get_extension()
    settings = ext.settings
    queue = notification_queue(settings)
    wait = settings.sqs_wait_seconds if wait_seconds is None else wait_seconds
    run = NotificationRun()
    for batch in range(max_batches):
        if should_stop is not None and should_stop():
            break
        messages = queue.receive(
            wait_seconds=wait if batch == 0 else 0,
            visibility_timeout=settings.sqs_visibility_timeout,
        )
        if not messages:
            break
        run.received += len(messages)
        refreshed: dict[tuple[int, str], RefreshResult] = {}
        done = []
        for message in messages:
            outcome = _handle(message.body, message.message_id, refreshed)
            if outcome.action == RETRIED:
                run.retried += 1
                run.errors.append(f"{message.message_id}: {outcome.reason}")
                continue
            if outcome.action == DROPPED:
                run.dropped += 1
                run.errors.append(f"{message.message_id}: {outcome.reason}")
            elif outcome.reason is None:
                assert outcome.refresh is not None
                run.refreshed.append(outcome.refresh)
            else:
                run.repeated += 1
            done.append(message)
        # Deleted once the batch is handled: a message that was not (the process
        # died, or the delete failed) comes again and is handled again, harmlessly.
        try:
            failed = queue.delete_batch(done)
        except QueueError as exc:
            failed = {message.message_id: str(exc) for message in done}
        for message_id, reason in failed.items():
            log.warning("SQS message %s could not be deleted: %s", message_id, reason)
            run.errors.append(f"{message_id}: not deleted: {reason}")
        if len(done) < len(messages):
            break
    return run
