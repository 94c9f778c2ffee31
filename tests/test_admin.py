"""The admin pages: access control, CSRF, escaping, every page and form, query counts."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from helpers import connect_store

from flask_amazon_orders import get_extension
from flask_amazon_orders.crypto import refresh_token_context
from flask_amazon_orders.models import AmazonOrder, Store, StoreEvent

PREFIX = "/amazon-orders"
XSS = "<script>alert('x')</script>"


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _order(sandbox, seller, *, status="UNSHIPPED", ago=3600, **spec: Any) -> str:
    moment = _iso(_now() - dt.timedelta(seconds=ago))
    spec.setdefault("items", [{"sku": "TEA-GREEN-100", "quantity": 2, "unit_price": "8.90"}])
    return sandbox.control.create_order(
        seller["seller_id"], status=status, created_time=moment, last_updated_time=moment, **spec
    )["orderId"]


def _grant(app: Flask, *, manage: bool = True, user: str = "ann@example.com") -> None:
    ext = get_extension(app)
    ext.access_handler(lambda permission, store: permission == "view" or manage)
    ext.actor_loader(lambda: user)


def _shop_login(shop, user: str = "mia"):
    """A browser of the example shop, logged in (the shop's own access handler)."""
    client = shop.test_client()
    with client.session_transaction() as browser:
        browser["user"] = user
    return client


def _token(client, url: str) -> str:
    page = client.get(url).data.decode()
    # The admin's own forms (a host's layout may hold forms of its own).
    page = page[page.index('class="ao"') :]
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def _text(response) -> str:
    return " ".join(response.data.decode().split())


@pytest.fixture
def synced(app, sandbox, seller) -> dict[str, Any]:
    """A store with a few orders of every kind, synced."""
    ids = {
        "unshipped": _order(sandbox, seller, ago=7200),
        "pending": _order(sandbox, seller, status="PENDING", ago=5000),
        "shipped": _order(sandbox, seller, status="SHIPPED", ago=4000),
        "xss": _order(
            sandbox,
            seller,
            ago=3000,
            buyer_name=XSS,
            items=[{"sku": "SKU-XSS-1", "title": XSS, "quantity": 1, "unit_price": "5.00"}],
        ),
    }
    store = connect_store(seller)
    assert get_extension().sync(store).status == "succeeded"
    ids["store_id"] = store.id
    return ids


# -- access control ------------------------------------------------------------------


def _pages(synced) -> list[str]:
    store = synced["store_id"]
    return [
        f"{PREFIX}/",
        f"{PREFIX}/stores/new",
        f"{PREFIX}/stores/{store}",
        f"{PREFIX}/stores/{store}/orders",
        f"{PREFIX}/stores/{store}/orders/{synced['unshipped']}",
        f"{PREFIX}/stores/{store}/settings",
    ]


def _posts(synced) -> list[str]:
    store = synced["store_id"]
    return [
        f"{PREFIX}/stores/new",
        f"{PREFIX}/stores/{store}/sync",
        f"{PREFIX}/stores/{store}/settings",
        f"{PREFIX}/stores/{store}/authorization",
        f"{PREFIX}/stores/{store}/orders/{synced['unshipped']}/retry-import",
    ]


def _snapshot(db) -> tuple:
    session = db.session
    session.expire_all()
    stores = session.execute(
        sa.select(
            Store.id,
            Store.order_import_enabled,
            Store.import_initial_status,
            Store.order_number_source,
            Store.sync_requested_at,
            Store.refresh_token_encrypted,
        ).order_by(Store.id)
    ).all()
    events = session.scalar(sa.select(sa.func.count()).select_from(StoreEvent))
    orders = session.execute(
        sa.select(AmazonOrder.id, AmazonOrder.host_import_state, AmazonOrder.host_import_attempts)
    ).all()
    return stores, events, sorted(orders)


def test_pages_are_closed_without_an_access_handler(app, db, synced):
    client = app.test_client()
    before = _snapshot(db)
    for url in _pages(synced):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "not allowed to use this page" in response.data.decode()
    for url in _posts(synced):
        assert client.post(url, data={"order_import": "on"}).status_code == 403, url
    assert _snapshot(db) == before


def test_a_handler_that_refuses_gives_403(app, db, synced):
    get_extension(app).access_handler(lambda permission, store: False)
    client = app.test_client()
    for url in _pages(synced):
        assert client.get(url).status_code == 403, url


def test_view_permission_sees_pages_but_changes_nothing(app, db, synced):
    _grant(app, manage=False)
    client = app.test_client()
    for url in _pages(synced):
        if url.endswith("/stores/new"):
            assert client.get(url).status_code == 403
        else:
            assert client.get(url).status_code == 200, url
    dashboard = client.get(f"{PREFIX}/stores/{synced['store_id']}").data.decode()
    assert "Sync now" not in dashboard
    settings = client.get(f"{PREFIX}/stores/{synced['store_id']}/settings").data.decode()
    assert "<fieldset disabled>" in settings
    # Even with a valid CSRF token, a viewer cannot change anything.
    token = _token(client, f"{PREFIX}/stores/{synced['store_id']}/settings")
    before = _snapshot(db)
    for url in _posts(synced):
        response = client.post(url, data={"csrf_token": token, "order_import": "on"})
        assert response.status_code == 403, url
    assert _snapshot(db) == before


def test_access_handler_gets_the_permission_and_the_store(app, synced):
    calls = []

    def handler(permission, store):
        calls.append((permission, store.id if store else None))
        return True

    get_extension(app).access_handler(handler)
    app.test_client().get(f"{PREFIX}/stores/{synced['store_id']}")
    assert ("view", synced["store_id"]) in calls
    calls.clear()
    app.test_client().get(f"{PREFIX}/")
    assert calls[0] == ("view", None)


# -- CSRF ----------------------------------------------------------------------------


def test_posts_without_a_valid_csrf_token_change_nothing(app, db, synced):
    _grant(app)
    client = app.test_client()
    other = app.test_client()
    dashboard = f"{PREFIX}/stores/{synced['store_id']}"
    stale = _token(other, dashboard)  # another browser session's token
    _token(client, dashboard)
    before = _snapshot(db)
    for url in _posts(synced):
        for data in ({}, {"csrf_token": ""}, {"csrf_token": stale}, {"csrf_token": "forged"}):
            data = {**data, "order_import": "on", "initial_status": "X", "number_source": "host"}
            response = client.post(url, data=data)
            assert response.status_code == 400, (url, data)
            assert "The form has expired" in response.data.decode()
    assert _snapshot(db) == before


def test_flask_wtf_csrf_protect_tokens_are_used_when_the_host_has_it(app_factory, seller):
    from flask_wtf.csrf import CSRFProtect

    app = app_factory()
    CSRFProtect(app)
    _grant(app)
    with app.app_context():
        store = connect_store(seller)
        store_id = store.id
    client = app.test_client()
    url = f"{PREFIX}/stores/{store_id}/sync"
    assert client.post(url).status_code == 400
    token = _token(client, f"{PREFIX}/stores/{store_id}")
    response = client.post(url, data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        assert get_extension().session.get(Store, store_id).sync_requested_at is not None


# -- escaping ------------------------------------------------------------------------


def test_amazon_supplied_text_is_escaped(app, db, synced):
    _grant(app)
    client = app.test_client()
    with app.app_context():
        order = db.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == synced["xss"])
        )
        order.host_import_state = "blocked"
        order.host_import_error = f"Unknown SKU {XSS}"
        db.session.commit()
    for url in (
        f"{PREFIX}/stores/{synced['store_id']}",
        f"{PREFIX}/stores/{synced['store_id']}/orders?imported=blocked",
        f"{PREFIX}/stores/{synced['store_id']}/orders/{synced['xss']}",
    ):
        page = client.get(url).data.decode()
        assert "<script>alert" not in page, url
    details = client.get(f"{PREFIX}/stores/{synced['store_id']}/orders/{synced['xss']}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in details.data.decode()


# -- the pages -----------------------------------------------------------------------


def test_store_cards_show_status_counts_attention_and_chart(app, db, synced):
    _grant(app)
    with app.app_context():
        order = db.session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == synced["unshipped"])
        )
        order.host_import_state = "blocked"
        order.host_import_error = "Unknown SKU"
        db.session.commit()
    page = _text(app.test_client().get(f"{PREFIX}/"))
    assert "Amazon DE" in page and "Amazon.de" in page
    assert 'ao-status--store-active">Active' in page
    assert 'ao-status--unshipped">Unshipped</span> <span class="ao-count">2' in page
    assert 'ao-status--pending">Pending</span> <span class="ao-count">1' in page
    assert "1 order could not become a shop order" in page
    assert "Orders per day, last 30 days (4)" in page
    assert page.count("<rect ") == 1  # all four orders were placed today (UTC) …
    assert "<title>" in page  # … and each bar says its day and count
    assert f'href="{PREFIX}/stores/{synced["store_id"]}"' in page and "View Store" in page


