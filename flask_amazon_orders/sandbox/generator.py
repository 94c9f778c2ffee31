"""Make realistic orders: one from a control-API spec, or thousands at once.

Order ids use Amazon's 3-7-7 digit format, order item ids have 14 digits, names
and addresses follow the marketplace's country, and taxes use the country's
standard rate (Germany: 19 %). :meth:`OrderFactory.generate` is written for speed:
10,000 orders of about three items each take a fraction of a second.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .marketplaces import DEFAULT_CATALOG, MARKETPLACES, Locale, Marketplace, locale_for
from .orders import (
    AMAZON,
    CANCEL_REASONS,
    CANCELLED,
    FULFILLED_BY,
    MERCHANT,
    PARTIALLY_SHIPPED,
    PENDING,
    PENDING_AVAILABILITY,
    SERVICE_LEVELS,
    SHIPPED,
    STATUSES,
    UNFULFILLABLE,
    UNSHIPPED,
    Order,
    OrderItem,
)
from .util import currency_exponent, parse_iso, to_minor

if TYPE_CHECKING:
    from .state import Seller

ORDER_ID_RE = re.compile(r"^\d{3}-\d{7}-\d{7}$")
ORDER_ITEM_ID_RE = re.compile(r"^\d{14}$")

#: Default status mix of generated orders.
DEFAULT_STATUS_WEIGHTS: dict[str, float] = {
    UNSHIPPED: 0.36,
    SHIPPED: 0.42,
    PENDING: 0.08,
    CANCELLED: 0.07,
    PARTIALLY_SHIPPED: 0.07,
}

BUYER_CANCEL_REASONS = (
    "Order placed by mistake",
    "Found a better price elsewhere",
    "Delivery time is too long",
    "Need to change the shipping address",
    "No longer needed",
)

_MINUTE = 60_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

#: How long after creation an order in each status was last changed: (min, max) in ms.
_UPDATE_DELAY = {
    PENDING_AVAILABILITY: (0, _MINUTE),
    PENDING: (0, _MINUTE),
    UNSHIPPED: (_MINUTE, 30 * _MINUTE),
    PARTIALLY_SHIPPED: (4 * _HOUR, 36 * _HOUR),
    SHIPPED: (6 * _HOUR, 48 * _HOUR),
    CANCELLED: (10 * _MINUTE, 24 * _HOUR),
    UNFULFILLABLE: (_HOUR, 24 * _HOUR),
}


class SpecError(ValueError):
    """A control-API order or generator specification is invalid."""


class ConflictError(SpecError):
    """The object to create exists already."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A product a generated order can contain. ``price`` in minor units."""

    sku: str
    title: str
    price: int
    asin: str


