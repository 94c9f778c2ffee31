"""Push: ORDER_CHANGE notifications through SQS (moto's server mode) refresh orders.

The parser is checked against Amazon's schema and its example; the rest runs end
to end: the sandbox sends its notifications to a queue of a local SQS server, and
the poller reads them and refreshes exactly those orders, against the same
database the sync writes.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store, subscribe_order_change
from jsonschema import Draft7Validator

from flask_amazon_orders import signals
from flask_amazon_orders.client.notifications import OrderChange, parse_order_change
from flask_amazon_orders.client.records import parse_order
from flask_amazon_orders.config import DEFAULTS, load_settings
from flask_amazon_orders.errors import ConfigurationError, NotificationError
from flask_amazon_orders.jobs import leases
from flask_amazon_orders.jobs.feeds import process_feeds
from flask_amazon_orders.jobs.notifications import handle_notification, poll_notifications
from flask_amazon_orders.jobs.sync import PageProgress, _store_page, refresh_order, sync_store
from flask_amazon_orders.models import AmazonOrder, OrderEvent, Store, SyncRun
from flask_amazon_orders.sandbox.reference import MODELS_DIR, ORDER_CHANGE_SCHEMA
from flask_amazon_orders.services.cancelling import cancel_orders

SCALE = 1000.0
DE = "A1PA6795UKMFR9"
SCHEMA = json.loads((MODELS_DIR / ORDER_CHANGE_SCHEMA).read_text(encoding="utf-8"))
VALIDATOR = Draft7Validator(SCHEMA)
EXAMPLE = SCHEMA["examples"][0]

#: Every field the parser reads, by its path: each is required by the schema.
READ = [
    ("NotificationMetadata",),
    ("NotificationMetadata", "NotificationId"),
    ("NotificationMetadata", "PublishTime"),
    ("NotificationMetadata", "SubscriptionId"),
    ("NotificationMetadata", "ApplicationId"),
    ("NotificationType",),
    ("NotificationVersion",),
    ("PayloadVersion",),
    ("EventTime",),
    ("Payload",),
    ("Payload", "OrderChangeNotification"),
    ("Payload", "OrderChangeNotification", "NotificationLevel"),
    ("Payload", "OrderChangeNotification", "SellerId"),
    ("Payload", "OrderChangeNotification", "AmazonOrderId"),
    ("Payload", "OrderChangeNotification", "OrderChangeType"),
    ("Payload", "OrderChangeNotification", "OrderChangeTrigger"),
    ("Payload", "OrderChangeNotification", "OrderChangeTrigger", "TimeOfOrderChange"),
    ("Payload", "OrderChangeNotification", "OrderChangeTrigger", "ChangeReason"),
    ("Payload", "OrderChangeNotification", "Summary"),
    ("Payload", "OrderChangeNotification", "Summary", "MarketplaceId"),
    ("Payload", "OrderChangeNotification", "Summary", "OrderStatus"),
]


def _schema_node(path: tuple[str, ...]) -> dict[str, Any]:
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node  # type: ignore[no-any-return]


def _without(body: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return changed


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return changed


# -- the parser and Amazon's schema ------------------------------------------------------------


def test_the_schemas_examples_are_valid_and_parse():
    assert SCHEMA["examples"], "the schema has examples"
    for example in SCHEMA["examples"]:
        VALIDATOR.validate(example)
        for body in (example, json.dumps(example), json.dumps(example).encode()):
            change = parse_order_change(body)
            assert change == OrderChange(
                notification_id="d0e9e693-c3ad-4373-979f-ed4ec98dd746",
                seller_id="A3TH9S8BH6GOGM",
                marketplace_id="ATVPDKIKX0DER",
                amazon_order_id="903-8868176-2219830",
                change_type="BuyerRequestedChange",
                change_reason="Buyer Requested Cancel",
                order_status="Unshipped",
                notification_level="OrderLevel",
                event_time=change.event_time,
                changed_at=change.changed_at,
                published_at=change.published_at,
                subscription_id="subscription-id-d0e9e693-c3ad-4373-979f-ed4ec98dd746",
                application_id="app-id-d0e9e693-c3ad-4373-979f-ed4ec98dd746",
                payload_version="1.0",
            )
            assert change.event_time.isoformat() == "2020-01-11T00:09:53.109000+00:00"
            assert change.changed_at is not None
            assert change.changed_at.isoformat() == "2022-11-29T19:42:04.284000+00:00"
            assert change.published_at.isoformat() == "2020-07-13T19:42:04.284000+00:00"


@pytest.mark.parametrize("path", READ, ids=".".join)
def test_a_missing_field_the_parser_reads_is_refused_by_both(path):
    parent = _schema_node(path[:-1])
    assert path[-1] in parent["required"], "the parser reads only required fields"
    body = _without(EXAMPLE, path)
    assert not VALIDATOR.is_valid(body)
    with pytest.raises(NotificationError, match=f"missing {'.'.join(path)}"):
        parse_order_change(body)


@pytest.mark.parametrize("path", READ, ids=".".join)
def test_a_field_of_the_wrong_type_is_refused_by_both(path):
    body = _with(EXAMPLE, path, 42)
    assert not VALIDATOR.is_valid(body)
    with pytest.raises(NotificationError, match=r"\.".join(path)) as caught:
        parse_order_change(body)
    if path[0] != "NotificationMetadata":  # the id was read: every error names it
        assert "d0e9e693-c3ad-4373-979f-ed4ec98dd746" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "not JSON"),
        ("not json {", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (_with(EXAMPLE, ("NotificationType",), "ANY_OFFER_CHANGED"), "not 'ORDER_CHANGE'"),
        (_with(EXAMPLE, ("EventTime",), "yesterday"), "EventTime is not an ISO 8601"),
        (
            _with(EXAMPLE, ("Payload", "OrderChangeNotification", "AmazonOrderId"), " "),
            "AmazonOrderId is empty",
        ),
        (
            _with(EXAMPLE, ("Payload", "OrderChangeNotification", "SellerId"), None),
            "SellerId is not a string",
        ),
    ],
)
def test_garbage_raises_the_typed_error(body, message):
    with pytest.raises(NotificationError, match=message):
        parse_order_change(body)


def test_the_reader_tolerates_what_it_does_not_use():
    """The schema refuses these; the parser reads the order id and keeps the rest as
    text, because the order is read again anyway (see the module's docs)."""
    order = ("Payload", "OrderChangeNotification")
    tolerated = [
        _with(EXAMPLE, (*order, "OrderChangeType"), "AddressChange"),
        _with(EXAMPLE, (*order, "Summary", "OrderStatus"), "InTransit"),
        _without(EXAMPLE, (*order, "Summary", "OrderItems")),
        _without(EXAMPLE, (*order, "Summary", "DestinationPostalCode")),
        _with(EXAMPLE, (*order, "OrderChangeTrigger", "TimeOfOrderChange"), None),
    ]
    for body in tolerated[:4]:
        assert not VALIDATOR.is_valid(body)
    assert VALIDATOR.is_valid(tolerated[4])  # TimeOfOrderChange may be null
    changes = [parse_order_change(body) for body in tolerated]
    assert [c.amazon_order_id for c in changes] == ["903-8868176-2219830"] * 5
    assert changes[0].change_type == "AddressChange"
    assert changes[1].order_status == "InTransit"
    assert changes[4].changed_at is None


# -- configuration -----------------------------------------------------------------------------


def _settings(**config: Any) -> Any:
    return load_settings({**DEFAULTS, **config})


def test_sqs_settings_are_checked_and_name_the_key():
    settings = _settings(
        AMAZON_ORDERS_SQS_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
    )
    assert settings.sqs_queue_url.endswith("/orders") and settings.sqs_region is None
    assert _settings().sqs_queue_url is None
    bad = [
        ({"AMAZON_ORDERS_SQS_QUEUE_URL": "orders"}, "AMAZON_ORDERS_SQS_QUEUE_URL"),
        (
            {"AMAZON_ORDERS_SQS_QUEUE_URL": "http://127.0.0.1:9/123456789012/orders"},
            "AMAZON_ORDERS_SQS_REGION",
        ),
        ({"AMAZON_ORDERS_SQS_ENDPOINT_URL": "localhost:9324"}, "AMAZON_ORDERS_SQS_ENDPOINT_URL"),
        ({"AMAZON_ORDERS_SQS_WAIT_SECONDS": 21}, "AMAZON_ORDERS_SQS_WAIT_SECONDS"),
        ({"AMAZON_ORDERS_SQS_VISIBILITY_TIMEOUT": -1}, "AMAZON_ORDERS_SQS_VISIBILITY_TIMEOUT"),
    ]
    for config, key in bad:
        with pytest.raises(ConfigurationError, match=key):
            _settings(**config)


# -- end to end against the sandbox and a local SQS server ------------------------------------


@pytest.fixture
def push(database_url, make_sandbox, make_app, sqs_endpoint, sqs_queue):
    """A sandbox that sends notifications to a fresh queue, an app reading that queue,
    one seller connected as a store and synced once, and the seller subscribed."""
    sandbox = make_sandbox(time_scale=SCALE, sqs_endpoint_url=sqs_endpoint)
    app, db = make_app(
        database_url,
        sandbox.url,
        AMAZON_ORDERS_SQS_QUEUE_URL=sqs_queue["url"],
        AMAZON_ORDERS_SQS_REGION="us-east-1",
        AMAZON_ORDERS_SQS_ENDPOINT_URL=sqs_endpoint,
        AMAZON_ORDERS_SQS_WAIT_SECONDS=0,
        AMAZON_ORDERS_SQS_VISIBILITY_TIMEOUT=0,
        AMAZON_ORDERS_RETRY_MAX_ATTEMPTS=2,
        AMAZON_ORDERS_FEED_POLL_SECONDS=1,
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        seller = sandbox.control.create_seller(
            seller_id="A" + uuid.uuid4().hex[:12].upper(), marketplace_id=DE
        )
        orders = [
            sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]
            for _ in range(6)
        ]
        store = connect_store(seller)
        assert sync_store(store).status == "succeeded"
        subscribe_order_change(sandbox.url, seller, sqs_queue["arn"])
        sandbox.control.reset_counters()
        yield SimpleNamespace(
            app=app,
            db=db,
            sandbox=sandbox,
            seller=seller,
            store_id=store.id,
            orders=orders,
            queue=sqs_queue,
        )
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _calls(sandbox: Any, operation: str) -> int:
    return sandbox.control.counters()["operations"].get(operation, {}).get("calls", 0)  # type: ignore[no-any-return]


def _stored(db: Any, amazon_order_id: str) -> AmazonOrder | None:
    db.session.expire_all()
    return db.session.scalar(  # type: ignore[no-any-return]
        sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == amazon_order_id)
    )


