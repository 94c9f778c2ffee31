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

What goes wrong is logged in one line each and shown on the store's dashboard
(``Store.last_feed_error``) until a run goes through; an error that needs a
person (the seller's authorization is gone) says so. When Amazon cannot be asked
about an order for a reason that is not the order's (throttled, unreachable, the
authorization), the rest of the batch waits for the next run instead of failing
the same way one by one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import current_app

from .. import events, signals
from ..client.feeds_xml import (
    ORDER_ACKNOWLEDGEMENT,
    PAYMENT_ADJUSTMENT,
    XML_CONTENT_TYPE,
    AdjustedItem,
    OrderAdjustment,
    OrderCancel,
    ProcessingReport,
    check_adjustment,
    check_cancel,
    order_acknowledgement_feed,
    order_adjustment_feed,
    parse_processing_report,
)
from ..client.records import parse_order
from ..errors import (
    AmazonOrdersError,
    ConfigurationError,
    InvalidInputError,
    LWAError,
    NotFoundError,
    QuotaExceededError,
    TransportError,
)
from ..extension import get_extension
from ..models import (
    Adjustment,
    AmazonOrder,
    Cancellation,
    FeedSubmission,
    OrderEvent,
    Shipment,
    Store,
    utcnow,
)
from ..services import adjusting, cancelling, shipping
from ..services.stores import get_store
from . import leases
from .leases import LeaseLost
from .problems import describe, needs_action

log = logging.getLogger("flask_amazon_orders.feeds")
_T = TypeVar("_T")
#: What a feed carries: whole-order cancellations or item adjustments.
Row = Cancellation | Adjustment

FEED_LEASE = dt.timedelta(minutes=15)
#: Messages per feed at most (Amazon asks for documents under 10 MiB).
MAX_MESSAGES = 2000
#: Sends of one cancellation (or of one document) at most before it is settled by
#: asking Amazon (cancelled there: confirmed; otherwise rejected).
MAX_ATTEMPTS = 5
#: The lease is renewed after this many fresh checks (getOrder: 0.5 a second).
RENEW_EVERY = 20
#: A built document not sent within this time (before time scaling), or one whose
#: sending failed, is checked again before it goes out: the orders may have shipped.
STALE_AFTER = dt.timedelta(minutes=2)
#: What the fresh check before sending reads of an order (no buyer data).
_CHECK_DATA = ("FULFILLMENT", "CANCELLATION")
#: The longest wait between two polls of one feed (before time scaling).
MAX_POLL_SECONDS = 900.0
#: Errors about Amazon or the connection, not about one order: when asking Amazon
#: about one order fails so, the rest of the batch waits for the next run instead
#: of failing the same way one by one.
_NOT_ABOUT_THE_ORDER = (LWAError, ConfigurationError, QuotaExceededError, TransportError)
#: The feed job's steps in words, for its error messages.
_STEPS = {
    "recover": "Resuming what an earlier run left unfinished",
    "send": "Sending a feed to Amazon",
    "poll": "Asking Amazon about a feed",
    "verify": "Checking the orders on Amazon before cancelling them",
    "shipments": "Confirming shipments to Amazon",
    "verify adjustments": "Checking the orders on Amazon before adjusting their items",
}


@dataclasses.dataclass
class FeedRun:
    """What one :func:`process_feeds` run did."""

    skipped: bool = False
    confirmed: int = 0
    rejected: int = 0
    requeued: int = 0
    submitted: list[str] = dataclasses.field(default_factory=list)
    polled: int = 0
    #: What went wrong, one sentence each; all of it is tried again next run.
    errors: list[str] = dataclasses.field(default_factory=list)
    #: An error only a person can cure (the store's authorization is gone …), in words.
    needs_action: str | None = None


