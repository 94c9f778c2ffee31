"""Property tests of the jobs that store Amazon's answers, on the test database.

**Sync.**
A loopback Amazon serves a ``searchOrders`` page of valid orders (the model's
examples and sandbox-generated ones) of which some are mutated (``fuzzing.py``),
and :func:`~flask_amazon_orders.jobs.sync.sync_store` runs for a new store. Then:

* ``sync_store`` has not raised, and the run succeeded;
* every order :func:`parse_order` reads is stored completely: the order and all its
  items, every value equal to the parsed record, with its ``imported`` event;
* of an order it cannot read, not one row is stored; it is kept as an
  :class:`UnreadableOrder` with the reason (or, without a usable id, named on the
  run), and read again with ``getOrder``: stored if Amazon's copy is readable now;
* with the page itself broken (not an order: the body, its pagination, an error
  status), the run fails with the typed error recorded and nothing of it is stored.

**Feeds.** A queued cancellation goes through two runs of
:func:`~flask_amazon_orders.jobs.feeds.process_feeds` (verify, build and send; poll
and settle) while every Amazon endpoint answers either correctly or with anything
hypothesis draws. No exception escapes, every failure is a typed error the run
records (none is logged as unexpected), and the cancellation ends in one of its
states with the order's state matching it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from fuzzing import bodies, mutated, mutated_report, scaled, valid_orders
from helpers import FakeAmazon, Responder, connect_store, serve_fake_amazon
from hypothesis import event, example, given
from hypothesis import strategies as st
from werkzeug.wrappers import Response

from flask_amazon_orders import get_extension
from flask_amazon_orders.client.records import OrderRecord, order_id_of, parse_order
from flask_amazon_orders.errors import MalformedResponseError
from flask_amazon_orders.jobs.sync import RETRY_UNREADABLE, sync_store
from flask_amazon_orders.models import (
    AmazonOrder,
    AmazonOrderItem,
    OrderEvent,
    Store,
    SyncRun,
    UnreadableOrder,
)

ORDERS = "/orders/2026-01-01/orders"
#: Orders in a page at most: every unreadable one of them is read again in the run.
PAGE_SIZE = 4
assert PAGE_SIZE <= RETRY_UNREADABLE


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAmazon]:
    with serve_fake_amazon() as server:
        yield server


@pytest.fixture(scope="module")
def sync_app(database_url: str, make_app: Any, fake: FakeAmazon) -> Iterator[Flask]:
    """One app on the test database for every example; each example has its own store."""
    # Two attempts: a retry is tried, and a broken page costs little.
    app, db = make_app(database_url, fake.url, AMAZON_ORDERS_RETRY_MAX_ATTEMPTS=2)
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _new_store() -> Store:
    seller_id = "A" + uuid.uuid4().hex[:12].upper()
    return connect_store({"seller_id": seller_id, "refresh_token": "Atzr|" + seller_id})


def _serve_page(fake: FakeAmazon, *answers: Responder) -> None:
    fake.routes.clear()
    fake.on("POST", "/auth/o2/token", fake.issue_token)
    fake.on("GET", ORDERS, *answers)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")


def _page(orders: list[Any], **extra: Any) -> Response:
    return _json({"orders": orders, "lastUpdatedBefore": "2030-01-01T00:00:00Z", **extra})


def _read(raw: Any) -> OrderRecord | None:
    try:
        return parse_order(raw)
    except MalformedResponseError:
        return None


def _latest(records: list[OrderRecord]) -> dict[str, OrderRecord]:
    """What the sync keeps of a page: per order id, the newest copy (the first on a tie)."""
    latest: dict[str, OrderRecord] = {}
    for record in records:
        seen = latest.get(record.amazon_order_id)
        if seen is None or record.amazon_updated_at > seen.amazon_updated_at:
            latest[record.amazon_order_id] = record
    return latest


def _same(stored: Any, record: Any, table: sa.Table) -> None:
    """Every value of ``record`` that has a column is stored as it is."""
    for column in table.columns:
        if hasattr(record, column.name) and column.name != "programs":
            assert getattr(stored, column.name) == getattr(record, column.name), column.name


def check_stored(db: Any, store_id: int, expected: dict[str, OrderRecord]) -> None:
    """The store holds exactly ``expected``: each order complete and equal to its record."""
    orders = {
        order.amazon_order_id: order
        for order in db.session.scalars(
            sa.select(AmazonOrder).where(AmazonOrder.store_id == store_id)
        )
    }
    assert set(orders) == set(expected)
    for order_id, record in expected.items():
        order = orders[order_id]
        _same(order, record, AmazonOrder.__table__)
        assert order.programs == (",".join(record.programs) or None)
        assert order.items_count == sum(item.quantity_ordered for item in record.items)
        items = {item.order_item_id: item for item in order.items}
        assert set(items) == {item.order_item_id for item in record.items}
        for item in record.items:
            _same(items[item.order_item_id], item, AmazonOrderItem.__table__)
        if record.buyer or record.shipping_address:
            buyer = get_extension().buyer_data(order)
            assert buyer == {"buyer": record.buyer, "shipping_address": record.shipping_address}
        kinds = db.session.scalars(
            sa.select(OrderEvent.kind).where(OrderEvent.order_id == order.id)
        )
        assert "imported" in set(kinds)


# -- one mutated order among good ones ---------------------------------------------------


@st.composite
def pages(draw: st.DrawFn) -> list[tuple[dict[str, Any], Any, bool]]:
    """1 to 4 distinct valid orders, each mutated or not: ``(original, sent, fixed)``
    where ``fixed`` says whether a later ``getOrder`` answers the original."""
    indexes = draw(
        st.lists(
            st.integers(0, len(valid_orders()) - 1), min_size=1, max_size=PAGE_SIZE, unique=True
        )
    )
    page = []
    for index in indexes:
        original = valid_orders()[index]
        sent = draw(st.one_of(st.just(original), mutated(original)))
        page.append((original, sent, draw(st.booleans())))
    return page


@scaled(0.3)
@given(pages())
@example([(valid_orders()[0], {**valid_orders()[0], "createdTime": "yesterday"}, False)])
@example(
    [
        (valid_orders()[1], {**valid_orders()[1], "orderId": ["x"]}, False),
        (valid_orders()[2], valid_orders()[2], False),
    ]
)
@example(
    [
        (valid_orders()[3], {**valid_orders()[3], "lastUpdatedTime": None}, True),
        (valid_orders()[4], valid_orders()[4], False),
    ]
)
def test_a_page_stores_every_readable_order_completely_and_no_row_of_the_others(
    sync_app: Flask, fake: FakeAmazon, page: list[tuple[dict[str, Any], Any, bool]]
) -> None:
    with sync_app.app_context():
        db = sync_app.extensions["sqlalchemy"]
        try:
            _serve_page(fake, _page([sent for _, sent, _ in page]))
            fixed = {}
            for original, sent, fix in page:
                order_id = order_id_of(sent)
                if fix and order_id and order_id.isascii() and order_id.isprintable():
                    fixed[order_id] = original
                    fake.on(
                        "GET",
                        f"{ORDERS}/{order_id}",
                        Response(json.dumps({"order": original}), 200),
                    )
            store = _new_store()
            run = sync_store(store)  # never raises

            records = [_read(sent) for _, sent, _ in page]
            expected = _latest([r for r in records if r is not None])
            unreadable = {
                order_id_of(sent)
                for (_, sent, _), record in zip(page, records, strict=True)
                if record is None
            } - set(expected)
            for order_id in unreadable - {None}:  # all read again: fewer than RETRY_UNREADABLE
                repaired = _read(fixed[order_id]) if order_id in fixed else None
                if repaired is not None and repaired.amazon_order_id == order_id:
                    expected[order_id] = repaired
                    unreadable.discard(order_id)

            run = db.session.get(SyncRun, run.id)
            assert run.status == "succeeded", run.error
            assert run.orders_seen == len(page)
            check_stored(db, store.id, expected)
            kept = set(
                db.session.scalars(
                    sa.select(UnreadableOrder.amazon_order_id).where(
                        UnreadableOrder.store_id == store.id
                    )
                )
            )
            assert kept == unreadable - {None}
            if unreadable:
                assert run.error and "could not be read" in run.error
                for order_id in kept:
                    assert order_id in run.error or len(kept) > 10
            else:
                assert run.error is None
        finally:
            db.session.remove()


def test_an_unreadable_order_is_read_again_until_amazon_fixes_it(
    sync_app: Flask, fake: FakeAmazon
) -> None:
    good, odd = valid_orders()[0], valid_orders()[1]
    broken = {**odd, "fulfillment": {**odd["fulfillment"], "fulfillmentStatus": "PENDING_PICKUP"}}
    with sync_app.app_context():
        db = sync_app.extensions["sqlalchemy"]
        try:
            _serve_page(fake, _page([good, broken]))
            fake.on("GET", f"{ORDERS}/{odd['orderId']}", Response(json.dumps({"order": broken})))
            store = _new_store()
            run = sync_store(store)
            assert run.status == "succeeded"
            assert run.error == (
                "1 Amazon order(s) could not be read; they are read again at every sync: "
                f"order {odd['orderId']}: unknown fulfillmentStatus 'PENDING_PICKUP'"
            )
            check_stored(db, store.id, {good["orderId"]: parse_order(good)})
            (row,) = db.session.scalars(
                sa.select(UnreadableOrder).where(UnreadableOrder.store_id == store.id)
            )
            assert (row.amazon_order_id, row.attempts) == (odd["orderId"], 2)  # page, getOrder

            # Amazon's copy becomes readable: the next run stores it, with its items.
            _serve_page(fake, _page([]))
            fake.on("GET", f"{ORDERS}/{odd['orderId']}", Response(json.dumps({"order": odd})))
            run = sync_store(store)
            assert (run.status, run.error, run.orders_created) == ("succeeded", None, 1)
            check_stored(
                db,
                store.id,
                {good["orderId"]: parse_order(good), odd["orderId"]: parse_order(odd)},
            )
            left = sa.select(UnreadableOrder).where(UnreadableOrder.store_id == store.id)
            assert db.session.scalars(left).all() == []
        finally:
            db.session.remove()


def test_an_unreadable_newer_copy_leaves_the_stored_order_as_it_was(
    sync_app: Flask, fake: FakeAmazon
) -> None:
    order = valid_orders()[0]
    newer = {
        **order,
        "lastUpdatedTime": "2029-01-01T00:00:00Z",
        "fulfillment": {**order["fulfillment"], "fulfillmentStatus": "SHIPPED"},
        "orderItems": [{**order["orderItems"][0], "quantityOrdered": "1"}],
    }
    with sync_app.app_context():
        db = sync_app.extensions["sqlalchemy"]
        try:
            _serve_page(fake, _page([order]))
            store = _new_store()
            assert sync_store(store).status == "succeeded"
            _serve_page(fake, _page([newer]))
            fake.on("GET", f"{ORDERS}/{order['orderId']}", _json({"order": newer}))
            run = sync_store(store)
            assert run.status == "succeeded"
            assert "'quantityOrdered' is not a non-negative integer" in (run.error or "")
            check_stored(db, store.id, {order["orderId"]: parse_order(order)})  # unchanged
            kept = sa.select(UnreadableOrder.amazon_order_id).where(
                UnreadableOrder.store_id == store.id
            )
            assert db.session.scalars(kept).all() == [order["orderId"]]
        finally:
            db.session.remove()


# -- a broken page -----------------------------------------------------------------------


@st.composite
def broken_pages(draw: st.DrawFn) -> Response:
    """A page that is wrong as a whole: mutated at its top level, any body, or an error."""
    orders = [valid_orders()[i] for i in draw(st.lists(st.integers(0, 5), max_size=2, unique=True))]
    page = {
        "orders": orders,
        "pagination": {"nextToken": "tok"},
        "lastUpdatedBefore": "2030-01-01T00:00:00Z",
    }
    kind = draw(st.sampled_from(["mutated", "body", "status"]))
    if kind == "mutated":
        top = {key: page[key] for key in page}
        for key in draw(
            st.lists(st.sampled_from(sorted(page)), min_size=1, max_size=2, unique=True)
        ):
            top[key] = draw(mutated({"value": page[key]}, max_mutations=1)).get("value")
        return Response(json.dumps(top), 200, content_type="application/json")
    status = 200 if kind == "body" else draw(st.sampled_from([400, 403, 404, 429, 500, 503, 418]))
    return Response(draw(bodies()), status, content_type="application/json")


@scaled(0.2)
@given(broken_pages())
@example(Response(json.dumps({"errors": [{"code": "E" * 100, "message": "m\x00"}]}), 400))
@example(Response(json.dumps({"orders": [], "pagination": {"nextToken": "\x00"}}), 200))
@example(
    Response(json.dumps({"orders": [], "lastUpdatedBefore": "0001-01-01T00:00:00+01:00"}), 200)
)
def test_a_broken_page_fails_the_run_with_a_typed_error_and_stores_nothing(
    sync_app: Flask, fake: FakeAmazon, answer: Response
) -> None:
    with sync_app.app_context():
        db = sync_app.extensions["sqlalchemy"]
        try:
            # Retries get the same answer; a next page, if it names one, ends the window.
            _serve_page(
                fake, lambda request: _page([]) if "paginationToken" in request.args else answer
            )
            store = _new_store()
            run = sync_store(store)  # never raises
            run = db.session.get(SyncRun, run.id)
            store = db.session.get(Store, store.id)
            if run.status == "succeeded":
                body = json.loads(answer.get_data())
                check_stored(db, store.id, _latest([r for r in map(_read, body["orders"]) if r]))
                return
            assert run.status == "failed"
            assert run.error and not run.error.startswith("Unexpected")
            assert store.last_sync_error == run.error
            assert run.error_code and len(run.error_code) <= 60
            count = db.session.scalar(
                sa.select(sa.func.count()).where(AmazonOrder.store_id == store.id)
            )
            assert count == 0
        finally:
            db.session.remove()


def test_a_next_token_that_repeats_ends_the_run_after_its_first_page(
    sync_app: Flask, fake: FakeAmazon
) -> None:
    with sync_app.app_context():
        db = sync_app.extensions["sqlalchemy"]
        try:
            order = valid_orders()[0]
            _serve_page(fake, _page([order], pagination={"nextToken": "same"}))
            store = _new_store()
            run = sync_store(store)
            assert (run.status, run.pages, run.error_code) == (
                "failed",
                1,
                "MalformedResponseError",
            )
            assert "repeats" in (run.error or "")
            check_stored(db, store.id, {order["orderId"]: parse_order(order)})
        finally:
            db.session.remove()


# -- the feed job: every answer it reads, fuzzed ----------------------------------------

DOCUMENTS = "/feeds/2021-06-30/documents"
FEEDS = "/feeds/2021-06-30/feeds"


def _unshipped_order() -> dict[str, Any]:
    """A valid merchant-fulfilled Unshipped order (it can be cancelled)."""
    return next(
        order
        for order in valid_orders()
        if order["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
        and order["fulfillment"].get("fulfilledBy") == "MERCHANT"
    )


def _report(error: bool) -> bytes:
    from flask_amazon_orders.sandbox.feeds import ProcessingResult, processing_report

    results = [ProcessingResult("1", "Error", 18032, "It is SHIPPED.")] if error else []
    return processing_report("A2SELLER", "50001", 1, results)


#: Endpoint -> (method, path, its valid answers): what a feed job's two runs call.
def _feed_endpoints(fake: FakeAmazon, order: dict[str, Any]) -> dict[str, Any]:
    return {
        "getOrder": ("GET", f"{ORDERS}/{order['orderId']}", [{"order": order}]),
        "createFeedDocument": (
            "POST",
            DOCUMENTS,
            [{"feedDocumentId": "D1", "url": fake.url + "/upload?X-Amz-Signature=s"}],
        ),
        "upload": ("PUT", "/upload", [b""]),
        "createFeed": ("POST", FEEDS, [{"feedId": "F1"}]),
        "getFeeds": ("GET", FEEDS, [{"feeds": []}]),
        "getFeed": (
            "GET",
            f"{FEEDS}/F1",
            [
                {"feedId": "F1", "processingStatus": status, "resultFeedDocumentId": "R1"}
                for status in ("DONE", "FATAL", "IN_PROGRESS")
            ],
        ),
        "getFeedDocument": (
            "GET",
            f"{DOCUMENTS}/R1",
            [{"feedDocumentId": "R1", "url": fake.url + "/report"}],
        ),
        "download": ("GET", "/report", [_report(False), _report(True)]),
    }


@st.composite
def feed_answers(draw: st.DrawFn, valid: list[Any], broken: bool) -> Response:
    """One endpoint's answer: a valid one, or (``broken``) a mutated one or anything."""
    answer = draw(st.sampled_from(valid))
    if not broken:
        return Response(answer, 200) if isinstance(answer, bytes) else _json(answer)
    if draw(st.booleans()):
        if isinstance(answer, bytes):  # a processing report
            return Response(draw(mutated_report()), 200)
        return _json(draw(mutated(answer)))
    status = draw(st.sampled_from([200, 400, 403, 404, 429, 500, 503]))
    return Response(draw(bodies()), status, content_type="application/json")


