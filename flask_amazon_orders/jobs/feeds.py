"""The feed job: send the store's queued cancellations to Amazon in one feed, and settle them.

One run for one store (under the store's feed lease) does three things (it
polls the feeds that are due first, so that what a failed feed gives back is
sent again in the same run):

1. **Verify and build.** Every queued cancellation's order is read afresh from
   Amazon (``getOrder``). An order Amazon cancelled already is *confirmed*; one
   that is no longer ``Unshipped`` (it shipped meanwhile) is *rejected*: back to
   Amazon's status, the host order back to its status from before. The others
   go into **one** ``POST_ORDER_ACKNOWLEDGEMENT_DATA`` document (one message per
   order), stored with its message ids *before* anything is sent.
2. **Send.** createFeedDocument → upload → createFeed. The submission is marked
   ``creating`` (and committed) before createFeed, so a crash right after it is
   resumed by finding the feed Amazon created then, instead of sending again.
3. **Poll.** ``getFeed`` when due (``AMAZON_ORDERS_FEED_POLL_SECONDS``, backing
   off), then the processing report: each message with an error is rejected with
   Amazon's words, the others are confirmed. A ``FATAL`` or ``CANCELLED`` feed's
   unsettled cancellations go back to the queue; the next run verifies them again
   (an order Amazon did cancel is then confirmed, not sent twice).

A crash at any step leaves every cancellation queued, in a stored document, or
sent: the next run goes on from there. Signals go out after each commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import current_app

from .. import signals
from ..client.feeds_xml import (
    ORDER_ACKNOWLEDGEMENT,
    XML_CONTENT_TYPE,
    OrderCancel,
    order_acknowledgement_feed,
    parse_processing_report,
)
from ..client.records import STATUS_LABELS, parse_order
from ..errors import AmazonOrdersError
from ..extension import get_extension
from ..models import AmazonOrder, Cancellation, FeedSubmission, OrderEvent, Store, utcnow
from ..services import cancelling
from ..services.stores import get_store
from . import leases

log = logging.getLogger("flask_amazon_orders.feeds")
_T = TypeVar("_T")

FEED_LEASE = dt.timedelta(minutes=15)
#: Messages per feed at most (Amazon asks for documents under 10 MiB).
MAX_MESSAGES = 2000
#: Sends of one cancellation at most before it is given up as rejected.
MAX_ATTEMPTS = 5
#: What the fresh check before sending reads of an order (no buyer data).
_CHECK_DATA = ("FULFILLMENT", "CANCELLATION")
#: The longest wait between two polls of one feed (before time scaling).
MAX_POLL_SECONDS = 900.0


@dataclasses.dataclass
class FeedRun:
    """What one :func:`process_feeds` run did."""

    skipped: bool = False
    confirmed: int = 0
    rejected: int = 0
    requeued: int = 0
    submitted: list[str] = dataclasses.field(default_factory=list)
    polled: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


class _Run:
    """One run's context: the store, the client, and the signals to send after commits."""

    def __init__(self, store: Store, client: Any, result: FeedRun) -> None:
        self.ext = get_extension()
        self.session = self.ext.session
        self.store = store
        self.client = client
        self.result = result
        self.pending_signals: list[tuple[Any, dict[str, Any]]] = []

    def commit(self) -> None:
        self.session.commit()
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        pending, self.pending_signals = self.pending_signals, []
        for signal, kwargs in pending:
            signals.send(signal, app, store=self.store, **kwargs)

    def poll_delay(self, polls: int) -> dt.timedelta:
        settings = self.ext.settings
        seconds = min(settings.feed_poll_seconds * 2 ** (polls // 5), MAX_POLL_SECONDS)
        return dt.timedelta(seconds=seconds / settings.rate_limit_scale)

    # -- settling --------------------------------------------------------------------

    def confirm(self, cancellation: Cancellation, message: str) -> None:
        cancelling.confirm(cancellation, message)
        self.result.confirmed += 1
        order = cancelling.order_of(cancellation.order_id)
        self.pending_signals.append(
            (signals.cancellation_confirmed, {"order": order, "cancellation": cancellation})
        )

    def reject(self, cancellation: Cancellation, message: str, amazon_status: str | None) -> None:
        restored = cancelling.reject(cancellation, message, amazon_status=amazon_status)
        self.result.rejected += 1
        order = cancelling.order_of(cancellation.order_id)
        self.pending_signals.append(
            (
                signals.cancellation_rejected,
                {"order": order, "cancellation": cancellation, "message": message},
            )
        )
        if restored:
            self.pending_signals.append(
                (
                    signals.host_order_status_changed,
                    {
                        "order": order,
                        "reference": order.host_order_ref,
                        "status": order.host_status,
                    },
                )
            )

    def requeue(self, cancellation: Cancellation, why: str) -> None:
        if cancellation.attempts >= MAX_ATTEMPTS:
            self.reject(
                cancellation,
                f"Amazon could not process the cancellation after {cancellation.attempts} "
                f"attempts ({why}).",
                None,
            )
            return
        cancellation.state = "queued"
        cancellation.submission_id = None
        cancellation.message_id = None
        cancellation.result = why
        order = cancelling.order_of(cancellation.order_id)
        order.cancellation_state = "queued"
        self.result.requeued += 1

    def amazon_status(self, amazon_order_id: str) -> tuple[str | None, Any]:
        """The order as Amazon has it now: (Seller Central status, record) or an error."""
        try:
            raw = self.client.get_order(amazon_order_id, included_data=_CHECK_DATA)
            record = parse_order(raw, operation="getOrder")
        except AmazonOrdersError as exc:
            return None, exc
        return record.status, record

    # -- 1. verify and build -----------------------------------------------------------

    def verify_and_build(self) -> FeedSubmission | None:
        queued = list(
            self.session.scalars(
                sa.select(Cancellation)
                .where(
                    Cancellation.store_id == self.store.id,
                    Cancellation.state == "queued",
                    Cancellation.submission_id.is_(None),
                )
                .order_by(Cancellation.id)
                .limit(MAX_MESSAGES)
            )
        )
        if not queued:
            return None
        orders = {
            order.id: order
            for order in self.session.scalars(
                sa.select(AmazonOrder).where(AmazonOrder.id.in_([c.order_id for c in queued]))
            )
        }
        cancels: list[tuple[Cancellation, OrderCancel]] = []
        for cancellation in queued:
            order = orders[cancellation.order_id]
            status, record = self.amazon_status(order.amazon_order_id)
            if status is None:
                cancellation.result = f"Could not check the order on Amazon; retrying: {record}"
                self.result.errors.append(f"{order.amazon_order_id}: {record}")
                continue
            if status == "Canceled":
                self.confirm(cancellation, "Amazon had cancelled the order already.")
            elif status != "Unshipped":
                label = STATUS_LABELS.get(status, status)
                self.reject(
                    cancellation,
                    f"The order is {label} on Amazon now; it was not cancelled.",
                    status,
                )
            else:
                codes = [item.order_item_id for item in record.items]
                cancels.append(
                    (
                        cancellation,
                        OrderCancel(
                            message_id=len(cancels) + 1,
                            amazon_order_id=order.amazon_order_id,
                            item_codes=codes,
                            reason=cancellation.reason,
                        ),
                    )
                )
        submission = None
        if cancels:
            document = order_acknowledgement_feed(self.store.seller_id, [c for _, c in cancels])
            submission = FeedSubmission(
                store_id=self.store.id,
                feed_type=ORDER_ACKNOWLEDGEMENT,
                state="built",
                document=document.decode("utf-8"),
                messages=len(cancels),
            )
            self.session.add(submission)
            self.session.flush()
            for cancellation, cancel in cancels:
                cancellation.submission_id = submission.id
                cancellation.message_id = cancel.message_id
                cancellation.attempts += 1
        self.commit()
        return submission

    # -- 2. send -----------------------------------------------------------------------

    def _adopt(self, submission: FeedSubmission) -> str | None:
        """After a crash between createFeed and its commit: the feed Amazon created then."""
        sent_at = submission.create_sent_at
        assert sent_at is not None
        page = self.client.get_feeds(
            feed_types=[submission.feed_type],
            marketplace_ids=[self.store.marketplace_id],
            created_since=sent_at - dt.timedelta(minutes=5),
        )
        known = set(
            self.session.scalars(
                sa.select(FeedSubmission.feed_id).where(
                    FeedSubmission.store_id == self.store.id, FeedSubmission.feed_id.is_not(None)
                )
            )
        )
        candidates = []
        for feed in page.get("feeds") or []:
            created = _parse_time(feed.get("createdTime"))
            if feed.get("feedId") in known or created is None:
                continue
            if created >= sent_at - dt.timedelta(seconds=60):
                candidates.append((abs((created - sent_at).total_seconds()), feed["feedId"]))
        if not candidates:
            return None
        if len(candidates) > 1:
            log.warning(
                "%s: %d feeds could be submission %s's; taking the nearest in time",
                self.store.name,
                len(candidates),
                submission.id,
            )
        return str(min(candidates)[1])

    def send(self, submission: FeedSubmission) -> None:
        feed_id = self._adopt(submission) if submission.state == "creating" else None
        if feed_id is None:
            data = submission.document.encode("utf-8")
            document = self.client.create_feed_document(XML_CONTENT_TYPE)
            self.client.upload_feed_document(document["url"], data, XML_CONTENT_TYPE)
            submission.feed_document_id = document["feedDocumentId"]
            submission.state = "creating"
            submission.create_sent_at = utcnow()
            self.commit()
            feed_id = self.client.create_feed(
                submission.feed_type, [self.store.marketplace_id], document["feedDocumentId"]
            )
        submission.feed_id = feed_id
        submission.state = "submitted"
        submission.error = None
        submission.next_poll_at = utcnow() + self.poll_delay(0)
        for cancellation in self._cancellations(submission):
            cancellation.state = "sent"
            order = cancelling.order_of(cancellation.order_id)
            order.cancellation_state = "sent"
            self.session.add(
                OrderEvent(
                    order_id=order.id,
                    kind="cancel_sent",
                    actor="amazon-orders",
                    message=f"Cancellation sent to Amazon in feed {feed_id} "
                    f"(message {cancellation.message_id}).",
                )
            )
        self.commit()
        self.result.submitted.append(feed_id)
        log.info(
            "%s: feed %s sent with %d cancellations", self.store.name, feed_id, submission.messages
        )

    def _cancellations(self, submission: FeedSubmission) -> list[Cancellation]:
        return list(
            self.session.scalars(
                sa.select(Cancellation)
                .where(
                    Cancellation.submission_id == submission.id,
                    Cancellation.state.in_(cancelling.PENDING),
                )
                .order_by(Cancellation.message_id)
            )
        )

    # -- 3. poll -----------------------------------------------------------------------

    def poll(self, submission: FeedSubmission) -> None:
        assert submission.feed_id is not None
        feed = self.client.get_feed(submission.feed_id)
        status = str(feed.get("processingStatus") or "")
        submission.processing_status = status
        submission.polls += 1
        self.result.polled += 1
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            submission.next_poll_at = utcnow() + self.poll_delay(submission.polls)
            self.commit()
            return
        report = None
        document_id = feed.get("resultFeedDocumentId")
        if document_id:
            meta = self.client.get_feed_document(document_id)
            data = self.client.download_document(meta["url"], meta.get("compressionAlgorithm"))
            report = parse_processing_report(data)
            submission.result = report.summary
        errors = report.errors_by_message() if report is not None else {}
        whole_feed = errors.get("0")
        cancellations = self._cancellations(submission)
        if status == "DONE" and report is not None:
            for cancellation in cancellations:
                failures = errors.get(str(cancellation.message_id)) or whole_feed
                if failures:
                    self._rejected_by_amazon(cancellation, failures[0].description)
                else:
                    self.confirm(
                        cancellation,
                        f"Amazon confirmed the cancellation (feed {submission.feed_id}); "
                        "Amazon tells the buyer.",
                    )
            submission.state = "done"
        else:
            # FATAL (some, none or all may have been applied), CANCELLED, or DONE
            # without a report: what has no error of its own is verified again.
            for cancellation in cancellations:
                failures = errors.get(str(cancellation.message_id))
                if failures:
                    self._rejected_by_amazon(cancellation, failures[0].description)
                else:
                    self.requeue(cancellation, f"Amazon's feed {submission.feed_id} ended {status}")
            submission.state = "fatal" if status == "FATAL" else "cancelled"
            if status == "DONE":
                submission.state = "failed"
                submission.error = "Amazon gave no processing report."
        submission.next_poll_at = None
        self.commit()

    def _rejected_by_amazon(self, cancellation: Cancellation, description: str) -> None:
        order = cancelling.order_of(cancellation.order_id)
        status, _record = self.amazon_status(order.amazon_order_id)
        self.reject(
            cancellation,
            f"Amazon rejected the cancellation: {description}",
            status if status != "Canceled" else None,
        )


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def process_feeds(store: Store | int) -> FeedRun:
    """Verify, send and poll one store's cancellations (see the module's docs)."""
    ext = get_extension()
    session = ext.session
    loaded = get_store(store)
    store_id = loaded.id
    result = FeedRun()
    owner = uuid.uuid4().hex
    if not leases.acquire(session, store_id, owner, "feeds", FEED_LEASE):
        result.skipped = True
        return result
    client = None
    try:
        loaded = get_store(store_id)
        client = ext.client_for(loaded)
        run = _Run(loaded, client, result)
        # A document built (or a createFeed sent) by a run that crashed goes first.
        for submission in _submissions(session, store_id, ("built", "creating")):
            _guarded(run, "send", functools.partial(run.send, submission))
        now = utcnow()
        for submission in _submissions(session, store_id, ("submitted",)):
            if submission.next_poll_at is None or submission.next_poll_at <= now:
                _guarded(run, "poll", functools.partial(run.poll, submission))
        # Then the queue, including what a FATAL feed just gave back.
        built = _guarded(run, "verify", run.verify_and_build)
        if built is not None:
            _guarded(run, "send", functools.partial(run.send, built))
    finally:
        if client is not None:
            client.close()
        leases.release(session, store_id, owner, "feeds")
    return result


def _guarded(run: _Run, label: str, step: Callable[[], _T]) -> _T | None:
    """Run one step; an Amazon error is recorded and the step is retried next run."""
    try:
        return step()
    except AmazonOrdersError as exc:
        run.session.rollback()
        log.warning("%s: feed %s failed: %s", run.store.name, label, exc)
        run.result.errors.append(f"{label}: {exc}")
        _note_error(run, f"{label}: {exc}")
        return None


def _note_error(run: _Run, message: str) -> None:
    session = run.session
    for submission in _submissions(session, run.store.id, ("built", "creating", "submitted")):
        submission.error = message[:2000]
    session.commit()


def _submissions(session: Any, store_id: int, states: tuple[str, ...]) -> list[FeedSubmission]:
    return list(
        session.scalars(
            sa.select(FeedSubmission)
            .where(FeedSubmission.store_id == store_id, FeedSubmission.state.in_(states))
            .order_by(FeedSubmission.id)
        )
    )


def process_all_feeds(should_stop: Callable[[], bool] | None = None) -> list[FeedRun]:
    """:func:`process_feeds` for every store with cancellations on their way."""
    session = get_extension().session
    ids = list(
        session.scalars(
            sa.select(Cancellation.store_id)
            .where(Cancellation.state.in_(cancelling.PENDING))
            .distinct()
            .order_by(Cancellation.store_id)
        )
    )
    runs = []
    for store_id in ids:
        if should_stop is not None and should_stop():
            break
        runs.append(process_feeds(store_id))
    return runs


def next_poll_due() -> dt.datetime | None:
    """When the next feed poll is due (for a worker deciding how long to sleep)."""
    session = get_extension().session
    return session.scalar(
        sa.select(sa.func.min(FeedSubmission.next_poll_at)).where(
            FeedSubmission.state == "submitted"
        )
    )
