"""The fault matrix (issue 7): each fault Amazon throws, at each step that talks to Amazon.

Rows are faults, columns the four flows that talk to Amazon:

``sync``
    ``searchOrders``, page by page (after the LWA token).
``cancel_submission``
    the feed job's fresh check of each queued cancellation (``getOrder``), then
    ``createFeedDocument``, the presigned upload and ``createFeed``.
``feed_polling``
    ``getFeed``, ``getFeedDocument``, the download of the processing report, and
    settling the cancellations by it.
``shipment_confirmation``
    ``confirmShipment`` for each queued shipment, sent by the feed job.

Every cell runs over real HTTP against the time-scaled sandbox, with the
worker's own round (:meth:`.EmbeddedWorker.run_once`: sync every store, then the
feed job). For each operation of the column the fault is injected and lasts for
one round, which must fail visibly:

- a clear error in the log: a warning of the job naming the operation and what
  happened, on one line, and no traceback anywhere;
- the same in plain words on the store dashboard;
- nothing lost meanwhile: the sync cursor never lies past an order change that is
  not stored, and no cancellation or shipment is rejected because of the fault.

(An expired page token is the one fault handled within the round: the log says
so, and the sync reads the window again from its start.)

Then the fault stops (a revoked refresh token needs a person: the dashboard says
so, and the person enters a new one on the store's settings page) and the
worker's rounds run until nothing is pending. In the end every Amazon order is
stored exactly once, every cancellation is confirmed (Amazon has the order
cancelled) or visibly rejected, every shipment is confirmed once (Amazon has one
package for it), no order went out in two feeds that Amazon processed, and the
dashboard shows no error any more.

Cells where a fault cannot happen are listed in :data:`NOT_APPLICABLE` with the
reason; :func:`test_every_cell_is_run_or_justified` keeps the grid complete. The
outcome is printed at the end of the module: the checks passed per cell, and the
cells not applicable with their reasons.

To stay quick, the cells share one sandbox and one app (per retry setting) on
the test database: each cell has its own seller and store, and deactivates its
store at the end, so that the worker's rounds of the next cells pass it by.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import html
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import admin_client, connect_store

from flask_amazon_orders import get_extension
from flask_amazon_orders.client.lwa import default_token_cache
from flask_amazon_orders.jobs.feeds import next_poll_due
from flask_amazon_orders.models import AmazonOrder, Cancellation, Shipment, Store, utcnow
from flask_amazon_orders.runners.embedded import EmbeddedWorker
from flask_amazon_orders.services.cancelling import cancel_orders
from flask_amazon_orders.services.shipping import confirm_shipment

COLUMNS = ("sync", "cancel_submission", "feed_polling", "shipment_confirmation")

#: Each row: the sandbox's fault kind ("" for the report row, which needs no fault:
#: the order ships between the feed's submission and its processing).
FAULTS = {
    "429_storm": "429",
    "500": "500",
    "503_html": "503_html",
    "read_timeout": "slow",
    "connection_dropped": "drop",
    "truncated_json": "truncated_json",
    "expired_pagination_token": "expired_pagination_token",
    "invalid_grant": "invalid_grant",
    "feed_fatal": "fatal",
    "report_message_errors": "",
    "presigned_url_refused": "403",
}

#: What the error says for each kind of fault (in the log line and on the dashboard).
SAYS = {
    "429": "HTTP 429",
    "500": "HTTP 500",
    "503_html": "HTTP 503: the server answered with an HTML page",
    "slow": "read timeout",
    "drop": "connection",
    "truncated_json": "truncated",
    "expired_pagination_token": "paginationToken has expired",
    "invalid_grant": "invalid_grant",
    "fatal": "FATAL",
    "": "cannot be cancelled: it is SHIPPED",
    "403": "HTTP 403 AccessDenied",
}

#: The sandbox's operation names as the client (and so the log) names them.
CLIENT_NAMES = {"token": "lwaToken", "upload": "uploadFeedDocument", "download": "downloadDocument"}

#: The operations of each column, each hit by each fault in turn.
OPERATIONS = {
    "sync": ("searchOrders",),
    "cancel_submission": ("getOrder", "createFeedDocument", "upload", "createFeed"),
    "feed_polling": ("getFeed", "getFeedDocument", "download"),
    "shipment_confirmation": ("confirmShipment",),
}

#: Where a fault hits only some of the column's operations. Every fault hits the
#: calls with a path of their own (the check, createFeed, whose lost answer is
#: adopted; getFeed). createFeedDocument and the upload fail the same way (the
#: document waits and is checked again), as do getFeedDocument and the download
#: (the report is unreadable, the orders are checked instead): the faults share
#: them out, each of these calls is hit by three or four kinds.
ONLY = {
    ("cancel_submission", "429_storm"): ("getOrder", "upload", "createFeed"),
    ("cancel_submission", "500"): ("getOrder", "upload", "createFeed"),
    ("cancel_submission", "503_html"): ("getOrder", "createFeedDocument", "createFeed"),
    ("cancel_submission", "connection_dropped"): ("getOrder", "createFeedDocument", "createFeed"),
    # The upload's answer has no body to cut.
    ("cancel_submission", "truncated_json"): ("getOrder", "createFeedDocument", "createFeed"),
    # A read timeout costs a second a call: the calls whose late answer matters
    # most (a check, and a createFeed Amazon carries out after we gave up).
    ("cancel_submission", "read_timeout"): ("getOrder", "createFeed"),
    ("feed_polling", "429_storm"): ("getFeed", "getFeedDocument"),
    ("feed_polling", "500"): ("getFeed", "download"),
    ("feed_polling", "503_html"): ("getFeed", "getFeedDocument"),
    ("feed_polling", "connection_dropped"): ("getFeed", "download"),
    ("feed_polling", "truncated_json"): ("getFeed", "getFeedDocument", "download"),
    ("feed_polling", "read_timeout"): ("getFeed",),
    # The presigned URL of each column: the upload, and the report's download.
    ("cancel_submission", "presigned_url_refused"): ("upload",),
    ("feed_polling", "presigned_url_refused"): ("download",),
}

#: The cells where the fault cannot happen, and why.
NOT_APPLICABLE = {
    ("sync", "feed_fatal"): "the sync sends no feed",
    ("sync", "report_message_errors"): "the sync reads no processing report",
    ("sync", "presigned_url_refused"): "the sync uses no presigned URL",
    ("cancel_submission", "expired_pagination_token"): (
        "getOrder, createFeedDocument, the upload and createFeed are not paginated (getFeeds "
        "is, read to adopt a feed after a lost createFeed answer: its page token is used at "
        "once, in the same run)"
    ),
    ("cancel_submission", "feed_fatal"): (
        "a FATAL feed was created without error; FATAL is learned by polling: "
        "feed_polling-feed_fatal"
    ),
    ("cancel_submission", "report_message_errors"): (
        "the processing report is read by polling: feed_polling-report_message_errors (an "
        "order that shipped before the check is rejected before sending: test_cancelling.py)"
    ),
    ("feed_polling", "expired_pagination_token"): (
        "getFeed, getFeedDocument and the report's download are not paginated"
    ),
    ("shipment_confirmation", "expired_pagination_token"): "confirmShipment has no pagination",
    ("shipment_confirmation", "truncated_json"): (
        "confirmShipment answers 204 No Content: there is no body to cut (a lost answer is "
        "shipment_confirmation-connection_dropped)"
    ),
    ("shipment_confirmation", "feed_fatal"): "shipments are confirmed one by one, not by a feed",
    ("shipment_confirmation", "report_message_errors"): (
        "confirmShipment answers each call at once, there is no processing report (Amazon "
        "refusing a shipment: test_shipping.py)"
    ),
    ("shipment_confirmation", "presigned_url_refused"): "confirmShipment uploads nothing",
}

#: Faults outside the column's own operations or timing.
SPECIAL = ("invalid_grant", "expired_pagination_token", "feed_fatal", "report_message_errors")
#: The slow fault's delay, over the client's read timeout in these tests (1 s).
SLOW_DELAY = 1.3
JOB_LOGGERS = ("flask_amazon_orders.sync", "flask_amazon_orders.feeds")
#: What a store's card on the store list says while the store has an error.
ATTENTION = "The last request to Amazon failed"
#: The cells run, and per cell how often each check passed (for the summary).
OUTCOMES: dict[str, collections.Counter[str]] = {}


@dataclasses.dataclass(frozen=True)
class Step:
    """One fault injection and the worker's round under it."""

    #: The sandbox's operation name.
    operation: str
    kind: str
    after: int = 0
    #: The fault lasts for the round (the faults are cleared after it).
    count: int = 1000
    #: The round fails and says so; otherwise the job handles the fault in the round.
    fails: bool = True