def _events(db: Any) -> list[tuple[str, str]]:
    return [
        (order_id, kind)
        for order_id, kind in db.session.execute(
            sa.select(AmazonOrder.amazon_order_id, OrderEvent.kind)
            .join(AmazonOrder, OrderEvent.order_id == AmazonOrder.id)
            .order_by(OrderEvent.id)
        )
    ]


def _waiting(queue: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages in the queue now (received with no visibility timeout)."""
    answer = queue["client"].receive_message(
        QueueUrl=queue["url"], MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return answer.get("Messages", [])  # type: ignore[no-any-return]


class _Signals:
    """Records the order signals sent while it is used."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def _receiver(self, name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            self.sent.append((name, kwargs["order"].amazon_order_id))

        return receive

    def __enter__(self) -> _Signals:
        self._connected = [
            (signal, self._receiver(signal.name))
            for signal in (
                signals.order_imported,
                signals.order_status_changed,
                signals.order_updated,
            )
        ]
        for signal, receiver in self._connected:
            signal.connect(receiver)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signal, receiver in self._connected:
            signal.disconnect(receiver)


def test_the_poller_refreshes_exactly_the_changed_orders_and_repeats_change_nothing(push):
    sandbox, db = push.sandbox, push.db
    shipped, asked, cancelled, untouched = push.orders[:4]
    store = db.session.get(Store, push.store_id)
    cursor = store.sync_cursor
    # Changes in the sandbox: through the control API, a new order, and a feed.
    sandbox.control.set_status(shipped, "SHIPPED")
    sandbox.control.request_buyer_cancel(asked, "Ordered by mistake")
    created = sandbox.control.create_order(push.seller["seller_id"], status="UNSHIPPED")["orderId"]
    assert cancel_orders(push.store_id, [cancelled], reason="NoInventory", actor="test").cancelled
    (feed_id,) = process_feeds(push.store_id).submitted
    sandbox.control.process_feed(feed_id)  # Amazon cancels the order: a notification

    made = sandbox.control.notifications(seller_id=push.seller["seller_id"])
    assert [(n["orderId"], n["changeType"], n["orderStatus"]) for n in made] == [
        (shipped, "OrderStatusChange", "Shipped"),
        (asked, "BuyerRequestedChange", "Unshipped"),
        (created, "OrderStatusChange", "Unshipped"),
        (cancelled, "OrderStatusChange", "Canceled"),
    ]
    for notification in made:
        assert notification["status"] == "delivered", notification
        VALIDATOR.validate(notification["body"])
    sandbox.control.reset_counters()
    events_before = len(_events(db))

    with _Signals() as sent:
        run = poll_notifications()

    assert run.received == 4 and run.dropped == run.retried == 0 and not run.errors
    assert {r.amazon_order_id: r.outcome for r in run.refreshed} == {
        shipped: "status_changed",
        asked: "updated",
        created: "created",
        cancelled: "updated",  # cancelled here already; Amazon's copy confirms it
    }
    assert _calls(sandbox, "getOrder") == 4
    assert _calls(sandbox, "searchOrders") == 0
    assert _waiting(push.queue) == []
    assert _stored(db, shipped).status == "Shipped"
    assert _stored(db, asked).buyer_cancel_requested
    assert _stored(db, created).status == "Unshipped"
    assert _stored(db, cancelled).status == "Canceled"
    assert _stored(db, untouched).status == "Unshipped"
    assert sorted(_events(db)[events_before:]) == sorted(
        [
            (shipped, "status_changed"),
            (asked, "buyer_cancel_requested"),
            (created, "imported"),
        ]
    )
    assert sorted(sent.sent) == sorted(
        [
            ("order-status-changed", shipped),
            ("order-updated", asked),
            ("order-imported", created),
            ("order-updated", cancelled),
        ]
    )
    store = db.session.get(Store, push.store_id)
    assert store.sync_cursor == cursor  # the sync's cursor never moves here
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SyncRun)) == 1

    # SQS delivers at least once: the same notification again changes nothing.
    first = next(n for n in made if n["orderId"] == shipped)
    for _ in range(2):
        push.queue["client"].send_message(
            QueueUrl=push.queue["url"], MessageBody=json.dumps(first["body"])
        )
    sandbox.control.reset_counters()
    events_before = len(_events(db))
    with _Signals() as sent:
        run = poll_notifications()
    assert run.received == 2 and run.repeated == 1
    assert [(r.amazon_order_id, r.outcome) for r in run.refreshed] == [(shipped, "unchanged")]
    assert _calls(sandbox, "getOrder") == 1  # two copies in one batch: one read
    assert sent.sent == []
    assert len(_events(db)) == events_before
    assert _waiting(push.queue) == []


