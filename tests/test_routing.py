"""Where each action on an Amazon order lives (DESIGN.md §5), cell by cell."""

from __future__ import annotations

import pytest

from flask_amazon_orders.models import AmazonOrder, Store
from flask_amazon_orders.services.routing import Action, Place, route, seller_central_url


def _order(status: str, *, enabled: bool, channel: str = "MFN", imported: bool = True):
    store = Store(name="DE", seller_id="A1SELLER", region="eu", marketplace_id="A1PA6795UKMFR9")
    store.order_import_enabled = enabled
    order = AmazonOrder(
        amazon_order_id="028-1234567-1234567",
        status=status,
        fulfillment_channel=channel,
        marketplace_id="A1PA6795UKMFR9",
        host_order_ref="17" if imported and enabled else None,
    )
    order.store = store
    return order


SC = "https://sellercentral.amazon.de/orders-v3/order/028-1234567-1234567"

# (status, import enabled, action) -> (place, url)
TABLE = [
    # Unshipped: cancel here; other tasks in the host workflow or Seller Central.
    ("Unshipped", True, Action.CANCEL, Place.HERE, None),
    ("Unshipped", False, Action.CANCEL, Place.HERE, None),
    ("Unshipped", True, Action.MANAGE, Place.HOST, "/shop/orders/17"),
    ("Unshipped", False, Action.MANAGE, Place.SELLER_CENTRAL, SC),
    # Pending and PartiallyShipped: cancel only in Seller Central.
    ("Pending", True, Action.CANCEL, Place.SELLER_CENTRAL, SC),
    ("Pending", False, Action.CANCEL, Place.SELLER_CENTRAL, SC),
    ("PartiallyShipped", True, Action.CANCEL, Place.SELLER_CENTRAL, SC),
    ("PartiallyShipped", False, Action.CANCEL, Place.SELLER_CENTRAL, SC),
    # Shipped: returns and exchanges in Seller Central; no cancel at all.
    ("Shipped", True, Action.RETURN, Place.SELLER_CENTRAL, SC),
    ("Shipped", False, Action.RETURN, Place.SELLER_CENTRAL, SC),
    ("Shipped", True, Action.CANCEL, Place.NONE, None),
    ("Shipped", False, Action.CANCEL, Place.NONE, None),
    ("Shipped", True, Action.MANAGE, Place.HOST, "/shop/orders/17"),
    ("Shipped", False, Action.MANAGE, Place.SELLER_CENTRAL, SC),
    # Cancelled: nothing to cancel or return.
    ("Canceled", True, Action.CANCEL, Place.NONE, None),
    ("Canceled", False, Action.RETURN, Place.NONE, None),
]


@pytest.mark.parametrize(("status", "enabled", "action", "place", "url"), TABLE)
@pytest.mark.parametrize("channel", ["MFN", "AFN"])
def test_routing_table(status, enabled, action, place, url, channel):
    order = _order(status, enabled=enabled, channel=channel)
    answer = route(order, action, host_url="/shop/orders/17")
    assert answer.place is place
    assert answer.url == url
    assert answer.reason
    assert answer.here == (place is Place.HERE)


def test_import_enabled_but_not_imported_yet_points_to_the_host_workflow_without_a_link():
    order = _order("Unshipped", enabled=True, imported=False)
    answer = route(order, "manage")
    assert answer.place is Place.HOST and answer.url is None
    assert "once it is imported" in answer.reason


@pytest.mark.parametrize(
    ("marketplace", "host"),
    [
        ("ATVPDKIKX0DER", "sellercentral.amazon.com"),
        ("A1F83G8C2ARO7P", "sellercentral.amazon.co.uk"),
        ("A1VC38T7YXB528", "sellercentral.amazon.co.jp"),
    ],
)
def test_seller_central_link_uses_the_marketplace_site(marketplace, host):
    order = _order("Pending", enabled=False)
    order.marketplace_id = marketplace
    assert seller_central_url(order) == f"https://{host}/orders-v3/order/028-1234567-1234567"


def test_unknown_action_is_an_error():
    with pytest.raises(ValueError, match="'ship'"):
        route(_order("Unshipped", enabled=True), "ship")
