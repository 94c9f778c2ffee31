"""The docs' examples, run: the complete receiver (docs/examples/receivers.py)
against the sandbox and the example shop, where every signal reaches its receiver
with exactly the keyword arguments docs/signals.rst lists; and the sandbox
guide's conftest.py and tests, as a shop would copy them."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from helpers import connect_store, documented_signals, settle_feeds

from flask_amazon_orders import get_extension, signals
from flask_amazon_orders.models import AmazonOrder
from flask_amazon_orders.services.adjusting import adjust_items
from flask_amazon_orders.services.cancelling import cancel_orders

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
EXAMPLE = EXAMPLES / "receivers.py"

pytest_plugins = ["pytester"]


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_example_receivers", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _order(sandbox: Any, seller: dict[str, Any], *skus: str) -> str:
    moment = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
    items = [{"sku": sku, "quantity": 2, "unit_price": "8.90"} for sku in skus or ["TEA-GREEN-100"]]
    order = sandbox.control.create_order(
        seller["seller_id"], created_time=moment, last_updated_time=moment, items=items
    )
    return str(order["orderId"])


def test_the_complete_receiver_hears_every_signal(shop, sandbox, seller, caplog):
    caplog.set_level(logging.INFO)
    ids = {
        name: _order(sandbox, seller)
        for name in ("cancel", "rejected", "packed", "ship", "refused", "adjust", "late", "ships")
    }
    ids["buyer"] = _order(sandbox, seller)
    ids["blocked"] = _order(sandbox, seller, "NOT-IN-THE-SHOP")
    packed = {ids["packed"]}
    _example().connect_receivers(shop, parcel_packed=lambda order: order.amazon_order_id in packed)
    heard: dict[str, list[set[str]]] = {}

    def spy(name: str) -> Any:
        def receiver(sender: Any, **kwargs: Any) -> None:
            assert sender is shop
            heard.setdefault(name, []).append(set(kwargs))

        return receiver

    for name in signals.__all__:
        if name != "CancellationRefused":
            getattr(signals, name).connect(spy(name), shop, weak=False)

    with shop.app_context():
        ext = get_extension()
        store = connect_store(seller, order_import_enabled=True)
        store.connected_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
        ext.session.commit()
        store_id = store.id
        assert ext.sync(store).status == "succeeded"

        sandbox.control.set_status(ids["ships"], "SHIPPED")
        sandbox.control.request_buyer_cancel(ids["buyer"])
        assert ext.sync(store_id).status == "succeeded"

        result = cancel_orders(
            store_id, [ids["cancel"], ids["rejected"], ids["packed"]], reason="NoInventory"
        )
        assert set(result.refused) == {ids["packed"]}
        sandbox.control.set_status(ids["rejected"], "SHIPPED")

        for key in ("ship", "refused"):
            signals.host_order_shipped.send(
                shop, order=ids[key], carrier_code="DHL", tracking_number="JJD0001"
            )
        sandbox.control.set_status(ids["refused"], "SHIPPED")
        for key in ("adjust", "late"):
            order = ext.session.scalar(
                sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == ids[key])
            )
            adjust_items(order, {order.items[0].order_item_id: 1}, reason="NoInventory")
        sandbox.control.set_status(ids["late"], "SHIPPED")
        settle_feeds(store_id)

        sandbox.control.revoke_seller(seller["seller_id"])
        assert ext.sync(store_id).status == "failed"

    failures = [r for r in caplog.records if r.name == "flask_amazon_orders.signals"]
    assert failures == [], [r.getMessage() for r in failures]
    documented = documented_signals()
    sent_by_the_extension = set(documented) - {"host_order_shipped"}
    example = {r.funcName for r in caplog.records if r.name == "shop.amazon"}
    assert example == sent_by_the_extension
    assert set(heard) == set(documented)
    for name, calls in heard.items():
        expected = set(documented[name][1])
        for kwargs in calls:
            if name == "host_order_shipped":  # sent by the shop: some are optional
                assert kwargs <= expected
            else:
                assert kwargs == expected, name


def test_the_sandbox_guide_s_conftest_and_tests_pass_as_copied(pytester):
    pytester.makeconftest((EXAMPLES / "sandbox_conftest.py").read_text())
    pytester.makepyfile(test_amazon=(EXAMPLES / "test_with_the_sandbox.py").read_text())
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=3)