def test_malformed_messages_and_unknown_sellers_are_logged_and_removed(push, caplog):
    sandbox, queue = push.sandbox, push.queue
    stranger = copy.deepcopy(EXAMPLE)  # valid, but for a seller not connected here
    inactive = _with(
        EXAMPLE, ("Payload", "OrderChangeNotification", "SellerId"), push.seller["seller_id"]
    )
    inactive = _with(
        inactive, ("Payload", "OrderChangeNotification", "Summary", "MarketplaceId"), DE
    )
    push.db.session.get(Store, push.store_id).active = False
    push.db.session.commit()
    for body in ("{not json", json.dumps(stranger), json.dumps(inactive)):
        queue["client"].send_message(QueueUrl=queue["url"], MessageBody=body)
    with caplog.at_level(logging.WARNING, logger="flask_amazon_orders.notifications"):
        run = poll_notifications()
    assert run.received == 3 and run.dropped == 3 and not run.refreshed and not run.retried
    assert _waiting(queue) == []  # removed: receiving them again cannot help
    assert _calls(sandbox, "getOrder") == 0
    text = caplog.text
    assert "not JSON" in text
    assert "no active store for seller A3TH9S8BH6GOGM in marketplace ATVPDKIKX0DER" in text
    assert f"no active store for seller {push.seller['seller_id']}" in text
    assert "d0e9e693-c3ad-4373-979f-ed4ec98dd746" in text  # the notification is named
    assert "48110" not in text  # the body (with its postal code) is never logged