def steps(column: str, fault: str) -> list[Step]:
    kind = FAULTS[fault]
    if fault == "invalid_grant":
        return [Step("token", kind)]
    if fault == "expired_pagination_token":
        # A window interrupted at page 2 (the worker died, Amazon failed …) is
        # resumed after the page token expired: the job reads the window again.
        return [
            Step("searchOrders", "500", after=1),
            Step("searchOrders", kind, count=1, fails=False),
        ]
    if fault == "feed_fatal":
        return [Step("createFeed", kind, count=1)]
    if fault == "report_message_errors":
        return [Step("", kind)]
    after = 1 if column == "sync" else 0  # the sync's fault hits page 2 of 3
    return [Step(op, kind, after=after) for op in ONLY.get((column, fault), OPERATIONS[column])]


def _cells() -> list[tuple[str, str]]:
    return [
        (column, fault)
        for column in COLUMNS
        for fault in FAULTS
        if (column, fault) not in NOT_APPLICABLE
    ]


CELLS = _cells()


def test_every_cell_is_run_or_justified() -> None:
    grid = {(column, fault) for column in COLUMNS for fault in FAULTS}
    assert set(CELLS) | set(NOT_APPLICABLE) == grid
    assert not set(CELLS) & set(NOT_APPLICABLE)
    assert all(len(why) > 20 for why in NOT_APPLICABLE.values())
    for column, fault in CELLS:
        for step in steps(column, fault):
            if step.kind:
                assert (
                    step.operation == "token"
                    or fault in SPECIAL
                    or (step.operation in OPERATIONS[column])
                ), (column, fault, step)


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the matrix's outcome after the module (also with output captured)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not OUTCOMES:
        return
    with capture.global_and_fixture_disabled():
        _print_summary(reporter)


