"""The example shop, on the sandbox, as a user would see it."""

from __future__ import annotations

from helpers import connect_store

from example_app import amazon_orders
from example_app.models import CATALOG


def _login(client, user: str = "mia") -> None:
    import re

    page = client.get("/login").data.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"user": user, "csrf_token": token}).status_code == 302


def test_amazon_pages_need_a_shop_login(shop):
    client = shop.test_client()
    denied = client.get("/admin/amazon/")
    assert denied.status_code == 403
    assert "Log in" in denied.data.decode()  # inside the shop's own layout
    _login(client, "victor")
    assert client.get("/admin/amazon/").status_code == 200
    assert client.get("/admin/amazon/stores/new").status_code == 403  # a viewer
    _login(client, "mia")
    assert client.get("/admin/amazon/stores/new").status_code == 200


def test_shop_pages_show_products_and_imported_amazon_orders(shop, sandbox, seller):
    catalog = [{"sku": sku, "title": title, "price": price} for sku, title, price in CATALOG]
    sandbox.control.generate_orders(seller["seller_id"], 30, seed=41, catalog=catalog)
    client = shop.test_client()
    _login(client)
    assert b"Cast-iron teapot" in client.get("/").data
    empty = client.get("/admin/amazon/").data.decode()
    assert "No Amazon store is connected" in empty

    with shop.app_context():
        store = connect_store(seller, name="Teahouse Amazon.de")
        run = amazon_orders.sync(store)
        assert run.status == "succeeded"
        store_id = store.id

    cards = " ".join(client.get("/admin/amazon/").data.decode().split())
    assert "Teahouse Amazon.de" in cards and "Orders per day, last 30 days (30)" in cards
    page = " ".join(client.get(f"/admin/amazon/stores/{store_id}").data.decode().split())
    assert "Recent Orders" in page
    assert '<td class="ao-num">30</td>' in page  # the sync: 30 new orders
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
    _login(client)
    listing = client.get("/orders").data.decode()
    numbers = re.findall(r'href="/orders/(\d+)">(T\d+)</a>', listing)
    assert len(numbers) == 8
    detail = client.get(f"/orders/{numbers[0][0]}").data.decode()
    amazon_url = re.search(r'href="(/admin/amazon/stores/\d+/orders/[\d-]+)"', detail).group(1)
    assert "Processing" in detail
    amazon_page = " ".join(client.get(amazon_url).data.decode().split())
    assert "Amazon Order Details" in amazon_page
    assert f'href="/orders/{numbers[0][0]}">Open shop order {numbers[0][1]}</a>' in amazon_page
    assert "This order is managed in the shop&#39;s order workflow." in amazon_page
    assert client.get("/orders/99999").status_code == 404


def test_amazon_order_actions_come_from_the_routing_rule(shop, sandbox, seller):
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
        store_id = store.id
    client = shop.test_client()
    _login(client)
    page = " ".join(
        client.get(f"/admin/amazon/stores/{store_id}/orders/{pending}").data.decode().split()
    )
    link = f'href="https://sellercentral.amazon.de/orders-v3/order/{pending}"'
    assert f'{link} rel="noopener" target="_blank">Cancel in Seller Central</a>' in page
    assert f'{link} rel="noopener" target="_blank">Manage in Seller Central</a>' in page
    assert "Pending and partially shipped orders can be cancelled only in Seller Central." in page
    assert "Open shop order" not in page


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


def test_shop_cli_outside_a_request_speaks_the_default_language(shop, sandbox, seller):
    # The shop's language choice reads the request; the CLI and the worker have none.
    catalog = [{"sku": sku, "title": title, "price": price} for sku, title, price in CATALOG]
    sandbox.control.generate_orders(
        seller["seller_id"], 2, seed=43, catalog=catalog, statuses={"SHIPPED": 1}, afn_share=0
    )
    with shop.app_context():
        store = connect_store(seller, name="Teahouse Amazon.de")
        assert amazon_orders.sync(store).status == "succeeded"
    shipped = sandbox.control.list_orders(seller["seller_id"])[0]["orderId"]
    result = shop.test_cli_runner().invoke(
        args=["amazon-orders", "cancel", shipped, "--reason", "NoInventory"]
    )
    assert result.exit_code == 1, result.output
    assert f"{shipped}: not cancelled: The order is Shipped; only Unshipped" in result.output
