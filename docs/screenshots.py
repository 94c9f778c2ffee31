"""Take the screenshots of the admin pages for the docs: ``python docs/screenshots.py``.

Everything runs in this process, with no network: the bundled Amazon sandbox on
a free loopback port, the example shop on a temporary SQLite database (served
over HTTP by a werkzeug server in a thread), and headless Chromium driven by
Playwright. The demo data is the example shop's (``python -m example_app``): a
German store with order import on and a French one with order import off,
each synced once (no background worker). The PNGs go to
``docs/_static/screenshots/``; run the script again whenever the pages change.

Chromium is Debian's ``chromium`` package (or ``chromium-browser``) found on
``PATH``, or the binary named by ``--chromium`` or ``AMAZON_ORDERS_CHROMIUM``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
OUT = DOCS / "_static" / "screenshots"
sys.path.insert(0, str(ROOT))  # the example shop is not an installed package

import sqlalchemy as sa  # noqa: E402
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from example_app import amazon_orders, create_app, init_db  # noqa: E402
from example_app.demo import connect_stores, create_sellers, sandbox_config  # noqa: E402
from example_app.models import db  # noqa: E402
from flask_amazon_orders.models import AmazonOrder, Store  # noqa: E402
from flask_amazon_orders.sandbox import SandboxServer  # noqa: E402

#: Amazon's rate limits run this many times faster, so one sync takes seconds.
TIME_SCALE = 1000.0
WIDTH = 1280
TABLET_WIDTH = 820
HEIGHT = 900
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def _find_chromium(given: str | None) -> str:
    path = (
        given
        or os.environ.get("AMAZON_ORDERS_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path or not os.access(path, os.X_OK):
        sys.exit(
            "Chromium not found: install Debian's 'chromium' package, or pass --chromium "
            "(or set AMAZON_ORDERS_CHROMIUM) to a Chromium binary."
        )
    return path


@contextmanager
def demo_shop(database: str, orders: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The sandbox and the example shop with two synced stores; yields the shop's URL
    and what the screenshots need from the database."""
    with SandboxServer(time_scale=TIME_SCALE, seed=7) as sandbox:
        seller, seller_fr = create_sellers(sandbox.control, orders)
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": "sqlite:///" + database,
                **sandbox_config(sandbox.url, time_scale=TIME_SCALE),
            }
        )
        with app.app_context():
            init_db()
            store, store_fr = connect_stores(seller, seller_fr)
            for each in (store, store_fr):
                run = amazon_orders.sync(each)
                if run.status != "succeeded":
                    sys.exit(f"The sync of {each.name} failed: {run.error}")
            facts = {
                "store": store.id,
                "store_fr": store_fr.id,
                "imported_unshipped": _pick_order(store, imported=True),
                "order_fr": _pick_order(store_fr, imported=False),
            }
            db.session.remove()

        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", facts
        finally:
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()
            with app.app_context():
                db.engine.dispose()


def _pick_order(store: Store, *, imported: bool) -> str:
    """The newest merchant-fulfilled Unshipped order of the store (imported or not)."""
    query = (
        sa.select(AmazonOrder.amazon_order_id)
        .where(AmazonOrder.store_id == store.id, AmazonOrder.status == "Unshipped")
        .order_by(
            AmazonOrder.fulfillment_channel != "MFN",  # merchant-fulfilled first
            AmazonOrder.purchased_at.desc(),
        )
    )
    if imported:
        query = query.where(AmazonOrder.host_order_ref.is_not(None))
    found = db.session.scalars(query.limit(1)).first()
    if found is None:
        sys.exit(f"{store.name} has no Unshipped order{' imported' if imported else ''} to show.")
    return str(found)


def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    path = OUT / name
    page.screenshot(path=str(path), full_page=full_page)
    print(f"  {path.relative_to(ROOT)}")


def take_screenshots(browser: Browser, url: str, facts: dict[str, Any]) -> None:
    context = browser.new_context(base_url=url, viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    page.goto("/login")
    page.get_by_role("button", name="Log in as Mia Berger (manager)").click()
    page.wait_for_url("**/")

    admin = "/admin/amazon"
    store = f"{admin}/stores/{facts['store']}"
    page.goto(f"{admin}/")
    shoot(page, "store-cards.png")
    page.goto(store)
    shoot(page, "store-dashboard.png")
    # Filtered: the Unshipped orders that became shop orders (one page, not 250 rows).
    page.goto(f"{store}/orders?status=Unshipped&imported=imported")
    shoot(page, "all-orders-filtered.png")
    page.goto(f"{store}/orders/{facts['imported_unshipped']}")
    shoot(page, "order-details-imported.png")
    page.goto(f"{admin}/stores/{facts['store_fr']}/orders/{facts['order_fr']}")
    shoot(page, "order-details-import-disabled.png")
    # Cancel items: one unit of the first item, with its refund.
    page.goto(f"{admin}/stores/{facts['store_fr']}/orders/{facts['order_fr']}/cancel-items")
    page.locator("input[name^=quantity-]").first.fill("1")
    page.get_by_label("Seller memo").fill("One tin short")
    shoot(page, "cancel-items.png")
    page.goto(f"{store}/orders/{facts['imported_unshipped']}/cancel")
    page.get_by_label("No Inventory").check()
    page.get_by_label("Seller memo").fill("Supplier let us down")
    shoot(page, "cancel-order.png")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"**/orders/{facts['imported_unshipped']}")
    shoot(page, "order-details-cancelled.png")
    # Cancel several orders: tick three rows of All orders, then the summary.
    page.goto(f"{store}/orders?sort=oldest")
    for box in page.locator("tbody input[type=checkbox]").all()[:3]:
        box.check()
    page.get_by_role("button", name="Cancel selected orders…").click()
    page.wait_for_url("**/cancel?*")
    shoot(page, "bulk-cancel.png")
    page.goto(f"{store}/settings")
    shoot(page, "settings.png")
    page.goto(f"{admin}/stores/new")
    shoot(page, "connect-store.png")

    page.set_viewport_size({"width": TABLET_WIDTH, "height": 1180})
    page.goto(store)
    shoot(page, "store-dashboard-tablet.png")

    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.get_by_role("button", name="Deutsch").click()
    page.wait_for_url(f"**{store}")
    shoot(page, "store-dashboard-de.png")
    context.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", help="the Chromium binary (default: found on PATH)")
    parser.add_argument("--orders", type=int, default=250, help="Amazon orders to generate")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    chromium = _find_chromium(args.chromium)
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="amazon-orders-screenshots-") as tmp,
        demo_shop(os.path.join(tmp, "shop.sqlite"), args.orders) as (url, facts),
        sync_playwright() as playwright,
    ):
        print(f"Screenshots of {url}:")
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            take_screenshots(browser, url, facts)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