class _Errors:
    """A log handler that keeps the records of unexpected errors (ERROR and above)."""

    def __init__(self) -> None:
        import logging

        self.records: list[logging.LogRecord] = []
        self.handler = logging.Handler(logging.ERROR)
        self.handler.emit = self.records.append  # type: ignore[method-assign]
        self.logger = logging.getLogger("flask_amazon_orders")

    def __enter__(self) -> list[Any]:
        self.logger.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self.handler)


@scaled(0.2)
@given(st.data())
def test_the_feed_job_settles_or_keeps_a_cancellation_whatever_amazon_answers(
    sync_app: Flask, fake: FakeAmazon, data: st.DataObject
) -> None:
    from flask_amazon_orders.jobs.feeds import process_feeds
    from flask_amazon_orders.models import Cancellation, FeedSubmission
    from flask_amazon_orders.services.cancelling import cancel_orders

    order = _unshipped_order()
    with sync_app.app_context(), _Errors() as errors:
        db = sync_app.extensions["sqlalchemy"]
        try:
            _serve_page(fake, _page([order]))
            store = _new_store()
            assert sync_store(store).status == "succeeded"
            result = cancel_orders(store, [order["orderId"]], reason="NoInventory")
            (cancellation,) = result.accepted
            endpoints = _feed_endpoints(fake, order)
            # Most often one endpoint goes wrong at a time; sometimes none, or two.
            broken = data.draw(st.sets(st.sampled_from(sorted(endpoints)), max_size=2))
            for name, (method, path, valid) in endpoints.items():
                answer = data.draw(feed_answers(valid, name in broken), label=name)
                fake.on(method, path, answer)

            for _ in range(2):  # verify, build and send; then poll and settle
                run = process_feeds(store.id)
                assert not run.skipped
                db.session.execute(sa.update(FeedSubmission).values(next_poll_at=None))
                db.session.commit()

            cancellation = db.session.get(Cancellation, cancellation.id)
            stored = db.session.get(AmazonOrder, cancellation.order_id)
            event(f"cancellation {cancellation.state}")
            assert cancellation.state in ("queued", "sent", "confirmed", "rejected")
            assert stored.cancellation_state == cancellation.state
            # Cancelled here at once; back to Amazon's status only when Amazon refuses.
            assert (stored.status == "Canceled") == (cancellation.state != "rejected")
            states = db.session.scalars(
                sa.select(FeedSubmission.state).where(FeedSubmission.store_id == store.id)
            )
            for state in states:
                assert state in (
                    "verifying", "built", "creating", "submitted", "done", "fatal",
                    "cancelled", "failed", "empty", "stale", "abandoned",
                )  # fmt: skip
            assert [record.getMessage() for record in errors] == []
        finally:
            db.session.remove()