def _print_summary(reporter: Any) -> None:
    width = max(len(fault) for fault in FAULTS)
    write = reporter.write_line
    write("")
    write("fault matrix (issue 7): checks passed per cell")
    write(" " * width + "".join(f"{column:>23}" for column in COLUMNS))
    for fault in FAULTS:
        cells = []
        for column in COLUMNS:
            checks = OUTCOMES.get(f"{column}-{fault}")
            if (column, fault) in NOT_APPLICABLE:
                cells.append("n/a")
            else:
                cells.append("not run" if checks is None else str(sum(checks.values())))
        write(f"{fault:<{width}}" + "".join(f"{cell:>23}" for cell in cells))
    kinds: collections.Counter[str] = collections.Counter()
    for checks in OUTCOMES.values():
        kinds.update(checks)
    write(
        f"{len(OUTCOMES)} of {len(CELLS)} cells passed, {kinds.total()} checks of "
        f"{len(kinds)} kinds: " + ", ".join(f"{name} {n}" for name, n in sorted(kinds.items()))
    )
    write(f"{len(NOT_APPLICABLE)} cells not applicable:")
    for (column, fault), why in NOT_APPLICABLE.items():
        write(f"  {column}-{fault}: {why}")


@pytest.fixture(scope="module")
def matrix_app(
    database_url: str, module_sandbox: Any, make_app: Any
) -> Iterator[Callable[[int], Any]]:
    """The matrix's app for a number of attempts per call (built once, tables once)."""
    made: dict[int, tuple[Any, Any]] = {}

    def app_for(attempts: int) -> Any:
        if attempts not in made:
            app, db = make_app(
                database_url,
                module_sandbox.url,
                AMAZON_ORDERS_RETRY_MAX_ATTEMPTS=attempts,
                AMAZON_ORDERS_HTTP_TIMEOUT=(2.0, 1.0),
                AMAZON_ORDERS_SYNC_PAGE_SIZE=20,
            )
            with app.app_context():
                _no_waiting_for_the_disk(db.engine)
                if not made:
                    db.drop_all()
                    db.create_all()
            made[attempts] = (app, db)
        return made[attempts][0]

    yield app_for
    for index, (app, db) in enumerate(made.values()):
        with app.app_context():
            db.session.remove()
            if index == 0:
                db.drop_all()
            db.engine.dispose()


