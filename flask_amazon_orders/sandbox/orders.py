"""The sandbox's orders: their data, their lifecycle and their Orders v2026-01-01 JSON.

An :class:`Order` holds what Amazon knows about an order; :meth:`Order.to_json`
writes it in the shape of the ``Order`` definition of ``orders_2026-01-01.json``,
with the optional blocks gated by ``includedData`` exactly as searchOrders and
getOrder do. The JSON text of an order is cached per ``includedData`` set and the
cache is dropped on every change, so large result pages are cheap to serve.

Amounts are integers in minor units. Taxes are computed on top of the net price
(``proceedsTotal = ITEM + SHIPPING + TAX + DISCOUNT``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .marketplaces import TAX_RESPONSIBLE_PARTY, Marketplace
from .util import iso_ms, money, percent_of

# -- vocabulary ------------------------------------------------------------------------------

PENDING_AVAILABILITY = "PENDING_AVAILABILITY"
PENDING = "PENDING"
UNSHIPPED = "UNSHIPPED"
PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
SHIPPED = "SHIPPED"
CANCELLED = "CANCELLED"
UNFULFILLABLE = "UNFULFILLABLE"

#: The ``FulfillmentStatus`` enumeration of Orders v2026-01-01, in lifecycle order.
STATUSES = (
    PENDING_AVAILABILITY,
    PENDING,
    UNSHIPPED,
    PARTIALLY_SHIPPED,
    SHIPPED,
    CANCELLED,
    UNFULFILLABLE,
)

#: Statuses an order never leaves on its own.
TERMINAL_STATUSES = frozenset({SHIPPED, CANCELLED, UNFULFILLABLE})

MERCHANT = "MERCHANT"
AMAZON = "AMAZON"
FULFILLED_BY = (MERCHANT, AMAZON)

#: The ``includedData`` values of searchOrders and getOrder.
INCLUDED_DATA = (
    "BUYER",
    "RECIPIENT",
    "PROCEEDS",
    "EXPENSE",
    "PROMOTION",
    "CANCELLATION",
    "FULFILLMENT",
    "PACKAGES",
    "TAX",
    "PAYMENT",
    "FULFILLMENT_ORDERS",
)
ALL_INCLUDED: frozenset[str] = frozenset(INCLUDED_DATA)
NO_INCLUDED: frozenset[str] = frozenset()

#: ``fulfillmentServiceLevel`` values.
SERVICE_LEVELS = (
    "EXPEDITED",
    "FREE_ECONOMY",
    "NEXT_DAY",
    "PRIORITY",
    "SAME_DAY",
    "SECOND_DAY",
    "SCHEDULED",
    "STANDARD",
)

#: Cancel reason codes (Orders v2026-01-01 vocabulary).
CANCEL_REASONS = (
    "NO_INVENTORY",
    "BUYER_CANCELLED",
    "SHIPPING_ADDRESS_UNDELIVERABLE",
    "CUSTOMER_EXCHANGE",
    "PRICING_ERROR",
    "GENERAL_ADJUSTMENT",
    "CARRIER_CREDIT_DECISION",
    "RISK_ASSESSMENT_INFORMATION_NOT_VALID",
    "CARRIER_COVERAGE_FAILURE",
    "CUSTOMER_RETURN",
    "MERCHANDISE_NOT_RECEIVED",
    "CANNOT_VERIFY_INFORMATION",
    "REJECT_ORDER",
    "WEATHER_DELAY",
)

#: Statuses in which the delivery address is shared: Amazon withholds it while an order
#: is pending (Orders v0 documents this for ``ShippingAddress``).
_ADDRESS_STATUSES = frozenset({UNSHIPPED, PARTIALLY_SHIPPED, SHIPPED, CANCELLED, UNFULFILLABLE})

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


def next_status(status: str, fulfilled_by: str, item_count: int) -> str | None:
    """The status one lifecycle step after ``status``, or ``None`` if it is final.

    Merchant orders go PENDING -> UNSHIPPED -> PARTIALLY_SHIPPED (only with more than
    one item) -> SHIPPED; Amazon-fulfilled orders go PENDING -> SHIPPED.
    """
    if status == PENDING_AVAILABILITY:
        return PENDING
    if status == PENDING:
        return SHIPPED if fulfilled_by == AMAZON else UNSHIPPED
    if status == UNSHIPPED:
        if fulfilled_by == AMAZON or item_count < 2:
            return SHIPPED
        return PARTIALLY_SHIPPED
    if status == PARTIALLY_SHIPPED:
        return SHIPPED
    return None


@dataclass(slots=True)
class OrderItem:
    """One line of an order. Prices in minor units of the order's currency."""

    order_item_id: str
    sku: str
    asin: str
    title: str
    quantity: int
    unit_price: int
    #: Shipping charged for the whole line (net).
    shipping_price: int = 0
    #: Tax rate in basis points.
    tax_bp: int = 0
    promotion_id: str | None = None
    #: Promotion discount for the line, a positive number.
    discount: int = 0
    condition: str = "NEW"
    quantity_shipped: int = 0
    cancel_request_reason: str | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    #: Amazon points granted (JP); shown under ``expense``.
    points: int = 0

    def amounts(self) -> tuple[int, int, int, int, int, int]:
        """``(item, shipping, item_tax, shipping_tax, discount, total)`` in minor units."""
        item = self.unit_price * self.quantity
        item_tax = percent_of(max(item - self.discount, 0), self.tax_bp)
        shipping_tax = percent_of(self.shipping_price, self.tax_bp)
        total = item + self.shipping_price + item_tax + shipping_tax - self.discount
        return item, self.shipping_price, item_tax, shipping_tax, self.discount, total