def test_store_card_shows_an_error_status(app, db, synced):
    _grant(app)
    with app.app_context():
        store = db.session.get(Store, synced["store_id"])
        store.last_sync_error = "Amazon answered 503"
        db.session.commit()
    page = _text(app.test_client().get(f"{PREFIX}/"))
    assert 'ao-status--store-error">Error' in page
    assert "The last request to Amazon failed" in page


def test_dashboard_recent_orders_sync_status_and_links(app, db, synced):
    _grant(app)
    total = db.session.scalar(
        sa.select(AmazonOrder.order_total).where(AmazonOrder.amazon_order_id == synced["pending"])
    )
    client = app.test_client()
    page = _text(client.get(f"{PREFIX}/stores/{synced['store_id']}"))
    assert "Recent Orders" in page
    for key in ("unshipped", "pending", "shipped", "xss"):
        link = f'href="{PREFIX}/stores/{synced["store_id"]}/orders/{synced[key]}"'
        assert link in page
    assert "Succeeded" in page and "Sync now" in page
    assert f'href="{PREFIX}/stores/{synced["store_id"]}/settings"' in page
    assert f'<td class="ao-num">€{total}</td>' in page  # in the order's currency
    assert "Store connected" in page


def test_sync_now_is_recorded_and_served_by_the_next_sync(app, db, synced):
    _grant(app, user="ann@example.com")
    client = app.test_client()
    url = f"{PREFIX}/stores/{synced['store_id']}"
    response = client.post(f"{url}/sync", data={"csrf_token": _token(client, url)})
    assert response.status_code == 302
    page = _text(client.get(url))
    assert "Sync requested" in page and "No background worker runs in this process" in page
    with app.app_context():
        store = db.session.get(Store, synced["store_id"])
        assert store.sync_requested_at is not None
        event = db.session.scalar(sa.select(StoreEvent).where(StoreEvent.kind == "sync_requested"))
        assert event.actor == "admin:ann@example.com"
        get_extension().sync(store)
        db.session.expire_all()
        assert db.session.get(Store, synced["store_id"]).sync_requested_at is None


