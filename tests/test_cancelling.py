"""Cancelling unshipped orders: the outbox, one feed per store, Amazon's answers, signals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store, settle_feeds

from flask_amazon_orders import get_extension, signals
from flask_amazon_orders.jobs.feeds import process_feeds
from flask_amazon_orders.models import AmazonOrder, Cancellation, FeedSubmission, OrderEvent
from flask_amazon_orders.services.cancelling import CancelError, cancel_orders


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _order(sandbox, seller, *, status="UNSHIPPED", ago=3600, items=2, **spec: Any) -> str:
    moment = (_now() - dt.timedelta(seconds=ago)).isoformat().replace("+00:00", "Z")
    spec.setdefault(
        "items",
        [
            {"sku": sku, "quantity": 1 + n, "unit_price": "4.50"}
            for n, sku in enumerate(["TEA-GREEN-100", "TEA-BLACK-250", "MUG-STONE-350"][:items])
        ],
    )
    return sandbox.control.create_order(
        seller["seller_id"], status=status, created_time=moment, last_updated_time=moment, **spec
    )["orderId"]


def _stored(db, amazon_order_id: str) -> AmazonOrder:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == amazon_order_id)
    )


@pytest.fixture
def synced(app, sandbox, seller):
    ids = [_order(sandbox, seller, ago=3600 + n) for n in range(3)]
    shipped = _order(sandbox, seller, status="SHIPPED", ago=3000)
    store = connect_store(seller)
    assert get_extension().sync(store).status == "succeeded"
    return store.id, ids, shipped


def test_cancel_queues_sends_one_feed_and_amazon_confirms(app, db, sandbox, seller, synced):
    store_id, ids, _shipped = synced
    heard: list[tuple[str, str]] = []

    def listen(name):
        def receiver(sender, *, order, **extra):
            heard.append((name, order.amazon_order_id))

        return receiver

    receivers = {name: listen(name) for name in ("cancellation_queued", "cancellation_confirmed")}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver, app)
    try:
        result = cancel_orders(store_id, ids, reason="NoInventory", memo="out of stock", actor="t")
        assert result.cancelled == ids and not result.refused
        for order_id in ids:
            order = _stored(db, order_id)
            assert (order.status, order.cancellation_state) == ("Canceled", "queued")
        assert all(
            o["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
            for o in map(sandbox.control.get_order, ids)
        )
        runs = settle_feeds(store_id)
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver, app)

    feeds = sandbox.control.feeds()
    assert len(feeds) == 1, runs
    assert feeds[0]["feedType"] == "POST_ORDER_ACKNOWLEDGEMENT_DATA"
    assert feeds[0]["document"].count("<Message>") == 3
    assert feeds[0]["document"].count("<CancelReason>NoInventory</CancelReason>") == 6
    for order_id in ids:
        amazon = sandbox.control.get_order(order_id)
        assert amazon["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
        order = _stored(db, order_id)
        assert (order.status, order.cancellation_state) == ("Canceled", "confirmed")
        kinds = [
            e.kind
            for e in db.session.scalars(
                sa.select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
            )
        ]
        assert kinds[-3:] == ["cancel_requested", "cancel_sent", "cancel_confirmed"]
    assert sorted(heard) == sorted(
        [("cancellation_queued", i) for i in ids] + [("cancellation_confirmed", i) for i in ids]
    )
    # The sync afterwards keeps the order Canceled (Amazon agrees now).
    assert get_extension().sync(store_id).status == "succeeded"
    assert _stored(db, ids[0]).status == "Canceled"


def test_only_unshipped_orders_and_only_once(app, db, sandbox, synced):
    store_id, ids, shipped = synced
    first = cancel_orders(store_id, [ids[0], shipped], reason="GeneralAdjustment")
    assert first.cancelled == [ids[0]]
    assert "only Unshipped orders can be cancelled" in first.refused[shipped]
    again = cancel_orders(store_id, [ids[0]], reason="NoInventory")
    assert again.cancelled == [] and "already on its way" in again.refused[ids[0]]
    unknown = cancel_orders(store_id, ["999-9999999-9999999"], reason="NoInventory")
    assert "no such order" in unknown.refused["999-9999999-9999999"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Cancellation)) == 1


@pytest.mark.parametrize(
    ("reason", "memo", "message"),
    [
        ("Sold out", None, "Choose a reason for cancellation."),
        ("NoInventory", "x" * 1001, "longer than 1000 characters"),
    ],
)
def test_bad_reason_or_memo_changes_nothing(app, db, synced, reason, memo, message):
    store_id, ids, _ = synced
    with pytest.raises(CancelError, match=message):
        cancel_orders(store_id, ids, reason=reason, memo=memo)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Cancellation)) == 0
    assert _stored(db, ids[0]).status == "Unshipped"


def test_a_receiver_can_refuse_a_cancellation(app, db, synced):
    store_id, ids, _ = synced

    def refuse(sender, *, order, **extra):
        if order.amazon_order_id == ids[1]:
            raise signals.CancellationRefused("The parcel is already packed.")

    signals.cancellation_requested.connect(refuse, app)
    try:
        result = cancel_orders(store_id, ids[:2], reason="NoInventory")
    finally:
        signals.cancellation_requested.disconnect(refuse, app)
    assert result.cancelled == [ids[0]]
    assert result.refused == {ids[1]: "The parcel is already packed."}
    assert _stored(db, ids[1]).status == "Unshipped"


def test_order_shipped_meanwhile_is_rejected_before_sending(app, db, sandbox, synced):
    store_id, ids, _ = synced
    heard = []
    signals.cancellation_rejected.connect(
        lambda sender, *, order, message, **extra: heard.append(message), app, weak=False
    )
    cancel_orders(store_id, [ids[0]], reason="NoInventory")
    sandbox.control.set_status(ids[0], "SHIPPED")
    settle_feeds(store_id)
    order = _stored(db, ids[0])
    assert (order.status, order.cancellation_state) == ("Shipped", "rejected")
    assert sandbox.control.feeds() == []  # nothing was sent
    assert heard and "Shipped on Amazon now" in heard[0]


def test_amazon_rejects_in_the_processing_report(app, db, sandbox, synced, monkeypatch):
    store_id, ids, _ = synced
    cancel_orders(store_id, ids[:2], reason="BuyerCanceled")
    # The order ships after our fresh check, before Amazon processes the feed.
    from flask_amazon_orders.jobs import feeds as feeds_job

    real_send = feeds_job._Run.send

    def ship_then_send(self, submission):
        sandbox.control.set_status(ids[1], "SHIPPED")
        return real_send(self, submission)

    monkeypatch.setattr(feeds_job._Run, "send", ship_then_send)
    settle_feeds(store_id)
    confirmed, rejected = _stored(db, ids[0]), _stored(db, ids[1])
    assert (confirmed.status, confirmed.cancellation_state) == ("Canceled", "confirmed")
    assert (rejected.status, rejected.cancellation_state) == ("Shipped", "rejected")
    cancellation = db.session.scalar(
        sa.select(Cancellation).where(Cancellation.order_id == rejected.id)
    )
    assert "cannot be cancelled: it is SHIPPED" in cancellation.result
    submission = db.session.scalar(sa.select(FeedSubmission))
    assert submission.state == "done" and "1 with errors" in submission.result


# -- the admin pages and the host shop ---------------------------------------------------


def _shop_store(shop, seller, *, enabled=True):
    from example_app import amazon_orders

    with shop.app_context():
        store = connect_store(seller, order_import_enabled=enabled)
        store.connected_at = _now() - dt.timedelta(days=2)
        amazon_orders.session.commit()
        assert amazon_orders.sync(store).status == "succeeded"
        return store.id


def _browser(shop, user="mia"):
    client = shop.test_client()
    with client.session_transaction() as browser:
        browser["user"] = user
    return client


def _token(client, url):
    import re

    page = client.get(url).data.decode()
    page = page[page.index('class="ao"') :]
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _shop_order(shop, amazon_order_id):
    from example_app.models import ShopOrder, db

    with shop.app_context():
        return db.session.scalar(
            sa.select(ShopOrder.status).where(ShopOrder.amazon_order_id == amazon_order_id)
        )


def test_seed_click_path_cancels_on_amazon_and_completes_the_shop_order(shop, sandbox, seller):
    order_id = _order(sandbox, seller)
    store_id = _shop_store(shop, seller)
    assert _shop_order(shop, order_id) == "Processing"
    client = _browser(shop)
    details = f"/admin/amazon/stores/{store_id}/orders/{order_id}"
    page = client.get(details).data.decode()
    assert ">Cancel Order</a>" in page
    form_url = f"{details}/cancel"
    form = " ".join(client.get(form_url).data.decode().split())
    assert "Reason for cancellation" in form and "Seller memo" in form and "Confirm" in form
    for label in (
        "No Inventory",
        "Buyer Cancelled",
        "General Adjustment",
        "Pricing Error",
        "Shipping Address Undeliverable",
        "Customer Exchange",
    ):
        assert f">{label}</label>" in form
    done = client.post(
        form_url,
        data={
            "reason": "NoInventory",
            "memo": "last one broke",
            "csrf_token": _token(client, form_url),
        },
        follow_redirects=True,
    )
    text = " ".join(done.data.decode().split())
    assert "1 order cancelled." in text
    assert 'ao-status--canceled">Canceled' in text and "Queued" in text
    assert "last one broke" in text and "Cancelled by</dt><dd>mia," in text
    assert _shop_order(shop, order_id) == "Complete"
    with shop.app_context():
        settle_feeds(store_id)
    after = " ".join(client.get(details).data.decode().split())
    assert "Confirmed" in after and "Amazon confirmed the cancellation" in after
    assert ">Cancel Order</a>" not in after
    feeds = sandbox.control.feeds()
    assert len(feeds) == 1
    assert sandbox.control.get_order(order_id)["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
    items = sandbox.control.get_order(order_id)["orderItems"]
    for item in items:
        code = item["orderItemId"]
        assert (
            f"<Item><AmazonOrderItemCode>{code}</AmazonOrderItemCode>"
            "<CancelReason>NoInventory</CancelReason></Item>"
        ) in feeds[0]["document"]


def test_rejection_restores_the_shop_order_and_shows_why(shop, sandbox, seller, monkeypatch):
    from example_app.models import ShopOrder, db
    from flask_amazon_orders.jobs import feeds as feeds_job

    order_id = _order(sandbox, seller)
    store_id = _shop_store(shop, seller)
    with shop.app_context():
        shop_order = db.session.scalar(
            sa.select(ShopOrder).where(ShopOrder.amazon_order_id == order_id)
        )
        shop_order.status = "On hold"  # the shop's own workflow moved it
        db.session.commit()
        cancel_orders(store_id, [order_id], reason="NoInventory", actor="admin:mia")
    assert _shop_order(shop, order_id) == "Complete"
    real_send = feeds_job._Run.send

    def ship_first(self, submission):
        sandbox.control.set_status(order_id, "SHIPPED")
        return real_send(self, submission)

    monkeypatch.setattr(feeds_job._Run, "send", ship_first)
    with shop.app_context():
        settle_feeds(store_id)
    assert _shop_order(shop, order_id) == "On hold"
    client = _browser(shop)
    dashboard = " ".join(client.get(f"/admin/amazon/stores/{store_id}").data.decode().split())
    assert "Amazon rejected 1 cancellation." in dashboard
    assert "cannot be cancelled: it is SHIPPED" in dashboard
    details = " ".join(
        client.get(f"/admin/amazon/stores/{store_id}/orders/{order_id}").data.decode().split()
    )
    assert 'ao-status--shipped">Shipped' in details and "Rejected" in details
    assert "Amazon rejected the cancellation" in details
    cards = " ".join(client.get("/admin/amazon/").data.decode().split())
    assert "1 cancellation rejected by Amazon" in cards


def test_cancel_order_is_offered_only_for_unshipped_orders_to_managers(shop, sandbox, seller):
    unshipped = _order(sandbox, seller)
    pending = _order(sandbox, seller, status="PENDING")
    store_id = _shop_store(shop, seller, enabled=False)
    base = f"/admin/amazon/stores/{store_id}/orders"
    manager, viewer = _browser(shop), _browser(shop, "victor")
    assert ">Cancel Order</a>" in manager.get(f"{base}/{unshipped}").data.decode()
    assert ">Cancel Order</a>" not in manager.get(f"{base}/{pending}").data.decode()
    assert ">Cancel Order</a>" not in viewer.get(f"{base}/{unshipped}").data.decode()
    assert viewer.get(f"{base}/{unshipped}/cancel").status_code == 403
    refused = manager.get(f"{base}/{pending}/cancel")
    assert refused.status_code == 409
    assert "it can be cancelled only in Seller Central" in refused.data.decode()
    assert 'name="reason"' not in refused.data.decode()


def test_bad_cancel_forms_change_nothing(shop, sandbox, seller):
    order_id = _order(sandbox, seller)
    shipped = _order(sandbox, seller, status="SHIPPED")
    store_id = _shop_store(shop, seller)
    client = _browser(shop)
    url = f"/admin/amazon/stores/{store_id}/orders/{order_id}/cancel"
    token = _token(client, url)
    cases = [
        ({"csrf_token": token}, 400, "Choose a reason for cancellation."),
        ({"csrf_token": token, "reason": "Sold out"}, 400, "Choose a reason"),
        (
            {"csrf_token": token, "reason": "NoInventory", "memo": "x" * 1001},
            400,
            "longer than 1000",
        ),
        ({"reason": "NoInventory"}, 400, "The form has expired"),
        ({"reason": "NoInventory", "csrf_token": "stale"}, 400, "The form has expired"),
    ]
    for data, status, message in cases:
        response = client.post(url, data=data)
        assert response.status_code == status, data
        assert message in response.data.decode()
    shipped_url = f"/admin/amazon/stores/{store_id}/orders/{shipped}/cancel"
    response = client.post(shipped_url, data={"csrf_token": token, "reason": "NoInventory"})
    assert response.status_code == 400
    assert "only Unshipped orders can be cancelled" in response.data.decode()
    other = client.post(
        f"/admin/amazon/stores/{store_id + 1}/orders/{order_id}/cancel",
        data={"csrf_token": token, "reason": "NoInventory"},
    )
    assert other.status_code == 404
    with shop.app_context():
        assert get_extension().session.scalar(sa.select(sa.func.count(Cancellation.id))) == 0
    assert _shop_order(shop, order_id) == "Processing"


def test_double_submit_makes_one_cancellation(shop, sandbox, seller):
    order_id = _order(sandbox, seller)
    store_id = _shop_store(shop, seller)
    first, second = _browser(shop), _browser(shop)  # two admins, or one double click
    url = f"/admin/amazon/stores/{store_id}/orders/{order_id}/cancel"
    tokens = _token(first, url), _token(second, url)
    ok = first.post(url, data={"reason": "NoInventory", "csrf_token": tokens[0]})
    late = second.post(url, data={"reason": "PricingError", "csrf_token": tokens[1]})
    assert ok.status_code == 302
    assert late.status_code == 400
    assert "already on its way to Amazon" in late.data.decode()
    with shop.app_context():
        reasons = get_extension().session.scalars(sa.select(Cancellation.reason)).all()
    assert reasons == ["NoInventory"]


def test_bulk_cancel_summary_and_one_feed(shop, sandbox, seller):
    ids = [_order(sandbox, seller, ago=4000 + n) for n in range(4)]
    shipped = _order(sandbox, seller, status="SHIPPED")
    store_id = _shop_store(shop, seller)
    client = _browser(shop)
    with shop.app_context():
        rows = dict(
            get_extension()
            .session.execute(sa.select(AmazonOrder.amazon_order_id, AmazonOrder.id))
            .all()
        )
    dashboard = client.get(f"/admin/amazon/stores/{store_id}").data.decode()
    assert 'form="ao-bulk-cancel"' in dashboard and "Cancel selected orders" in dashboard
    chosen = [rows[i] for i in ids] + [rows[shipped]]
    url = f"/admin/amazon/stores/{store_id}/cancel"
    summary = " ".join(client.get(url, query_string={"order": chosen}).data.decode().split())
    assert "4 orders will be cancelled" in summary
    assert summary.count("Will be cancelled") == 4
    assert "Not cancellable</span> The order is Shipped" in summary
    token = _token(client, f"{url}?order={chosen[0]}")
    done = client.post(
        url,
        data={"order": chosen, "reason": "GeneralAdjustment", "csrf_token": token},
        follow_redirects=True,
    )
    text = " ".join(done.data.decode().split())
    assert "4 orders cancelled." in text
    assert f"{shipped} was not cancelled" in text
    assert "4 cancellations are on their way to Amazon." in text
    with shop.app_context():
        settle_feeds(store_id)
    feeds = sandbox.control.feeds()
    assert len(feeds) == 1 and feeds[0]["document"].count("<Message>") == 4
    assert all(_shop_order(shop, i) == "Complete" for i in ids)
    assert client.get(url).status_code == 400  # nothing selected
    assert client.get(url, query_string={"order": "x"}).status_code == 400


# -- crashes and concurrency --------------------------------------------------------------


def test_crash_after_create_feed_is_resumed_without_sending_twice(
    app, db, sandbox, synced, monkeypatch
):
    from flask_amazon_orders.client.http import SPAPIClient
    from flask_amazon_orders.errors import TransportError

    store_id, ids, _ = synced
    cancel_orders(store_id, ids, reason="NoInventory")
    real = SPAPIClient.create_feed

    def lost_answer(self, *args, **kwargs):
        real(self, *args, **kwargs)  # Amazon created the feed …
        raise TransportError("connection dropped", operation="createFeed")  # … we never heard

    monkeypatch.setattr(SPAPIClient, "create_feed", lost_answer)
    first = process_feeds(store_id)
    assert first.errors and not first.submitted
    submission = db.session.scalar(sa.select(FeedSubmission))
    assert submission.state == "creating"
    monkeypatch.setattr(SPAPIClient, "create_feed", real)
    settle_feeds(store_id)
    assert len(sandbox.control.feeds()) == 1
    db.session.expire_all()
    assert {c.state for c in db.session.scalars(sa.select(Cancellation))} == {"confirmed"}


def test_crash_before_upload_resends_the_same_document(app, db, sandbox, synced, monkeypatch):
    from flask_amazon_orders.client.http import SPAPIClient
    from flask_amazon_orders.errors import ServerError

    store_id, ids, _ = synced
    cancel_orders(store_id, ids[:2], reason="NoInventory")
    real = SPAPIClient.create_feed_document

    def down(self, *args, **kwargs):
        raise ServerError("Amazon is down", status=503, operation="createFeedDocument")

    monkeypatch.setattr(SPAPIClient, "create_feed_document", down)
    assert process_feeds(store_id).errors
    built = db.session.scalar(sa.select(FeedSubmission))
    assert built.state == "built" and "Amazon is down" in built.error
    document = built.document
    monkeypatch.setattr(SPAPIClient, "create_feed_document", real)
    settle_feeds(store_id)
    feeds = sandbox.control.feeds()
    assert len(feeds) == 1 and feeds[0]["document"] == document


def test_documents_that_never_reach_amazon_do_not_use_up_the_attempts(
    app, db, sandbox, synced, monkeypatch
):
    from flask_amazon_orders.client.http import SPAPIClient
    from flask_amazon_orders.errors import TransportError
    from flask_amazon_orders.jobs.feeds import MAX_ATTEMPTS

    store_id, ids, _ = synced
    cancel_orders(store_id, ids[:2], reason="NoInventory")
    real = SPAPIClient.upload_feed_document

    def unreachable(self, *args, **kwargs):
        raise TransportError("connection reset", operation="upload")

    # Each run builds the document again and cannot upload it (Amazon's storage
    # unreachable, or the worker killed there): no feed reached Amazon.
    monkeypatch.setattr(SPAPIClient, "upload_feed_document", unreachable)
    for _ in range(MAX_ATTEMPTS + 1):
        assert process_feeds(store_id).errors
    assert sandbox.control.feeds() == []
    monkeypatch.setattr(SPAPIClient, "upload_feed_document", real)
    settle_feeds(store_id)
    assert len(sandbox.control.feeds()) == 1
    db.session.expire_all()
    cancellations = db.session.scalars(sa.select(Cancellation)).all()
    assert {(c.state, c.attempts) for c in cancellations} == {("confirmed", 1)}


def test_fatal_feed_is_verified_and_sent_again(app, db, sandbox, synced):
    store_id, ids, _ = synced
    cancel_orders(store_id, ids[:2], reason="NoInventory")
    sandbox.control.inject_fault("createFeed", "fatal")
    settle_feeds(store_id)
    feeds = sandbox.control.feeds()
    assert [f["processingStatus"] for f in feeds] == ["FATAL", "DONE"]
    db.session.expire_all()
    cancellations = db.session.scalars(sa.select(Cancellation)).all()
    assert {(c.state, c.attempts) for c in cancellations} == {("confirmed", 2)}


def test_two_admins_at_once_make_one_cancellation(app_factory, sandbox, seller):
    import threading

    app = app_factory()
    order_id = _order(sandbox, seller)
    with app.app_context():
        store_id = connect_store(seller).id
        get_extension().sync(store_id)
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def admin(reason: str) -> None:
        with app.app_context():
            barrier.wait()
            results.append(cancel_orders(store_id, [order_id], reason=reason))
            get_extension().session.remove()

    threads = [
        threading.Thread(target=admin, args=(r,))
        for r in ("NoInventory", "PricingError", "GeneralAdjustment", "BuyerCanceled")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(len(r.cancelled) for r in results) == 1
    assert sum(len(r.refused) for r in results) == 3
    with app.app_context():
        assert get_extension().session.scalar(sa.select(sa.func.count(Cancellation.id))) == 1


def test_a_sync_while_the_cancellation_waits_keeps_it_cancelled(app, db, sandbox, synced):
    store_id, ids, _ = synced
    cancel_orders(store_id, [ids[0]], reason="NoInventory")
    # Amazon changes the order (the buyer asks to cancel) before our feed is out.
    sandbox.control.request_buyer_cancel(ids[0])
    assert get_extension().sync(store_id).status == "succeeded"
    order = _stored(db, ids[0])
    assert (order.status, order.cancellation_state) == ("Canceled", "queued")
    assert order.buyer_cancel_requested
    settle_feeds(store_id)
    assert _stored(db, ids[0]).cancellation_state == "confirmed"


def test_cli_cancels_through_the_same_code_path(app, db, sandbox, synced):
    _store_id, ids, shipped = synced
    runner = app.test_cli_runner()
    done = runner.invoke(args=["amazon-orders", "cancel", ids[0], "--reason", "PricingError"])
    assert done.exit_code == 0, done.output
    assert f"{ids[0]}: cancelled, queued for Amazon." in done.output
    refused = runner.invoke(args=["amazon-orders", "cancel", shipped, "--reason", "NoInventory"])
    assert refused.exit_code == 1 and "only Unshipped orders" in refused.output
    bad = runner.invoke(args=["amazon-orders", "cancel", ids[1], "--reason", "Oops"])
    assert bad.exit_code == 2
    feeds = runner.invoke(args=["amazon-orders", "feeds", "--wait"])
    assert feeds.exit_code == 0, feeds.output
    assert "Feed " in feeds.output and "1 confirmed" in feeds.output
    actor = db.session.scalar(sa.select(Cancellation.actor))
    assert actor == "cli"


# -- settling right when Amazon or the shop moved first (regressions from a review) -------


def test_amazon_says_already_cancelled_is_confirmed_not_rejected(
    app, db, sandbox, synced, monkeypatch
):
    from flask_amazon_orders.jobs import feeds as feeds_job

    store_id, ids, _ = synced
    cancel_orders(store_id, [ids[0]], reason="BuyerCanceled")
    real_send = feeds_job._Run.send

    def buyer_cancels_first(self, submission):
        sandbox.control.set_status(ids[0], "CANCELLED", cancelled_by="BUYER")
        return real_send(self, submission)

    monkeypatch.setattr(feeds_job._Run, "send", buyer_cancels_first)
    settle_feeds(store_id)
    order = _stored(db, ids[0])
    assert (order.status, order.cancellation_state) == ("Canceled", "confirmed")


def test_a_second_worker_after_a_lost_lease_sends_nothing_twice(
    app_factory, sandbox, seller, monkeypatch
):
    import threading

    from flask_amazon_orders.client.http import SPAPIClient
    from flask_amazon_orders.models import Store

    app = app_factory()
    ids = [_order(sandbox, seller, ago=3600 + n) for n in range(2)]
    with app.app_context():
        store_id = connect_store(seller).id
        get_extension().sync(store_id)
        cancel_orders(store_id, ids, reason="NoInventory")
    real_get = SPAPIClient.get_order
    state = {"done": False}

    def run_job() -> None:
        with app.app_context():
            process_feeds(store_id)
            get_extension().session.remove()

    def slow_get(self, *args, **kwargs):
        if threading.current_thread().name == "first" and not state["done"]:
            state["done"] = True
            # The first run takes so long that its lease runs out; another worker runs.
            with app.app_context(), get_extension().session.get_bind().begin() as conn:
                conn.execute(
                    sa.update(Store)
                    .where(Store.id == store_id)
                    .values(feed_lease_until=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
                )
            second = threading.Thread(target=run_job, name="second")
            second.start()
            second.join(60)
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(SPAPIClient, "get_order", slow_get)
    first = threading.Thread(target=run_job, name="first")
    first.start()
    first.join(120)
    monkeypatch.setattr(SPAPIClient, "get_order", real_get)
    with app.app_context():
        settle_feeds(store_id)
        session = get_extension().session
        session.expire_all()
        assert {c.state for c in session.scalars(sa.select(Cancellation))} == {"confirmed"}
    messages = [f["document"].count("<Message>") for f in sandbox.control.feeds()]
    assert sum(messages) == 2  # each order went out once


def test_an_order_that_cannot_be_sent_does_not_hold_up_the_others(
    app, db, sandbox, synced, monkeypatch
):
    from flask_amazon_orders.client.http import SPAPIClient

    store_id, ids, _ = synced
    cancel_orders(store_id, ids, reason="NoInventory")
    sandbox.control.set_status(ids[0], "CANCELLED", cancelled_by="BUYER")
    real_get = SPAPIClient.get_order

    def no_items(self, order_id, **kwargs):
        raw = real_get(self, order_id, **kwargs)
        if order_id == ids[2]:
            raw["orderItems"] = []
        return raw

    monkeypatch.setattr(SPAPIClient, "get_order", no_items)
    heard = []
    signals.cancellation_confirmed.connect(
        lambda sender, *, order, **extra: heard.append(order.amazon_order_id), app, weak=False
    )
    settle_feeds(store_id)
    db.session.expire_all()
    states = {
        o.amazon_order_id: (o.status, o.cancellation_state)
        for o in db.session.scalars(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id.in_(ids))
        )
    }
    assert states[ids[0]] == ("Canceled", "confirmed")  # Amazon had it cancelled
    assert states[ids[1]] == ("Canceled", "confirmed")  # sent and confirmed
    assert states[ids[2]] == ("Unshipped", "rejected")  # cannot be sent: says why
    assert sorted(heard) == sorted(ids[:2])


def test_a_document_that_failed_to_go_out_is_checked_again(app, db, sandbox, synced):
    store_id, ids, _ = synced
    cancel_orders(store_id, [ids[0]], reason="NoInventory")
    sandbox.control.inject_fault("createFeedDocument", "500", count=50)
    process_feeds(store_id)
    assert db.session.scalar(sa.select(FeedSubmission.state)) == "built"
    sandbox.control.set_status(ids[0], "SHIPPED")  # meanwhile, it ships
    sandbox.control.clear_faults()
    settle_feeds(store_id)
    assert sandbox.control.feeds() == []  # no Failure for a shipped order
    order = _stored(db, ids[0])
    assert (order.status, order.cancellation_state) == ("Shipped", "rejected")


def test_a_late_sync_page_never_reopens_a_confirmed_cancellation(
    app, db, sandbox, synced, monkeypatch
):
    from flask_amazon_orders.jobs import sync as sync_job

    store_id, ids, _ = synced
    cancel_orders(store_id, [ids[0]], reason="BuyerCanceled")
    sandbox.control.request_buyer_cancel(ids[0])  # Amazon changes the order: the sync reads it
    real_store_page = sync_job._store_page

    def confirmed_meanwhile(ext, sid, records, progress):
        settle_feeds(store_id)  # the page was read before the feed was processed
        return real_store_page(ext, sid, records, progress)

    monkeypatch.setattr(sync_job, "_store_page", confirmed_meanwhile)
    assert get_extension().sync(store_id).status == "succeeded"
    order = _stored(db, ids[0])
    assert (order.status, order.cancellation_state) == ("Canceled", "confirmed")


def test_receivers_of_a_bulk_cancel_do_not_cost_a_query_each(app, db, sandbox, seller):
    ids = [_order(sandbox, seller, ago=3600 + n) for n in range(20)]
    store = connect_store(seller)
    get_extension().sync(store)
    seen = []

    def read(sender, *, order, cancellation, **extra):
        seen.append((order.amazon_order_id, cancellation.reason))

    statements = []

    def count(*args):
        statements.append(args[2])

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    signals.cancellation_queued.connect(read, app)
    try:
        cancel_orders(store.id, ids, reason="NoInventory")
    finally:
        signals.cancellation_queued.disconnect(read, app)
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(seen) == 20
    assert len(statements) < 20


def test_an_import_committed_just_before_the_claim_is_completed_too(
    shop, sandbox, seller, monkeypatch
):
    from example_app import amazon_orders
    from flask_amazon_orders.services import cancelling
    from flask_amazon_orders.services.importing import import_host_orders

    order_id = _order(sandbox, seller)
    with shop.app_context():
        store = connect_store(seller)  # import off: no shop order yet
        store.connected_at = _now() - dt.timedelta(days=2)
        amazon_orders.session.commit()
        store_id = store.id
        amazon_orders.sync(store)
    real_ask = cancelling._ask_receivers

    def import_meanwhile(*args, **kwargs):
        # Another worker switches import on and creates the shop order right now.
        with shop.app_context():
            from flask_amazon_orders.models import Store

            amazon_orders.session.get(Store, store_id).order_import_enabled = True
            amazon_orders.session.commit()
            import_host_orders(store_id)
            amazon_orders.session.remove()
        return real_ask(*args, **kwargs)

    monkeypatch.setattr(cancelling, "_ask_receivers", import_meanwhile)
    with shop.app_context():
        result = cancel_orders(store_id, [order_id], reason="NoInventory")
    assert result.cancelled == [order_id]
    assert _shop_order(shop, order_id) == "Complete"


@pytest.mark.parametrize(("kind", "asked"), [("429", 1), ("503_html", 3)])
def test_a_check_amazon_cannot_answer_is_visible_and_throttling_holds_the_batch(
    app, db, sandbox, synced, kind, asked
):
    from flask_amazon_orders.models import Store

    store_id, ids, _ = synced
    cancel_orders(store_id, ids, reason="NoInventory")
    sandbox.control.inject_fault("getOrder", kind, count=1000)
    sandbox.control.reset_counters()
    run = process_feeds(store_id)
    # Throttled: the other orders are not asked now (they would be throttled too);
    # a server error may be the order's: each is asked.
    attempts = get_extension().settings.retry_max_attempts
    assert sandbox.control.counters()["operations"]["getOrder"]["calls"] == asked * attempts
    assert len(run.errors) == asked and sandbox.control.feeds() == []
    db.session.expire_all()
    store = db.session.get(Store, store_id)
    assert "getOrder" in store.last_feed_error and not store.last_feed_error_needs_action
    waiting = db.session.scalars(sa.select(Cancellation).order_by(Cancellation.id)).all()
    assert [(c.state, c.submission_id) for c in waiting] == [("queued", None)] * 3
    assert all("getOrder" in c.result for c in waiting)
    sandbox.control.clear_faults()
    settle_feeds(store_id)
    db.session.expire_all()
    assert {c.state for c in db.session.scalars(sa.select(Cancellation))} == {"confirmed"}
    assert db.session.get(Store, store_id).last_feed_error is None
