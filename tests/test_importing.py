"""Import routing: Amazon orders becoming host orders, with the example shop as the host."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store

from example_app import amazon_orders
from example_app.host import ShopAdapter
from example_app.models import Product, ShopOrder
from flask_amazon_orders import signals
from flask_amazon_orders.jobs.sync import sync_store
from flask_amazon_orders.models import AmazonOrder, OrderEvent, Store
from flask_amazon_orders.services.importing import (
    import_host_orders,
    retry_host_order,
    set_order_import,
)

SKU = "TEA-GREEN-100"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _order(sandbox, seller, *, status="UNSHIPPED", fulfilled_by="MERCHANT", sku=SKU, ago=60):
    moment = _iso(_now() - dt.timedelta(seconds=ago))
    return sandbox.control.create_order(
        seller["seller_id"],
        status=status,
        fulfilled_by=fulfilled_by,
        created_time=moment,
        last_updated_time=moment,
        items=[{"sku": sku, "quantity": 2, "unit_price": "8.90"}],
    )["orderId"]


def _connect(shop, seller, *, enabled: bool, hours_ago: float = 1.0):
    with shop.app_context():
        store = connect_store(seller, name="Teahouse Amazon.de", order_import_enabled=enabled)
        store.connected_at = _now() - dt.timedelta(hours=hours_ago)
        amazon_orders.session.commit()
        return store.id


def _shop_orders(shop) -> dict[str, ShopOrder]:
    with shop.app_context():
        orders = amazon_orders.session.scalars(sa.select(ShopOrder)).all()
        return {o.amazon_order_id: (o.status, o.number, o.channel) for o in orders}


def _sync(shop, store_id):
    with shop.app_context():
        run = sync_store(store_id)
        assert run.status == "succeeded", run.error
        return run


@pytest.mark.parametrize("enabled", [True, False], ids=["import-on", "import-off"])
def test_routing_table_for_new_orders(shop, sandbox, seller, enabled):
    """DESIGN.md §5, first row: which new orders become host orders, in what status."""
    store_id = _connect(shop, seller, enabled=enabled)
    mfn_unshipped = _order(sandbox, seller, status="UNSHIPPED")
    mfn_pending = _order(sandbox, seller, status="PENDING")
    mfn_partial = _order(sandbox, seller, status="PARTIALLY_SHIPPED")
    mfn_shipped = _order(sandbox, seller, status="SHIPPED")
    mfn_cancelled = _order(sandbox, seller, status="CANCELLED")
    afn_pending = _order(sandbox, seller, status="PENDING", fulfilled_by="AMAZON")
    afn_shipped = _order(sandbox, seller, status="SHIPPED", fulfilled_by="AMAZON")
    before_connect = _order(sandbox, seller, status="UNSHIPPED", ago=3 * 3600)

    _sync(shop, store_id)

    shop_orders = _shop_orders(shop)
    if not enabled:
        assert shop_orders == {}
        return
    assert shop_orders[mfn_unshipped][0] == "Processing"
    assert shop_orders[mfn_partial][0] == "Processing"
    assert shop_orders[mfn_shipped][0] == "Complete"
    assert shop_orders[afn_shipped][0] == "Complete"
    for waiting in (mfn_pending, afn_pending, mfn_cancelled, before_connect):
        assert waiting not in shop_orders
    assert len(shop_orders) == 4
    assert {channel for _status, _number, channel in shop_orders.values()} == {"amazon"}


def test_pending_waits_then_imports_once_unshipped(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    order_id = _order(sandbox, seller, status="PENDING")
    _sync(shop, store_id)
    assert _shop_orders(shop) == {}
    sandbox.control.set_status(order_id, "UNSHIPPED")
    _sync(shop, store_id)
    assert _shop_orders(shop)[order_id][0] == "Processing"
    with shop.app_context():
        order = amazon_orders.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id)
        )
        assert order.host_import_state == "created" and order.host_order_ref
        kinds = amazon_orders.session.scalars(
            sa.select(OrderEvent.kind).where(OrderEvent.order_id == order.id)
        ).all()
        assert "host_order_created" in kinds


def test_fba_order_waits_for_shipped_and_is_created_complete(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    order_id = _order(sandbox, seller, status="PENDING", fulfilled_by="AMAZON")
    _sync(shop, store_id)
    assert _shop_orders(shop) == {}
    sandbox.control.set_status(order_id, "SHIPPED")
    _sync(shop, store_id)
    assert _shop_orders(shop)[order_id][0] == "Complete"


@pytest.mark.parametrize("final", ["SHIPPED", "CANCELLED"])
def test_amazon_shipped_or_cancelled_moves_the_host_order_to_complete(shop, sandbox, seller, final):
    store_id = _connect(shop, seller, enabled=True)
    order_id = _order(sandbox, seller, status="UNSHIPPED")
    _sync(shop, store_id)
    assert _shop_orders(shop)[order_id][0] == "Processing"
    changes: list[tuple[str, str]] = []

    def on_status(app, *, order, reference, status, **extra):
        changes.append((order.amazon_order_id, status))

    sandbox.control.set_status(order_id, final)
    with signals.host_order_status_changed.connected_to(on_status):
        _sync(shop, store_id)
        _sync(shop, store_id)  # again: nothing more to do
    assert _shop_orders(shop)[order_id][0] == "Complete"
    assert changes == [(order_id, "Complete")]


def test_order_number_source_amazon(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    with shop.app_context():
        store = amazon_orders.session.get(Store, store_id)
        store.order_number_source = "amazon"
        amazon_orders.session.commit()
    order_id = _order(sandbox, seller)
    _sync(shop, store_id)
    assert _shop_orders(shop)[order_id][1] == order_id


def test_money_comes_from_amazon_as_decimal(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    order_id = _order(sandbox, seller)
    _sync(shop, store_id)
    amazon = sandbox.control.get_order(order_id)
    with shop.app_context():
        shop_order = amazon_orders.session.scalar(
            sa.select(ShopOrder).where(ShopOrder.amazon_order_id == order_id)
        )
        assert str(shop_order.total) == amazon["proceeds"]["grandTotal"]["amount"]
        assert shop_order.currency == amazon["proceeds"]["grandTotal"]["currencyCode"]
        line = shop_order.lines[0]
        assert (line.sku, line.quantity, str(line.price)) == (SKU, 2, "8.90")
        items = amazon["orderItems"]

        def breakdown(kind: str) -> Decimal:
            return sum(
                (
                    Decimal(b["subtotal"]["amount"])
                    for item in items
                    for b in item["proceeds"]["breakdowns"]
                    if b["type"] == kind
                ),
                Decimal("0"),
            )

        assert shop_order.tax == breakdown("TAX")
        assert shop_order.shipping == breakdown("SHIPPING")
        assert shop_order.discount == breakdown("DISCOUNT")
        assert shop_order.total == (
            breakdown("ITEM") + breakdown("SHIPPING") + breakdown("TAX") + breakdown("DISCOUNT")
        )


def test_blocked_order_shows_its_reason_and_imports_once_fixed(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    good = _order(sandbox, seller)
    bad = _order(sandbox, seller, sku="NOT-IN-THE-SHOP")
    blocked: list[tuple[str, str]] = []

    def on_blocked(app, *, order, reason, **extra):
        blocked.append((order.amazon_order_id, reason))

    with signals.host_order_blocked.connected_to(on_blocked):
        _sync(shop, store_id)
        _sync(shop, store_id)  # retried at the next sync, still blocked
    assert set(_shop_orders(shop)) == {good}
    title = sandbox.control.get_order(bad)["orderItems"][0]["product"]["title"]
    # Once per new reason, although it was tried at both syncs.
    assert blocked == [(bad, f"Unknown SKU 'NOT-IN-THE-SHOP' ({title}).")]
    with shop.app_context():
        order = amazon_orders.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == bad)
        )
        assert order.host_import_state == "blocked"
        assert "Unknown SKU 'NOT-IN-THE-SHOP'" in order.host_import_error
        assert order.host_import_attempts == 2
        events = amazon_orders.session.scalars(
            sa.select(OrderEvent.kind).where(OrderEvent.order_id == order.id)
        ).all()
        assert events.count("host_order_blocked") == 1  # same reason: one timeline entry
        # The admin fixes the cause (adds the product) and retries by hand.
        amazon_orders.session.add(
            Product(sku="NOT-IN-THE-SHOP", name="New product", price="4.00", stock=3)
        )
        amazon_orders.session.commit()
        result = retry_host_order(order.id)
        assert result.created == [order.id]
    assert set(_shop_orders(shop)) == {good, bad}


def test_host_exception_blocks_with_its_type(shop, sandbox, seller, monkeypatch):
    store_id = _connect(shop, seller, enabled=True)
    order_id = _order(sandbox, seller)

    def explode(self, *args, **kwargs):
        raise ValueError("warehouse offline")

    monkeypatch.setattr(ShopAdapter, "create_order", explode)
    _sync(shop, store_id)
    with shop.app_context():
        order = amazon_orders.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id)
        )
        assert order.host_import_state == "blocked"
        assert order.host_import_error == "The shop raised ValueError: warehouse offline"
    assert _shop_orders(shop) == {}


def test_rerun_and_crash_before_commit_end_with_exactly_one_host_order(
    shop, sandbox, seller, monkeypatch
):
    store_id = _connect(shop, seller, enabled=True)
    ids = [_order(sandbox, seller) for _ in range(5)]
    real_create = ShopAdapter.create_order
    calls = {"n": 0}

    def crash_on_third(self, *args, **kwargs):
        calls["n"] += 1
        reference = real_create(self, *args, **kwargs)  # the host row is in the session
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process dies before the commit
        return reference

    monkeypatch.setattr(ShopAdapter, "create_order", crash_on_third)
    with shop.app_context(), pytest.raises(KeyboardInterrupt):
        sync_store(store_id)
    assert len(_shop_orders(shop)) == 2  # the third order's shop row was never committed
    monkeypatch.setattr(ShopAdapter, "create_order", real_create)
    _sync(shop, store_id)
    _sync(shop, store_id)
    with shop.app_context():
        import_host_orders(store_id)
    orders = _shop_orders(shop)
    assert set(orders) == set(ids)
    with shop.app_context():
        count = amazon_orders.session.scalar(sa.select(sa.func.count()).select_from(ShopOrder))
        assert count == 5


def test_two_workers_importing_at_once_create_one_host_order_each(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=False)
    ids = [_order(sandbox, seller) for _ in range(12)]
    _sync(shop, store_id)  # stored, import off
    with shop.app_context():
        amazon_orders.session.get(Store, store_id).order_import_enabled = True
        amazon_orders.session.commit()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with shop.app_context():
                barrier.wait()
                import_host_orders(store_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert set(_shop_orders(shop)) == set(ids)
    with shop.app_context():
        count = amazon_orders.session.scalar(sa.select(sa.func.count()).select_from(ShopOrder))
        assert count == 12


def test_toggle_on_later_imports_since_connect_and_off_keeps_host_orders(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=False)
    first = [_order(sandbox, seller) for _ in range(3)]
    old = _order(sandbox, seller, ago=3 * 3600)  # placed before the store was connected
    _sync(shop, store_id)
    assert _shop_orders(shop) == {}
    with shop.app_context():
        result = set_order_import(store_id, True)
        assert len(result.created) == 3
    assert set(_shop_orders(shop)) == set(first)
    assert old not in _shop_orders(shop)
    with shop.app_context():
        set_order_import(store_id, False)
    later = _order(sandbox, seller)
    _sync(shop, store_id)
    orders = _shop_orders(shop)
    assert set(orders) == set(first)  # nothing deleted, nothing new
    assert later not in orders


def test_import_enabled_without_a_host_adapter_says_so(shop, sandbox, seller, caplog):
    store_id = _connect(shop, seller, enabled=True)
    _order(sandbox, seller)
    saved = amazon_orders.host
    amazon_orders.host = None
    try:
        _sync(shop, store_id)
        with shop.app_context():
            result = import_host_orders(store_id)
    finally:
        amazon_orders.host = saved
    assert "registered no host adapter" in result.problem
    assert any("registered no host adapter" in r.getMessage() for r in caplog.records)
    assert _shop_orders(shop) == {}


def test_host_order_created_signal_once_after_commit(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    ids = [_order(sandbox, seller) for _ in range(3)]
    seen: list[dict[str, Any]] = []

    def on_created(app, *, store, order, reference, status, **extra):
        committed = amazon_orders.db.engine.connect()
        try:
            number = committed.scalar(
                sa.select(ShopOrder.number).where(ShopOrder.id == int(reference))
            )
        finally:
            committed.close()
        seen.append({"order": order.amazon_order_id, "status": status, "visible": bool(number)})

    with signals.host_order_created.connected_to(on_created):
        _sync(shop, store_id)
        _sync(shop, store_id)
    assert sorted(s["order"] for s in seen) == sorted(ids)
    assert all(s["status"] == "Processing" and s["visible"] for s in seen)


def test_cli_import_retries_blocked_orders_once_the_cause_is_fixed(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    bad = _order(sandbox, seller, sku="TEA-OOLONG-50")
    _sync(shop, store_id)
    assert _shop_orders(shop) == {}
    runner = shop.test_cli_runner()
    blocked = runner.invoke(args=["amazon-orders", "import"])
    assert blocked.exit_code == 0
    assert "0 shop orders created, 1 blocked" in blocked.output
    with shop.app_context():
        amazon_orders.session.add(Product(sku="TEA-OOLONG-50", name="Oolong", price="6.50"))
        amazon_orders.session.commit()
    fixed = runner.invoke(args=["amazon-orders", "import", "--store", "Teahouse Amazon.de"])
    assert "1 shop orders created, 0 blocked" in fixed.output
    assert set(_shop_orders(shop)) == {bad}


def test_missing_host_adapter_is_a_banner_on_the_admin_pages(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    client = shop.test_client()
    with client.session_transaction() as browser:
        browser["user"] = "mia"
    pages = ("/admin/amazon/", f"/admin/amazon/stores/{store_id}")
    saved = amazon_orders.host
    amazon_orders.host = None
    try:
        shown = [client.get(url).data.decode() for url in pages]
        cli = shop.test_cli_runner().invoke(args=["amazon-orders", "import"])
    finally:
        amazon_orders.host = saved
    for page in shown:
        assert "Shop orders cannot be created." in page
        assert "the shop registered no host adapter" in page
    assert cli.exit_code == 1 and "registered no host adapter" in cli.output
    for url in pages:
        assert "Shop orders cannot be created." not in client.get(url).data.decode()


class BareAdapter(ShopAdapter):
    """A host with nothing to catch duplicates: no unique key, no find_order."""

    status_calls: list[str] = []

    def create_order(self, amazon_order, *, store, status, number):
        from example_app.models import db as shop_db

        order = ShopOrder(
            number=f"B-{amazon_order.id}-{threading.get_ident()}-{len(self.status_calls)}",
            status=status,
            customer=amazon_order.amazon_order_id,  # no unique key on this column
            channel="amazon",
            currency="EUR",
            total=amazon_order.order_total,
        )
        shop_db.session.add(order)
        shop_db.session.flush()
        return str(order.id)

    def find_order(self, amazon_order):
        return None

    def set_status(self, reference, status, *, amazon_order):
        self.status_calls.append(reference)
        super().set_status(reference, status, amazon_order=amazon_order)


def _bare_counts(shop) -> dict[str, int]:
    with shop.app_context():
        rows = amazon_orders.session.execute(
            sa.select(ShopOrder.customer, sa.func.count()).group_by(ShopOrder.customer)
        ).all()
        return dict(rows)


def _in_threads(shop, target, n=2) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with shop.app_context():
                barrier.wait()
                target()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_claim_alone_keeps_parallel_imports_to_one_host_order_each(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=False)
    ids = [_order(sandbox, seller) for _ in range(10)]
    _sync(shop, store_id)
    saved = amazon_orders.host
    amazon_orders.host = BareAdapter()
    try:
        with shop.app_context():
            amazon_orders.session.get(Store, store_id).order_import_enabled = True
            amazon_orders.session.commit()
        _in_threads(shop, lambda: import_host_orders(store_id), n=3)
    finally:
        amazon_orders.host = saved
    assert _bare_counts(shop) == {order_id: 1 for order_id in ids}
    with shop.app_context():
        states = amazon_orders.session.execute(
            sa.select(AmazonOrder.host_import_state, AmazonOrder.host_import_attempts)
        ).all()
        assert set(states) == {("created", 1)}


def test_parallel_completion_tells_the_host_once(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    ids = [_order(sandbox, seller) for _ in range(6)]
    saved = amazon_orders.host
    amazon_orders.host = adapter = BareAdapter()
    adapter.status_calls = []
    try:
        _sync(shop, store_id)
        for order_id in ids:
            sandbox.control.set_status(order_id, "SHIPPED")
        with shop.app_context():
            sync_store(store_id)  # stores the new status; completes too
        with shop.app_context():
            # Undo the completion so that two workers race for it.
            amazon_orders.session.execute(sa.update(AmazonOrder).values(host_status="Processing"))
            amazon_orders.session.commit()
        adapter.status_calls = []
        _in_threads(shop, lambda: import_host_orders(store_id), n=2)
    finally:
        amazon_orders.host = saved
    assert sorted(adapter.status_calls) == sorted(set(adapter.status_calls))
    assert len(adapter.status_calls) == 6


def test_raising_host_signal_receivers_do_not_stop_the_import(shop, sandbox, seller, caplog):
    store_id = _connect(shop, seller, enabled=True)
    bad = _order(sandbox, seller, sku="NOT-IN-THE-SHOP")
    good = [_order(sandbox, seller) for _ in range(3)]

    def explode(sender, **kwargs):
        raise RuntimeError("receiver bug")

    with (
        signals.host_order_blocked.connected_to(explode),
        signals.host_order_created.connected_to(explode),
    ):
        run = _sync(shop, store_id)
    assert run.status == "succeeded"
    assert set(_shop_orders(shop)) == set(good)
    assert bad not in _shop_orders(shop)
    assert sum("receiver of the" in r.getMessage() for r in caplog.records) == 4


def test_an_adapter_that_commits_is_refused_and_creates_nothing(shop, sandbox, seller, monkeypatch):
    store_id = _connect(shop, seller, enabled=True)
    order_id = _order(sandbox, seller)
    real_create = ShopAdapter.create_order

    def committing(self, *args, **kwargs):
        reference = real_create(self, *args, **kwargs)
        amazon_orders.session.commit()
        return reference

    monkeypatch.setattr(ShopAdapter, "create_order", committing)
    _sync(shop, store_id)
    assert _shop_orders(shop) == {}
    with shop.app_context():
        order = amazon_orders.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id)
        )
        assert order.host_import_state == "blocked"
        assert "must leave the commit" in order.host_import_error


def test_toggle_switched_off_before_the_claim_stops_the_import(shop, sandbox, seller, monkeypatch):
    with shop.app_context():
        if amazon_orders.db.engine.dialect.name == "sqlite":
            pytest.skip("SQLite allows one writer at a time; the switch cannot interleave")
    store_id = _connect(shop, seller, enabled=True)
    ids = [_order(sandbox, seller) for _ in range(3)]
    real_create = ShopAdapter.create_order
    calls = {"n": 0}

    def switch_off_after_first(self, *args, **kwargs):
        calls["n"] += 1
        reference = real_create(self, *args, **kwargs)
        if calls["n"] == 1:
            # Another admin switches import off while the first order is created.
            other = amazon_orders.db.engine.connect()
            try:
                if other.dialect.name != "sqlite":
                    other.execute(
                        sa.update(Store)
                        .where(Store.id == store_id)
                        .values(order_import_enabled=False)
                    )
                    other.commit()
            finally:
                other.close()
        return reference

    monkeypatch.setattr(ShopAdapter, "create_order", switch_off_after_first)
    _sync(shop, store_id)
    created = _shop_orders(shop)
    assert len(created) == 1 and set(created) <= set(ids)


def test_a_blocked_order_that_amazon_cancels_is_no_longer_blocked(shop, sandbox, seller):
    store_id = _connect(shop, seller, enabled=True)
    bad = _order(sandbox, seller, sku="NOT-IN-THE-SHOP")
    _sync(shop, store_id)
    sandbox.control.set_status(bad, "CANCELLED")
    _sync(shop, store_id)
    with shop.app_context():
        order = amazon_orders.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == bad)
        )
        assert (order.status, order.host_import_state, order.host_import_error) == (
            "Canceled",
            None,
            None,
        )
    assert _shop_orders(shop) == {}