class OrderFactory:
    """Builds :class:`~.orders.Order` objects with unique ids.

    :param rng: the random generator (seeded by the sandbox's ``seed``).
    :param used_order_ids: ids already taken; new ids are added to it.
    :param used_item_ids: order item ids already taken; new ids are added to it.
    """

    def __init__(
        self, rng: random.Random, used_order_ids: set[str], used_item_ids: set[str]
    ) -> None:
        self.rng = rng
        self.used_order_ids = used_order_ids
        self.used_item_ids = used_item_ids

    # -- ids -------------------------------------------------------------------------------

    def order_id(self, marketplace: Marketplace, rng: random.Random | None = None) -> str:
        """A new, unused 3-7-7 order id typical of ``marketplace``."""
        rng = rng or self.rng
        while True:
            value = (
                f"{rng.choice(marketplace.order_prefixes)}-"
                f"{rng.randrange(10_000_000):07d}-{rng.randrange(10_000_000):07d}"
            )
            if value not in self.used_order_ids:
                self.used_order_ids.add(value)
                return value

    def item_id(self, rng: random.Random | None = None) -> str:
        """A new, unused 14-digit order item id."""
        rng = rng or self.rng
        while True:
            value = str(rng.randrange(10**13, 10**14))
            if value not in self.used_item_ids:
                self.used_item_ids.add(value)
                return value

    def asin(self, rng: random.Random | None = None) -> str:
        """A random ASIN (``B0`` and eight letters or digits)."""
        rng = rng or self.rng
        return "B0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))

    # -- people and places -----------------------------------------------------------------

    def person(
        self, marketplace: Marketplace, rng: random.Random | None = None, *, phone: bool = True
    ) -> tuple[str, str, dict[str, str]]:
        """``(name, email, delivery address)`` of a made-up buyer in ``marketplace``."""
        rng = rng or self.rng
        loc = locale_for(marketplace.country)
        name = f"{rng.choice(loc.first_names)} {rng.choice(loc.last_names)}"
        email = (
            "".join(rng.choices(string.ascii_lowercase + string.digits, k=15))
            + "@marketplace."
            + marketplace.name.lower()
        )
        address = self.address(loc, marketplace.country, name, rng)
        if phone:
            address["phone"] = loc.phone_prefix + str(rng.randrange(1_000_000, 9_999_999))
        return name, email, address

    @staticmethod
    def address(loc: Locale, country: str, name: str, rng: random.Random) -> dict[str, str]:
        """A made-up ``CustomerAddress`` for ``name``."""
        street = rng.choice(loc.streets)
        number = str(rng.randint(1, 120))
        line1 = f"{number} {street}" if loc.number_first else f"{street} {number}"
        city, postal_code, region = rng.choice(loc.cities)
        return {
            "name": name,
            "addressLine1": line1,
            "city": city,
            "stateOrRegion": region,
            "postalCode": postal_code,
            "countryCode": country,
            "addressType": "RESIDENTIAL",
        }

    def ship_from(self, seller_name: str, marketplace: Marketplace) -> dict[str, str]:
        """A warehouse address for a seller (``MerchantAddress``)."""
        loc = locale_for(marketplace.country)
        address = self.address(loc, marketplace.country, seller_name, self.rng)
        address.pop("addressType")
        return address

    def package(
        self, marketplace: Marketplace, ship_time: int, now: int, rng: random.Random | None = None
    ) -> tuple[str, str, str, str]:
        """``(carrier, service, tracking number, package status)`` of a parcel."""
        rng = rng or self.rng
        carrier, service, length = rng.choice(locale_for(marketplace.country).carriers)
        if carrier == "UPS":
            tracking = "1Z" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=16))
        else:
            tracking = "".join(rng.choices(string.digits, k=length))
        status = "DELIVERED" if now - ship_time > 2 * _DAY else "IN_TRANSIT"
        return carrier, service, tracking, status

    # -- catalog ---------------------------------------------------------------------------

    def catalog(self, marketplace: Marketplace, entries: Any = None) -> list[CatalogEntry]:
        """The products to draw from: the host's ``entries`` or the default catalog."""
        currency = marketplace.currency
        if entries is None:
            result = []
            for sku, title_de, title_en, price, asin in DEFAULT_CATALOG:
                title = title_de if marketplace.language == "de" else title_en
                value = Decimal(price) * Decimal(str(marketplace.price_factor))
                if currency_exponent(currency) == 0:
                    value = value.quantize(Decimal(1))
                result.append(CatalogEntry(sku, title, to_minor(value, currency), asin))
            return result
        if not isinstance(entries, list) or not entries:
            raise SpecError("catalog must be a non-empty list of {sku, title, price, asin?}")
        result = []
        for entry in entries:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("sku"), str):
                raise SpecError("every catalog entry needs a string 'sku'")
            try:
                minor = to_minor(entry.get("price", "19.99"), currency)
            except ValueError as exc:
                raise SpecError(f"catalog entry {entry['sku']!r}: {exc}") from None
            if minor < 0:
                raise SpecError(f"catalog entry {entry['sku']!r}: the price must not be negative")
            result.append(
                CatalogEntry(
                    entry["sku"],
                    str(entry.get("title") or entry["sku"]),
                    minor,
                    str(entry.get("asin") or self.asin()),
                )
            )
        return result

    # -- one order from a spec -------------------------------------------------------------

    def from_spec(self, seller: Seller, spec: Mapping[str, Any], now: int) -> Order:
        """Build an order from a ``POST /_sandbox/orders`` body.

        :raises SpecError: with a message naming the bad field.
        """
        marketplace = seller.marketplace
        if spec.get("marketplace_id") is not None:
            marketplace = MARKETPLACES.get(str(spec["marketplace_id"]))  # type: ignore[assignment]
            if marketplace is None:
                raise SpecError(f"unknown marketplace_id {spec['marketplace_id']!r}")
        currency = str(spec.get("currency") or marketplace.currency)
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise SpecError("currency must be a three-letter ISO 4217 code")

        order_id = spec.get("order_id")
        if order_id is not None:
            if not isinstance(order_id, str) or not ORDER_ID_RE.match(order_id):
                raise SpecError("order_id must be in 3-7-7 format, e.g. 302-1234567-1234567")
            if order_id in self.used_order_ids:
                raise ConflictError(f"order {order_id} already exists")

        status = _choice(spec, "status", STATUSES, UNSHIPPED)
        fulfilled_by = _choice(spec, "fulfilled_by", FULFILLED_BY, MERCHANT)
        service_level = _choice(spec, "service_level", SERVICE_LEVELS, "STANDARD")
        created = _time(spec, "created_time", now)
        last_updated = _time(spec, "last_updated_time", created if "created_time" in spec else now)
        if last_updated < created:
            raise SpecError("last_updated_time must not be before created_time")

        default_tax = marketplace.tax_bp
        items_spec = spec.get("items")
        catalog = self.catalog(marketplace)
        items: list[OrderItem] = []
        if items_spec is None:
            for entry in self.rng.sample(catalog, self.rng.randint(1, 3)):
                items.append(
                    OrderItem(
                        "", entry.sku, entry.asin, entry.title, 1, entry.price, 0, default_tax
                    )
                )
        else:
            if not isinstance(items_spec, list) or not items_spec:
                raise SpecError("items must be a non-empty list")
            by_sku = {entry.sku: entry for entry in catalog}
            for index, raw in enumerate(items_spec):
                items.append(self._item(raw, index, currency, default_tax, by_sku))

        explicit_ids = [item.order_item_id for item in items if item.order_item_id]
        if len(set(explicit_ids)) != len(explicit_ids):
            raise SpecError("order_item_id values must be unique")
        cancel_reason = spec.get("cancel_reason")
        if cancel_reason is not None and cancel_reason not in CANCEL_REASONS:
            raise SpecError(f"cancel_reason must be one of {', '.join(CANCEL_REASONS)}")
        cancelled_by = spec.get("cancelled_by")
        if cancelled_by is not None and cancelled_by not in ("BUYER", "MERCHANT", "AMAZON"):
            raise SpecError("cancelled_by must be BUYER, MERCHANT or AMAZON")
        if spec.get("address") is not None and not isinstance(spec["address"], Mapping):
            raise SpecError("address must be an object of CustomerAddress fields")
        # The spec is valid: reserve the ids.
        if order_id is None:
            order_id = self.order_id(marketplace)
        self.used_order_ids.add(order_id)
        for item in items:
            if item.order_item_id:
                self.used_item_ids.add(item.order_item_id)
            else:
                item.order_item_id = self.item_id()

        name, email, address = self.person(marketplace, phone=fulfilled_by == MERCHANT)
        buyer_name = str(spec.get("buyer_name") or name)
        address["name"] = buyer_name
        if spec.get("address") is not None:
            address.update({str(k): str(v) for k, v in spec["address"].items()})

        order = Order(
            order_id=order_id,
            seller_id=seller.seller_id,
            marketplace=marketplace,
            currency=currency,
            created=created,
            last_updated=last_updated,
            status=UNSHIPPED,
            fulfilled_by=fulfilled_by,
            items=items,
            buyer_name=buyer_name,
            buyer_email=str(spec.get("buyer_email") or email),
            address=address,
            service_level=service_level,
            buyer_company=spec.get("buyer_company") or None,
            seller_order_id=spec.get("seller_order_id") or None,
            is_prime=bool(spec.get("is_prime", fulfilled_by == AMAZON)),
            is_business=bool(spec.get("is_business", bool(spec.get("buyer_company")))),
            ship_from=seller.ship_from,
        )
        reason = spec.get("buyer_cancel_reason")
        if reason is not None:
            for item in items:
                item.cancel_request_reason = str(reason)
        package = None
        if status in (SHIPPED, PARTIALLY_SHIPPED) and fulfilled_by == MERCHANT:
            package = self.package(marketplace, last_updated, now)
        order.apply_status(
            status,
            at=last_updated,
            cancelled_by=cancelled_by,
            cancel_reason=cancel_reason,
            package=package,
        )
        return order

    def _item(
        self,
        raw: Any,
        index: int,
        currency: str,
        default_tax: int,
        by_sku: Mapping[str, CatalogEntry],
    ) -> OrderItem:
        where = f"items[{index}]"
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where} must be an object")
        sku = raw.get("sku")
        if not isinstance(sku, str) or not sku:
            raise SpecError(f"{where}.sku is required")
        known = by_sku.get(sku)
        quantity = raw.get("quantity", 1)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise SpecError(f"{where}.quantity must be a positive integer")
        try:
            default_price = (
                Decimal(known.price).scaleb(-currency_exponent(currency)) if known else "19.99"
            )
            unit_price = to_minor(raw.get("unit_price", default_price), currency)
            shipping = to_minor(raw.get("shipping_price", 0), currency)
            discount = to_minor(raw.get("promotion_discount", 0), currency)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
        if unit_price < 0 or shipping < 0 or discount < 0:
            raise SpecError(f"{where}: amounts must not be negative")
        tax_bp = default_tax
        if raw.get("tax_rate") is not None:
            try:
                rate = Decimal(str(raw["tax_rate"]))
            except InvalidOperation:
                raise SpecError(f"{where}.tax_rate must be a number such as 0.19") from None
            if not rate.is_finite() or not 0 <= rate <= 1:
                raise SpecError(f"{where}.tax_rate is a fraction between 0 and 1, e.g. 0.19")
            tax_bp = int((rate * 10000).to_integral_value())
        item_id = raw.get("order_item_id")
        if item_id is None:
            item_id = ""  # assigned once the whole spec is valid
        elif not isinstance(item_id, str) or not ORDER_ITEM_ID_RE.match(item_id):
            raise SpecError(f"{where}.order_item_id must have 14 digits")
        elif item_id in self.used_item_ids:
            raise ConflictError(f"{where}.order_item_id {item_id} already exists")
        promotion_id = raw.get("promotion_id")
        if discount and not promotion_id:
            promotion_id = f"PROMO-{self.rng.randrange(10**8):08d}"
        return OrderItem(
            order_item_id=item_id,
            sku=sku,
            asin=str(raw.get("asin") or (known.asin if known else self.asin())),
            title=str(raw.get("title") or (known.title if known else sku)),
            quantity=quantity,
            unit_price=unit_price,
            shipping_price=shipping,
            tax_bp=tax_bp,
            promotion_id=str(promotion_id) if promotion_id else None,
            discount=discount,
            condition=str(raw.get("condition") or "NEW"),
        )

    # -- many orders -----------------------------------------------------------------------

    def generate(
        self, seller: Seller, count: int, options: Mapping[str, Any], now: int
    ) -> list[Order]:
        """Generate ``count`` orders for ``seller`` (see ``POST /_sandbox/orders/generate``).

        :raises SpecError: if an option is invalid.
        """
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1_000_000:
            raise SpecError("count must be an integer between 0 and 1000000")
        seed = options.get("seed")
        rng = random.Random(seed) if seed is not None else random.Random(self.rng.random())
        marketplace = seller.marketplace
        currency = marketplace.currency
        end = _time(options, "end", now - 5 * _MINUTE)
        start = _time(options, "start", end - 7 * _DAY)
        if start > end:
            raise SpecError("start must not be after end")
        statuses, weights = _weights(options.get("statuses"))
        afn_share = _fraction(options, "afn_share", 0.2)
        cancel_share = _fraction(options, "buyer_cancel_share", 0.01)
        average = options.get("items_per_order", 3)
        if not isinstance(average, int | float) or isinstance(average, bool):
            raise SpecError("items_per_order must be a number between 1 and 6")
        if not 1 <= average <= 6:
            raise SpecError("items_per_order must be a number between 1 and 6")
        catalog = self.catalog(marketplace, options.get("catalog"))
        loc = locale_for(marketplace.country)
        country = marketplace.country
        tax_bp = marketplace.tax_bp
        email_domain = "@marketplace." + marketplace.name.lower()
        ship_from = seller.ship_from
        factor = marketplace.price_factor
        shipping_prices = [
            0,
            0,
            0,
            to_minor(round(3.99 * factor, 2), currency),
            to_minor(round(4.99 * factor, 2), currency),
        ]
        alnum = string.ascii_lowercase + string.digits
        span = end - start

        rand = rng.random
        choice = rng.choice
        randrange = rng.randrange
        chosen_statuses = rng.choices(statuses, weights, k=count)
        orders: list[Order] = []
        for status in chosen_statuses:
            afn = rand() < afn_share
            fulfilled_by = AMAZON if afn else MERCHANT
            created = start + int(rand() * span)
            created -= created % 1000
            n_items = min(6, max(1, round(rng.gauss(average, 1.0))))
            if afn and status in (UNSHIPPED, PARTIALLY_SHIPPED):
                status = SHIPPED
            elif status == PARTIALLY_SHIPPED and n_items < 2:
                status = UNSHIPPED
            low, high = _UPDATE_DELAY[status]
            updated = created + low + int(rand() * (high - low))
            if updated > end:
                updated = created + int(rand() * (end - created))
            updated -= updated % 1000
            updated = max(updated, created)

            products = (
                rng.sample(catalog, n_items)
                if n_items <= len(catalog)
                else [choice(catalog) for _ in range(n_items)]
            )
            items = []
            for product in products:
                r = rand()
                quantity = 1 if r < 0.75 else 2 if r < 0.93 else 3
                item = OrderItem(
                    self.item_id(rng),
                    product.sku,
                    product.asin,
                    product.title,
                    quantity,
                    product.price,
                    0 if afn else choice(shipping_prices),
                    tax_bp,
                )
                if rand() < 0.08:
                    item.promotion_id = f"{country}-PROMO-{randrange(10**6):06d}"
                    item.discount = (product.price * quantity) // 10
                if country == "JP":
                    item.points = max(1, product.price * quantity // 100)
                items.append(item)

            name = f"{choice(loc.first_names)} {choice(loc.last_names)}"
            address = self.address(loc, country, name, rng)
            if not afn:
                address["phone"] = loc.phone_prefix + str(randrange(1_000_000, 9_999_999))
            business = rand() < 0.05
            company = None
            if business:
                company = f"{choice(loc.last_names)} {choice(('GmbH', 'AG', 'KG', 'Ltd'))}"
                address["companyName"] = company
                address["addressType"] = "COMMERCIAL"
            r = rand()
            order = Order(
                order_id=self.order_id(marketplace, rng),
                seller_id=seller.seller_id,
                marketplace=marketplace,
                currency=currency,
                created=created,
                last_updated=updated,
                status=status,
                fulfilled_by=fulfilled_by,
                items=items,
                buyer_name=name,
                buyer_email="".join(rng.choices(alnum, k=15)) + email_domain,
                address=address,
                service_level="STANDARD" if r < 0.8 else "EXPEDITED" if r < 0.92 else "NEXT_DAY",
                buyer_company=company,
                is_prime=rand() < (0.6 if afn else 0.1),
                is_business=business,
                ship_from=ship_from,
            )
            if status in (PENDING, UNSHIPPED) and rand() < cancel_share:
                reason = choice(BUYER_CANCEL_REASONS)
                for item in items:
                    item.cancel_request_reason = reason
            if status != UNSHIPPED:
                package = None
                if status in (SHIPPED, PARTIALLY_SHIPPED) and not afn:
                    package = self.package(marketplace, updated, now, rng)
                cancelled_by = None
                if status == CANCELLED:
                    cancelled_by = "BUYER" if rand() < 0.6 else "MERCHANT"
                order.apply_status(
                    status,
                    at=updated,
                    cancelled_by=cancelled_by,
                    cancel_reason="BUYER_CANCELLED" if cancelled_by == "BUYER" else None,
                    package=package,
                )
            orders.append(order)
        return orders


def _choice(spec: Mapping[str, Any], key: str, allowed: Sequence[str], default: str) -> str:
    value = spec.get(key)
    if value is None:
        return default
    if value not in allowed:
        raise SpecError(f"{key} must be one of {', '.join(allowed)}")
    return str(value)


def _time(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key)
    if value is None:
        return default
    parsed = parse_iso(value) if isinstance(value, str) else None
    if parsed is None:
        raise SpecError(f"{key} must be an ISO 8601 date-time such as 2025-01-31T10:00:00Z")
    return parsed


def _fraction(spec: Mapping[str, Any], key: str, default: float) -> float:
    value = spec.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise SpecError(f"{key} must be a number between 0 and 1")
    return float(value)


def _weights(value: Any) -> tuple[list[str], list[float]]:
    if value is None:
        value = DEFAULT_STATUS_WEIGHTS
    if isinstance(value, list):
        value = dict.fromkeys(value, 1.0)
    if not isinstance(value, Mapping) or not value:
        raise SpecError("statuses must be a list of statuses or an object of status: weight")
    for status, weight in value.items():
        if status not in STATUSES:
            raise SpecError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            raise SpecError(f"the weight of {status} must be a non-negative number")
    if not any(value.values()):
        raise SpecError("at least one status weight must be positive")
    return list(value), [float(w) for w in value.values()]