def test_an_amazon_503_leaves_the_message_and_the_next_poll_succeeds(push):
    sandbox, db = push.sandbox, push.db
    orders = push.orders[:2]
    for order in orders:
        sandbox.control.set_status(order, "SHIPPED")
    sandbox.control.inject_fault("getOrder", "503_html", count=2)  # = the client's attempts
    sandbox.control.reset_counters()

    run = poll_notifications()

    # The first refresh meets the 503 twice and gives up; the other one is made.
    assert run.received == 2 and run.retried == 1 and not run.dropped
    assert "503" in run.errors[0]
    assert _calls(sandbox, "getOrder") == 3
    (done,) = [r.amazon_order_id for r in run.refreshed]
    (failed,) = set(orders) - {done}
    assert _stored(db, done).status == "Shipped"
    assert _stored(db, failed).status == "Unshipped"
    (left,) = _waiting(push.queue)  # only the failed one is still there, for the next poll
    assert json.loads(left["Body"])["Payload"]["OrderChangeNotification"]["AmazonOrderId"] == (
        failed
    )

    run = poll_notifications()

    assert [(r.amazon_order_id, r.outcome) for r in run.refreshed] == [(failed, "status_changed")]
    assert _stored(db, failed).status == "Shipped"
    assert _waiting(push.queue) == []


