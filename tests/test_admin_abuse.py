"""Every form and URL of the admin pages, attacked: who may post, CSRF, other stores'
ids, bad values, and hostile text in everything Amazon (or a user) supplies.

The routes come from the app's URL map, so a new page is covered the day it is
added; "nothing changed" compares every row of every table of the extension.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from helpers import connect_store

from flask_amazon_orders import get_extension
from flask_amazon_orders.models import (
    AmazonOrder,
    AmazonOrderItem,
    Cancellation,
    OrderEvent,
    Shipment,
    Store,
    StoreEvent,
    metadata,
)
from flask_amazon_orders.services import adjusting, cancelling, shipping

PREFIX = "/amazon-orders"
#: Hostile text, as a buyer, a seller's catalogue or a broken host could supply it.
EVIL = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"
#: What must never reach a page unescaped.
RAW = ("<script>alert", "<img src=x", "onerror=alert(2)>")

#: The free-text columns a page shows, by table: each gets the hostile text.
FREE_TEXT = {
    Store: ("name", "last_sync_error", "import_initial_status"),
    AmazonOrder: (
        "seller_order_id",
        "sales_channel",
        "service_level",
        "programs",
        "buyer_cancel_reason",
        "host_import_error",
        "host_order_number",
    ),
    AmazonOrderItem: ("title", "seller_sku", "asin", "buyer_cancel_reason"),
    OrderEvent: ("message", "actor"),
    StoreEvent: ("message", "actor"),
    Cancellation: ("memo", "result", "actor"),
    adjusting.Adjustment: ("memo", "result", "actor"),
    Shipment: ("result", "tracking_number", "carrier_name", "actor"),
}


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _order(sandbox, seller, *, status: str = "UNSHIPPED", ago: float = 3600, **spec: Any) -> str:
    moment = _iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ago))
    spec.setdefault(
        "items",
        [
            {"sku": "TEA-GREEN-100", "quantity": 2, "unit_price": "8.90"},
            {"sku": "MUG-STONE-350", "quantity": 1, "unit_price": "12.00"},
        ],
    )
    return sandbox.control.create_order(
        seller["seller_id"], status=status, created_time=moment, last_updated_time=moment, **spec
    )["orderId"]


def _snapshot(db) -> dict[str, list[tuple]]:
    """Every row of every table of the extension."""
    db.session.expire_all()
    with db.engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in conn.execute(sa.select(table))), key=str
            )
            for table in metadata.sorted_tables
        }


def _token(client, url: str) -> str:
    page = client.get(url).data.decode()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def _as(app: Flask, role: str):
    """A browser of someone with ``role``: ``anonymous``, ``viewer`` or ``manager``."""
    allowed = {"anonymous": set(), "viewer": {"view"}, "manager": {"view", "manage"}}[role]
    ext = get_extension(app)
    ext.access_handler(lambda permission, store: permission in allowed)
    ext.actor_loader(lambda: role)
    return app.test_client()


@pytest.fixture
def world(app, db, sandbox, seller) -> dict[str, Any]:
    """Two stores; the first with orders in every state the pages handle."""
    ids = {
        "unshipped": _order(sandbox, seller, ago=7200),
        "second": _order(sandbox, seller, ago=7100),
        "cancelled_here": _order(sandbox, seller, ago=7000),
        "adjusted": _order(sandbox, seller, ago=6900),
        "shipped_here": _order(sandbox, seller, ago=6800),
        "pending": _order(sandbox, seller, status="PENDING", ago=6000),
        "shipped": _order(sandbox, seller, status="SHIPPED", ago=5000),
        "evil": _order(
            sandbox,
            seller,
            ago=4000,
            buyer_name=EVIL,
            buyer_company=EVIL,
            seller_order_id="S-1",
            address={"name": EVIL, "addressLine1": EVIL, "city": EVIL, "postalCode": "1<b>"},
            items=[{"sku": "SKU<b>1", "title": EVIL, "quantity": 1, "unit_price": "5.00"}],
        ),
    }
    sandbox.control.request_buyer_cancel(ids["evil"], EVIL)
    store = connect_store(seller)
    assert get_extension().sync(store).status == "succeeded"
    other_seller = sandbox.control.create_seller(marketplace_id="A1PA6795UKMFR9")
    ids["other"] = _order(sandbox, other_seller)
    other = connect_store(other_seller, name="Other store")
    assert get_extension().sync(other).status == "succeeded"
    # A cancellation, an item adjustment and a shipment, for their rows on the pages.
    session = db.session

    def stored(key: str) -> AmazonOrder:
        return session.scalar(sa.select(AmazonOrder).filter_by(amazon_order_id=ids[key]))

    result = cancelling.cancel_orders(
        store, [stored("cancelled_here").id], reason="NoInventory", memo=EVIL, actor="t"
    )
    assert result.cancelled
    adjusted = stored("adjusted")
    adjusting.adjust_items(
        adjusted,
        {adjusted.items[0].order_item_id: 1},
        reason="NoInventory",
        memo=EVIL,
        store=store,
        actor="t",
    )
    target = stored("shipped_here")
    shipping.confirm_shipment(
        target,
        items={target.items[1].order_item_id: 1},
        carrier_code="Other",
        carrier_name=EVIL[:60],
        tracking_number="TRACK<b>1",
        ship_date=dt.datetime.now(dt.timezone.utc),
        host_reference="pkg-1",
    )
    ids["store_id"], ids["other_store_id"] = store.id, other.id
    ids["order_pk"] = {
        key: stored(key).id for key in ids if isinstance(ids[key], str) and key != "other"
    }
    return ids


def _rules(app: Flask, method: str) -> list[Any]:
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("amazon_orders.")
            and rule.endpoint != "amazon_orders.static"
            and method in (rule.methods or ())
        ),
        key=lambda rule: rule.rule,
    )


def _url(rule, world: dict[str, Any], *, order: str = "unshipped", store: str = "store_id") -> str:
    values: dict[str, Any] = {}
    if "store_id" in rule.arguments:
        values["store_id"] = world[store]
    if "amazon_order_id" in rule.arguments:
        values["amazon_order_id"] = world[order]
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:\w+:)?{name}>", str(value), path)
    return path


#: A form that would succeed, per POST endpoint, but for the attack under test.
def _good_form(endpoint: str, world: dict[str, Any]) -> dict[str, Any]:
    return {
        "amazon_orders.store_new": {
            "name": "New",
            "seller_id": "A2NEWSELLER1",
            "marketplace": "FR",
            "refresh_token": "Atzr|new",
        },
        "amazon_orders.cancel_order": {"reason": "NoInventory"},
        "amazon_orders.cancel_orders": {
            "reason": "NoInventory",
            "order": [str(world["order_pk"]["unshipped"])],
        },
        "amazon_orders.cancel_items": {"reason": "NoInventory", "quantity-x": "1"},
        "amazon_orders.settings": {
            "order_import": "on",
            "initial_status": "Processing",
            "number_source": "amazon",
        },
        "amazon_orders.store_token": {"refresh_token": "Atzr|fresh"},
    }.get(endpoint, {})


def test_every_post_needs_the_manage_permission_and_a_fresh_csrf_token(app, db, world):
    posts = _rules(app, "POST")
    assert {rule.endpoint for rule in posts} >= {
        "amazon_orders.store_new",
        "amazon_orders.sync_now",
        "amazon_orders.retry_import",
        "amazon_orders.cancel_order",
        "amazon_orders.cancel_orders",
        "amazon_orders.cancel_items",
        "amazon_orders.settings",
        "amazon_orders.store_token",
    }
    before = _snapshot(db)
    tried = 0
    for role, expected in (("anonymous", 403), ("viewer", 403)):
        client = _as(app, role)
        token = _token(_as(app, "manager"), f"{PREFIX}/stores/{world['store_id']}")
        client = _as(app, role)
        for rule in posts:
            data = {**_good_form(rule.endpoint, world), "csrf_token": token}
            response = client.post(_url(rule, world), data=data)
            assert response.status_code == expected, (role, rule.rule, response.status_code)
            tried += 1
    manager = _as(app, "manager")
    stranger = _as(app, "manager")
    stale = _token(stranger, f"{PREFIX}/stores/{world['store_id']}")
    _token(manager, f"{PREFIX}/stores/{world['store_id']}")
    for rule in posts:
        for token in (None, "", stale, "forged", EVIL):
            data = _good_form(rule.endpoint, world)
            if token is not None:
                data["csrf_token"] = token
            response = manager.post(_url(rule, world), data=data)
            assert response.status_code == 400, (rule.rule, token, response.status_code)
            page = response.data.decode()
            assert "The form has expired" in page, rule.rule
            assert not any(raw in page for raw in RAW)
            tried += 1
    assert _snapshot(db) == before
    assert tried == len(posts) * 7


def test_another_stores_orders_are_404_on_every_order_url(app, db, world):
    manager = _as(app, "manager")
    token = _token(manager, f"{PREFIX}/stores/{world['store_id']}")
    before = _snapshot(db)
    order_rules = [rule for rule in app.url_map.iter_rules() if "amazon_order_id" in rule.arguments]
    assert len(order_rules) >= 4
    for rule in order_rules:
        for order in ("other", "unshipped"):
            # The other store's order under this store, and this store's order under the other.
            store = "store_id" if order == "other" else "other_store_id"
            url = _url(rule, world, order=order, store=store)
            assert manager.get(url).status_code in (404, 405), url
            data = {**_good_form(rule.endpoint, world), "csrf_token": token}
            assert manager.post(url, data=data).status_code in (404, 405), url
        for unknown in ("999-0000000-0000000", EVIL, "x" * 500):
            url = _url(rule, world).replace(world["unshipped"], unknown)
            response = manager.get(url)
            assert response.status_code in (404, 405), url
            assert not any(raw in response.data.decode() for raw in RAW)
    for store_id in (world["other_store_id"] + 100, 0):
        assert manager.get(f"{PREFIX}/stores/{store_id}").status_code == 404
    # The bulk cancel takes ids of this store's orders only.
    bulk = f"{PREFIX}/stores/{world['store_id']}/cancel"
    other_pk = _other_pk(db, world)
    response = manager.post(
        bulk, data={"csrf_token": token, "reason": "NoInventory", "order": [str(other_pk)]}
    )
    assert response.status_code == 400
    assert "Select the orders to cancel first" in response.data.decode()
    assert _snapshot(db) == before


def _other_pk(db, world) -> int:
    return db.session.scalar(sa.select(AmazonOrder.id).filter_by(amazon_order_id=world["other"]))


@pytest.mark.parametrize(
    ("endpoint", "order", "form", "message"),
    [
        ("cancel", "unshipped", {"reason": ""}, "Choose a reason"),
        ("cancel", "unshipped", {"reason": EVIL}, "Choose a reason"),
        ("cancel", "unshipped", {"reason": "NoInventory\x00"}, "Choose a reason"),
        ("cancel", "unshipped", {"reason": "NoInventory", "memo": "m" * 1001}, "longer than 1000"),
        ("cancel", "pending", {"reason": "NoInventory"}, "only in Seller Central"),
        ("cancel", "shipped", {"reason": "NoInventory"}, "only Unshipped orders"),
        ("cancel", "cancelled_here", {"reason": "NoInventory"}, "already on its way"),
        ("cancel-items", "second", {"reason": "NoInventory", "q": "-1"}, "whole numbers"),
        ("cancel-items", "second", {"reason": "NoInventory", "q": "1.5"}, "whole numbers"),
        ("cancel-items", "second", {"reason": "NoInventory", "q": "99999"}, "whole numbers"),
        ("cancel-items", "second", {"reason": "NoInventory", "q": EVIL}, "whole numbers"),
        ("cancel-items", "second", {"reason": "NoInventory", "q": "3"}, "Only 2 unit"),
        ("cancel-items", "second", {"reason": "NoInventory", "q": "0"}, "at least one"),
        ("cancel-items", "second", {"reason": EVIL, "q": "1"}, "reason"),
        ("cancel-items", "second", {"reason": "NoInventory", "q": "1", "memo": "m" * 1001}, "1000"),
        ("cancel-items", "shipped", {"reason": "NoInventory", "q": "1"}, ""),
    ],
)
def test_bad_values_on_the_cancel_forms_change_nothing(
    app, db, world, endpoint, order, form, message
):
    manager = _as(app, "manager")
    url = f"{PREFIX}/stores/{world['store_id']}/orders/{world[order]}/{endpoint}"
    token = _token(manager, f"{PREFIX}/stores/{world['store_id']}")
    data = {"csrf_token": token, **form}
    if "q" in data:
        amazon_order = db.session.scalar(
            sa.select(AmazonOrder).filter_by(amazon_order_id=world[order])
        )
        data[f"quantity-{amazon_order.items[0].order_item_id}"] = data.pop("q")
    before = _snapshot(db)
    response = manager.post(url, data=data)
    page = response.data.decode()
    assert 400 <= response.status_code < 500, (response.status_code, page[-2000:])
    assert message in page, re.findall(r'role="alert">(.*?)</p', page, re.S)
    assert not any(raw in page for raw in RAW)
    assert _snapshot(db) == before


@pytest.mark.parametrize(
    ("orders", "form", "status", "message"),
    [
        (["abc"], {"reason": "NoInventory"}, 400, ""),
        (["-1"], {"reason": "NoInventory"}, 400, ""),
        (["9" * 19], {"reason": "NoInventory"}, 400, ""),
        ([str(n) for n in range(1, 1100)], {"reason": "NoInventory"}, 400, ""),
        ([], {"reason": "NoInventory"}, 400, "Select the orders to cancel first"),
        (["pending", "shipped"], {"reason": "NoInventory"}, 400, "None of the selected orders"),
        (["unshipped", "second"], {"reason": "Whatever"}, 400, "Choose a reason"),
        (["unshipped", "second"], {"reason": "NoInventory", "memo": "m" * 1001}, 400, "1000"),
    ],
)
def test_bad_values_on_the_bulk_cancel_change_nothing(
    app, db, world, orders, form, status, message
):
    manager = _as(app, "manager")
    token = _token(manager, f"{PREFIX}/stores/{world['store_id']}")
    picked = [str(world["order_pk"][key]) if key in world["order_pk"] else key for key in orders]
    before = _snapshot(db)
    response = manager.post(
        f"{PREFIX}/stores/{world['store_id']}/cancel",
        data={"csrf_token": token, "order": picked, **form},
    )
    assert response.status_code == status
    assert message in response.data.decode()
    assert _snapshot(db) == before


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"initial_status": "", "number_source": "host"}, "status"),
        ({"initial_status": "x" * 41, "number_source": "host"}, "40"),
        ({"initial_status": "Processing", "number_source": EVIL}, "number"),
        ({"initial_status": EVIL, "number_source": "host"}, ""),
    ],
)
def test_bad_settings_change_nothing(app, db, world, form, message):
    manager = _as(app, "manager")
    url = f"{PREFIX}/stores/{world['store_id']}/settings"
    token = _token(manager, url)
    before = _snapshot(db)
    response = manager.post(url, data={"csrf_token": token, "order_import": "on", **form})
    page = response.data.decode()
    if response.status_code == 302:
        # Hostile text is a valid status name for some shop: stored as text, shown escaped.
        assert form["initial_status"] == EVIL
        assert not any(raw in manager.get(url).data.decode() for raw in RAW)
        return
    assert response.status_code == 400
    assert message in page and "Nothing was changed" in page
    assert not any(raw in page for raw in RAW)
    assert _snapshot(db) == before


@pytest.mark.parametrize(
    "form",
    [
        {"name": "", "seller_id": "A2NEWSELLER1", "marketplace": "FR"},
        {"name": "n" * 121, "seller_id": "A2NEWSELLER1", "marketplace": "FR"},
        {"name": "New", "seller_id": EVIL, "marketplace": "FR"},
        {"name": "New", "seller_id": "A2NEWSELLER1", "marketplace": EVIL},
        {"name": "New", "seller_id": "A2NEWSELLER1", "marketplace": "FR", "refresh_token": ""},
    ],
)
def test_bad_new_stores_change_nothing(app, db, world, form):
    manager = _as(app, "manager")
    url = f"{PREFIX}/stores/new"
    token = _token(manager, url)
    before = _snapshot(db)
    data = {"refresh_token": "Atzr|x", **form, "csrf_token": token}
    response = manager.post(url, data=data)
    page = response.data.decode()
    assert response.status_code == 400
    assert not any(raw in page for raw in RAW)
    assert _snapshot(db) == before


def test_hostile_text_everywhere_is_escaped_on_every_page(app, db, world):
    with db.engine.begin() as conn:
        for model, columns in FREE_TEXT.items():
            table = metadata.tables[model.__tablename__]
            for name in columns:
                length = getattr(table.c[name].type, "length", None)
                conn.execute(sa.update(table).values({name: EVIL[:length] if length else EVIL}))
        # The events' sentences, with hostile values (Amazon's message, a memo, a name).
        conn.execute(
            sa.update(metadata.tables["amazon_order_events"]).values(
                params={
                    "text": "cancel_requested_memo",
                    "cancel_reason": EVIL,
                    "memo": {"text": "cancel_rejected", "error": EVIL},
                }
            )
        )
        conn.execute(
            sa.update(metadata.tables["amazon_store_events"]).values(
                params={
                    "text": "store_connected",
                    "name": EVIL,
                    "seller": EVIL,
                    "marketplace": EVIL,
                }
            )
        )
        # Failed and rejected rows, so that their messages are on the pages too.
        conn.execute(sa.update(metadata.tables["amazon_cancellations"]).values(state="rejected"))
        conn.execute(
            sa.update(metadata.tables["amazon_orders"])
            .where(AmazonOrder.amazon_order_id == world["second"])
            .values(host_import_state="blocked")
        )
    manager = _as(app, "manager")
    store_id = world["store_id"]
    base = f"{PREFIX}/stores/{store_id}"
    order_keys = [key for key in world["order_pk"]]
    urls = [f"{PREFIX}/", f"{PREFIX}/stores/new", base, f"{base}/settings"]
    urls += [
        f"{base}/orders",
        f"{base}/orders?imported=blocked",
        f"{base}/orders?q={EVIL}",
        f"{base}/orders?status={EVIL}&sort={EVIL}&page={EVIL}&from={EVIL}",
        f"{base}/cancel?" + "&".join(f"order={world['order_pk'][k]}" for k in order_keys),
    ]
    for key in order_keys:
        order_url = f"{base}/orders/{world[key]}"
        urls += [order_url, f"{order_url}/cancel", f"{order_url}/cancel-items"]
    seen = 0
    for url in urls:
        response = manager.get(url)
        assert response.status_code < 500, url
        page = response.data.decode()
        for raw in RAW:
            assert raw not in page, (url, raw)
        seen += page.count("&lt;script&gt;")
    assert seen > 50  # the hostile text was there, escaped