def _no_waiting_for_the_disk(engine: sa.Engine) -> None:
    """Commits do not wait for the disk (the matrix commits often; a crash of the
    machine is no fault it tests): SQLite's ``synchronous=OFF``, PostgreSQL's
    ``synchronous_commit=off``. What a commit makes visible is unchanged."""
    statement = {
        "sqlite": "PRAGMA synchronous=OFF",
        "postgresql": "SET synchronous_commit TO off",
    }.get(engine.dialect.name)
    if statement is None:
        return

    @sa.event.listens_for(engine, "connect")
    def connected(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute(statement)
        cursor.close()
        connection.commit()  # PostgreSQL's SET would end with the first rollback otherwise

    engine.dispose()  # connections made before get it too


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _banners(page: str) -> list[str]:
    """The error banners of a page, as text."""
    found = re.findall(
        r'<div class="ao-banner ao-banner--error" role="alert">(.*?)</div>', page, re.S
    )
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()) for text in found]


class Cell:
    """One cell of the matrix: a store with work on its way, the faults, the recovery."""

    def __init__(
        self, column: str, fault: str, app: Any, sandbox: Any, seller: dict[str, Any], caplog: Any
    ) -> None:
        self.column = column
        self.fault = fault
        self.id = f"{column}-{fault}"
        self.app = app
        self.control = sandbox.control
        self.seller = seller
        self.seller_id = seller["seller_id"]
        self.caplog = caplog
        self.session = get_extension(app).session
        self.browser = admin_client(app)
        self.checks: collections.Counter[str] = collections.Counter()
        self.orders: list[str] = []
        self.cursor_before: dt.datetime | None = None
        self.expected_rejections: set[str] = set()
        self.cancelled: list[str] = []

    def check(self, name: str, ok: Any, why: Any = "") -> None:
        assert ok, f"{self.id}: {name}: {why}"
        self.checks[name] += 1

    # -- the world ---------------------------------------------------------------------

    def store(self) -> Store:
        self.session.expire_all()
        store = self.session.get(Store, self.store_id)
        assert store is not None
        return store

    def round(self) -> None:
        """One round of the worker (sync every store, then the feed job), when due."""
        with self.app.app_context():
            due = next_poll_due()
        if due is not None:
            time.sleep(max(0.0, min(0.5, (due - utcnow()).total_seconds())))
        EmbeddedWorker(self.app, interval=60).run_once()
        self.session.expire_all()

    def order(self, *, ago: int = 3600, at: dt.datetime | None = None) -> str:
        moment = _iso(at or utcnow() - dt.timedelta(seconds=ago))
        return self.control.create_order(  # type: ignore[no-any-return]
            self.seller_id,
            status="UNSHIPPED",
            created_time=moment,
            last_updated_time=moment,
            items=[
                {"sku": "TEA-GREEN-100", "quantity": 2, "unit_price": "8.90"},
                {"sku": "MUG-STONE-350", "quantity": 1, "unit_price": "14.00"},
            ],
        )["orderId"]

    def setup(self) -> None:
        self.store_id = connect_store(self.seller).id
        if self.column == "sync":
            self.control.generate_orders(self.seller_id, 10, seed=1)
            self.round()
            self.cursor_before = self.store().sync_cursor
            assert self.cursor_before is not None
            # 45 orders placed since (three pages of 20), their times between the cursor and now.
            time.sleep(0.1)
            span = utcnow() - self.cursor_before
            for n in range(1, 46):
                self.order(at=self.cursor_before + span * n / 46)
            return
        self.orders = [self.order(ago=3600 + n) for n in range(3)]
        self.round()
        if self.column == "cancel_submission":
            result = cancel_orders(self.store_id, self.orders, reason="NoInventory")
            assert result.cancelled == self.orders
            self.cancelled += self.orders
        elif self.column == "shipment_confirmation":
            confirm_shipment(self.orders[0], carrier_code="DHL", tracking_number="JJD01")
            first_item = self.stored_order(self.orders[1]).items[0].order_item_id
            confirm_shipment(
                self.orders[1], items={first_item: 1}, carrier_code="UPS", tracking_number="1Z02"
            )

    def stored_order(self, amazon_order_id: str) -> AmazonOrder:
        self.session.expire_all()
        order = self.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == amazon_order_id)
        )
        assert order is not None
        return order

    def faulted(self, operation: str) -> int:
        counters = self.control.counters()["operations"].get(operation, {})
        return int(counters.get("faulted", 0))

    def calls(self, operation: str) -> int:
        counters = self.control.counters()["operations"].get(operation, {})
        return int(counters.get("calls", 0))

    def answered(self, operation: str) -> int:
        """Calls of ``operation`` the sandbox carried out (faulted or not)."""
        counters = self.control.counters()["operations"].get(operation, {})
        return sum(int(counters.get(key, 0)) for key in ("ok", "errors", "throttled"))

    def store_card(self) -> str:
        """The text of the store's card on the store list."""
        response = self.browser.get("/amazon-orders/")
        cards = response.data.decode().split('<li class="ao-card">')[1:]
        mine = [card for card in cards if f'href="/amazon-orders/stores/{self.store_id}"' in card]
        assert len(mine) == 1, cards
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", mine[0])).split())

    def dashboard(self) -> str:
        self.session.expire_all()
        response = self.browser.get(f"/amazon-orders/stores/{self.store_id}")
        assert response.status_code == 200
        return response.data.decode()

    # -- a step of the fault phase -------------------------------------------------------

    def prepare_poll(self, number: int, step: Step) -> None:
        """Feed polling: cancel orders and send their feed (no fault yet)."""
        chosen = self.orders if step.operation in ("", "createFeed") else [self.orders[number]]
        result = cancel_orders(self.store_id, chosen, reason="BuyerCanceled")
        assert result.cancelled == chosen, result.refused
        self.cancelled += chosen
        self.round()
        sent = self.session.scalars(
            sa.select(Cancellation.state).where(Cancellation.store_id == self.store_id)
        ).all()
        assert "queued" not in sent, sent

    def run_step(self, number: int, step: Step) -> None:
        self.control.clear_faults()
        fired = self.faulted(step.operation) if step.operation else 0
        answered = self.answered(step.operation) if step.operation else 0
        calls = self.calls(step.operation) if step.operation else 0

        def inject() -> None:
            self.control.inject_fault(
                step.operation,
                step.kind,
                count=step.count,
                after=step.after,
                delay=SLOW_DELAY if step.kind == "slow" else None,
            )

        if step.kind == "fatal":
            inject()  # the feed sent next ends FATAL
        if self.column == "feed_polling":
            self.prepare_poll(number, step)
        if step.kind == "":
            # The order ships after the feed went out, before Amazon processes it.
            shipped = self.orders[1]
            self.control.set_status(shipped, "SHIPPED")
            self.expected_rejections.add(shipped)
        elif step.kind != "fatal":
            if step.operation == "token":
                default_token_cache().clear()  # the cached access token's hour is over
            inject()
        mark = len(self.caplog.records)
        self.round()
        if step.kind == "":
            reports = [
                feed["report"] or ""
                for feed in self.control.feeds()
                if feed["sellerId"] == self.seller_id
            ]
            self.check("the fault hit", any(SAYS[""] in report for report in reports), reports)
        else:
            self.check("the fault hit", self.faulted(step.operation) > fired, step)
        lines = [
            record.getMessage()
            for record in self.caplog.records[mark:]
            if record.name in JOB_LOGGERS and record.levelno >= logging.WARNING
        ]
        self.check("one line each", all("\n" not in line for line in lines), lines)
        if step.fails:
            self.check_visible(step, lines)
        else:
            self.check(
                "log line",
                any("page token was refused" in line and SAYS[step.kind] in line for line in lines),
                lines,
            )
        self.check_nothing_lost()
        self.control.clear_faults()
        if step.kind == "slow":
            # Amazon carries the late calls out after we gave up: that is done before
            # the next round (as it would be long before the worker's next round).
            deadline = time.monotonic() + 10 * SLOW_DELAY
            while self.answered(step.operation) - answered < self.calls(step.operation) - calls:
                assert time.monotonic() < deadline, "the sandbox never finished the slow calls"
                time.sleep(0.05)

    def check_visible(self, step: Step, lines: list[str]) -> None:
        says = SAYS[step.kind]
        names = [says]
        if step.kind not in ("fatal", ""):
            names.append(CLIENT_NAMES.get(step.operation, step.operation))
        self.check("log line", any(all(n in line for n in names) for line in lines), (names, lines))
        banners = _banners(self.dashboard())
        heading = (
            "The last sync failed:" if self.column == "sync" else "Requests to Amazon are held up:"
        )
        if step.kind == "":
            wanted = ["Amazon rejected 1 cancellation.", self.orders[1], says]
        elif step.operation == "token":
            wanted = [heading, "Authorize the app again", "This needs a person", says]
        else:
            wanted = [heading, *names]
        self.check(
            "dashboard says it",
            any(all(w in b for w in wanted) for b in banners),
            (wanted, banners),
        )
        if step.kind:
            self.check("store card says it", ATTENTION in self.store_card(), self.store_card())
        if step.operation == "getOrder":
            # Each cancellation waiting for its check says why on its order's page.
            for amazon_order_id in self.cancelled:
                response = self.browser.get(
                    f"/amazon-orders/stores/{self.store_id}/orders/{amazon_order_id}"
                )
                text = " ".join(html.unescape(response.data.decode()).split())
                self.check(
                    "order page says it",
                    "Queued" in text and all(n in text for n in names),
                    (amazon_order_id, names),
                )
        if self.column == "sync":
            store = self.store()
            self.check("cursor stays", store.sync_cursor == self.cursor_before, store.sync_cursor)

    # -- what must hold at every step -----------------------------------------------------

    def check_nothing_lost(self) -> None:
        store = self.store()
        cursor = store.sync_cursor
        stored = dict(
            self.session.execute(
                sa.select(AmazonOrder.amazon_order_id, AmazonOrder.amazon_updated_at).where(
                    AmazonOrder.store_id == self.store_id
                )
            ).all()
        )
        amazon_orders = self.control.list_orders(self.seller_id)
        status = {entry["orderId"]: entry["status"] for entry in amazon_orders}
        skipped = [
            entry["orderId"]
            for entry in amazon_orders
            if cursor is not None
            and _parse(entry["lastUpdatedTime"]) <= cursor
            and (
                entry["orderId"] not in stored
                or stored[entry["orderId"]] < _parse(entry["lastUpdatedTime"])
            )
        ]
        self.check("no cursor skipped", not skipped, (cursor, skipped))
        for cancellation, amazon_order_id in self.session.execute(
            sa.select(Cancellation, AmazonOrder.amazon_order_id)
            .join(AmazonOrder, AmazonOrder.id == Cancellation.order_id)
            .where(Cancellation.store_id == self.store_id)
        ):
            amazon = status[amazon_order_id]
            if cancellation.state == "confirmed":
                self.check("confirmed is cancelled", amazon == "CANCELLED", amazon_order_id)
            elif cancellation.state == "rejected":
                self.check(
                    "rejected only by Amazon",
                    amazon_order_id in self.expected_rejections and amazon != "CANCELLED",
                    (amazon_order_id, cancellation.result),
                )
        shipments = self.session.scalars(
            sa.select(Shipment).where(Shipment.store_id == self.store_id)
        ).all()
        self.check("no shipment rejected", all(s.state != "rejected" for s in shipments))

    # -- recovery ----------------------------------------------------------------------

    def pending(self) -> list[str]:
        store = self.store()
        waiting = [
            f"cancellation {state}"
            for state in self.session.scalars(
                sa.select(Cancellation.state).where(
                    Cancellation.store_id == self.store_id,
                    Cancellation.state.in_(("queued", "sent")),
                )
            )
        ]
        waiting += [
            "shipment queued"
            for _ in self.session.scalars(
                sa.select(Shipment.id).where(
                    Shipment.store_id == self.store_id, Shipment.state == "queued"
                )
            )
        ]
        if store.sync_page_token:
            waiting.append("an unfinished sync window")
        if store.last_sync_error or store.last_feed_error:
            waiting.append(f"an error: {store.last_sync_error or store.last_feed_error}")
        return waiting

    def reauthorize(self) -> None:
        """The person the dashboard asked for enters a new refresh token in the settings."""
        url = f"/amazon-orders/stores/{self.store_id}/settings"
        page = self.browser.get(url).data.decode()
        page = page[page.index('class="ao"') :]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "no form on the settings page"
        # The seller authorizes the app again; Amazon issues a new refresh token.
        self.control.clear_faults()
        fresh = self.control.reauthorize_seller(self.seller["seller_id"])["refresh_token"]
        response = self.browser.post(
            f"/amazon-orders/stores/{self.store_id}/authorization",
            data={"refresh_token": fresh, "csrf_token": token.group(1)},
            follow_redirects=True,
        )
        self.check("the person can act", response.status_code == 200, response.status_code)
        self.check("the token is taken", "Authorization updated" in response.data.decode())

    def recover(self) -> None:
        if self.fault == "invalid_grant":
            self.reauthorize()
        for _ in range(12):
            self.round()
            if not self.pending():
                break
        self.check("recovered without a person", not self.pending(), self.pending())

    # -- the end -----------------------------------------------------------------------

    def check_the_end(self) -> None:
        self.check_nothing_lost()
        amazon_ids = [entry["orderId"] for entry in self.control.list_orders(self.seller_id)]
        stored_ids = list(
            self.session.scalars(
                sa.select(AmazonOrder.amazon_order_id).where(AmazonOrder.store_id == self.store_id)
            )
        )
        self.check("stored once", len(stored_ids) == len(set(stored_ids)), stored_ids)
        self.check("every order stored", set(stored_ids) == set(amazon_ids))
        store = self.store()
        self.check("window closed", store.sync_page_token is None and store.sync_cursor)
        if self.cursor_before is not None:
            self.check("cursor moved on", store.sync_cursor > self.cursor_before)
        feeds = [feed for feed in self.control.feeds() if feed["sellerId"] == self.seller_id]
        cancellations = self.session.execute(
            sa.select(Cancellation, AmazonOrder.amazon_order_id)
            .join(AmazonOrder, AmazonOrder.id == Cancellation.order_id)
            .where(Cancellation.store_id == self.store_id)
        ).all()
        for cancellation, amazon_order_id in cancellations:
            order = self.stored_order(amazon_order_id)
            amazon = self.control.get_order(amazon_order_id)["fulfillment"]["fulfillmentStatus"]
            carried = [
                feed["processingStatus"]
                for feed in feeds
                if f"<AmazonOrderID>{amazon_order_id}</AmazonOrderID>" in (feed["document"] or "")
            ]
            self.check(
                "one processed feed per order",
                carried.count("DONE") == 1
                and all(
                    s == "DONE" or (s == "FATAL" and self.fault == "feed_fatal") for s in carried
                ),
                (amazon_order_id, carried),
            )
            if amazon_order_id in self.expected_rejections:
                self.check(
                    "visibly rejected",
                    cancellation.state == "rejected"
                    and amazon == "SHIPPED"
                    and order.status == "Shipped"
                    and SAYS[""] in (cancellation.result or ""),
                    (cancellation.state, amazon, order.status, cancellation.result),
                )
            else:
                self.check(
                    "confirmed by Amazon",
                    cancellation.state == "confirmed"
                    and amazon == "CANCELLED"
                    and order.status == "Canceled",
                    (amazon_order_id, cancellation.state, amazon, order.status),
                )
        self.check(
            "every cancellation settled",
            sorted(i for _, i in cancellations) == sorted(self.cancelled),
            cancellations,
        )
        shipments = self.session.execute(
            sa.select(Shipment, AmazonOrder.amazon_order_id)
            .join(AmazonOrder, AmazonOrder.id == Shipment.order_id)
            .where(Shipment.store_id == self.store_id)
        ).all()
        for shipment, amazon_order_id in shipments:
            packages = [
                s
                for s in self.control.shipments(amazon_order_id)
                if s["packageReferenceId"] == shipment.package_reference
            ]
            self.check(
                "shipment confirmed once",
                shipment.state == "confirmed" and len(packages) == 1 and packages[0]["active"],
                (shipment.state, packages),
            )
        if self.column == "shipment_confirmation":
            statuses = [
                self.control.get_order(o)["fulfillment"]["fulfillmentStatus"]
                for o in self.orders[:2]
            ]
            mine = [self.stored_order(o).status for o in self.orders[:2]]
            self.check(
                "Amazon and the store agree",
                len(shipments) == 2
                and statuses == ["SHIPPED", "PARTIALLY_SHIPPED"]
                and mine == ["Shipped", "PartiallyShipped"],
                (statuses, mine),
            )
        page = self.dashboard()
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
        for gone in ("The last sync failed", "Requests to Amazon are held up", "on their way"):
            self.check("dashboard resolved", gone not in text, gone)
        if self.expected_rejections:
            self.check("rejection stays visible", any(SAYS[""] in b for b in _banners(page)))
        self.check("store card resolved", ATTENTION not in self.store_card())
        tracebacks = [
            record.getMessage()
            for record in self.caplog.records
            if record.name.startswith("flask_amazon_orders") and record.exc_info
        ]
        self.check("no traceback", not tracebacks, tracebacks)

    def close(self) -> None:
        """Deactivate the store: the next cells' rounds pass it by."""
        self.control.clear_faults()
        store = self.session.get(Store, self.store_id)
        if store is not None:
            store.active = False
            self.session.commit()


@pytest.mark.parametrize(("column", "fault"), CELLS, ids=[f"{c}-{f}" for c, f in CELLS])
def test_fault_matrix(
    column: str,
    fault: str,
    matrix_app: Callable[[int], Any],
    module_sandbox: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    # A read timeout costs a second a try: one try a call there, two elsewhere.
    app = matrix_app(1 if fault == "read_timeout" else 2)
    module_sandbox.control.clear_faults()
    seller = module_sandbox.control.create_seller(
        seller_id="A" + uuid.uuid4().hex[:12].upper(), marketplace_id="A1PA6795UKMFR9"
    )
    with app.app_context():
        cell = Cell(column, fault, app, module_sandbox, seller, caplog)
        try:
            cell.setup()
            for number, step in enumerate(steps(column, fault)):
                cell.run_step(number, step)
            cell.recover()
            cell.check_the_end()
        finally:
            cell.close()
            cell.session.remove()
    OUTCOMES[cell.id] = cell.checks
