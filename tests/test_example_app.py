"""The example shop, on the sandbox, as a user would see it."""

from __future__ import annotations

from helpers import connect_store

from example_app import amazon_orders
from example_app.models import CATALOG


def test_shop_pages_show_products_and_imported_amazon_orders(shop, sandbox, seller):
    catalog = [{"sku": sku, "title": title, "price": price} for sku, title, price in CATALOG]
    sandbox.control.generate_orders(seller["seller_id"], 30, seed=41, catalog=catalog)
    client = shop.test_client()
    assert b"Cast-iron teapot" in client.get("/").data
    empty = client.get("/amazon").data.decode()
    assert "No Amazon store is connected" in empty

    with shop.app_context():
        store = connect_store(seller, name="Teahouse Amazon.de")
        run = amazon_orders.sync(store)
        assert run.status == "succeeded"

    page = " ".join(client.get("/amazon").data.decode().split())
    assert "Teahouse Amazon.de" in page
    assert "30 orders seen, 30 new" in page
    newest = max(
        (
            sandbox.control.get_order(o["orderId"])
            for o in sandbox.control.list_orders(seller["seller_id"])
        ),
        key=lambda o: o["createdTime"],
    )
    assert newest["orderId"] in page
    skus = {item["product"]["sellerSku"] for item in newest["orderItems"]}
    assert skus <= {sku for sku, _title, _price in CATALOG}
    assert client.get("/orders").status_code == 200


def test_imported_shop_order_pages_link_both_ways(shop, sandbox, seller):
    import re

    catalog = [{"sku": sku, "title": title, "price": price} for sku, title, price in CATALOG]
    sandbox.control.generate_orders(
        seller["seller_id"], 8, seed=42, catalog=catalog, statuses={"UNSHIPPED": 1}, afn_share=0
    )
    with shop.app_context():
        store = connect_store(seller, name="Teahouse Amazon.de", order_import_enabled=True)
        store.connected_at = store.connected_at.replace(year=store.connected_at.year - 1)
        amazon_orders.session.commit()
        assert amazon_orders.sync(store).status == "succeeded"
    client = shop.test_client()
    listing = client.get("/orders").data.decode()
    numbers = re.findall(r'href="/orders/(\d+)">(T\d+)</a>', listing)
    assert len(numbers) == 8
    detail = client.get(f"/orders/{numbers[0][0]}").data.decode()
    amazon_id = re.search(r"#order-([\d-]+)", detail).group(1)
    assert "Processing" in detail
    amazon_page = client.get("/amazon").data.decode()
    assert f'id="order-{amazon_id}"' in amazon_page
    assert f">{numbers[0][1]}</a>" in amazon_page
    assert "Order import is <strong>on</strong>" in amazon_page
    assert client.get("/orders/99999").status_code == 404


def test_amazon_page_actions_come_from_the_routing_rule(shop, sandbox, seller):
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    pending = sandbox.control.create_order(
        seller["seller_id"],
        status="PENDING",
        created_time=now,
        last_updated_time=now,
        items=[{"sku": "TEA-GREEN-100", "quantity": 1, "unit_price": "8.90"}],
    )["orderId"]
    with shop.app_context():
        store = connect_store(seller, name="Import off")
        assert amazon_orders.sync(store).status == "succeeded"
    page = " ".join(shop.test_client().get("/amazon").data.decode().split())
    link = f'href="https://sellercentral.amazon.de/orders-v3/order/{pending}"'
    assert f'{link} title="Pending and partially shipped orders can be cancelled only' in page
    assert ">Cancel in Seller Central</a>" in page
    assert ">Manage in Seller Central</a>" in page
    assert "Manage in the shop" not in page


def test_shop_workflow_changes_status_with_a_valid_form_only(shop):
    import re

    from example_app.models import ShopOrder, db

    with shop.app_context():
        order = ShopOrder(number="T1", status="Processing", customer="Ada", total="10.00")
        db.session.add(order)
        db.session.commit()
        order_id = order.id
    client = shop.test_client()
    page = client.get(f"/orders/{order_id}").data.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    assert client.post(f"/orders/{order_id}/status", data={"status": "Complete"}).status_code == 400
    bad = client.post(f"/orders/{order_id}/status", data={"status": "Lost", "csrf_token": token})
    assert bad.status_code == 400
    ok = client.post(
        f"/orders/{order_id}/status",
        data={"status": "Complete", "csrf_token": token},
        follow_redirects=True,
    )
    assert ok.status_code == 200
    assert "Order T1 is now Complete." in ok.data.decode()
    with shop.app_context():
        assert db.session.get(ShopOrder, order_id).status == "Complete"