def test_sync_now_wakes_the_embedded_worker(app_factory, seller):
    app = app_factory(AMAZON_ORDERS_EMBEDDED_WORKER=True, AMAZON_ORDERS_SYNC_INTERVAL_SECONDS=3600)
    _grant(app)
    with app.app_context():
        store_id = connect_store(seller).id
    worker = app.extensions["amazon_orders"].worker
    worker.start()
    try:
        client = app.test_client()
        url = f"{PREFIX}/stores/{store_id}"
        deadline = _now() + dt.timedelta(seconds=20)
        while worker.rounds < 1 and _now() < deadline:  # the first round runs at start
            worker._wake.wait(0.05)
        rounds = worker.rounds
        response = client.post(
            f"{url}/sync", data={"csrf_token": _token(client, url)}, follow_redirects=True
        )
        assert "Sync started" in response.data.decode()
        while worker.rounds == rounds and _now() < deadline:
            worker._stop.wait(0.05)
        assert worker.rounds > rounds
    finally:
        worker.stop()


def test_all_orders_filters_search_sort_and_pages(app_factory, sandbox, seller):
    app = app_factory(AMAZON_ORDERS_ADMIN_PAGE_SIZE=2)
    _grant(app)
    ids = [_order(sandbox, seller, ago=60 * (10 - n)) for n in range(5)]
    fba = _order(sandbox, seller, status="SHIPPED", ago=30, fulfilled_by="AMAZON")
    sku = _order(
        sandbox, seller, ago=20, items=[{"sku": "RARE-SKU-9", "quantity": 1, "unit_price": "1.00"}]
    )
    with app.app_context():
        store = connect_store(seller)
        assert get_extension().sync(store).status == "succeeded"
        store_id = store.id
        blocked = get_extension().session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == ids[0])
        )
        blocked.host_import_state, blocked.host_import_error = "blocked", "Unknown SKU"
        imported = get_extension().session.scalar(
            sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == ids[1])
        )
        imported.host_import_state, imported.host_order_ref = "created", "77"
        imported.host_order_number = "T-77"
        get_extension().session.commit()
    client = app.test_client()
    url = f"{PREFIX}/stores/{store_id}/orders"

    def listed(query: str = "") -> list[str]:
        response = client.get(f"{url}?{query}")
        assert response.status_code == 200, response.data.decode()
        return re.findall(r"/orders/(\d{3}-\d{7}-\d{7})\"", response.data.decode())

    assert listed() == [sku, fba]  # newest first, two a page
    assert "Orders 1\u20132 of 7" in _text(client.get(url))
    assert listed("page=4") == [ids[0]]
    assert listed("page=99") == [ids[0]]  # past the end: the last page
    assert listed("sort=oldest") == [ids[0], ids[1]]
    assert listed("channel=AFN") == [fba]
    assert listed("status=Shipped") == [fba]
    assert listed("imported=blocked") == [ids[0]]
    assert listed("imported=imported") == [ids[1]]
    assert listed("q=RARE-SKU-9") == [sku]
    assert listed("q=T-77") == [ids[1]]
    assert listed(f"q={ids[2]}") == [ids[2]]
    assert listed(f"q={ids[3][:9]}") == [ids[3]]
    today = _now().date()
    assert len(listed(f"from={today}&to={today}&page=4")) == 1
    assert listed(f"from={today + dt.timedelta(days=1)}") == []
    page = _text(client.get(f"{url}?status=Unshipped&page=2"))
    assert f'href="{url}?status=Unshipped"' in page  # "First" keeps the filter
    assert f'href="{url}?status=Unshipped&amp;page=3"' in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=Lost", "Unknown status: Lost"),
        ("channel=XYZ", "Unknown fulfilment channel: XYZ"),
        ("imported=maybe", "Unknown import state: maybe"),
        ("from=2026-13-01", "From is not a date (YYYY-MM-DD): 2026-13-01"),
        ("from=2026-02-02&to=2026-01-01", "The start date is after the end date."),
        ("q=" + "x" * 65, "The search text is longer than 64 characters."),
        ("sort=price", "Unknown sort order: price"),
        ("page=-1", "Unknown page: -1"),
        ("page=abc", "Unknown page: abc"),
    ],
)
def test_bad_filter_values_are_a_clear_400(app, synced, query, message):
    _grant(app)
    response = app.test_client().get(f"{PREFIX}/stores/{synced['store_id']}/orders?{query}")
    assert response.status_code == 400
    page = _text(response)
    assert message in page
    assert synced["unshipped"] in page  # the list still shows, without the bad filter


