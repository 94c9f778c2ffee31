"""Incremental sync against the sandbox over real HTTP."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store

from flask_amazon_orders import signals
from flask_amazon_orders.crypto import buyer_data_context, refresh_token_context
from flask_amazon_orders.jobs.sync import sync_store
from flask_amazon_orders.models import AmazonOrder, AmazonOrderItem, OrderEvent, Store, SyncRun
from flask_amazon_orders.sandbox import SandboxServer


def _count(db: Any, model: Any) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _calls(sandbox: SandboxServer, operation: str = "searchOrders") -> int:
    ops = sandbox.control.counters()["operations"]
    return ops.get(operation, {}).get("calls", 0)


def _amazon_ids(sandbox: SandboxServer, seller_id: str) -> set[str]:
    listing = sandbox.control.list_orders(seller_id)
    return {entry["orderId"] for entry in listing}


def _stored_ids(db: Any) -> list[str]:
    return list(db.session.scalars(sa.select(AmazonOrder.amazon_order_id)))


def test_sync_several_pages_stores_every_order_and_item_once(db, store, seller, sandbox):
    created = sandbox.control.generate_orders(seller["seller_id"], 450, seed=1)
    assert created["created"] == 450
    sandbox.control.reset_counters()

    run = sync_store(store)

    assert run.status == "succeeded", run.error
    assert run.pages == 5
    # Items come inline: ceil(450 / 100) searchOrders calls, one token, no per-order call.
    operations = sandbox.control.counters()["operations"]
    assert operations["searchOrders"]["calls"] == 5
    assert operations["token"]["calls"] == 1
    assert operations.get("getOrder", {}).get("calls", 0) == 0
    assert operations["searchOrders"]["throttled"] == 0
    assert run.orders_created == 450
    ids = _stored_ids(db)
    assert len(ids) == len(set(ids)) == 450
    assert set(ids) == _amazon_ids(sandbox, seller["seller_id"])
    # Items: exactly Amazon's, with Amazon's quantities and money.
    sample = db.session.scalar(sa.select(AmazonOrder).order_by(AmazonOrder.id).limit(1))
    amazon = sandbox.control.get_order(sample.amazon_order_id)
    assert sorted(i.order_item_id for i in sample.items) == sorted(
        i["orderItemId"] for i in amazon["orderItems"]
    )
    for item in sample.items:
        raw = next(i for i in amazon["orderItems"] if i["orderItemId"] == item.order_item_id)
        assert item.quantity_ordered == raw["quantityOrdered"]
        assert item.seller_sku == raw["product"]["sellerSku"]
        assert str(item.unit_price) == raw["product"]["price"]["unitPrice"]["amount"]
        assert isinstance(item.unit_price, Decimal)
    assert str(sample.order_total) == amazon["proceeds"]["grandTotal"]["amount"]
    total_items = sum(len(sandbox.control.get_order(i)["orderItems"]) for i in ids[:25])
    assert total_items == db.session.scalar(
        sa.select(sa.func.count())
        .select_from(AmazonOrderItem)
        .join(AmazonOrder)
        .where(AmazonOrder.amazon_order_id.in_(ids[:25]))
    )
    kinds = db.session.execute(
        sa.select(OrderEvent.kind, sa.func.count()).group_by(OrderEvent.kind)
    ).all()
    assert dict(kinds)["imported"] == 450  # one each
    cancel_requests = sum(
        1
        for order in sandbox.control.list_orders(seller["seller_id"])
        if any(
            item.get("cancellation", {}).get("cancellationRequest")
            for item in sandbox.control.get_order(order["orderId"])["orderItems"]
        )
    )
    assert dict(kinds).get("buyer_cancel_requested", 0) == cancel_requests
    store = db.session.get(Store, store.id)
    assert store.sync_cursor is not None and store.sync_page_token is None


def test_second_sync_without_changes_makes_one_call_and_writes_nothing(db, store, seller, sandbox):
    sandbox.control.generate_orders(seller["seller_id"], 250, seed=2)
    assert sync_store(store).status == "succeeded"
    before = (_count(db, AmazonOrder), _count(db, AmazonOrderItem), _count(db, OrderEvent))
    updated_at = dict(db.session.execute(sa.select(AmazonOrder.id, AmazonOrder.updated_at)).all())
    calls = _calls(sandbox)

    run = sync_store(store)

    assert run.status == "succeeded"
    assert _calls(sandbox) - calls == 1
    assert (run.orders_created, run.orders_updated) == (0, 0)
    assert (_count(db, AmazonOrder), _count(db, AmazonOrderItem), _count(db, OrderEvent)) == before
    db.session.expire_all()
    assert dict(db.session.execute(sa.select(AmazonOrder.id, AmazonOrder.updated_at)).all()) == (
        updated_at
    )


def test_status_change_is_stored_with_an_event_and_signals(db, store, seller, sandbox):
    sandbox.control.generate_orders(
        seller["seller_id"], 20, seed=3, statuses={"UNSHIPPED": 1}, afn_share=0
    )
    sync_store(store)
    target = db.session.scalar(sa.select(AmazonOrder).order_by(AmazonOrder.id).limit(1))
    order_id = target.amazon_order_id
    sandbox.control.set_status(order_id, "SHIPPED")
    seen: list[tuple[str, str, str, bool]] = []

    def on_change(app, *, store, order, old_status, new_status, **extra):
        # Sent after the commit: a separate connection sees the new status.
        with db.engine.connect() as conn:
            committed = conn.scalar(sa.select(AmazonOrder.status).where(AmazonOrder.id == order.id))
        seen.append((order.amazon_order_id, old_status, new_status, committed == new_status))

    with signals.order_status_changed.connected_to(on_change):
        run = sync_store(store)

    assert run.status == "succeeded"
    assert seen == [(order_id, "Unshipped", "Shipped", True)]
    db.session.expire_all()
    order = db.session.scalar(sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id))
    assert order.status == "Shipped" and order.status_label == "Shipped"
    assert all(item.quantity_shipped == item.quantity_ordered for item in order.items)
    events = db.session.scalars(
        sa.select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
    ).all()
    assert [(e.kind, e.from_status, e.to_status) for e in events] == [
        ("imported", None, "Unshipped"),
        ("status_changed", "Unshipped", "Shipped"),
    ]


def test_a_raising_receiver_is_logged_and_loses_neither_data_nor_other_signals(
    app, db, store, seller, sandbox, caplog
):
    sandbox.control.generate_orders(seller["seller_id"], 130, seed=4)
    broken: list[str] = []
    healthy: list[str] = []

    def broken_receiver(sender, *, store, order, **extra):
        broken.append(order.amazon_order_id)
        raise RuntimeError("a broken receiver in the host")

    def healthy_receiver(sender, *, store, order, **extra):
        assert sender is app
        healthy.append(order.amazon_order_id)

    with (
        signals.order_imported.connected_to(broken_receiver),
        signals.order_imported.connected_to(healthy_receiver),
    ):
        run = sync_store(store)

    assert run.status == "succeeded"
    stored = set(_stored_ids(db))
    assert len(stored) == 130
    assert sorted(broken) == sorted(healthy) == sorted(stored)  # once each, to both
    failures = [r for r in caplog.records if "order-imported" in r.getMessage()]
    assert len(failures) == 130
    assert failures[0].exc_info[0] is RuntimeError


def test_buyer_cancel_request_is_recorded(db, store, seller, sandbox):
    sandbox.control.generate_orders(seller["seller_id"], 5, seed=5, statuses={"UNSHIPPED": 1})
    sync_store(store)
    order_id = _stored_ids(db)[0]
    sandbox.control.request_buyer_cancel(order_id, "Found it cheaper elsewhere")
    updated: list[str] = []

    def on_update(app, *, order, **extra):
        updated.append(order.amazon_order_id)

    with signals.order_updated.connected_to(on_update):
        sync_store(store)
    assert updated == [order_id]
    order = db.session.scalar(sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id))
    assert order.buyer_cancel_requested
    assert order.buyer_cancel_reason == "Found it cheaper elsewhere"
    kinds = db.session.scalars(
        sa.select(OrderEvent.kind).where(OrderEvent.order_id == order.id)
    ).all()
    assert "buyer_cancel_requested" in kinds


def test_secrets_and_buyer_data_are_encrypted_at_rest(db, ext, store, seller, sandbox):
    sandbox.control.generate_orders(seller["seller_id"], 3, seed=6)
    sync_store(store)
    with db.engine.connect() as conn:
        token = conn.scalar(sa.text("SELECT refresh_token_encrypted FROM amazon_stores"))
        rows = conn.execute(
            sa.text("SELECT store_id, amazon_order_id, buyer_data_encrypted FROM amazon_orders")
        ).all()
    assert seller["refresh_token"] not in token
    context = refresh_token_context(store.seller_id, store.marketplace_id)
    assert ext.encryptor.decrypt(token, context=context) == seller["refresh_token"]
    order = sandbox.control.get_order(_stored_ids(db)[0])
    name = order["buyer"]["buyerName"]
    assert all(blob and name not in blob for _, _, blob in rows)
    assert any(
        name in ext.encryptor.decrypt(blob, context=buyer_data_context(store_id, order_id))
        for store_id, order_id, blob in rows
    )


def test_revoked_refresh_token_fails_the_run_and_asks_for_a_human(db, store, seller, sandbox):
    sandbox.control.generate_orders(seller["seller_id"], 3, seed=7)
    sandbox.control.revoke_seller(seller["seller_id"])
    failures = []

    def on_fail(app, *, store, run, error, **extra):
        failures.append(type(error).__name__)

    with signals.sync_failed.connected_to(on_fail):
        run = sync_store(store)
    assert run.status == "failed"
    assert failures == ["RefreshTokenRevokedError"]
    store = db.session.get(Store, store.id)
    assert store.last_sync_error_needs_action
    assert "Authorize the app again" in store.last_sync_error
    assert seller["refresh_token"] not in store.last_sync_error
    assert store.sync_cursor is None
    assert _count(db, AmazonOrder) == 0


def test_missing_credentials_fail_at_the_first_call_with_a_clear_message(
    app_factory, seller, sandbox
):
    app = app_factory(AMAZON_ORDERS_LWA_CLIENT_SECRET=None)
    with app.app_context():
        ext = app.extensions["amazon_orders"].extension
        store = connect_store(seller, name="No secret")
        run = sync_store(store)
        assert run.status == "failed"
        assert "client secret" in run.error.lower() or "client_secret" in run.error.lower()
        assert ext.session.get(Store, store.id).last_sync_error_needs_action


# -- faults -------------------------------------------------------------------------

FAULTS = [
    pytest.param({"kind": "429", "count": 3}, id="429-storm"),
    pytest.param({"kind": "503_html"}, id="503-html"),
    pytest.param({"kind": "500"}, id="500-empty"),
    pytest.param({"kind": "slow", "delay": 3.0}, id="read-timeout"),
    pytest.param({"kind": "truncated_json"}, id="truncated-json"),
    pytest.param({"kind": "drop"}, id="dropped-connection"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_on_page_3_of_5_without_retries_loses_nothing_and_resumes(
    app_factory, seller, sandbox, fault
):
    """The run fails at page 3; the cursor stays; the next run resumes at page 3."""
    app = app_factory(AMAZON_ORDERS_RETRY_MAX_ATTEMPTS=1, AMAZON_ORDERS_HTTP_TIMEOUT=(2.0, 1.0))
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        store = connect_store(seller, name="Faulty")
        sandbox.control.generate_orders(seller["seller_id"], 500, seed=8)
        sandbox.control.inject_fault("searchOrders", after=2, **fault)

        first = sync_store(store)

        assert first.status == "failed"
        assert first.error
        stored = db.session.get(Store, store.id)
        assert stored.sync_cursor is None  # never skipped ahead
        assert stored.sync_page_token  # where to resume
        assert stored.last_sync_error
        assert _count(db, AmazonOrder) == 200  # pages 1 and 2, committed

        sandbox.control.clear_faults()
        calls = _calls(sandbox)
        second = sync_store(store)

        assert second.status == "succeeded", second.error
        assert _calls(sandbox) - calls == 3  # pages 3, 4 and 5 only
        ids = _stored_ids(db)
        assert len(ids) == len(set(ids)) == 500
        assert set(ids) == _amazon_ids(sandbox, seller["seller_id"])
        stored = db.session.get(Store, store.id)
        assert stored.sync_cursor is not None and stored.last_sync_error is None


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_on_page_3_of_5_is_retried_within_the_run(app_factory, seller, sandbox, fault):
    app = app_factory(AMAZON_ORDERS_HTTP_TIMEOUT=(2.0, 1.0))
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        store = connect_store(seller, name="Retrying")
        sandbox.control.generate_orders(seller["seller_id"], 500, seed=9)
        sandbox.control.inject_fault("searchOrders", after=2, **fault)

        run = sync_store(store)

        assert run.status == "succeeded", run.error
        ids = _stored_ids(db)
        assert len(ids) == len(set(ids)) == 500


def test_expired_pagination_token_restarts_the_window(app_factory, seller, sandbox):
    app = app_factory(AMAZON_ORDERS_RETRY_MAX_ATTEMPTS=1)
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        store = connect_store(seller, name="Expiring")
        sandbox.control.generate_orders(seller["seller_id"], 500, seed=10)
        sandbox.control.inject_fault("searchOrders", kind="503_html", after=2)
        assert sync_store(store).status == "failed"
        sandbox.control.clear_faults()
        sandbox.control.inject_fault("searchOrders", kind="expired_pagination_token")

        run = sync_store(store)

        assert run.status == "succeeded", run.error
        ids = _stored_ids(db)
        assert len(ids) == len(set(ids)) == 500
        assert run.orders_created == 300


def test_429_storm_longer_than_the_retries_fails_cleanly_and_recovers(app_factory, seller, sandbox):
    app = app_factory(AMAZON_ORDERS_RETRY_MAX_ATTEMPTS=3)
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        store = connect_store(seller, name="Storm")
        sandbox.control.generate_orders(seller["seller_id"], 150, seed=11)
        sandbox.control.inject_fault("searchOrders", kind="429", count=10)
        run = sync_store(store)
        assert run.status == "failed"
        assert run.error_code == "QuotaExceeded"
        assert _count(db, AmazonOrder) == 0
        sandbox.control.clear_faults()
        assert sync_store(store).status == "succeeded"
        assert _count(db, AmazonOrder) == 150


def test_normal_sync_under_enforced_limits_never_gets_429(database_url, make_app):
    """30 pages, more than searchOrders' burst of 20, at Amazon's limits (time-scaled)."""
    scale = 500.0
    with SandboxServer(time_scale=scale) as sandbox:
        app, db = make_app(database_url, sandbox.url, AMAZON_ORDERS_RATE_LIMIT_SCALE=scale)
        with app.app_context():
            db.drop_all()
            db.create_all()
            try:
                seller_id = "A" + uuid.uuid4().hex[:12].upper()
                seller = sandbox.control.create_seller(seller_id=seller_id)
                sandbox.control.generate_orders(seller_id, 3000, seed=12)
                store = connect_store(seller, name="Busy")
                run = sync_store(store)
                assert run.status == "succeeded", run.error
                assert run.pages == 30
                assert run.throttled == 0
                counters = sandbox.control.counters()["operations"]["searchOrders"]
                assert counters["throttled"] == 0
                assert counters["calls"] == 30
                assert _count(db, AmazonOrder) == 3000
            finally:
                db.session.remove()
                db.drop_all()
                db.engine.dispose()


def test_sync_runs_are_recorded(db, store, seller, sandbox):
    sandbox.control.generate_orders(seller["seller_id"], 10, seed=13)
    finished = []

    def on_finish(app, *, store, run, **extra):
        finished.append(run.id)

    with signals.sync_finished.connected_to(on_finish):
        run = sync_store(store, trigger="cli")
    assert finished == [run.id]
    stored = db.session.get(SyncRun, run.id)
    assert stored.trigger == "cli" and stored.status == "succeeded"
    assert stored.orders_seen == 10 and stored.api_calls >= 1
    assert stored.finished_at >= stored.started_at


def test_two_syncs_of_one_store_never_run_at_once(db, store, seller, sandbox):
    from flask_amazon_orders.jobs import leases
    from flask_amazon_orders.jobs.sync import SYNC_LEASE

    sandbox.control.generate_orders(seller["seller_id"], 20, seed=14)
    assert leases.acquire(db.session, store.id, "other-worker", "sync", SYNC_LEASE)
    skipped = sync_store(store)
    assert skipped.status == "skipped"
    assert "Another sync" in skipped.error
    assert _count(db, AmazonOrder) == 0
    leases.release(db.session, store.id, "other-worker", "sync")
    assert sync_store(store).status == "succeeded"
    assert _count(db, AmazonOrder) == 20
    assert db.session.get(Store, store.id).sync_lease_until is None


def test_an_expired_lease_of_a_crashed_sync_is_taken_over(db, store, seller, sandbox):
    import datetime as dt

    sandbox.control.generate_orders(seller["seller_id"], 5, seed=15)
    stored = db.session.get(Store, store.id)
    stored.sync_lease_until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    stored.sync_lease_owner = "crashed"
    db.session.commit()
    assert sync_store(store).status == "succeeded"


def test_the_lease_of_a_killed_worker_on_this_machine_is_taken_over_at_once(
    db, store, seller, sandbox
):
    import datetime as dt
    import subprocess
    import sys

    from flask_amazon_orders.jobs import leases
    from flask_amazon_orders.jobs.sync import INTERRUPTED

    sandbox.control.generate_orders(seller["seller_id"], 5, seed=16)
    machine = leases.new_owner().split(".")[0]
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def held_by(owner: str) -> None:
        stored = db.session.get(Store, store.id)
        stored.sync_lease_until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)
        stored.sync_lease_owner = owner
        db.session.commit()

    try:
        # A live worker of this machine, one of another machine, one named the old way.
        for owner in (
            f"{machine}.{alive.pid}.1234",
            f"0123456789.{killed.pid}.1234",
            uuid.uuid4().hex,
        ):
            held_by(owner)
            assert sync_store(store).status == "skipped", owner
    finally:
        alive.kill()
        alive.wait()
    # The worker that held it was killed in the middle of a run.
    db.session.add(SyncRun(store_id=store.id, trigger="cli", status="running"))
    held_by(f"{machine}.{killed.pid}.1234")
    assert sync_store(store).status == "succeeded"
    assert _count(db, AmazonOrder) == 5
    runs = db.session.scalars(sa.select(SyncRun).order_by(SyncRun.id)).all()
    assert [(r.status, r.error) for r in runs if r.trigger == "cli"] == [("failed", INTERRUPTED)]
    assert db.session.get(Store, store.id).sync_lease_owner is None


def test_a_change_that_keeps_its_timestamp_is_stored_and_a_repeat_is_not(
    db, store, seller, sandbox
):
    import datetime as dt

    stamp = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)).replace(microsecond=0)
    iso = stamp.isoformat().replace("+00:00", "Z")
    order = sandbox.control.create_order(
        seller["seller_id"],
        status="UNSHIPPED",
        created_time=iso,
        last_updated_time=iso,
        items=[{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00"}],
    )
    assert sync_store(store).orders_created == 1
    # Amazon stamps whole seconds, so a change may keep the stamp; the sandbox
    # always moves it on, so the stored copy is moved instead.
    sandbox.control.set_status(order["orderId"], "CANCELLED")
    stored = db.session.scalar(sa.select(AmazonOrder))
    stored.amazon_updated_at = stamp + dt.timedelta(days=1)  # as if the copy were newer
    db.session.commit()
    quiet = sync_store(store)
    assert (quiet.orders_created, quiet.orders_updated) == (0, 0)  # older copy: ignored
    stored = db.session.scalar(sa.select(AmazonOrder))
    stored.amazon_updated_at = _parse(sandbox.control.get_order(order["orderId"]))
    stored.status = "Unshipped"
    db.session.commit()
    changed = sync_store(store)
    assert changed.orders_updated == 1  # same stamp, different content: stored
    assert db.session.scalar(sa.select(AmazonOrder.status)) == "Canceled"
    again = sync_store(store)
    assert again.orders_updated == 0  # same stamp, same content: not written


def _parse(order: dict[str, Any]):
    import datetime as dt

    return dt.datetime.fromisoformat(order["lastUpdatedTime"].replace("Z", "+00:00"))


def test_late_indexed_change_inside_the_overlap_is_picked_up(db, store, seller, sandbox):
    import datetime as dt

    sandbox.control.generate_orders(seller["seller_id"], 3, seed=16)
    assert sync_store(store).status == "succeeded"
    cursor = db.session.get(Store, store.id).sync_cursor
    # An order Amazon indexes late: its lastUpdatedTime lies before the cursor,
    # but within the overlap (default 300 s).
    late = (cursor - dt.timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    order = sandbox.control.create_order(
        seller["seller_id"],
        created_time=late,
        last_updated_time=late,
        items=[{"sku": "SKU-LATE", "quantity": 1, "unit_price": "5.00"}],
    )
    run = sync_store(store)
    assert run.orders_created == 1
    assert order["orderId"] in _stored_ids(db)
