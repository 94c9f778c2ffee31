"""The admin pages in a real browser: headless Chromium against the example shop.

The shop runs on the test database (SQLite or PostgreSQL, see ``conftest.py``)
and is served over real HTTP by a werkzeug server in a background thread; the
Amazon side is the bundled sandbox. One browser serves the whole module, each
test gets a fresh browser context (its own cookies, so its own log-in).

Chromium is looked up as ``chromium`` (Debian's package) or ``chromium-browser``
on ``PATH``, or taken from ``AMAZON_ORDERS_TEST_CHROMIUM``. Without it (or
without the ``playwright`` package) the module is skipped, except on CI
(``CI=true``), where a missing browser fails the tests instead.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import connect_store
from werkzeug.serving import make_server

from example_app import amazon_orders
from example_app.models import CATALOG
from flask_amazon_orders.client.records import STATUS_LABELS
from flask_amazon_orders.models import AmazonOrder

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the tests dependency group has it
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM_VAR = "AMAZON_ORDERS_TEST_CHROMIUM"
CHROMIUM = (
    os.environ.get(CHROMIUM_VAR) or shutil.which("chromium") or shutil.which("chromium-browser")
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ON_CI = os.environ.get("CI") == "true"


def _missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    if sync_playwright is None:
        return "the playwright package is not installed (dependency group 'tests')"
    if os.environ.get(CHROMIUM_VAR) and not os.access(CHROMIUM or "", os.X_OK):
        return f"{CHROMIUM_VAR} does not name an executable Chromium: {CHROMIUM}"
    if not CHROMIUM or not os.access(CHROMIUM, os.X_OK):
        return (
            "Chromium is not installed: install Debian's 'chromium' package "
            f"or set {CHROMIUM_VAR} to a Chromium binary"
        )
    return None


MISSING = _missing()

# Skipped on a developer machine without Chromium; on CI the browser fixture fails.
pytestmark = pytest.mark.skipif(
    MISSING is not None and not ON_CI, reason=f"browser tests need Chromium: {MISSING}"
)

SHOP_CATALOG = [{"sku": sku, "title": title, "price": price} for sku, title, price in CATALOG]
MANAGER = "Log in as Mia Berger (manager)"
VIEWER = "Log in as Victor Lang (viewer)"
#: Milliseconds a page or an expectation may take before the test fails.
TIMEOUT_MS = 10_000


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    if MISSING is not None:
        pytest.fail(f"CI=true and the browser tests cannot run: {MISSING}", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def live_shop(shop: Any) -> Iterator[str]:
    """The example shop served over HTTP on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, shop, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-shop", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def page(browser: Browser, live_shop: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live shop."""
    context = browser.new_context(base_url=live_shop, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def _synced_store(shop: Any, sandbox: Any, seller: dict[str, Any], **fields: Any) -> int:
    """Connect the seller as a store, sync it once, and return the store's id."""
    with shop.app_context():
        store = connect_store(seller, name="Teahouse Amazon.de", **fields)
        # Orders count as placed after connecting (the sandbox dates them in the past).
        store.connected_at = store.connected_at.replace(year=store.connected_at.year - 1)
        amazon_orders.session.commit()
        run = amazon_orders.sync(store)
        assert run.status == "succeeded", run.error
        return int(store.id)


@pytest.fixture
def store_id(shop: Any, sandbox: Any, seller: dict[str, Any]) -> int:
    """A synced store with a mix of orders; order import off."""
    sandbox.control.generate_orders(
        seller["seller_id"],
        12,
        seed=11,
        catalog=SHOP_CATALOG,
        statuses={"UNSHIPPED": 3, "SHIPPED": 2, "PENDING": 1},
    )
    return _synced_store(shop, sandbox, seller)


def log_in(page: Page, button: str) -> None:
    page.goto("/login")
    page.get_by_role("button", name=button).click()
    page.wait_for_url("**/")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def recent_orders(page: Page) -> Any:
    return page.locator("section", has=page.locator("#recent-heading"))


# -- tests ---------------------------------------------------------------------------


def test_click_path_from_store_cards_to_amazon_order_details(page, shop, store_id):
    log_in(page, MANAGER)
    page.goto("/admin/amazon/")
    expect(page.get_by_role("heading", name="Amazon stores", level=1)).to_be_visible()
    card = page.locator(".ao-card", has_text="Teahouse Amazon.de")
    expect(card).to_have_count(1)
    card.get_by_role("link", name="View Store").click()

    page.wait_for_url(f"**/admin/amazon/stores/{store_id}")
    expect(page.get_by_role("heading", name="Teahouse Amazon.de", level=1)).to_be_visible()
    recent = recent_orders(page)
    expect(recent.get_by_role("heading", name="Recent Orders")).to_be_visible()
    first = recent.locator("tbody tr").first
    number = first.locator("th a").inner_text().strip()
    with shop.app_context():
        order = amazon_orders.session.query(AmazonOrder).filter_by(amazon_order_id=number).one()
        status = STATUS_LABELS[order.status]
        skus = {item.seller_sku for item in order.items}
    expect(first).to_contain_text(status)
    first.get_by_role("link", name=number).click()

    page.wait_for_url(f"**/admin/amazon/stores/{store_id}/orders/{number}")
    header = page.locator(".ao-header-bar")
    expect(header).to_contain_text("Amazon Order Details")
    expect(header.get_by_role("heading", level=1)).to_contain_text(number)
    expect(header.locator(".ao-status")).to_have_text(status)
    items = page.locator("section", has=page.locator("#items-heading"))
    assert skus
    for sku in skus:
        expect(items.locator(".ao-item-ids", has_text=sku)).to_contain_text(f"SKU {sku}")
    timeline = page.locator("section", has=page.locator("#timeline-heading"))
    expect(timeline.get_by_role("heading", name="Timeline")).to_be_visible()
    expect(timeline.locator("li").first).to_contain_text("Imported from Amazon")


def test_settings_toggle_persists_and_imports_shop_orders(page, shop, sandbox, seller):
    sandbox.control.generate_orders(
        seller["seller_id"],
        5,
        seed=12,
        catalog=SHOP_CATALOG,
        statuses={"UNSHIPPED": 1},
        afn_share=0,
    )
    store_id = _synced_store(shop, sandbox, seller)
    amazon_ids = {o["orderId"] for o in sandbox.control.list_orders(seller["seller_id"])}
    log_in(page, MANAGER)

    page.goto("/orders")
    expect(page.get_by_text("No shop orders yet.")).to_be_visible()

    page.goto(f"/admin/amazon/stores/{store_id}")
    page.get_by_role("link", name="Settings", exact=True).click()
    page.wait_for_url(f"**/admin/amazon/stores/{store_id}/settings")
    toggle = page.get_by_label("Order import", exact=True)
    expect(toggle).not_to_be_checked()
    toggle.check()
    page.get_by_role("button", name="Save settings").click()

    messages = page.locator(".ao-flash--success")
    expect(messages.filter(has_text="Settings saved.")).to_be_visible()
    expect(messages.filter(has_text="5 shop orders created, 0 blocked.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Order import", exact=True)).to_be_checked()

    page.goto("/orders")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(5)
    shown = {text.strip() for text in page.locator("tbody tr td:nth-child(3)").all_inner_texts()}
    assert shown == amazon_ids

    # Switching it off again persists too, and deletes no shop order.
    page.goto(f"/admin/amazon/stores/{store_id}/settings")
    page.get_by_label("Order import", exact=True).uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(messages.filter(has_text="Settings saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Order import", exact=True)).not_to_be_checked()
    page.goto("/orders")
    expect(page.locator("tbody tr")).to_have_count(5)


def test_german_ui_follows_the_shops_language_switch(page, store_id):
    log_in(page, MANAGER)
    page.goto("/admin/amazon/")
    page.get_by_role("button", name="Deutsch").click()
    expect(page.get_by_role("button", name="Deutsch")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator(".ao")).to_have_attribute("lang", "de")

    expect(page.get_by_role("link", name="Shop anzeigen")).to_be_visible()
    expect(page.get_by_role("link", name="View Store")).to_have_count(0)
    page.get_by_role("link", name="Shop anzeigen").click()

    page.wait_for_url(f"**/admin/amazon/stores/{store_id}")
    recent = recent_orders(page)
    expect(recent.get_by_role("heading", name="Letzte Bestellungen")).to_be_visible()
    expect(page.get_by_role("link", name="Einstellungen", exact=True)).to_be_visible()
    expect(page.get_by_text("Recent Orders")).to_have_count(0)

    recent.locator("tbody tr th a").first.click()
    page.wait_for_url(f"**/admin/amazon/stores/{store_id}/orders/*")
    expect(page.locator(".ao-header-bar")).to_contain_text("Amazon-Bestelldetails")

    page.goto(f"/admin/amazon/stores/{store_id}/settings")
    expect(page.get_by_label("Bestellimport", exact=True)).to_be_visible()


def test_keyboard_reaches_the_dashboard_from_the_store_cards(page, store_id):
    log_in(page, MANAGER)
    page.goto("/admin/amazon/")
    link = page.get_by_role("link", name="View Store")
    expect(link).to_be_visible()
    for _press in range(40):
        page.keyboard.press("Tab")
        if link.evaluate("element => element === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the View Store link")
    expect(link).to_be_focused()
    focus = link.evaluate(
        """element => ({
            tag: element.tagName,
            visible: element.matches(':focus-visible'),
            outline: getComputedStyle(element).outlineStyle,
            width: parseFloat(getComputedStyle(element).outlineWidth),
        })"""
    )
    assert focus["tag"] == "A"
    assert focus["visible"], "the focused link does not match :focus-visible"
    assert focus["outline"] != "none" and focus["width"] > 0, f"no focus ring: {focus}"

    page.keyboard.press("Enter")
    page.wait_for_url(f"**/admin/amazon/stores/{store_id}")
    expect(recent_orders(page).get_by_role("heading", name="Recent Orders")).to_be_visible()


def test_viewer_looks_only_and_anonymous_gets_403(page, browser, live_shop, store_id):
    log_in(page, VIEWER)
    page.goto(f"/admin/amazon/stores/{store_id}")
    expect(recent_orders(page).get_by_role("heading", name="Recent Orders")).to_be_visible()
    expect(page.get_by_role("link", name="All orders").first).to_be_visible()
    expect(page.get_by_role("button", name="Sync now")).to_have_count(0)

    page.get_by_role("link", name="Settings", exact=True).click()
    page.wait_for_url(f"**/admin/amazon/stores/{store_id}/settings")
    expect(page.get_by_text("changing them needs the manage permission")).to_be_visible()
    fieldsets = page.locator("form.ao-form > fieldset")
    expect(fieldsets).to_have_count(2)  # the order settings and the authorization
    for fieldset in fieldsets.all():
        expect(fieldset).to_have_js_property("disabled", True)
    expect(page.get_by_label("Order import", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Save settings")).to_be_disabled()
    expect(page.get_by_role("button", name="Update authorization")).to_be_disabled()

    anonymous = browser.new_context(base_url=live_shop)
    anonymous.set_default_timeout(TIMEOUT_MS)
    try:
        tab = anonymous.new_page()
        for path in ("/admin/amazon/", f"/admin/amazon/stores/{store_id}"):
            response = tab.goto(path)
            assert response is not None and response.status == 403, path
            expect(tab.get_by_role("heading", name="Forbidden", level=1)).to_be_visible()
            expect(tab.get_by_role("alert")).to_contain_text("You are not allowed to use this page")
            expect(tab.get_by_text("Recent Orders")).to_have_count(0)
    finally:
        anonymous.close()


def test_seed_click_path_cancels_an_unshipped_order(page, shop, sandbox, seller):
    """Store card → View Store → Recent Orders → order → Cancel Order → reason → Confirm."""
    from example_app.models import ShopOrder
    from flask_amazon_orders.jobs.feeds import next_poll_due, process_feeds
    from flask_amazon_orders.models import utcnow

    sandbox.control.generate_orders(
        seller["seller_id"],
        3,
        seed=14,
        catalog=SHOP_CATALOG,
        statuses={"UNSHIPPED": 1},
        afn_share=0,
        buyer_cancel_share=0,
    )
    store = _synced_store(shop, sandbox, seller, order_import_enabled=True)
    log_in(page, MANAGER)
    page.goto("/admin/amazon/")
    page.locator(".ao-card", has_text="Teahouse Amazon.de").get_by_role(
        "link", name="View Store"
    ).click()
    first = recent_orders(page).locator("tbody tr").first
    number = first.locator("th a").inner_text().strip()
    first.get_by_role("link", name=number).click()
    page.wait_for_url(f"**/orders/{number}")
    page.locator(".ao-header-bar").get_by_role("link", name="Cancel Order").click()

    page.wait_for_url(f"**/orders/{number}/cancel")
    expect(page.get_by_role("group", name="Reason for cancellation")).to_be_visible()
    page.get_by_label("No Inventory").check()
    page.get_by_label("Seller memo").fill("Supplier let us down")
    page.get_by_role("button", name="Confirm").click()

    page.wait_for_url(f"**/orders/{number}")
    header = page.locator(".ao-header-bar")
    expect(header.locator(".ao-status")).to_have_text("Canceled")
    expect(header.get_by_role("link", name="Cancel Order")).to_have_count(0)
    expect(page.locator("#cancel-heading")).to_be_visible()
    with shop.app_context():
        shop_order = amazon_orders.session.query(ShopOrder).filter_by(amazon_order_id=number).one()
        assert shop_order.status == "Complete"
        # The worker's part: send the feed and read Amazon's answer.
        for _ in range(100):
            process_feeds(store)
            due = next_poll_due()
            if due is None:
                break
            page.wait_for_timeout(max(1, int((due - utcnow()).total_seconds() * 1000)))
    page.reload()
    expect(page.locator("section", has=page.locator("#cancel-heading"))).to_contain_text(
        "Confirmed"
    )
    expect(page.locator(".ao-header-bar .ao-status")).to_have_text("Canceled")
    (feed,) = sandbox.control.feeds()
    amazon = sandbox.control.get_order(number)
    assert amazon["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
    for item in amazon["orderItems"]:
        assert (
            f"<Item><AmazonOrderItemCode>{item['orderItemId']}</AmazonOrderItemCode>"
            "<CancelReason>NoInventory</CancelReason></Item>"
        ) in feed["document"]