def test_the_sync_still_catches_a_change_whose_notification_was_lost(push):
    sandbox, db = push.sandbox, push.db
    order = push.orders[1]
    sandbox.control.inject_fault("notification", "drop")
    sandbox.control.set_status(order, "SHIPPED")
    (lost,) = sandbox.control.notifications(order)
    assert lost["status"] == "dropped"

    assert poll_notifications().received == 0
    assert _stored(db, order).status == "Unshipped"

    run = sync_store(push.store_id)

    assert run.status == "succeeded" and run.orders_updated == 1
    assert _stored(db, order).status == "Shipped"


def test_a_refresh_waits_for_a_sync_page_being_written_and_then_finds_it_stored(push):
    """A sync page and a refresh of the same new order at once: the refresh waits for
    the page's commit (the store's order lock), then finds the order stored; without
    the lock both would insert it and one would fail on the unique key."""
    sandbox, app = push.sandbox, push.app
    order_id = sandbox.control.create_order(push.seller["seller_id"], status="UNSHIPPED")["orderId"]
    record = parse_order(sandbox.control.get_order(order_id))
    page_written = threading.Event()
    steps: list[str] = []
    results: dict[str, Any] = {}

    def sync_page() -> None:
        with app.app_context():
            ext = app.extensions["amazon_orders"].extension
            store = ext.session.get(Store, push.store_id)
            progress = PageProgress(store=store, run=None, page=1, orders=1)
            _store_page(ext, push.store_id, [record], progress)  # takes the lock
            page_written.set()
            time.sleep(0.5)  # the rest of a page's work, still holding the lock
            steps.append("page committed")
            ext.session.commit()
            ext.session.remove()

    def refresh() -> None:
        page_written.wait(10)
        with app.app_context():
            try:
                results["refresh"] = refresh_order(push.store_id, order_id)
                steps.append("refresh done")
            except Exception as exc:  # recorded for the assertion below
                results["error"] = exc
            finally:
                app.extensions["amazon_orders"].extension.session.remove()

    threads = [threading.Thread(target=sync_page), threading.Thread(target=refresh)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert "error" not in results, results
    assert steps == ["page committed", "refresh done"]
    assert results["refresh"].outcome == "unchanged"
    assert _stored(push.db, order_id) is not None
    assert _events(push.db).count((order_id, "imported")) == 1


def test_a_refresh_does_not_need_the_sync_lease_and_leaves_it_alone(push):
    db = push.db
    order = push.orders[2]
    assert leases.acquire(
        db.session, push.store_id, "another-sync", "sync", dt.timedelta(minutes=5)
    )
    push.sandbox.control.set_status(order, "SHIPPED")
    run = poll_notifications()
    assert [r.amazon_order_id for r in run.refreshed] == [order]
    db.session.expire_all()
    store = db.session.get(Store, push.store_id)
    assert store.sync_lease_owner == "another-sync"
    assert store.sync_page_token is None


def test_handle_notification_serves_other_ways_of_receiving(push):
    order = push.orders[3]
    push.sandbox.control.request_buyer_cancel(order)
    (notification,) = push.sandbox.control.notifications(order)
    outcome = handle_notification(notification["body"])
    assert outcome.action == "refreshed" and outcome.delete
    assert outcome.refresh is not None and outcome.refresh.outcome == "updated"
    assert handle_notification("[]").action == "dropped"


def test_the_cli_reads_the_queue_once(push):
    push.sandbox.control.set_status(push.orders[4], "SHIPPED")
    result = push.app.test_cli_runner().invoke(args=["amazon-orders", "notifications", "--once"])
    assert result.exit_code == 0, result.output
    assert f"{push.orders[4]}: status changed (Shipped)" in result.output
    assert "1 notifications: 1 orders refreshed, 0 repeated, 0 dropped, 0 left for later." in (
        result.output
    )


def test_the_cli_without_a_queue_says_what_to_set(app):
    result = app.test_cli_runner().invoke(args=["amazon-orders", "notifications", "--once"])
    assert result.exit_code == 1
    assert "AMAZON_ORDERS_SQS_QUEUE_URL is not set" in result.output


def test_the_embedded_worker_refreshes_between_its_rounds(
    database_url, make_sandbox, make_app, sqs_endpoint, sqs_queue
):
    sandbox = make_sandbox(time_scale=SCALE, sqs_endpoint_url=sqs_endpoint)
    app, db = make_app(
        database_url,
        sandbox.url,
        AMAZON_ORDERS_SQS_QUEUE_URL=sqs_queue["url"],
        AMAZON_ORDERS_SQS_REGION="us-east-1",
        AMAZON_ORDERS_SQS_ENDPOINT_URL=sqs_endpoint,
        AMAZON_ORDERS_SQS_WAIT_SECONDS=1,
        AMAZON_ORDERS_EMBEDDED_WORKER=True,
        AMAZON_ORDERS_SYNC_INTERVAL_SECONDS=3600,
    )
    ext = app.extensions["amazon_orders"].extension
    with app.app_context():
        db.drop_all()
        db.create_all()
        seller = sandbox.control.create_seller(marketplace_id=DE)
        order = sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]
        connect_store(seller)
        subscribe_order_change(sandbox.url, seller, sqs_queue["arn"])
    worker = ext._state(app).worker
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while worker.rounds < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.rounds == 1
        sandbox.control.set_status(order, "SHIPPED")
        with app.app_context():
            while time.monotonic() < deadline:
                status = ext.session.scalar(sa.select(AmazonOrder.status))
                ext.session.remove()
                if status == "Shipped":
                    break
                time.sleep(0.05)
            assert status == "Shipped"
    finally:
        assert worker.stop()
    with app.app_context():
        # One round (the first sync); the change came by notification.
        assert ext.session.scalar(sa.select(sa.func.count()).select_from(SyncRun)) == 1
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_celery_polls_the_queue_on_beat_only_when_one_is_configured(push):
    from celery import Celery

    from flask_amazon_orders.runners.celery import beat_schedule, init_celery

    celery = Celery("unit", broker="memory://")
    celery.conf.task_always_eager = True
    tasks = init_celery(celery, push.app)
    entry = celery.conf.beat_schedule["amazon-orders-notifications"]
    assert entry == {
        "task": "amazon_orders.poll_notifications",
        "schedule": dt.timedelta(seconds=1),  # AMAZON_ORDERS_SQS_WAIT_SECONDS=0: at least 1 s
    }
    assert "amazon-orders-notifications" not in beat_schedule(sync_seconds=1, feed_seconds=1)
    push.sandbox.control.set_status(push.orders[5], "SHIPPED")
    result = tasks.poll_notifications.apply().get()
    assert result == {"received": 1, "refreshed": [push.orders[5]], "dropped": 0, "retried": 0}
    assert _stored(push.db, push.orders[5]).status == "Shipped"