def test_other_stores_orders_and_unknown_ids_are_404(app, sandbox, synced):
    _grant(app)
    other_seller = sandbox.control.create_seller(
        seller_id="AOTHER" + synced["store_id"].__str__().zfill(6), marketplace_id="A13V1IB3VIYZZH"
    )
    with app.app_context():
        other = get_extension().add_store(
            name="Other",
            seller_id=other_seller["seller_id"],
            marketplace="FR",
            refresh_token=other_seller["refresh_token"],
        )
        other_id = other.id
    client = app.test_client()
    assert client.get(f"{PREFIX}/stores/{other_id}/orders/{synced['unshipped']}").status_code == 404
    assert client.get(f"{PREFIX}/stores/{synced['store_id']}/orders/nope").status_code == 404
    assert client.get(f"{PREFIX}/stores/999999").status_code == 404
    assert client.get(f"{PREFIX}/stores/999999/settings").status_code == 404


def test_order_details_items_totals_timeline_and_routing(app, synced):
    _grant(app)
    client = app.test_client()
    base = f"{PREFIX}/stores/{synced['store_id']}/orders"
    page = _text(client.get(f"{base}/{synced['unshipped']}"))
    assert "Amazon Order Details" in page
    assert f'{synced["unshipped"]} <span class="ao-status ao-status--unshipped">Unshipped' in page
    assert "TEA-GREEN-100" in page and "€8.90" in page and "€17.80" in page
    assert "Imported from Amazon" in page and "by the sync" in page
    assert "Order import is disabled: manage this order in Seller Central." in page
    assert "Manage in Seller Central" in page
    assert "Cancel in Seller Central" not in page
    # The full address while the merchant has to ship it.
    assert "<address>" in page and "Phone" in page
    pending = _text(client.get(f"{base}/{synced['pending']}"))
    assert "Cancel in Seller Central" in pending
    assert "can be cancelled only in Seller Central" in pending
    shipped = _text(client.get(f"{base}/{synced['shipped']}"))
    assert "Returns and exchanges in Seller Central" in shipped
    assert "The full address is shown only while" in shipped
    assert "Phone" not in shipped


