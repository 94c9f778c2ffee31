"""The sandbox's orders: their data, their lifecycle and their Orders v2026-01-01 JSON.

An :class:`Order` holds what Amazon knows about an order; :meth:`Order.to_json`
writes it in the shape of the ``Order`` definition of ``orders_2026-01-01.json``,
with the optional blocks gated by ``includedData`` exactly as searchOrders and
getOrder do. The JSON text of an order is cached per ``includedData`` set and the
cache is dropped on every change, so large result pages are cheap to serve.

Amounts are integers in minor units. Taxes are computed on top of the net price
(``proceedsTotal = ITEM + SHIPPING + TAX + DISCOUNT``).

Besides its status, an order remembers what the seller told Amazon about it: the
packages confirmed through Orders v0 ``confirmShipment`` (:class:`Shipment`) and
the payment adjustments of ``POST_PAYMENT_ADJUSTMENT_DATA`` feeds
(:class:`Adjustment`), which refund money and may cancel single units. A status
change through the control API or ``advance`` keeps both: it ships only the units
no adjustment cancelled, on top of the confirmed packages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .marketplaces import TAX_RESPONSIBLE_PARTY, Marketplace
from .util import format_amount, iso_ms, money, percent_of

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
    #: Units cancelled by payment adjustments (``QuantityCancelled``).
    quantity_cancelled: int = 0
    #: The ``cancelReason`` of the latest adjustment that cancelled units of this item.
    adjustment_cancel_reason: str | None = None
    #: Amounts refunded by payment adjustments, by ``ItemPriceAdjustments`` component type.
    refunded: dict[str, int] = field(default_factory=dict)

    @property
    def quantity_shippable(self) -> int:
        """Units that can ship: those no payment adjustment cancelled."""
        return max(self.quantity - self.quantity_cancelled, 0)

    @property
    def quantity_open(self) -> int:
        """Units neither shipped nor cancelled."""
        return max(self.quantity - self.quantity_shipped - self.quantity_cancelled, 0)

    @property
    def fully_cancelled_by_adjustment(self) -> bool:
        """Whether payment adjustments cancelled every unit of the item."""
        return self.quantity_cancelled >= self.quantity

    def amounts(self) -> tuple[int, int, int, int, int, int]:
        """``(item, shipping, item_tax, shipping_tax, discount, total)`` in minor units."""
        item = self.unit_price * self.quantity
        item_tax = percent_of(max(item - self.discount, 0), self.tax_bp)
        shipping_tax = percent_of(self.shipping_price, self.tax_bp)
        total = item + self.shipping_price + item_tax + shipping_tax - self.discount
        return item, self.shipping_price, item_tax, shipping_tax, self.discount, total

    def charged(self) -> dict[str, int]:
        """What the buyer was charged for this line, by ``ItemPriceAdjustments`` type.

        ``Principal`` is the item price (``ItemPrice``: unit price times quantity),
        ``Tax`` the tax on it; the sandbox charges no gift wrap and no COD fees.
        """
        item, shipping, item_tax, shipping_tax, _discount, _total = self.amounts()
        return {
            "Principal": item,
            "Shipping": shipping,
            "Tax": item_tax,
            "ShippingTax": shipping_tax,
            "GiftWrap": 0,
            "GiftWrapTax": 0,
            "COD": 0,
            "CODTax": 0,
        }


#: ``(orderItemId, quantity, transparencyCodes)`` of one item in a confirmed package.
PackageLine = tuple[str, int, tuple[str, ...]]


@dataclass(slots=True, eq=False)
class Shipment:
    """A package the seller confirmed through Orders v0 ``confirmShipment``."""

    reference_id: str
    marketplace_id: str
    carrier_code: str
    tracking_number: str
    #: ``shipDate`` in epoch milliseconds.
    ship_time: int
    items: tuple[PackageLine, ...]
    #: When the sandbox accepted the confirmation.
    received: int
    carrier_name: str | None = None
    shipping_method: str | None = None
    ship_from_supply_source_id: str | None = None
    cod_collection_method: str | None = None
    #: Identical confirmations received again (answered 204, nothing shipped twice).
    replays: int = 0
    #: ``False`` once a status change through the control API took the package back.
    active: bool = True

    def content(self) -> tuple[Any, ...]:
        """Everything the seller said about the package (for comparing a retry)."""
        return (
            self.marketplace_id,
            self.carrier_code,
            self.carrier_name,
            self.shipping_method,
            self.tracking_number,
            self.ship_time,
            self.ship_from_supply_source_id,
            self.cod_collection_method,
            tuple(sorted(self.items)),
        )

    @property
    def carrier(self) -> str:
        """The carrier as getOrder names it: ``carrierName`` for carrier code ``Other``."""
        if self.carrier_code == "Other" and self.carrier_name:
            return self.carrier_name
        return self.carrier_code

    def to_dict(self, order: Order) -> dict[str, Any]:
        """The confirmation as the control API lists it."""
        return {
            "orderId": order.order_id,
            "sellerId": order.seller_id,
            "marketplaceId": self.marketplace_id,
            "packageReferenceId": self.reference_id,
            "carrierCode": self.carrier_code,
            "carrierName": self.carrier_name,
            "shippingMethod": self.shipping_method,
            "trackingNumber": self.tracking_number,
            "shipDate": iso_ms(self.ship_time),
            "shipFromSupplySourceId": self.ship_from_supply_source_id,
            "codCollectionMethod": self.cod_collection_method,
            "orderItems": [_package_item(line) for line in self.items],
            "receivedTime": iso_ms(self.received),
            "replays": self.replays,
            "active": self.active,
        }


def _package_item(line: PackageLine) -> dict[str, Any]:
    item_id, quantity, codes = line
    item: dict[str, Any] = {"orderItemId": item_id, "quantity": quantity}
    if codes:
        item["transparencyCodes"] = list(codes)
    return item


#: ``(Type, amount in minor units)`` of one adjustment ``Component``.
Component = tuple[str, int]


@dataclass(slots=True, eq=False)
class Adjustment:
    """One ``AdjustedItem`` of a ``POST_PAYMENT_ADJUSTMENT_DATA`` feed the sandbox applied."""

    order_item_id: str
    #: The feed's ``AdjustmentReason`` (``NoInventory``, ``CustomerReturn``, ...).
    reason: str
    feed_id: str
    message_id: str
    received: int
    merchant_adjustment_item_id: str | None = None
    action_type: str | None = None
    #: ``ItemPriceAdjustments``: positive amounts are refunds to the buyer.
    components: tuple[Component, ...] = ()
    #: ``PromotionAdjustments``: ``(PromotionClaimCode, MerchantPromotionID, components)``.
    promotions: tuple[tuple[str | None, str | None, tuple[Component, ...]], ...] = ()
    #: ``DirectPaymentAdjustments`` components.
    direct_payments: tuple[Component, ...] = ()
    quantity_cancelled: int = 0
    quantity: int | None = None
    #: The same ``MerchantAdjustmentItemID`` received again (not applied twice).
    replays: int = 0

    @property
    def total(self) -> int:
        """The net amount credited to the buyer, minor units."""
        promotions = sum(amount for _c, _m, parts in self.promotions for _t, amount in parts)
        return (
            sum(amount for _t, amount in self.components)
            + promotions
            + sum(amount for _t, amount in self.direct_payments)
        )

    def content(self) -> tuple[Any, ...]:
        """Everything the adjustment says (for comparing a resent one)."""
        return (
            self.order_item_id,
            self.reason,
            self.action_type,
            self.components,
            self.promotions,
            self.direct_payments,
            self.quantity_cancelled,
            self.quantity,
        )

    def to_dict(self, order: Order) -> dict[str, Any]:
        """The adjustment as the control API lists it (amounts as decimal strings)."""
        cur = order.currency

        def parts(components: tuple[Component, ...]) -> list[dict[str, str]]:
            return [
                {"type": kind, "amount": format_amount(value, cur)} for kind, value in components
            ]

        return {
            "orderId": order.order_id,
            "sellerId": order.seller_id,
            "orderItemId": self.order_item_id,
            "merchantAdjustmentItemId": self.merchant_adjustment_item_id,
            "adjustmentReason": self.reason,
            "actionType": self.action_type,
            "itemPriceAdjustments": parts(self.components),
            "promotionAdjustments": [
                {
                    "promotionClaimCode": claim_code,
                    "merchantPromotionId": promotion_id,
                    "components": parts(components),
                }
                for claim_code, promotion_id, components in self.promotions
            ],
            "directPaymentAdjustments": parts(self.direct_payments),
            "quantityCancelled": self.quantity_cancelled,
            "quantity": self.quantity,
            "total": format_amount(self.total, cur),
            "currency": cur,
            "feedId": self.feed_id,
            "messageId": self.message_id,
            "receivedTime": iso_ms(self.received),
            "replays": self.replays,
        }


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
    #: (carrier, shipping service, tracking number, package status) of the package the
    #: sandbox makes up for units shipped by a status change (not by ``confirmShipment``).
    package: tuple[str, str, str, str] | None = None
    #: Packages confirmed through ``confirmShipment``, in the order received.
    shipments: list[Shipment] = field(default_factory=list)
    #: Payment adjustments applied, in the order received.
    adjustments: list[Adjustment] = field(default_factory=list)
    _cache: dict[frozenset[str], str] = field(default_factory=dict, repr=False)

    # -- changes ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget the cached JSON (call after every change)."""
        self._cache.clear()

    def item(self, order_item_id: str) -> OrderItem | None:
        """The item ``order_item_id`` of this order, if it has one."""
        for item in self.items:
            if item.order_item_id == order_item_id:
                return item
        return None

    def confirmed_quantities(self) -> dict[str, int]:
        """Units per order item in the packages confirmed through ``confirmShipment``."""
        confirmed: dict[str, int] = {}
        for shipment in self.shipments:
            if shipment.active:
                for item_id, quantity, _codes in shipment.items:
                    confirmed[item_id] = confirmed.get(item_id, 0) + quantity
        return confirmed

    def active_shipment(self, reference_id: str) -> Shipment | None:
        """The confirmed package with ``packageReferenceId`` ``reference_id``, if any."""
        for shipment in self.shipments:
            if shipment.active and shipment.reference_id == reference_id:
                return shipment
        return None

    def settled_status(self) -> str:
        """The status the item quantities call for after a shipment or an adjustment.

        Every unit cancelled: CANCELLED. Some units shipped: SHIPPED when no unit is
        left to ship, else PARTIALLY_SHIPPED. Nothing shipped: the status stays.
        """
        if all(item.fully_cancelled_by_adjustment for item in self.items):
            return CANCELLED
        if any(item.quantity_shipped for item in self.items):
            if any(item.quantity_open for item in self.items):
                return PARTIALLY_SHIPPED
            return SHIPPED
        return self.status

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

        Units cancelled by payment adjustments stay cancelled whatever the status.
        SHIPPED ships every other unit. PARTIALLY_SHIPPED keeps the packages confirmed
        through ``confirmShipment`` as they are; without any, it ships the first item
        that has units to ship. CANCELLED cancels every item
        (``cancellationExecution``). The other statuses leave nothing shipped. Every
        status but SHIPPED and PARTIALLY_SHIPPED takes the confirmed packages back
        (the control API still lists them, inactive). ``package`` describes the
        parcel of the units a status change ships (merchant orders).
        """
        self.status = status
        shipping = status in (SHIPPED, PARTIALLY_SHIPPED)
        if not shipping:
            for shipment in self.shipments:
                shipment.active = False
        confirmed = self.confirmed_quantities()
        keep_confirmed = status == PARTIALLY_SHIPPED and any(confirmed.values())
        first_open = True
        for item in self.items:
            shippable = item.quantity_shippable
            if status == SHIPPED:
                item.quantity_shipped = shippable
            elif status == PARTIALLY_SHIPPED and keep_confirmed:
                item.quantity_shipped = min(confirmed.get(item.order_item_id, 0), shippable)
            elif status == PARTIALLY_SHIPPED and first_open and shippable:
                item.quantity_shipped = shippable
                first_open = False
            else:
                item.quantity_shipped = 0
            if status == CANCELLED:
                item.cancelled_by = cancelled_by or (
                    "BUYER" if item.cancel_request_reason else "MERCHANT"
                )
                item.cancel_reason = cancel_reason or (
                    "BUYER_CANCELLED" if item.cancel_request_reason else "NO_INVENTORY"
                )
            elif item.fully_cancelled_by_adjustment:
                item.cancelled_by = "MERCHANT"
                item.cancel_reason = item.adjustment_cancel_reason
            else:
                item.cancelled_by = item.cancel_reason = None
        if shipping:
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
        ):
            packages = self._package_dicts()
            if packages:
                order["packages"] = packages
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
            # Cancelled units are neither fulfilled nor still to be fulfilled.
            line["fulfillment"] = {
                "quantityFulfilled": item.quantity_shipped,
                "quantityUnfulfilled": 0 if item.cancelled_by else item.quantity_open,
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

    def _package_dicts(self) -> list[dict[str, Any]]:
        """The confirmed packages, then one for the units a status change shipped."""
        packages = []
        for shipment in self.shipments:
            if shipment.active:
                package: dict[str, Any] = {
                    "packageReferenceId": shipment.reference_id,
                    "createdTime": iso_ms(shipment.received),
                    "packageStatus": {"status": "SHIPPED"},
                    "carrier": shipment.carrier,
                    "shipTime": iso_ms(shipment.ship_time),
                }
                if shipment.shipping_method:
                    package["shippingService"] = shipment.shipping_method
                package["trackingNumber"] = shipment.tracking_number
                if self.ship_from:
                    package["shipFromAddress"] = dict(self.ship_from)
                package["packageItems"] = [_package_item(line) for line in shipment.items]
                packages.append(package)
        if self.package is None or self.ship_time is None:
            return packages
        confirmed = self.confirmed_quantities()
        rest = [
            {"orderItemId": item.order_item_id, "quantity": quantity}
            for item in self.items
            if (quantity := item.quantity_shipped - confirmed.get(item.order_item_id, 0)) > 0
        ]
        if not rest:
            return packages
        # The smallest packageReferenceId the seller did not use.
        used = {p["packageReferenceId"] for p in packages}
        reference = next(str(n) for n in range(1, len(used) + 2) if str(n) not in used)
        carrier, service, tracking, status = self.package
        made_up: dict[str, Any] = {
            "packageReferenceId": reference,
            "createdTime": iso_ms(self.ship_time),
            "packageStatus": {"status": status},
            "carrier": carrier,
            "shipTime": iso_ms(self.ship_time),
            "shippingService": service,
            "trackingNumber": tracking,
        }
        if self.ship_from:
            made_up["shipFromAddress"] = dict(self.ship_from)
        made_up["packageItems"] = rest
        packages.append(made_up)
        return packages

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