class _Run:
    """One run's context: the store, the client, and the signals to send after commits."""

    def __init__(self, store: Store, client: Any, result: FeedRun, owner: str) -> None:
        self.ext = get_extension()
        self.session = self.ext.session
        self.store = store
        self.store_id = store.id
        self.client = client
        self.result = result
        self.owner = owner
        self.pending_signals: list[tuple[Any, dict[str, Any]]] = []
        self.lease_lost = False

    def commit(self) -> None:
        self.session.commit()
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        pending, self.pending_signals = self.pending_signals, []
        for signal, kwargs in pending:
            signals.send(signal, app, store=self.store, **kwargs)

    def problem(
        self, what: str, error: BaseException | None = None, *, unexpected: bool = False
    ) -> None:
        """Record what went wrong (shown on the dashboard; tried again next run) and
        log it in one line (with the traceback only for an ``unexpected`` error)."""
        message = what
        if error is not None:
            message += ": " + (describe(error) if unexpected else str(error))
        log.log(
            logging.ERROR if unexpected else logging.WARNING,
            "%s: %s",
            self.store.name,
            message,
            exc_info=error if unexpected else None,
        )
        self.result.errors.append(message)
        if error is not None and needs_action(error) and self.result.needs_action is None:
            self.result.needs_action = describe(error)

    def keep_lease(self) -> None:
        """Renew the lease (and commit); :class:`LeaseLost` if another worker has it."""
        if not leases.renew(self.session, self.store_id, self.owner, "feeds", FEED_LEASE):
            self.session.rollback()
            raise LeaseLost("Another worker took over this store's feeds; this run stops.")
        self.commit()

    def stale_before(self) -> dt.datetime:
        """Documents built before this are checked again before they go out."""
        scaled = STALE_AFTER / self.ext.settings.rate_limit_scale
        return utcnow() - max(scaled, dt.timedelta(seconds=5))

    def poll_delay(self, polls: int) -> dt.timedelta:
        settings = self.ext.settings
        seconds = min(settings.feed_poll_seconds * 2 ** (polls // 5), MAX_POLL_SECONDS)
        return dt.timedelta(seconds=seconds / settings.rate_limit_scale)

    # -- settling --------------------------------------------------------------------

    def confirm(self, cancellation: Row, message: events.Text) -> None:
        if isinstance(cancellation, Adjustment):
            self.confirm_adjustment(cancellation, message)
            return
        cancelling.confirm(cancellation, message)
        self.result.confirmed += 1
        order = cancelling.order_of(cancellation.order_id)
        self.pending_signals.append(
            (signals.cancellation_confirmed, {"order": order, "cancellation": cancellation})
        )

    def reject(self, cancellation: Row, message: events.Text, amazon_status: str | None) -> None:
        if isinstance(cancellation, Adjustment):
            self.reject_adjustment(cancellation, message)
            return
        restored = cancelling.reject(cancellation, message, amazon_status=amazon_status)
        self.result.rejected += 1
        order = cancelling.order_of(cancellation.order_id)
        log.warning(
            "%s: the cancellation of order %s was rejected: %s",
            self.store.name,
            order.amazon_order_id,
            message,
        )
        self.pending_signals.append(
            (
                signals.cancellation_rejected,
                {"order": order, "cancellation": cancellation, "message": str(message)},
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

    def settle_by_asking(self, cancellation: Row, why: events.Text) -> None:
        """Settle by Amazon's word: cancelled there is confirmed, anything else rejected."""
        if isinstance(cancellation, Adjustment):
            self.reject(cancellation, events.Text("adjustment_not_applied", why=why), None)
            return
        self.keep_lease()  # commits what was settled before (see amazon_status)
        order = cancelling.order_of(cancellation.order_id)
        status, error = self.amazon_status(order.amazon_order_id)
        if status == "Canceled":
            self.confirm(cancellation, events.Text("cancelled_on_amazon", why=why))
        elif status is None and not isinstance(error, NotFoundError):
            # Amazon cannot be asked now: leave it queued; the next run asks again.
            self.release(cancellation, f"{why}; could not check the order on Amazon: {error}")
            self.problem(f"Checking order {order.amazon_order_id} on Amazon failed", error)
        else:
            self.reject(cancellation, events.Text("not_cancelled", why=why), status)

    @staticmethod
    def release(cancellation: Row, why: str | None = None) -> None:
        """Take a cancellation out of its feed; it stays (or goes back) in the queue."""
        cancellation.submission_id = None
        cancellation.message_id = None
        if why is not None:
            cancellation.result = why

    def requeue(self, cancellation: Row, why: str) -> None:
        if cancellation.attempts >= MAX_ATTEMPTS:
            self.settle_by_asking(
                cancellation, events.Text("not_processed", num=cancellation.attempts)
            )
            return
        cancellation.state = "queued"
        self.release(cancellation, why)
        if isinstance(cancellation, Cancellation):
            cancelling.order_of(cancellation.order_id).cancellation_state = "queued"
        self.result.requeued += 1

    def confirm_adjustment(self, adjustment: Adjustment, message: events.Text) -> None:
        adjusting.confirm(adjustment, message)
        order = cancelling.order_of(adjustment.order_id)
        adjusting.host_adjusted(order, adjustment)
        self.result.confirmed += 1
        self.pending_signals.append(
            (signals.adjustment_confirmed, {"order": order, "adjustment": adjustment})
        )

    def reject_adjustment(self, adjustment: Adjustment, message: events.Text) -> None:
        adjusting.reject(adjustment, message)
        self.result.rejected += 1
        order = cancelling.order_of(adjustment.order_id)
        log.warning(
            "%s: the item adjustment of order %s was rejected: %s",
            self.store.name,
            order.amazon_order_id,
            message,
        )
        self.pending_signals.append(
            (
                signals.adjustment_rejected,
                {"order": order, "adjustment": adjustment, "message": str(message)},
            )
        )

    def amazon_status(self, amazon_order_id: str) -> tuple[str | None, Any]:
        """The order as Amazon has it now: (Seller Central status, record), or (None, error).

        Callers commit what they settled before (:meth:`keep_lease`): no order's
        row lock is held while Amazon answers, and never while another order's is
        taken (a sync page takes them in id order).
        """
        try:
            raw = self.client.get_order(amazon_order_id, included_data=_CHECK_DATA)
            record = parse_order(raw, operation="getOrder")
        except AmazonOrdersError as exc:
            return None, exc
        return record.status, record

    def unreachable(
        self, status: str | None, record: Any, amazon_order_id: str, doing: str, rows: list[Row]
    ) -> bool:
        """Whether asking Amazon about an order failed for a reason that is not the
        order's (throttled, unreachable, the authorization …). If so, it is recorded
        once and ``rows`` (this order's and the rest of the batch) go back into the
        queue with a note: the next run checks them again."""
        if status is not None or not isinstance(record, _NOT_ABOUT_THE_ORDER):
            return False
        self.problem(f"Checking order {amazon_order_id} on Amazon before {doing} failed", record)
        for row in rows:
            self.release(
                row,
                f"Waiting: Amazon could not be asked about the order ({record}); "
                "it is checked again at the next run.",
            )
        return True

    # -- 0. what a run that died left behind ---------------------------------------------

    def recover(self) -> None:
        """Give back what a dead run was verifying, and re-check stale documents."""
        stale_before = self.stale_before()
        for submission in _submissions(self.session, self.store_id, ("verifying",)):
            for cancellation in self._cancellations(submission):
                self.release(cancellation)
            submission.state = "abandoned"
        for submission in _submissions(self.session, self.store_id, ("built",)):
            if (submission.built_at or submission.created_at) < stale_before:
                for cancellation in self._cancellations(submission):
                    self.release(cancellation, "Checked again: the document waited too long.")
                submission.state = "stale"
        self.commit()

    # -- 1. verify and build -----------------------------------------------------------

    def _claim(self, model: Any, feed_type: str) -> tuple[FeedSubmission, list[Any]] | None:
        """Claim the store's queued rows of ``model`` for a new submission
        (compare-and-set: a run that lost its lease and still goes on cannot put
        the same rows into a second document)."""
        ids = list(
            self.session.scalars(
                sa.select(model.id)
                .where(
                    model.store_id == self.store_id,
                    model.state == "queued",
                    model.submission_id.is_(None),
                )
                .order_by(model.id)
                .limit(MAX_MESSAGES)
            )
        )
        if not ids:
            return None
        submission = FeedSubmission(
            store_id=self.store_id, feed_type=feed_type, state="verifying", document="", messages=0
        )
        self.session.add(submission)
        self.session.flush()
        claimed = list(
            self.session.scalars(
                sa.update(model)
                .where(model.id.in_(ids), model.state == "queued", model.submission_id.is_(None))
                .values(submission_id=submission.id)
                .returning(model.id)
                .execution_options(synchronize_session=False)
            )
        )
        self.commit()
        rows = list(
            self.session.scalars(sa.select(model).where(model.id.in_(claimed)).order_by(model.id))
        )
        return submission, rows

    def _built(self, submission: FeedSubmission, document: bytes, rows: list[Any]) -> None:
        """Store the built document with its message ids (``rows``: (row, message))."""
        submission.document = document.decode("utf-8")
        submission.messages = len(rows)
        submission.state = "built"
        submission.built_at = utcnow()
        for row, message in rows:
            row.message_id = message.message_id
        self.commit()

    def verify_and_build(self) -> FeedSubmission | None:
        claim = self._claim(Cancellation, ORDER_ACKNOWLEDGEMENT)
        if claim is None:
            return None
        submission, queued = claim
        cancels: list[tuple[Cancellation, OrderCancel]] = []
        for count, cancellation in enumerate(queued, start=1):
            order = cancelling.order_of(cancellation.order_id)
            status, record = self.amazon_status(order.amazon_order_id)
            if self.unreachable(
                status, record, order.amazon_order_id, "cancelling it", queued[count - 1 :]
            ):
                break
            cancel = self._check(cancellation, order, status, record, len(cancels) + 1)
            if cancel is not None:
                cancels.append((cancellation, cancel))
            if cancel is None or count % RENEW_EVERY == 0:
                # Also commits what was settled: the order's lock is not held
                # while Amazon is asked about the next one.
                self.keep_lease()
        self.keep_lease()
        if not cancels:
            submission.state = "empty"
            self.commit()
            return None
        document = order_acknowledgement_feed(self.store.seller_id, [c for _, c in cancels])
        self._built(submission, document, cancels)
        return submission

    def _check(
        self,
        cancellation: Cancellation,
        order: AmazonOrder,
        status: str | None,
        record: Any,
        message_id: int,
    ) -> OrderCancel | None:
        """The fresh check of one order (Amazon's ``status`` and ``record`` of it):
        its message, or ``None`` if it was settled (or must wait) instead."""
        if status is None:
            if isinstance(record, NotFoundError):
                self.release(cancellation)
                self.reject(cancellation, events.Text("unknown_to_amazon", error=str(record)), None)
            else:
                self.release(
                    cancellation, f"Could not check the order on Amazon; retrying: {record}"
                )
                self.problem(
                    f"Checking order {order.amazon_order_id} on Amazon before cancelling it failed",
                    record,
                )
            return None
        if status == "Canceled":
            self.release(cancellation)
            self.confirm(cancellation, events.Text("cancelled_already"))
            return None
        if status != "Unshipped":
            self.release(cancellation)
            self.reject(cancellation, events.Text("cancel_status_moved", status=status), status)
            return None
        if cancellation.attempts >= MAX_ATTEMPTS:
            self.release(cancellation)
            self.reject(
                cancellation,
                events.Text(
                    "cancel_attempts",
                    num=cancellation.attempts,
                    last=cancellation.result or events.Text("no_answer"),
                ),
                status,
            )
            return None
        cancel = OrderCancel(
            message_id=message_id,
            amazon_order_id=order.amazon_order_id,
            item_codes=[item.order_item_id for item in record.items],
            reason=cancellation.reason,
        )
        try:
            check_cancel(cancel)
        except ValueError as exc:
            self.release(cancellation)
            self.reject(cancellation, events.Text("cancel_unsendable", error=str(exc)), status)
            return None
        return cancel

    # -- 1b. item adjustments: verify and build --------------------------------------

    def verify_and_build_adjustments(self) -> FeedSubmission | None:
        claim = self._claim(Adjustment, PAYMENT_ADJUSTMENT)
        if claim is None:
            return None
        submission, queued = claim
        messages: list[tuple[Adjustment, OrderAdjustment]] = []
        records: dict[int, Any] = {}
        for count, adjustment in enumerate(queued, start=1):
            order = cancelling.order_of(adjustment.order_id)
            if order.id not in records:
                records[order.id] = self.amazon_status(order.amazon_order_id)
            status, record = records[order.id]
            if self.unreachable(
                status, record, order.amazon_order_id, "adjusting its items", queued[count - 1 :]
            ):
                break
            message = self._check_adjustment(adjustment, order, status, record, len(messages) + 1)
            if message is not None:
                messages.append((adjustment, message))
            if count % RENEW_EVERY == 0:
                self.keep_lease()
        self.keep_lease()
        if not messages:
            submission.state = "empty"
            self.commit()
            return None
        document = order_adjustment_feed(self.store.seller_id, [m for _, m in messages])
        self._built(submission, document, messages)
        return submission

    def _check_adjustment(
        self, adjustment: Adjustment, order: AmazonOrder, status: str | None, record: Any, n: int
    ) -> OrderAdjustment | None:
        if status is None:
            self.release(adjustment, f"Could not check the order on Amazon; retrying: {record}")
            if isinstance(record, NotFoundError):
                self.reject(adjustment, events.Text("unknown_to_amazon", error=str(record)), None)
            else:
                self.problem(
                    f"Checking order {order.amazon_order_id} on Amazon before adjusting its "
                    "items failed",
                    record,
                )
            return None
        item = next((i for i in record.items if i.order_item_id == adjustment.order_item_id), None)
        open_units = 0 if item is None else item.quantity_ordered - item.quantity_shipped
        if status not in ("Unshipped", "PartiallyShipped") or item is None:
            self.release(adjustment)
            self.reject(adjustment, events.Text("adjustment_status_moved", status=status), None)
            return None
        if adjustment.quantity_cancelled > open_units:
            self.release(adjustment)
            self.reject(adjustment, events.Text("adjustment_units_gone", num=open_units), None)
            return None
        if adjustment.attempts >= MAX_ATTEMPTS:
            self.release(adjustment)
            self.reject(
                adjustment,
                events.Text(
                    "adjustment_attempts",
                    num=adjustment.attempts,
                    last=adjustment.result or events.Text("no_answer"),
                ),
                None,
            )
            return None
        amounts = {
            adjusting.COMPONENTS[name]: getattr(adjustment, name)
            for name in adjusting.COMPONENTS
            if getattr(adjustment, name)
        }
        message = OrderAdjustment(
            message_id=n,
            amazon_order_id=order.amazon_order_id,
            currency=adjustment.currency or order.currency or "EUR",
            items=[
                AdjustedItem(
                    item_code=adjustment.order_item_id,
                    merchant_adjustment_item_id=adjustment.merchant_adjustment_item_id,
                    reason=adjustment.reason,
                    amounts=amounts,
                    quantity_cancelled=adjustment.quantity_cancelled or None,
                )
            ],
        )
        try:
            check_adjustment(message)
        except ValueError as exc:
            self.release(adjustment)
            self.reject(adjustment, events.Text("adjustment_unsendable", error=str(exc)), None)
            return None
        return message

    # -- 2. send -----------------------------------------------------------------------

    def _adopt(self, submission: FeedSubmission) -> str | None:
        """After a crash between createFeed and its commit: the feed Amazon created then."""
        sent_at = submission.create_sent_at
        assert sent_at is not None
        window = dt.timedelta(minutes=5)
        known = set(
            self.session.scalars(
                sa.select(FeedSubmission.feed_id).where(
                    FeedSubmission.store_id == self.store_id, FeedSubmission.feed_id.is_not(None)
                )
            )
        )
        candidates = []
        token = None
        for _page in range(10):
            if token:
                page = self.client.get_feeds(next_token=token)
            else:
                page = self.client.get_feeds(
                    feed_types=[submission.feed_type],
                    marketplace_ids=[self.store.marketplace_id],
                    created_since=sent_at - window,
                    page_size=100,
                )
            for feed in page.get("feeds") or []:
                created = _parse_time(feed.get("createdTime"))
                if feed.get("feedId") in known or created is None:
                    continue
                if abs(created - sent_at) <= window:
                    candidates.append((abs((created - sent_at).total_seconds()), feed["feedId"]))
            token = page.get("nextToken")
            if not token:
                break
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
        self.keep_lease()
        feed_id = self._adopt(submission) if submission.state == "creating" else None
        if feed_id is None:
            stale = (submission.built_at or submission.created_at) < self.stale_before()
            if submission.attempts or stale:
                # An earlier try did not get through (or it is long ago): the
                # orders are checked again before anything goes out.
                for cancellation in self._cancellations(submission):
                    self.release(cancellation, "Checked again before sending.")
                submission.state = "stale"
                self.commit()
                return
            submission.attempts += 1
            self.commit()
            data = submission.document.encode("utf-8")
            document = self.client.create_feed_document(XML_CONTENT_TYPE)
            self.client.upload_feed_document(document["url"], data, XML_CONTENT_TYPE)
            submission.feed_document_id = document["feedDocumentId"]
            submission.state = "creating"
            submission.create_sent_at = utcnow()
            # An attempt is a feed: a document that never got that far (a crash,
            # Amazon down) does not count, or a few restarts would reject it.
            for row in self._cancellations(submission):
                row.attempts += 1
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
            if isinstance(cancellation, Cancellation):
                order.cancellation_state = "sent"
                event = OrderEvent(
                    order_id=order.id,
                    kind="cancel_sent",
                    actor="amazon-orders",
                    **events.columns(
                        events.Text("cancel_sent", feed=feed_id, message_id=cancellation.message_id)
                    ),
                )
            else:
                event = OrderEvent(
                    order_id=order.id,
                    kind="adjustment_sent",
                    actor="amazon-orders",
                    **events.columns(
                        events.Text(
                            "adjustment_sent", feed=feed_id, message_id=cancellation.message_id
                        )
                    ),
                )
            self.session.add(event)
        self.commit()
        self.result.submitted.append(feed_id)
        log.info(
            "%s: feed %s sent with %d cancellations", self.store.name, feed_id, submission.messages
        )

    def _cancellations(self, submission: FeedSubmission) -> list[Row]:
        """The unsettled rows a submission carries (cancellations or adjustments), by
        order: settling them takes the orders' row locks in id order, as a sync page
        does, so the two never wait for each other in a circle."""
        model: Any = Adjustment if submission.feed_type == PAYMENT_ADJUSTMENT else Cancellation
        return list(
            self.session.scalars(
                sa.select(model)
                .where(model.submission_id == submission.id, model.state.in_(cancelling.PENDING))
                .order_by(model.order_id, model.id)
            )
        )

    # -- shipments (Orders v0 confirmShipment, one call each) ---------------------------

    def send_shipments(self) -> None:
        queued = list(
            self.session.scalars(
                sa.select(Shipment)
                .where(Shipment.store_id == self.store_id, Shipment.state == "queued")
                .order_by(Shipment.id)
                .limit(MAX_MESSAGES)
            )
        )
        for count, shipment in enumerate(queued, start=1):
            if count % RENEW_EVERY == 0:
                self.keep_lease()
            if not self._send_shipment(shipment):
                break  # the others would fail the same way: they wait for the next run

    def _send_shipment(self, shipment: Shipment) -> bool:
        """Confirm one shipment; ``False`` when the others should wait (see
        :data:`_NOT_ABOUT_THE_ORDER`)."""
        order = cancelling.order_of(shipment.order_id)
        lines = shipping.shipment_lines(shipment)
        detail: dict[str, Any] = {
            "packageReferenceId": shipment.package_reference,
            "carrierCode": shipment.carrier_code,
            "trackingNumber": shipment.tracking_number,
            "shipDate": shipment.ship_date.astimezone(dt.timezone.utc)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "orderItems": [
                {"orderItemId": line["order_item_id"], "quantity": line["quantity"]}
                for line in lines
            ],
        }
        if shipment.carrier_name:
            detail["carrierName"] = shipment.carrier_name
        if shipment.shipping_method:
            detail["shippingMethod"] = shipment.shipping_method
        body = {
            "marketplaceId": order.marketplace_id or self.store.marketplace_id,
            "packageDetail": detail,
        }
        shipment.attempts += 1
        self.commit()
        try:
            # The same packageReferenceId at every retry: Amazon takes it once.
            self.client.confirm_shipment(order.amazon_order_id, body)
        except (InvalidInputError, NotFoundError) as exc:
            text = events.Text("shipment_rejected", error=str(exc.message or exc))
            shipment.state = "rejected"
            shipment.result = str(text)
            self.session.add(
                OrderEvent(
                    order_id=order.id,
                    kind="shipment_rejected",
                    actor="amazon",
                    **events.columns(text),
                )
            )
            self.pending_signals.append(
                (signals.shipment_rejected, {"order": order, "shipment": shipment})
            )
            self.commit()
            log.warning(
                "%s: the shipment of order %s was rejected: %s",
                self.store.name,
                order.amazon_order_id,
                shipment.result,
            )
            return True
        except AmazonOrdersError as exc:
            shipment.result = f"Waiting to be confirmed to Amazon; the last try failed: {exc}"
            self.commit()
            self.problem(
                f"Confirming the shipment of order {order.amazon_order_id} to Amazon failed", exc
            )
            return not isinstance(exc, _NOT_ABOUT_THE_ORDER)
        if shipping.apply_confirmed(order, shipment):
            self.pending_signals.append(
                (signals.shipment_confirmed, {"order": order, "shipment": shipment})
            )
        self.commit()
        return True

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
            try:
                meta = self.client.get_feed_document(document_id)
                data = self.client.download_document(meta["url"], meta.get("compressionAlgorithm"))
                report = parse_processing_report(data)
                submission.result = report.summary
            except (AmazonOrdersError, ValueError, KeyError) as exc:
                # A report we cannot read settles nothing: what it says is asked again.
                submission.error = f"The processing report could not be read: {exc}"
                report = None
                self.problem(
                    f"Reading the processing report of feed {submission.feed_id} failed "
                    "(its orders are checked on Amazon instead)",
                    exc,
                )
        self._settle(submission, status, report)
        submission.next_poll_at = None
        self.commit()

    def _settle(
        self, submission: FeedSubmission, status: str, report: ProcessingReport | None
    ) -> None:
        errors = report.errors_by_message() if report is not None else {}
        whole_feed = errors.get("0")
        # Only a complete report of every message confirms what has no error.
        complete = (
            status == "DONE"
            and report is not None
            and report.status == "Complete"
            and (report.processed is None or report.processed >= submission.messages)
        )
        rows = self._cancellations(submission)
        if status != "DONE":
            self.problem(
                f"Amazon ended feed {submission.feed_id} {status} without processing it; "
                f"its {len(rows)} messages are checked on Amazon again and sent again "
                "where needed"
            )
        elif not complete and report is not None:
            self.problem(
                f"Amazon's processing report of feed {submission.feed_id} was incomplete; "
                "the orders it does not confirm are checked on Amazon again"
            )
        for cancellation in rows:
            failures = errors.get(str(cancellation.message_id)) or (
                whole_feed if complete else None
            )
            if failures:
                self._rejected_by_amazon(cancellation, failures[0].description)
            elif complete:
                if isinstance(cancellation, Adjustment):
                    text = events.Text("adjustment_confirmed", feed=submission.feed_id)
                else:
                    text = events.Text("cancel_confirmed", feed=submission.feed_id)
                self.confirm(cancellation, text)
            else:
                # FATAL (some, none or all may have been applied), CANCELLED, or no
                # usable report: checked again (an order Amazon cancelled is then
                # confirmed, not sent twice).
                self.requeue(cancellation, f"Amazon's feed {submission.feed_id} ended {status}")
        if complete:
            submission.state = "done"
        elif status == "DONE":
            submission.state = "failed"
            submission.error = submission.error or "Amazon's processing report was incomplete."
        else:
            submission.state = "fatal" if status == "FATAL" else "cancelled"

    def _rejected_by_amazon(self, cancellation: Row, description: str) -> None:
        if isinstance(cancellation, Adjustment):
            self.reject(cancellation, events.Text("adjustment_rejected", error=description), None)
            return
        self.keep_lease()  # commits what was settled before (see amazon_status)
        order = cancelling.order_of(cancellation.order_id)
        status, _record = self.amazon_status(order.amazon_order_id)
        if status == "Canceled":
            # Amazon refused our message because the order is cancelled already
            # (by the buyer, by Amazon, or by an earlier feed): cancelled it is.
            self.confirm(cancellation, events.Text("cancelled_on_amazon", why=description))
        else:
            self.reject(cancellation, events.Text("cancel_rejected", error=description), status)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def process_feeds(store: Store | int) -> FeedRun:
    """Verify, send and poll one store's cancellations, and confirm its shipments
    (see the module's docs)."""
    ext = get_extension()
    session = ext.session
    loaded = get_store(store)
    store_id = loaded.id
    result = FeedRun()
    owner = leases.new_owner()
    if not leases.acquire(session, store_id, owner, "feeds", FEED_LEASE):
        result.skipped = True
        return result
    client = None
    run: _Run | None = None
    try:
        loaded = get_store(store_id)
        client = ext.client_for(loaded)
        run = _Run(loaded, client, result, owner)
        if _guarded(run, "recover", run.recover) is False:
            return result
        # A document built (or a createFeed sent) by a run that crashed goes first.
        for submission in _submissions(session, store_id, ("built", "creating")):
            if _guarded(run, "send", functools.partial(run.send, submission)) is False:
                return result
        now = utcnow()
        due = [
            submission
            for submission in _submissions(session, store_id, ("submitted",))
            if submission.next_poll_at is None or submission.next_poll_at <= now
        ]
        for submission in due:
            if _guarded(run, "poll", functools.partial(run.poll, submission)) is False:
                return result
        # Then the queue, including what a failed feed just gave back.
        built = _guarded(run, "verify", run.verify_and_build)
        if isinstance(built, FeedSubmission):
            _guarded(run, "send", functools.partial(run.send, built))
        if _guarded(run, "shipments", run.send_shipments) is False:
            return result
        built = _guarded(run, "verify adjustments", run.verify_and_build_adjustments)
        if isinstance(built, FeedSubmission):
            _guarded(run, "send", functools.partial(run.send, built))
    finally:
        session.rollback()
        if client is not None:
            client.close()
        if run is not None and not run.lease_lost:
            _show_problems(session, store_id, result)
        leases.release(session, store_id, owner, "feeds")
    return result


def _show_problems(session: Any, store_id: int, result: FeedRun) -> None:
    """Put the run's problems on the store (its dashboard shows them), or clear the
    last run's when this one went through."""
    store = session.get(Store, store_id)
    if store is None:
        return
    error = None
    if result.errors:
        error = result.needs_action or result.errors[0]
        if len(result.errors) > 1:
            error += f" (and {len(result.errors) - 1} more; the application log has them all)"
    action = result.needs_action is not None
    if (store.last_feed_error, store.last_feed_error_needs_action) != (error, action):
        store.last_feed_error = None if error is None else error[:4000]
        store.last_feed_error_needs_action = action
        session.commit()


def _guarded(run: _Run, label: str, step: Callable[[], _T]) -> _T | bool | None:
    """Run one step; an error is recorded and the step is tried again next run.

    Returns ``False`` when the run must stop (the lease was lost).
    """
    try:
        return step()
    except LeaseLost as exc:
        run.session.rollback()
        log.warning("%s: %s", run.store.name, exc)
        run.result.errors.append(str(exc))
        run.lease_lost = True
        return False
    except Exception as exc:
        run.session.rollback()
        run.problem(
            f"{_STEPS.get(label, label)} failed",
            exc,
            unexpected=not isinstance(exc, AmazonOrdersError),
        )
        _note_error(run, run.result.errors[-1])
        return None


def _note_error(run: _Run, message: str) -> None:
    session = run.session
    for submission in _submissions(session, run.store_id, ("built", "creating", "submitted")):
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


def stores_with_feed_work() -> list[int]:
    """The ids of the stores with cancellations, adjustments or shipments on their way,
    or whose last feed run failed (a run clears what it shows on the dashboard)."""
    session = get_extension().session
    return sorted(
        set(session.scalars(sa.select(Store.id).where(Store.last_feed_error.is_not(None))))
        | set(
            session.scalars(
                sa.select(Cancellation.store_id)
                .where(Cancellation.state.in_(cancelling.PENDING))
                .distinct()
            )
        )
        | set(
            session.scalars(
                sa.select(Shipment.store_id).where(Shipment.state == "queued").distinct()
            )
        )
        | set(
            session.scalars(
                sa.select(Adjustment.store_id)
                .where(Adjustment.state.in_(cancelling.PENDING))
                .distinct()
            )
        )
    )


def process_all_feeds(should_stop: Callable[[], bool] | None = None) -> list[FeedRun]:
    """:func:`process_feeds` for every store with cancellations, item adjustments or
    shipments on their way."""
    runs = []
    for store_id in stores_with_feed_work():
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
