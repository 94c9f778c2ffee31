"""Item cancellations and refunds (Order Adjustment feeds), and the seed's partial refund
end to end on the example shop."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store, settle_feeds

from flask_amazon_orders import get_extension, signals
from flask_amazon_orders.models import Adjustment, AmazonOrder, utcnow
from flask_amazon_orders.services.adjusting import AdjustmentError, adjust_items, refund_for


def _order(sandbox, seller, *, status="UNSHIPPED") -> str:
    moment = (utcnow() - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return sandbox.control.create_order(
        seller["seller_id"],
        status=status,
        created_time=moment,
        last_updated_time=moment,
        items=[
            {"sku": "TEA-GREEN-100", "quantity": 2, "unit_price": "8.90", "shipping_price": "3.99"},
            {"sku": "TEA-BLACK-250", "quantity": 1, "unit_price": "12.50"},
            {"sku": "MUG-STONE-350", "quantity": 3, "unit_price": "14.00"},
        ],
    )["orderId"]


def _stored(db, amazon_order_id: str) -> AmazonOrder:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == amazon_order_id)
    )


@pytest.fixture
def synced(app, sandbox, seller) -> tuple[int, str]:
    order_id = _order(sandbox, seller)
    store = connect_store(seller)
    assert get_extension().sync(store).status == "succeeded"
    return store.id, order_id


def test_refunds_come_from_amazons_prices_per_unit_and_never_exceed_what_was_paid(app, db, synced):
    _store_id, order_id = synced
    order = _stored(db, order_id)
    mug = order.items[2]
    one = refund_for(mug, 1, None)
    assert one.principal == (mug.item_price / 3).quantize(Decimal("0.01"))
    assert one.tax == (mug.item_tax / 3).quantize(Decimal("0.01"))
    # The last units get exactly what is left: three single cancellations add up
    # to what was paid, not a cent more.
    taken = {"quantity": 0, "principal": Decimal(0), "tax": Decimal(0)}
    taken |= {"shipping": Decimal(0), "shipping_tax": Decimal(0)}
    total = Decimal(0)
    for _ in range(3):
        refund = refund_for(mug, 1, taken)
        taken["quantity"] += 1
        for name in ("principal", "tax", "shipping", "shipping_tax"):
            taken[name] += getattr(refund, name)
        total += refund.total
    paid = mug.item_price + mug.item_tax + (mug.shipping_price or 0) + (mug.shipping_tax or 0)
    assert total == paid
    for value in (one.principal, one.tax, one.shipping):
        assert value == value.quantize(Decimal("0.01"))


@pytest.mark.parametrize(
    ("quantities", "message"),
    [
        ("mug:0", "Choose at least one unit"),
        ("mug:4", "Only 3 unit(s)"),
        ("mug:-1", "whole numbers"),
        ({"99999999999999": 1}, "is not an item of this order"),
    ],
)
def test_bad_quantities_change_nothing(app, db, synced, quantities, message):
    _store_id, order_id = synced
    order = _stored(db, order_id)
    if isinstance(quantities, str):
        quantities = {order.items[2].order_item_id: int(quantities.split(":")[1])}
    with pytest.raises(AdjustmentError, match=re.escape(message)):
        adjust_items(order, quantities, reason="NoInventory")
    assert db.session.scalar(sa.select(sa.func.count(Adjustment.id))) == 0


def test_bad_reason_memo_or_store_change_nothing(app, db, sandbox, synced):
    store_id, order_id = synced
    order = _stored(db, order_id)
    line = {order.items[2].order_item_id: 1}
    with pytest.raises(AdjustmentError, match="No Inventory or Customer Cancel"):
        adjust_items(order, line, reason="BuyerCanceled")
    with pytest.raises(AdjustmentError, match="longer than 1000"):
        adjust_items(order, line, reason="NoInventory", memo="x" * 1001)
    with pytest.raises(AdjustmentError, match="no such order in this store"):
        adjust_items(order, line, reason="NoInventory", store=store_id + 1)
    assert db.session.scalar(sa.select(sa.func.count(Adjustment.id))) == 0


def test_an_adjustment_is_sent_in_one_feed_and_confirmed(app, db, sandbox, synced):
    store_id, order_id = synced
    order = _stored(db, order_id)
    mug, tea = order.items[2], order.items[0]
    heard = []
    signals.adjustment_confirmed.connect(
        lambda sender, *, adjustment, **extra: heard.append(adjustment.quantity_cancelled),
        app,
        weak=False,
    )
    rows = adjust_items(order, {mug.order_item_id: 2, tea.order_item_id: 1}, reason="NoInventory")
    assert [r.state for r in rows] == ["queued", "queued"]
    # Units being cancelled cannot be cancelled again.
    with pytest.raises(AdjustmentError, match="Only 1 unit"):
        adjust_items(_stored(db, order_id), {mug.order_item_id: 2}, reason="NoInventory")
    settle_feeds(store_id)
    (feed,) = sandbox.control.feeds()
    assert feed["feedType"] == "POST_PAYMENT_ADJUSTMENT_DATA"
    assert feed["document"].count("<Message>") == 2
    db.session.expire_all()
    assert {a.state for a in db.session.scalars(sa.select(Adjustment))} == {"confirmed"}
    assert sorted(heard) == [1, 2]
    amazon = sandbox.control.order_adjustments(order_id)
    cancelled = {i["orderItemId"]: i["quantityCancelled"] for i in amazon["items"]}
    assert cancelled[mug.order_item_id] == 2 and cancelled[tea.order_item_id] == 1


def test_amazon_rejecting_an_adjustment_is_shown(app, db, sandbox, synced):
    store_id, order_id = synced
    order = _stored(db, order_id)
    adjust_items(order, {order.items[1].order_item_id: 1}, reason="CustomerCancel")
    sandbox.control.set_status(order_id, "SHIPPED")  # it shipped meanwhile
    settle_feeds(store_id)
    db.session.expire_all()
    adjustment = db.session.scalar(sa.select(Adjustment))
    assert adjustment.state == "rejected" and "Shipped" in adjustment.result


# -- the seed's partial refund, end to end on the example shop --------------------------


def _browser(shop, user="mia"):
    client = shop.test_client()
    with client.session_transaction() as browser:
        browser["user"] = user
    return client


def _token(client, url: str, *, admin: bool) -> str:
    page = client.get(url).data.decode()
    if admin:
        page = page[page.index('class="ao"') :]
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_ship_two_items_and_cancel_the_third_with_no_inventory(shop, sandbox, seller):
    """Seed 004: ship and confirm what can be fulfilled, then an Order Adjustment
    for the item that cannot be; Amazon and the shop agree at the end."""
    from example_app import amazon_orders
    from example_app.models import ShopOrder, db

    moment = (utcnow() - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    order_id = sandbox.control.create_order(
        seller["seller_id"],
        status="UNSHIPPED",
        created_time=moment,
        last_updated_time=moment,
        items=[
            {"sku": "TEA-GREEN-100", "quantity": 1, "unit_price": "8.90"},
            {"sku": "TEA-BLACK-250", "quantity": 1, "unit_price": "12.50"},
            {"sku": "MUG-STONE-350", "quantity": 1, "unit_price": "14.00"},
        ],
    )["orderId"]
    with shop.app_context():
        store = connect_store(seller, order_import_enabled=True)
        store.connected_at = utcnow() - dt.timedelta(days=1)
        amazon_orders.session.commit()
        store_id = store.id
        amazon_orders.sync(store)
        shop_order = db.session.scalar(
            sa.select(ShopOrder).where(ShopOrder.amazon_order_id == order_id)
        )
        shop_order_id = shop_order.id
        lines = {line.sku: line.id for line in shop_order.lines}
    client = _browser(shop)

    # 1. The shop ships two items from its own workflow.
    url = f"/orders/{shop_order_id}"
    shipped = client.post(
        f"{url}/ship",
        data={
            f"ship-{lines['TEA-GREEN-100']}": "1",
            f"ship-{lines['TEA-BLACK-250']}": "1",
            "carrier": "DHL",
            "tracking": "JJD000390007",
            "csrf_token": _token(client, url, admin=False),
        },
        follow_redirects=True,
    )
    assert "it is being confirmed to Amazon" in shipped.data.decode()
    with shop.app_context():
        settle_feeds(store_id)
    assert sandbox.control.get_order(order_id)["fulfillment"]["fulfillmentStatus"] == (
        "PARTIALLY_SHIPPED"
    )

    # 2. The admin cancels the mug: Cancel items, No Inventory, Confirm.
    details = f"/admin/amazon/stores/{store_id}/orders/{order_id}"
    page = client.get(details).data.decode()
    assert ">Cancel items</a>" in page
    form_url = f"{details}/cancel-items"
    form = " ".join(client.get(form_url).data.decode().split())
    assert "Refund per unit" in form
    with shop.app_context():
        mug = amazon_orders.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id)
        ).items[2]
        mug_id, mug_paid = mug.order_item_id, mug.item_price + mug.item_tax
    done = client.post(
        form_url,
        data={
            f"quantity-{mug_id}": "1",
            "reason": "NoInventory",
            "csrf_token": _token(client, form_url, admin=True),
        },
        follow_redirects=True,
    )
    assert "1 item line cancelled" in done.data.decode()
    with shop.app_context():
        settle_feeds(store_id)
        assert amazon_orders.sync(store_id).status == "succeeded"
        order = amazon_orders.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id)
        )
        status = order.status
        shipped_units = [i.quantity_shipped for i in order.items]
        shop_order = db.session.get(ShopOrder, shop_order_id)
        shop_status = shop_order.status
        shop_lines = {line.sku: line.quantity for line in shop_order.lines}
    amazon = sandbox.control.order_adjustments(order_id)
    refunded = next(i for i in amazon["items"] if i["orderItemId"] == mug_id)
    assert refunded["quantityCancelled"] == 1
    assert sum(Decimal(v) for v in refunded["refunded"].values()) == mug_paid
    assert amazon["status"] == "SHIPPED"  # what was left shipped, the rest cancelled
    assert (status, shipped_units) == ("Shipped", [1, 1, 0])
    assert shop_status == "Complete"
    # The host contract told the shop: the mug is off its order.
    assert shop_lines == {"TEA-GREEN-100": 1, "TEA-BLACK-250": 1, "MUG-STONE-350": 0}
    after = " ".join(client.get(details).data.decode().split())
    assert "Cancelled items and refunds" in after and "Confirmed" in after


def test_cancel_items_form_refuses_bad_input(shop, sandbox, seller):
    from example_app import amazon_orders

    order_id = _order(sandbox, seller)
    with shop.app_context():
        store = connect_store(seller)
        store_id = store.id
        amazon_orders.sync(store)
        items = [
            i.order_item_id
            for i in amazon_orders.session.scalar(
                sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == order_id)
            ).items
        ]
    client = _browser(shop)
    url = f"/admin/amazon/stores/{store_id}/orders/{order_id}/cancel-items"
    token = _token(client, url, admin=True)
    cases: list[tuple[dict[str, Any], str]] = [
        ({f"quantity-{items[2]}": "0", "reason": "NoInventory"}, "Choose at least one unit"),
        ({f"quantity-{items[2]}": "9", "reason": "NoInventory"}, "Only 3 unit(s)"),
        ({f"quantity-{items[2]}": "1.5", "reason": "NoInventory"}, "whole numbers"),
        ({f"quantity-{items[2]}": "1", "reason": "Oops"}, "No Inventory or Customer Cancel"),
    ]
    for data, message in cases:
        response = client.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 400, data
        assert message in response.data.decode()
    assert (
        client.post(url, data={f"quantity-{items[2]}": "1", "reason": "NoInventory"}).status_code
        == 400
    )
    assert _browser(shop, "victor").get(url).status_code == 403
    with shop.app_context():
        assert get_extension().session.scalar(sa.select(sa.func.count(Adjustment.id))) == 0


def test_a_free_shipping_promotion_is_never_refunded_as_shipping(app, db, sandbox, seller):
    moment = (utcnow() - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    order_id = sandbox.control.create_order(
        seller["seller_id"],
        status="UNSHIPPED",
        created_time=moment,
        last_updated_time=moment,
        items=[
            {
                "sku": "FILTER-PAPER-100",
                "quantity": 1,
                "unit_price": "3.00",
                "shipping_price": "4.99",
                "promotion_discount": "4.99",
                "tax_rate": "0",
            }
        ],
    )["orderId"]
    store = connect_store(seller)
    get_extension().sync(store)
    item = _stored(db, order_id).items[0]
    refund = refund_for(item, 1, None, "EUR")
    assert refund.total <= item.total
    assert refund.total == item.total  # everything paid, nothing more


def test_yen_refunds_are_whole_yen(app, db, synced):
    _store_id, order_id = synced
    mug = _stored(db, order_id).items[2]
    refund = refund_for(mug, 1, None, "JPY")
    for value in (refund.principal, refund.tax, refund.shipping, refund.shipping_tax):
        assert value == value.to_integral_value()