def test_dashboard_lists_the_orders_that_cannot_be_read(app, db, synced):
    from flask_amazon_orders.models import UnreadableOrder

    _grant(app)
    store_id = synced["store_id"]
    client = app.test_client()
    assert "Orders that cannot be read" not in _text(client.get(f"{PREFIX}/stores/{store_id}"))
    first = _now() - dt.timedelta(days=2)
    for n in range(23):
        db.session.add(
            UnreadableOrder(
                store_id=store_id,
                amazon_order_id=f"028-0000000-{n:07d}",
                error=f"order 028-0000000-{n:07d}: unknown fulfillmentStatus 'X{n}' <b>",
                attempts=n + 1,
                first_seen_at=first + dt.timedelta(minutes=n),
                last_tried_at=_now(),
            )
        )
    db.session.commit()

    page = _text(client.get(f"{PREFIX}/stores/{store_id}"))
    assert "Orders that cannot be read" in page
    assert "23 Amazon orders that cannot be read, with the reason" in page
    # The longest-known first, 20 of them, each linked to Seller Central (Amazon.de).
    assert 'href="https://sellercentral.amazon.de/orders-v3/order/028-0000000-0000000"' in page
    assert "028-0000000-0000019" in page and "028-0000000-0000020" not in page
    assert "unknown fulfillmentStatus &#39;X0&#39; &lt;b&gt;" in page  # Amazon's text, escaped


def test_retry_import_of_a_blocked_order(shop, sandbox, seller):
    from example_app import amazon_orders
    from example_app.models import Product

    order_id = _order(
        sandbox, seller, ago=60, items=[{"sku": "TEA-NEW-1", "quantity": 1, "unit_price": "3.00"}]
    )
    with shop.app_context():
        store = connect_store(seller, order_import_enabled=True)
        store.connected_at = _now() - dt.timedelta(hours=2)
        amazon_orders.session.commit()
        store_id = store.id
        amazon_orders.sync(store)
    client = _shop_login(shop)
    url = f"/admin/amazon/stores/{store_id}/orders/{order_id}"
    page = _text(client.get(url))
    assert "This order could not become a shop order:" in page and "TEA-NEW-1" in page
    dashboard = _text(client.get(f"/admin/amazon/stores/{store_id}"))
    assert "1 Amazon order could not become a shop order." in dashboard
    assert "Orders not imported" in dashboard
    token = _token(client, url)
    still = client.post(f"{url}/retry-import", data={"csrf_token": token}, follow_redirects=True)
    assert "The shop order still cannot be created" in _text(still)
    with shop.app_context():
        amazon_orders.session.add(Product(sku="TEA-NEW-1", name="New tea", price="3.00"))
        amazon_orders.session.commit()
    done = client.post(f"{url}/retry-import", data={"csrf_token": token}, follow_redirects=True)
    text = _text(done)
    assert re.search(r"Shop order T\d+ created\.", text)
    assert "by mia" in text
    assert "Retry import" not in text


