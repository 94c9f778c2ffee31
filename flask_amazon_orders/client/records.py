"""Turn Orders API v2026-01-01 JSON into plain, validated records.

:func:`parse_order` reads one ``Order`` object (model ``orders_2026-01-01.json``)
and returns an :class:`OrderRecord` with its :class:`ItemRecord` lines: money as
:class:`~decimal.Decimal` in the order's currency, times as aware UTC datetimes,
and the status in Seller Central's names, which admins know (``Unshipped``,
``Canceled`` …). Anything the model requires but the body lacks, and any value
the ``amazon_*`` tables could not hold as it is (text longer than its column or
with NUL, an amount beyond ``NUMERIC(18, 4)``, a quantity beyond ``INTEGER``, a
time out of range) raises
:class:`~flask_amazon_orders.errors.MalformedResponseError` naming the field, so a
broken answer from Amazon is an error, never an empty, half-read or half-stored
order. No Flask here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import MalformedResponseError

#: Orders v2026-01-01 ``fulfillmentStatus`` -> Seller Central's status name.
STATUS_FROM_AMAZON: dict[str, str] = {
    "PENDING_AVAILABILITY": "PendingAvailability",
    "PENDING": "Pending",
    "UNSHIPPED": "Unshipped",
    "PARTIALLY_SHIPPED": "PartiallyShipped",
    "SHIPPED": "Shipped",
    "CANCELLED": "Canceled",
    "UNFULFILLABLE": "Unfulfillable",
}

#: Seller Central's status names as shown to admins.
STATUS_LABELS: dict[str, str] = {
    "PendingAvailability": "Pending Availability",
    "Pending": "Pending",
    "Unshipped": "Unshipped",
    "PartiallyShipped": "Partially Shipped",
    "Shipped": "Shipped",
    "Canceled": "Canceled",
    "Unfulfillable": "Unfulfillable",
}

#: ``fulfilledBy`` -> the fulfilment channel codes of Seller Central.
CHANNEL_FROM_AMAZON = {"MERCHANT": "MFN", "AMAZON": "AFN"}

#: The ``includedData`` sets the sync asks for.
INCLUDED_DATA = ("PROCEEDS", "FULFILLMENT", "CANCELLATION", "PROMOTION")
INCLUDED_BUYER_DATA = ("BUYER", "RECIPIENT")


@dataclasses.dataclass(frozen=True)
class ItemRecord:
    order_item_id: str
    asin: str | None
    seller_sku: str | None
    title: str | None
    condition: str | None
    quantity_ordered: int
    quantity_shipped: int
    unit_price: Decimal | None
    item_price: Decimal | None
    shipping_price: Decimal | None
    item_tax: Decimal | None
    shipping_tax: Decimal | None
    discount: Decimal | None
    total: Decimal | None
    buyer_cancel_requested: bool
    buyer_cancel_reason: str | None
    cancelled_by: str | None


@dataclasses.dataclass(frozen=True)
class OrderRecord:
    amazon_order_id: str
    seller_order_id: str | None
    purchased_at: dt.datetime
    amazon_updated_at: dt.datetime
    status: str
    amazon_status: str
    fulfillment_channel: str | None
    service_level: str | None
    marketplace_id: str | None
    sales_channel: str | None
    programs: tuple[str, ...]
    earliest_ship_at: dt.datetime | None
    latest_ship_at: dt.datetime | None
    earliest_delivery_at: dt.datetime | None
    latest_delivery_at: dt.datetime | None
    currency: str | None
    order_total: Decimal | None
    ship_country: str | None
    buyer: dict[str, str] | None = dataclasses.field(repr=False)
    shipping_address: dict[str, str] | None = dataclasses.field(repr=False)
    items: tuple[ItemRecord, ...]

    @property
    def buyer_cancel_requested(self) -> bool:
        return any(item.buyer_cancel_requested for item in self.items)

    @property
    def buyer_cancel_reason(self) -> str | None:
        for item in self.items:
            if item.buyer_cancel_requested and item.buyer_cancel_reason:
                return item.buyer_cancel_reason
        return None


#: What an absent optional sub-object reads as (never mutated).
_EMPTY: Mapping[str, Any] = {}

#: The longest text each record field may have: the columns of ``amazon_orders``
#: and ``amazon_order_items``. A longer value is an error, never cut short.
MAX_LENGTHS: Mapping[str, int] = {
    "amazon_order_id": 32,
    "seller_order_id": 64,
    "fulfillment_channel": 8,
    "service_level": 40,
    "marketplace_id": 20,
    "sales_channel": 40,
    "programs": 255,
    "currency": 3,
    "ship_country": 2,
    "order_item_id": 20,
    "asin": 20,
    "seller_sku": 64,
    "condition": 20,
    "cancelled_by": 20,
}
#: Money is stored as ``NUMERIC(18, 4)``: below 10**14, at most four decimals.
MAX_AMOUNT = Decimal(10) ** 14
_AMOUNT_STEP = Decimal("0.0001")
#: Quantities (and their sum per order) are stored in an SQL ``INTEGER``.
MAX_QUANTITY = 2**31 - 1
#: A JSON number in text (RFC 7159), as the model's ``Decimal`` is written.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
#: One that surely fits ``NUMERIC(18, 4)``, as Amazon writes them (the fast path).
_PLAIN_AMOUNT = re.compile(r"-?[0-9]{1,14}(?:\.[0-9]{1,4})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
#: What no database text column takes: NUL, and unpaired surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _Reader:
    """Reads one order, naming the order and the field in every error."""

    def __init__(self, operation: str | None) -> None:
        self.operation = operation
        self.order_id: str | None = None

    def fail(self, what: str) -> MalformedResponseError:
        where = f"order {self.order_id}: " if self.order_id else ""
        return MalformedResponseError(f"{where}{what}", operation=self.operation)

    def obj(self, parent: Mapping[str, Any], key: str, required: bool = False) -> Mapping[str, Any]:
        value = parent.get(key)
        if value is None:
            if required:
                raise self.fail(f"missing {key!r}")
            return _EMPTY
        if type(value) is not dict:
            raise self.fail(f"{key!r} is not an object")
        return value

    def text(
        self, parent: Mapping[str, Any], key: str, required: bool = False, limit: int | None = None
    ) -> str | None:
        value = parent.get(key)
        if value is None or value == "":
            if required:
                raise self.fail(f"missing {key!r}")
            return None
        # (isascii() is a flag lookup: most values need no scan for surrogates.)
        if (
            type(value) is str
            and (limit is None or len(value) <= limit)
            and "\x00" not in value
            and (value.isascii() or not _UNSTORABLE.search(value))
        ):
            return value
        return self.check_text(value, key, limit)

    def check_text(self, value: Any, key: str, limit: int | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{key!r} is not a string")
        if limit is not None and len(value) > limit:
            raise self.fail(f"{key!r} is longer than {limit} characters")
        if _UNSTORABLE.search(value):
            raise self.fail(f"{key!r} contains a NUL character or an unpaired surrogate")
        return value

    def integer(self, parent: Mapping[str, Any], key: str, required: bool = False) -> int | None:
        value = parent.get(key)
        if value is None:
            if required:
                raise self.fail(f"missing {key!r}")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{key!r} is not a non-negative integer")
        if value > MAX_QUANTITY:
            raise self.fail(f"{key!r} is larger than {MAX_QUANTITY}")
        return value

    def time(
        self, parent: Mapping[str, Any], key: str, required: bool = False
    ) -> dt.datetime | None:
        value = self.text(parent, key, required)
        if value is None:
            return None
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            return parsed.astimezone(dt.timezone.utc)
        except (ValueError, OverflowError):  # OverflowError: out of range in UTC
            raise self.fail(f"{key!r} is not an ISO 8601 time: {value[:40]!r}") from None

    def money(self, parent: Mapping[str, Any], key: str, currency: list[str]) -> Decimal | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"{key!r} is not a Money object")
        return self.amount(value, currency)

    def amount(self, money: Mapping[str, Any], currency: list[str]) -> Decimal:
        raw = money.get("amount")
        code = money.get("currencyCode")
        if type(raw) is not str and type(raw) is not int and type(raw) is not float:
            raise self.fail("a Money value lacks amount or currencyCode")
        if type(code) is not str or not code:
            raise self.fail("a Money value lacks amount or currencyCode")
        text = raw if type(raw) is str else str(raw)
        plain = _PLAIN_AMOUNT.fullmatch(text)
        if not plain and not _DECIMAL.fullmatch(text):
            if text.lower().lstrip("+-").startswith(("nan", "snan", "inf")):
                raise self.fail(f"amount {text[:40]!r} is not a finite number")
            raise self.fail(f"amount {text[:40]!r} is not a decimal number")
        if currency and currency[0] != code:
            raise self.fail(f"mixed currencies {currency[0]} and {code[:40]!r}")
        if not currency:
            if not _CURRENCY.fullmatch(code):
                raise self.fail(f"currencyCode {code[:40]!r} is not a three-letter code")
            currency.append(code)
        if plain:  # in range, at most four decimals
            return Decimal(text)
        return self.in_range(Decimal(text), "amount")

    def in_range(self, number: Decimal, what: str) -> Decimal:
        """``number`` if it can be stored exactly (``NUMERIC(18, 4)``)."""
        if not -MAX_AMOUNT < number < MAX_AMOUNT:
            raise self.fail(f"{what} {number:.6g} is out of range")
        if number.quantize(_AMOUNT_STEP) != number:
            raise self.fail(f"{what} {str(number)[:40]} has more than four decimals")
        return number


def _window(reader: _Reader, parent: Mapping[str, Any], key: str) -> tuple[Any, Any]:
    window = reader.obj(parent, key)
    return reader.time(window, "earliestDateTime"), reader.time(window, "latestDateTime")


def _breakdowns(
    reader: _Reader, proceeds: Mapping[str, Any], currency: list[str]
) -> dict[str, Decimal]:
    """Sum the item proceeds breakdowns by type; TAX also split into item and shipping."""
    sums: dict[str, Decimal] = {}
    entries = proceeds.get("breakdowns")
    if not entries:
        return sums
    if type(entries) is not list:
        raise reader.fail("proceeds 'breakdowns' is not a list")
    amount = reader.amount
    for entry in entries:
        if type(entry) is not dict:
            raise reader.fail("a proceeds breakdown is not an object")
        kind = entry.get("type")
        if type(kind) is not str or not kind:
            raise reader.fail("missing 'type'")
        subtotal = entry.get("subtotal")
        if type(subtotal) is not dict:
            raise reader.fail("missing 'subtotal'")
        value = amount(subtotal, currency)
        sums[kind] = sums[kind] + value if kind in sums else value
        if kind == "TAX":
            details = entry.get("detailedBreakdowns") or []
            if type(details) is not list:
                raise reader.fail("'detailedBreakdowns' is not a list")
            for detail in details:
                if type(detail) is not dict:
                    continue
                subtype = detail.get("subtype")
                part = detail.get("value")
                if subtype and type(part) is dict:
                    if type(subtype) is not str:
                        raise reader.fail("'subtype' is not a string")
                    key = "TAX:" + subtype
                    value = amount(part, currency)
                    sums[key] = sums[key] + value if key in sums else value
    return sums


def _item(reader: _Reader, raw: Any, status: str, currency: list[str]) -> ItemRecord:
    if type(raw) is not dict:
        raise reader.fail("an order item is not an object")
    item_id = reader.text(raw, "orderItemId", True, MAX_LENGTHS["order_item_id"]) or ""
    ordered = reader.integer(raw, "quantityOrdered", required=True) or 0
    product = reader.obj(raw, "product", required=True)
    price = reader.obj(product, "price")
    fulfillment = reader.obj(raw, "fulfillment")
    shipped = reader.integer(fulfillment, "quantityFulfilled") if fulfillment else None
    if shipped is None:
        shipped = ordered if status == "Shipped" else 0
    proceeds = reader.obj(raw, "proceeds")
    sums = _breakdowns(reader, proceeds, currency) if proceeds else {}
    unit_price = reader.money(price, "unitPrice", currency) if price else None
    item_price = sums.get("ITEM")
    if item_price is None and unit_price is not None:
        item_price = reader.in_range(unit_price * ordered, "unit price times quantity")
    item_tax = sums.get("TAX:ITEM")
    shipping_tax = sums.get("TAX:SHIPPING")
    if item_tax is None and shipping_tax is None and "TAX" in sums:
        item_tax = sums["TAX"]
    for kind, value in sums.items():
        if not -MAX_AMOUNT < value < MAX_AMOUNT:  # sums of amounts: four decimals at most
            reader.in_range(value, f"the sum of the {kind} breakdowns")
    total = reader.money(proceeds, "proceedsTotal", currency) if proceeds else None
    if total is None and sums:
        total = sum((v for k, v in sums.items() if ":" not in k), Decimal(0))
        reader.in_range(total, "the item's proceeds")
    cancellation = reader.obj(raw, "cancellation")
    if cancellation:
        request = reader.obj(cancellation, "cancellationRequest")
        execution = reader.obj(cancellation, "cancellationExecution")
    else:
        request = execution = _EMPTY
    condition = reader.obj(product, "condition")
    return ItemRecord(
        order_item_id=item_id,
        asin=reader.text(product, "asin", limit=MAX_LENGTHS["asin"]),
        seller_sku=reader.text(product, "sellerSku", limit=MAX_LENGTHS["seller_sku"]),
        title=reader.text(product, "title"),
        condition=(
            reader.text(condition, "conditionType", limit=MAX_LENGTHS["condition"])
            if condition
            else None
        ),
        quantity_ordered=ordered,
        quantity_shipped=min(shipped, ordered),
        unit_price=unit_price,
        item_price=item_price,
        shipping_price=sums.get("SHIPPING"),
        item_tax=item_tax,
        shipping_tax=shipping_tax,
        discount=sums.get("DISCOUNT"),
        total=total,
        buyer_cancel_requested=request.get("requester") == "BUYER",
        buyer_cancel_reason=reader.text(request, "cancelReason") if request else None,
        cancelled_by=(
            reader.text(execution, "cancelledBy", limit=MAX_LENGTHS["cancelled_by"])
            if execution
            else None
        ),
    )


_ADDRESS_FIELDS = (
    "name",
    "companyName",
    "addressLine1",
    "addressLine2",
    "addressLine3",
    "city",
    "districtOrCounty",
    "stateOrRegion",
    "municipality",
    "postalCode",
    "countryCode",
    "phone",
    "addressType",
)
_BUYER_FIELDS = ("buyerName", "buyerEmail", "buyerCompanyName", "buyerPurchaseOrderNumber")


def _strings(source: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, str] | None:
    picked = {k: v for k in fields if isinstance(v := source.get(k), str) and v}
    return picked or None


def order_id_of(raw: Any) -> str | None:
    """The ``orderId`` of a raw order if :func:`parse_order` would take it, else ``None``
    (to name an order that cannot be read)."""
    if not isinstance(raw, dict):
        return None
    try:
        return _Reader(None).text(raw, "orderId", True, MAX_LENGTHS["amazon_order_id"])
    except MalformedResponseError:
        return None


def parse_order(raw: Any, *, operation: str | None = None) -> OrderRecord:
    """Parse one Orders v2026-01-01 ``Order`` object into an :class:`OrderRecord`."""
    reader = _Reader(operation)
    if not isinstance(raw, dict):
        raise reader.fail("an order is not an object")
    reader.order_id = reader.text(raw, "orderId", True, MAX_LENGTHS["amazon_order_id"])
    fulfillment = reader.obj(raw, "fulfillment", required=True)
    amazon_status = reader.text(fulfillment, "fulfillmentStatus", required=True) or ""
    status = STATUS_FROM_AMAZON.get(amazon_status)
    if status is None:
        raise reader.fail(f"unknown fulfillmentStatus {amazon_status[:40]!r}")
    channel = reader.obj(raw, "salesChannel", required=True)
    raw_items = raw.get("orderItems")
    if not isinstance(raw_items, list):
        raise reader.fail("missing 'orderItems'")
    currency: list[str] = []
    proceeds = reader.obj(raw, "proceeds")
    order_total = reader.money(proceeds, "grandTotal", currency)
    items = tuple(_item(reader, entry, status, currency) for entry in raw_items)
    ids = [item.order_item_id for item in items]
    if len(set(ids)) != len(ids):
        raise reader.fail("duplicate orderItemId")
    if sum(item.quantity_ordered for item in items) > MAX_QUANTITY:
        raise reader.fail(f"the items' quantities add up to more than {MAX_QUANTITY}")
    if order_total is None and items and all(item.total is not None for item in items):
        order_total = sum((item.total for item in items if item.total is not None), Decimal(0))
        reader.in_range(order_total, "the order's proceeds")
    aliases = raw.get("orderAliases") or []
    if not isinstance(aliases, list):
        raise reader.fail("'orderAliases' is not a list")
    seller_order_id = next(
        (
            reader.check_text(a.get("aliasId"), "aliasId", MAX_LENGTHS["seller_order_id"])
            for a in aliases
            if isinstance(a, dict) and a.get("aliasType") == "SELLER_ORDER_ID"
        ),
        None,
    )
    programs = raw.get("programs") or []
    if not isinstance(programs, list):
        raise reader.fail("'programs' is not a list of strings")
    for program in programs:
        reader.check_text(program, "programs")
    if len(",".join(programs)) > MAX_LENGTHS["programs"]:
        raise reader.fail(f"'programs' are longer than {MAX_LENGTHS['programs']} characters")
    recipient = reader.obj(raw, "recipient")
    address = _strings(reader.obj(recipient, "deliveryAddress"), _ADDRESS_FIELDS)
    ship_country = (address or {}).get("countryCode")
    if ship_country is not None:
        reader.check_text(ship_country, "countryCode", MAX_LENGTHS["ship_country"])
    ship_by = _window(reader, fulfillment, "shipByWindow")
    deliver_by = _window(reader, fulfillment, "deliverByWindow")
    fulfilled_by = reader.text(fulfillment, "fulfilledBy")
    channel_code = CHANNEL_FROM_AMAZON.get(fulfilled_by or "", fulfilled_by)
    if channel_code is not None and len(channel_code) > MAX_LENGTHS["fulfillment_channel"]:
        raise reader.fail(f"'fulfilledBy' {channel_code[:40]!r} is not AMAZON or MERCHANT")
    purchased_at = reader.time(raw, "createdTime", required=True)
    updated_at = reader.time(raw, "lastUpdatedTime", required=True)
    assert purchased_at is not None and updated_at is not None
    text = reader.text
    return OrderRecord(
        amazon_order_id=reader.order_id or "",
        seller_order_id=seller_order_id,
        purchased_at=purchased_at,
        amazon_updated_at=updated_at,
        status=status,
        amazon_status=amazon_status,
        fulfillment_channel=channel_code,
        service_level=text(
            fulfillment, "fulfillmentServiceLevel", limit=MAX_LENGTHS["service_level"]
        ),
        marketplace_id=text(channel, "marketplaceId", limit=MAX_LENGTHS["marketplace_id"]),
        sales_channel=text(channel, "marketplaceName", limit=MAX_LENGTHS["sales_channel"])
        or text(channel, "channelName", limit=MAX_LENGTHS["sales_channel"]),
        programs=tuple(programs),
        earliest_ship_at=ship_by[0],
        latest_ship_at=ship_by[1],
        earliest_delivery_at=deliver_by[0],
        latest_delivery_at=deliver_by[1],
        currency=currency[0] if currency else None,
        order_total=order_total,
        ship_country=ship_country,
        buyer=_strings(reader.obj(raw, "buyer"), _BUYER_FIELDS),
        shipping_address=address,
        items=items,
    )