@dataclass(slots=True, eq=False)
class Order:
    """One Amazon order as the sandbox holds it."""

    order_id: str
    seller_id: str
    marketplace: Marketplace
    currency: str
    created: int
    last_updated: int
    status: str
    fulfilled_by: str
    items: list[OrderItem]
    buyer_name: str
    buyer_email: str
    address: dict[str, str]
    service_level: str = "STANDARD"
    buyer_company: str | None = None
    seller_order_id: str | None = None
    is_prime: bool = False
    is_business: bool = False
    #: Ship-from address of the seller (used in packages).
    ship_from: dict[str, str] | None = None
    #: When the (first) package left, for shipped merchant orders.
    ship_time: int | None = None
    #: (carrier, shipping service, tracking number, package status)
    package: tuple[str, str, str, str] | None = None
    _cache: dict[frozenset[str], str] = field(default_factory=dict, repr=False)

    # -- changes ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget the cached JSON (call after every change)."""
        self._cache.clear()

    def apply_status(
        self,
        status: str,
        *,
        at: int,
        cancelled_by: str | None = None,
        cancel_reason: str | None = None,
        package: tuple[str, str, str, str] | None = None,
    ) -> None:
        """Set ``status`` and make the item quantities agree with it.

        SHIPPED fulfils every unit; PARTIALLY_SHIPPED fulfils the first item only;
        CANCELLED cancels every item (``cancellationExecution``); the other statuses
        leave nothing fulfilled. ``package`` describes the parcel of a merchant order.
        """
        self.status = status
        for index, item in enumerate(self.items):
            if status == SHIPPED or (status == PARTIALLY_SHIPPED and index == 0):
                item.quantity_shipped = item.quantity
            else:
                item.quantity_shipped = 0
            if status == CANCELLED:
                item.cancelled_by = cancelled_by or (
                    "BUYER" if item.cancel_request_reason else "MERCHANT"
                )
                item.cancel_reason = cancel_reason or (
                    "BUYER_CANCELLED" if item.cancel_request_reason else "NO_INVENTORY"
                )
            else:
                item.cancelled_by = item.cancel_reason = None
        if status in (SHIPPED, PARTIALLY_SHIPPED):
            if self.ship_time is None:
                self.ship_time = at
            if package is not None:
                self.package = package
        else:
            self.ship_time = None
            self.package = None
        self.invalidate()

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self, included: frozenset[str]) -> str:
        """The order as JSON text, with the optional blocks named in ``included``."""
        text = self._cache.get(included)
        if text is None:
            if len(self._cache) >= 8:  # many different includedData sets: keep memory bounded
                self._cache.clear()
            text = json.dumps(self.to_dict(included), separators=(",", ":"), ensure_ascii=False)
            self._cache[included] = text
        return text

    def to_dict(self, included: frozenset[str] = ALL_INCLUDED) -> dict[str, Any]:
        """The order as an Orders v2026-01-01 ``Order`` object."""
        cur = self.currency
        mp = self.marketplace
        order: dict[str, Any] = {"orderId": self.order_id}
        if self.seller_order_id:
            order["orderAliases"] = [
                {"aliasId": self.seller_order_id, "aliasType": "SELLER_ORDER_ID"}
            ]
        order["createdTime"] = iso_ms(self.created)
        order["lastUpdatedTime"] = iso_ms(self.last_updated)
        programs = []
        if self.is_prime:
            programs.append("PRIME")
        if self.is_business:
            programs.append("AMAZON_BUSINESS")
        if programs:
            order["programs"] = programs
        order["salesChannel"] = {
            "channelName": "AMAZON",
            "marketplaceId": mp.marketplace_id,
            "marketplaceName": mp.name,
        }
        if "BUYER" in included:
            buyer = {"buyerName": self.buyer_name, "buyerEmail": self.buyer_email}
            if self.buyer_company:
                buyer["buyerCompanyName"] = self.buyer_company
            order["buyer"] = buyer
        if "RECIPIENT" in included and self.status in _ADDRESS_STATUSES:
            address = dict(self.address)
            if self.fulfilled_by == AMAZON:
                address.pop("phone", None)
            order["recipient"] = {"deliveryAddress": address}

        totals = {"ITEM": 0, "SHIPPING": 0, "TAX": 0, "DISCOUNT": 0, "TOTAL": 0}
        item_dicts = [self._item_dict(item, included, totals) for item in self.items]
        grand_total = totals.pop("TOTAL")

        if "PROCEEDS" in included:
            breakdowns = [
                {"type": kind, "subtotal": money(-value if kind == "DISCOUNT" else value, cur)}
                for kind, value in totals.items()
                if value or kind != "DISCOUNT"
            ]
            order["proceeds"] = {"grandTotal": money(grand_total, cur), "breakdowns": breakdowns}
        if "PAYMENT" in included and self.status not in (PENDING, PENDING_AVAILABILITY):
            order["payment"] = {
                "paymentExecutions": [
                    {"paymentMethod": "Other", "paymentAmount": money(grand_total, cur)}
                ]
            }
        if "TAX" in included:
            order["tax"] = {
                "taxInvoicing": {
                    "buyerInvoicePreference": "BUSINESS" if self.is_business else "INDIVIDUAL"
                }
            }
        if "FULFILLMENT" in included:
            order["fulfillment"] = self._fulfillment_dict()
        order["orderItems"] = item_dicts
        if (
            "PACKAGES" in included
            and self.fulfilled_by == MERCHANT
            and self.status in (SHIPPED, PARTIALLY_SHIPPED)
            and self.package is not None
            and self.ship_time is not None
        ):
            order["packages"] = [self._package_dict()]
        return order

    def _fulfillment_dict(self) -> dict[str, Any]:
        day0 = self.created - self.created % _DAY_MS
        days = 1 if self.service_level in ("NEXT_DAY", "SAME_DAY", "PRIORITY") else 2
        ship_by_end = day0 + (days + 1) * _DAY_MS - 1000
        deliver_start = ship_by_end + 1000
        deliver_end = deliver_start + (2 if days == 1 else 4) * _DAY_MS - 1000
        return {
            "fulfillmentStatus": self.status,
            "fulfilledBy": self.fulfilled_by,
            "fulfillmentServiceLevel": self.service_level,
            "shipByWindow": {
                "earliestDateTime": iso_ms(self.created),
                "latestDateTime": iso_ms(ship_by_end),
            },
            "deliverByWindow": {
                "earliestDateTime": iso_ms(deliver_start),
                "latestDateTime": iso_ms(deliver_end),
            },
        }

    def _item_dict(
        self, item: OrderItem, included: frozenset[str], totals: dict[str, int]
    ) -> dict[str, Any]:
        cur = self.currency
        line: dict[str, Any] = {
            "orderItemId": item.order_item_id,
            "quantityOrdered": item.quantity,
            "product": {
                "asin": item.asin,
                "title": item.title,
                "sellerSku": item.sku,
                "condition": {"conditionType": item.condition, "conditionSubtype": item.condition},
                "price": {"unitPrice": money(item.unit_price, cur)},
            },
        }
        value, shipping, item_tax, shipping_tax, discount, total = item.amounts()
        totals["ITEM"] += value
        totals["SHIPPING"] += shipping
        totals["TAX"] += item_tax + shipping_tax
        totals["DISCOUNT"] += discount
        totals["TOTAL"] += total
        if "PROCEEDS" in included:
            breakdowns: list[dict[str, Any]] = [
                {"type": "ITEM", "subtotal": money(value, cur)},
                {"type": "SHIPPING", "subtotal": money(shipping, cur)},
                {
                    "type": "TAX",
                    "subtotal": money(item_tax + shipping_tax, cur),
                    "detailedBreakdowns": [
                        {"subtype": "ITEM", "value": money(item_tax, cur)},
                        {"subtype": "SHIPPING", "value": money(shipping_tax, cur)},
                    ],
                },
            ]
            if discount:
                breakdowns.append(
                    {
                        "type": "DISCOUNT",
                        "subtotal": money(-discount, cur),
                        "detailedBreakdowns": [{"subtype": "ITEM", "value": money(-discount, cur)}],
                    }
                )
            line["proceeds"] = {"proceedsTotal": money(total, cur), "breakdowns": breakdowns}
        if "EXPENSE" in included and item.points:
            line["expense"] = {
                "pointsCost": {
                    "pointsGranted": {
                        "pointsNumber": item.points,
                        "pointsMonetaryValue": money(item.points, cur),
                    }
                }
            }
        if "PROMOTION" in included and item.promotion_id:
            line["promotion"] = {"breakdowns": [{"promotionId": item.promotion_id}]}
        if "CANCELLATION" in included and (item.cancel_request_reason or item.cancelled_by):
            cancellation: dict[str, Any] = {}
            if item.cancel_request_reason is not None:
                cancellation["cancellationRequest"] = {
                    "requester": "BUYER",
                    "cancelReason": item.cancel_request_reason,
                }
            if item.cancelled_by:
                cancellation["cancellationExecution"] = {
                    "cancelledBy": item.cancelled_by,
                    "cancelReason": item.cancel_reason or "",
                }
            line["cancellation"] = cancellation
        if "FULFILLMENT" in included:
            line["fulfillment"] = {
                "quantityFulfilled": item.quantity_shipped,
                "quantityUnfulfilled": item.quantity - item.quantity_shipped,
            }
        if "TAX" in included:
            line["tax"] = {
                "taxCollections": [
                    {
                        "model": "MARKETPLACE_FACILITATOR",
                        "responsibleParty": TAX_RESPONSIBLE_PARTY[self.marketplace.region],
                    }
                ]
            }
        return line

    def _package_dict(self) -> dict[str, Any]:
        assert self.package is not None and self.ship_time is not None
        carrier, service, tracking, status = self.package
        package: dict[str, Any] = {
            "packageReferenceId": "1",
            "createdTime": iso_ms(self.ship_time),
            "packageStatus": {"status": status},
            "carrier": carrier,
            "shipTime": iso_ms(self.ship_time),
            "shippingService": service,
            "trackingNumber": tracking,
        }
        if self.ship_from:
            package["shipFromAddress"] = dict(self.ship_from)
        package["packageItems"] = [
            {"orderItemId": item.order_item_id, "quantity": item.quantity_shipped}
            for item in self.items
            if item.quantity_shipped
        ]
        return package

    def summary(self) -> dict[str, Any]:
        """The compact form listed by the control API."""
        return {
            "orderId": self.order_id,
            "sellerId": self.seller_id,
            "status": self.status,
            "fulfilledBy": self.fulfilled_by,
            "createdTime": iso_ms(self.created),
            "lastUpdatedTime": iso_ms(self.last_updated),
        }