def test_settings_save_with_validation_and_record_the_actor(shop, sandbox, seller):
    from example_app import amazon_orders
    from example_app.models import ShopOrder

    order_id = _order(sandbox, seller, ago=60)
    with shop.app_context():
        store = connect_store(seller)
        store.connected_at = _now() - dt.timedelta(hours=2)
        amazon_orders.session.commit()
        store_id = store.id
        amazon_orders.sync(store)
    client = _shop_login(shop)
    url = f"/admin/amazon/stores/{store_id}/settings"
    token = _token(client, url)
    before = _text(client.get(url))
    assert "Status of a new shop order" in before and "Order import" in before

    for data, message in (
        ({"initial_status": "", "number_source": "host"}, "The initial status must be 1 to 40"),
        ({"initial_status": "x" * 41, "number_source": "host"}, "The initial status must be 1"),
        ({"initial_status": "New", "number_source": "ebay"}, "The order number source must be"),
    ):
        bad = client.post(url, data={**data, "order_import": "on", "csrf_token": token})
        assert bad.status_code == 400
        assert message in _text(bad) and "Nothing was changed." in _text(bad)
        with shop.app_context():
            loaded = amazon_orders.session.get(Store, store_id)
            assert not loaded.order_import_enabled
            assert loaded.import_initial_status == "Processing"
            assert amazon_orders.session.query(ShopOrder).count() == 0

    ok = client.post(
        url,
        data={
            "order_import": "on",
            "initial_status": "On hold",
            "number_source": "amazon",
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    text = _text(ok)
    assert "Settings saved." in text
    assert "1 shop orders created, 0 blocked." in text
    assert 'name="order_import" type="checkbox" checked' in text
    with shop.app_context():
        shop_order = amazon_orders.session.scalar(sa.select(ShopOrder))
        assert (shop_order.number, shop_order.status) == (order_id, "On hold")
        actors = amazon_orders.session.scalars(
            sa.select(StoreEvent.actor).where(StoreEvent.kind == "settings_changed")
        ).all()
        assert actors and set(actors) == {"admin:mia"}
    dashboard = _text(client.get(f"/admin/amazon/stores/{store_id}"))
    assert "Settings changed" in dashboard and "by mia" in dashboard


def test_a_new_refresh_token_from_the_settings_page(app, db, synced):
    _grant(app, user="mia@example.com")
    client = app.test_client()
    store_id = synced["store_id"]
    settings = f"{PREFIX}/stores/{store_id}/settings"
    url = f"{PREFIX}/stores/{store_id}/authorization"
    page = _text(client.get(settings))
    assert "Authorization" in page and "New refresh token" in page
    before = _snapshot(db)
    empty = client.post(
        url,
        data={"refresh_token": " ", "csrf_token": _token(client, settings)},
        follow_redirects=True,
    )
    assert "Enter the refresh token. Nothing was changed." in _text(empty)
    assert _snapshot(db) == before
    done = client.post(
        url,
        data={"refresh_token": "Atzr|new-one", "csrf_token": _token(client, settings)},
        follow_redirects=True,
    )
    assert "Authorization updated. The store is synced with it next." in _text(done)
    assert "Atzr|new-one" not in done.data.decode()
    db.session.expire_all()
    store = db.session.get(Store, store_id)
    context = refresh_token_context(store.seller_id, store.marketplace_id)
    assert (
        get_extension(app).encryptor.decrypt(store.refresh_token_encrypted, context=context)
        == "Atzr|new-one"
    )
    assert store.sync_requested_at is not None
    event = db.session.scalars(sa.select(StoreEvent).order_by(StoreEvent.id.desc())).first()
    assert (event.kind, event.actor, event.message) == (
        "refresh_token_updated",
        "admin:mia@example.com",
        None,
    )
    activity = _text(client.get(f"{PREFIX}/stores/{store_id}"))
    assert "Authorization updated" in activity


def test_connect_a_store_from_the_admin(app, db, sandbox, seller):
    _grant(app, user="ann")
    client = app.test_client()
    url = f"{PREFIX}/stores/new"
    token = _token(client, url)
    form = {
        "name": "Amazon DE",
        "seller_id": seller["seller_id"],
        "marketplace": "A1PA6795UKMFR9",
        "refresh_token": seller["refresh_token"],
        "csrf_token": token,
    }
    bad = client.post(url, data={**form, "seller_id": "no!"})
    assert bad.status_code == 400 and "is not an Amazon seller id" in _text(bad)
    assert client.post(url, data={**form, "marketplace": ""}).status_code == 400
    assert client.post(url, data={**form, "refresh_token": " "}).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Store)) == 0
    response = client.post(url, data=form, follow_redirects=True)
    assert "Store Amazon DE connected." in _text(response)
    assert seller["refresh_token"] not in response.data.decode()
    again = client.post(url, data=form)
    assert again.status_code == 400 and "is already connected" in _text(again)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Store)) == 1
    event = db.session.scalar(sa.select(StoreEvent))
    assert (event.kind, event.actor) == ("store_connected", "admin:ann")


