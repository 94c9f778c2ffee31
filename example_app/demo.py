"""The demo's Amazon side and stores, shared by ``python -m example_app``, the
screenshots of the docs and the benchmarks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_amazon_orders.models import Store

from . import amazon_orders
from .models import CATALOG, db

DEMO_SELLER = "A2DEMOTEAHOUSE"
#: A second seller account, in France, whose store keeps order import off.
DEMO_SELLER_FR = "A2DEMOTEAHOUSEFR"
#: The shop's own products, as the sandbox's catalogue (so orders can be imported).
SANDBOX_CATALOG = [{"sku": sku, "title": title, "price": price} for sku, title, price in CATALOG]


def sandbox_config(sandbox_url: str, *, time_scale: float) -> dict[str, Any]:
    """The ``AMAZON_ORDERS_*`` keys that point the shop at a (time-scaled) sandbox."""
    return {
        "AMAZON_ORDERS_ENDPOINT": sandbox_url,
        "AMAZON_ORDERS_LWA_URL": sandbox_url + "/auth/o2/token",
        "AMAZON_ORDERS_LWA_CLIENT_ID": "sandbox-client-id",
        "AMAZON_ORDERS_LWA_CLIENT_SECRET": "sandbox-client-secret",
        "AMAZON_ORDERS_RATE_LIMIT_SCALE": time_scale,
    }


def create_sellers(control: Any, orders: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two demo sellers in the sandbox, with generated orders for the shop's SKUs."""
    seller = control.create_seller(
        seller_id=DEMO_SELLER, name="Teahouse", marketplace_id="A1PA6795UKMFR9"
    )
    control.generate_orders(DEMO_SELLER, orders, catalog=SANDBOX_CATALOG)
    seller_fr = control.create_seller(
        seller_id=DEMO_SELLER_FR, name="Teahouse FR", marketplace_id="A13V1IB3VIYZZH"
    )
    control.generate_orders(DEMO_SELLER_FR, max(orders // 3, 1), catalog=SANDBOX_CATALOG, seed=8)
    return seller, seller_fr


def connect_stores(seller: dict[str, Any], seller_fr: dict[str, Any]) -> tuple[Store, Store]:
    """Connect the demo sellers (in the app context): Amazon.de with order import
    on, Amazon.fr with it off."""
    # Import on: Amazon orders become shop orders, managed in the shop's workflow.
    store = amazon_orders.add_store(
        name="Teahouse Amazon.de",
        seller_id=DEMO_SELLER,
        marketplace="DE",
        refresh_token=seller["refresh_token"],
        order_import_enabled=True,
    )
    # Only orders placed after connecting become shop orders: the demo store
    # was "connected" a day ago, so its recent orders are imported.
    store.connected_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    # Import off: orders are shown only and managed in Seller Central.
    store_fr = amazon_orders.add_store(
        name="Teahouse Amazon.fr",
        seller_id=DEMO_SELLER_FR,
        marketplace="FR",
        refresh_token=seller_fr["refresh_token"],
    )
    db.session.commit()
    return store, store_fr