def test_a_refresh_routes_the_order_to_the_host_as_the_sync_does(shop, sandbox, seller):
    """With order import on, a refreshed order that became Unshipped becomes a shop
    order, and one Amazon cancelled completes it (the sync's import routing)."""
    from example_app import amazon_orders
    from example_app.models import ShopOrder

    def shop_orders() -> dict[str, str]:
        with shop.app_context():
            return {
                o.amazon_order_id: o.status
                for o in amazon_orders.session.scalars(sa.select(ShopOrder))
            }

    moment = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).isoformat()
    pending, unshipped = (
        sandbox.control.create_order(
            seller["seller_id"],
            status=status,
            created_time=moment,
            last_updated_time=moment,
            items=[{"sku": "TEA-GREEN-100", "quantity": 1}],
        )["orderId"]
        for status in ("PENDING", "UNSHIPPED")
    )
    with shop.app_context():
        store = connect_store(seller, name="Teahouse", order_import_enabled=True)
        store.connected_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        amazon_orders.session.commit()
        assert sync_store(store.id).status == "succeeded"
        store_id = store.id
    assert set(shop_orders()) == {unshipped}  # Pending orders wait

    sandbox.control.set_status(pending, "UNSHIPPED")
    sandbox.control.set_status(unshipped, "CANCELLED", cancelled_by="BUYER")
    with shop.app_context():
        assert refresh_order(store_id, pending).outcome == "status_changed"
        assert refresh_order(store_id, unshipped).outcome == "status_changed"
    orders = shop_orders()
    assert set(orders) == {pending, unshipped}
    assert orders[unshipped] == "Complete"
    assert orders[pending] != "Complete"