def test_host_problem_banner_when_import_is_on_without_an_adapter(app, synced):
    _grant(app)
    with app.app_context():
        store = get_extension().session.get(Store, synced["store_id"])
        store.order_import_enabled = True
        get_extension().session.commit()
    client = app.test_client()
    for url in (f"{PREFIX}/", f"{PREFIX}/stores/{synced['store_id']}"):
        assert "Shop orders cannot be created." in _text(client.get(url)), url


# -- fitting into the host -------------------------------------------------------------


def test_base_template_and_page_templates_can_be_the_hosts(app_factory, seller):
    import jinja2

    app = app_factory(AMAZON_ORDERS_BASE_TEMPLATE="host/admin.html")
    app.jinja_loader = jinja2.DictLoader(
        {
            "host/admin.html": "<title>{% block title %}{% endblock %}</title>"
            "{% block head %}{% endblock %}<nav>HOST NAV</nav>{% block content %}{% endblock %}",
            "amazon_orders/settings.html": "{% extends 'amazon_orders/layout.html' %}"
            "{% block body %}HOST SETTINGS {{ store.name }}{% endblock %}",
        }
    )
    _grant(app)
    with app.app_context():
        store_id = connect_store(seller).id
    client = app.test_client()
    page = client.get(f"{PREFIX}/stores/{store_id}").data.decode()
    assert page.startswith("<title>Amazon DE · Amazon orders</title>")
    assert "HOST NAV" in page and "Recent Orders" in page and "admin.css" in page
    assert (
        "HOST SETTINGS Amazon DE"
        in client.get(f"{PREFIX}/stores/{store_id}/settings").data.decode()
    )


def test_url_prefix_is_configurable_and_none_leaves_the_pages_out(app_factory):
    app = app_factory(AMAZON_ORDERS_ADMIN_URL_PREFIX="/backoffice/amazon")
    _grant(app)
    assert app.test_client().get("/backoffice/amazon/").status_code == 200
    bare = app_factory(AMAZON_ORDERS_ADMIN_URL_PREFIX=None)
    assert "amazon_orders" not in bare.blueprints
    assert bare.test_client().get(f"{PREFIX}/").status_code == 404


# -- query counts ----------------------------------------------------------------------


def _count_queries(app, client, url: str) -> int:
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(url).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def test_queries_per_page_do_not_grow_with_orders_or_rows(app_factory, sandbox, seller):
    small = app_factory(AMAZON_ORDERS_ADMIN_PAGE_SIZE=5)
    _grant(small)
    for n in range(3):
        _order(sandbox, seller, ago=600 + n)
    with small.app_context():
        store = connect_store(seller)
        store_id = store.id
        get_extension().sync(store)
        first = get_extension().session.scalar(sa.select(AmazonOrder.amazon_order_id))
    client = small.test_client()
    pages = [
        f"{PREFIX}/",
        f"{PREFIX}/stores/{store_id}",
        f"{PREFIX}/stores/{store_id}/orders",
        f"{PREFIX}/stores/{store_id}/orders?status=Unshipped&q=TEA-GREEN-100",
        f"{PREFIX}/stores/{store_id}/orders/{first}",
    ]
    few = [_count_queries(small, client, url) for url in pages]
    sandbox.control.generate_orders(seller["seller_id"], 40, seed=3)
    for n in range(20):
        _order(sandbox, seller, ago=300 + n)
    with small.app_context():
        get_extension().sync(store_id)
    many = [_count_queries(small, client, url) for url in pages]
    assert many == few
    assert max(many) <= 12
