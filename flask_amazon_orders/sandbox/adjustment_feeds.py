"""The sandbox processes payment adjustments like Amazon: ``POST_PAYMENT_ADJUSTMENT_DATA``.

Each ``OrderAdjustment`` message is checked as the schema and Amazon's rules have
it (SP-API-NOTES §3.4): an ``AmazonOrderID`` of the seller, elements in the order
of the schema, one or more ``AdjustedItem`` with the 14-digit
``AmazonOrderItemCode`` of an item of that order, an optional
``MerchantAdjustmentItemID`` (1 to 50 characters), an ``AdjustmentReason`` of the
enumeration, ``ItemPriceAdjustments`` components of a known ``Type`` with an
``Amount`` of exactly two decimals (its optional ``currency`` attribute must be the
order's currency), and an optional positive ``QuantityCancelled``.

Then the rules: the order must not be cancelled; units can be cancelled only with
the reason ``NoInventory`` or ``CustomerCancel`` and only as many as are neither
shipped nor cancelled yet; a component that refunds a charge (``Principal``: the
item price, ``Tax``: the tax on it, ``Shipping``, ``ShippingTax``, and the gift
wrap and COD charges the sandbox never makes) must not be negative and, with the
earlier adjustments of the item, must not refund more than the buyer was
charged; and the net amount of each adjusted item must be a credit to the buyer.
Positive amounts are refunds, as in the only example the notes found.

A message with any error is rejected as a whole (an ``Error`` result with its
``MessageID``); nothing of it is applied. An accepted message refunds and cancels
through :meth:`~.state.SandboxState.record_adjustments`: the items remember what
was refunded and how many units were cancelled, an item whose every unit is
cancelled gets a ``cancellationExecution``, the order becomes SHIPPED when only
shipped units remain or CANCELLED when every unit is cancelled, and its
``lastUpdatedTime`` moves. A ``MerchantAdjustmentItemID`` already applied to the
item with the same content is not applied again (a ``Warning`` result); with
other content it is an error.

``MerchantOrderID`` and ``MerchantOrderItemID`` are refused as unsupported: the
sandbox knows orders and items only by Amazon's ids.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from .feeds import FEED_PROCESSORS, ProcessingResult, xml_feed_processor
from .orders import CANCELLED, Adjustment, Component, Order, OrderItem
from .util import currency_exponent, format_amount, now_ms

if TYPE_CHECKING:
    from .state import SandboxState, Seller

#: ``AdjustmentReason`` (OrderAdjustment.xsd, 18 values).
ADJUSTMENT_REASONS = (
    "NoInventory",
    "CustomerReturn",
    "GeneralAdjustment",
    "CouldNotShip",
    "DifferentItem",
    "Abandoned",
    "CustomerCancel",
    "PriceError",
    "ProductOutofStock",
    "CustomerAddressIncorrect",
    "Exchange",
    "Other",
    "CarrierCreditDecision",
    "RiskAssessmentInformationNotValid",
    "CarrierCoverageFailure",
    "TransactionRecord",
    "Undeliverable",
    "RefusedDelivery",
)
#: The reasons that may cancel units (``QuantityCancelled``), with the Orders API
#: ``cancelReason`` an item cancelled in full shows.
CANCEL_REASONS = {"NoInventory": "NO_INVENTORY", "CustomerCancel": "BUYER_CANCELLED"}
#: ``ItemPriceAdjustments/Component/Type`` (16 values).
COMPONENT_TYPES = (
    "Principal",
    "Shipping",
    "Tax",
    "ShippingTax",
    "RestockingFee",
    "RestockingFeeTax",
    "GiftWrap",
    "GiftWrapTax",
    "Surcharge",
    "ReturnShipping",
    "Goodwill",
    "ExportCharge",
    "COD",
    "CODTax",
    "Other",
    "FreeReplacementReturnShipping",
)
#: Component types that refund a charge of the order (see :meth:`.OrderItem.charged`).
REFUNDS_OF_CHARGES = frozenset(
    {"Principal", "Shipping", "Tax", "ShippingTax", "GiftWrap", "GiftWrapTax", "COD", "CODTax"}
)
#: ``PromotionAdjustments/Component/Type`` (``PromotionApplicationType``).
PROMOTION_TYPES = ("Principal", "Shipping")
ACTION_TYPES = ("Refund", "Cancel")
COD_COLLECTION_METHODS = ("DirectPayment",)
#: ``BaseCurrencyCode`` (amzn-base.xsd, 2021 copy), for the ``currency`` attribute.
CURRENCY_CODES = frozenset(
    {
        "USD",
        "GBP",
        "EUR",
        "JPY",
        "CAD",
        "CNY",
        "INR",
        "MXN",
        "BRL",
        "AUD",
        "TRY",
        "SGD",
        "SEK",
        "PLN",
        "AED",
        "SAR",
        "EGP",
    }
)

# ResultMessageCodes of the sandbox's own rules (Amazon's numbers are not published).
SCHEMA_ERROR = 5000
ORDER_NOT_FOUND = 18028
ITEM_NOT_IN_ORDER = 18029
UNSUPPORTED = 18040
ORDER_CANCELLED = 18041
QUANTITY_TOO_HIGH = 18042
CANNOT_CANCEL_UNITS = 18043
REFUND_TOO_HIGH = 18044
NOT_A_CREDIT = 18045
WRONG_CURRENCY = 18046
ID_REUSED = 18047
ALREADY_APPLIED = 18048

#: ``(element names (a choice), minOccurs, maxOccurs or None)`` of an ``xsd:sequence``.
Sequence = tuple[tuple[tuple[str, ...], int, int | None], ...]

_ORDER_SEQUENCE: Sequence = (
    (("AmazonOrderID", "MerchantOrderID"), 1, 1),
    (("ActionType",), 0, 1),
    (("CODCollectionMethod",), 0, 1),
    (("AdjustedItem",), 1, None),
)
_ITEM_SEQUENCE: Sequence = (
    (("AmazonOrderItemCode", "MerchantOrderItemID"), 1, 1),
    (("MerchantAdjustmentItemID",), 0, 1),
    (("AdjustmentReason",), 1, 1),
    (("ItemPriceAdjustments",), 0, 1),
    (("PromotionAdjustments",), 0, None),
    (("DirectPaymentAdjustments",), 0, 1),
    (("QuantityCancelled",), 0, 1),
    (("Quantity",), 0, 1),
)
_COMPONENTS_SEQUENCE: Sequence = ((("Component",), 1, None),)
_PROMOTION_SEQUENCE: Sequence = (
    (("PromotionClaimCode",), 0, 1),
    (("MerchantPromotionID",), 0, 1),
    (("Component",), 1, None),
)
_COMPONENT_SEQUENCE: Sequence = ((("Type",), 1, 1), (("Amount",), 1, 1))

_ORDER_ID = re.compile(r"^\w{3}-\w{7}-\w{7}$")
_ITEM_CODE = re.compile(r"^\d{14}$")
#: ``BaseCurrencyAmount``: a decimal with ``totalDigits`` 20 and exactly two decimals.
_AMOUNT_RE = re.compile(r"^[+-]?\d{1,18}\.\d\d$")
_POSITIVE_INTEGER_RE = re.compile(r"^\+?\d{1,20}$")


class _Rejected(Exception):
    """The message is rejected: one ``Error`` result."""

    def __init__(self, code: int, text: str, item_code: str | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.item_code = item_code


def check_sequence(element: ET.Element, sequence: Sequence) -> str | None:
    """What breaks the ``xsd:sequence`` ``sequence`` in ``element``'s children, if anything."""
    children = list(element)
    position = 0
    for names, low, high in sequence:
        count = 0
        while (
            position < len(children)
            and children[position].tag in names
            and (high is None or count < high)
        ):
            count += 1
            position += 1
        if count < low:
            found = f", found {children[position].tag}" if position < len(children) else ""
            return f"{element.tag} needs {' or '.join(names)}{found}"
    if position < len(children):
        tag = children[position].tag
        if any(tag in names for names, _low, _high in sequence):
            return f"element {tag} of {element.tag} is out of order or repeated"
        return f"unexpected element {tag} in {element.tag}"
    return None


def _sequence(element: ET.Element, sequence: Sequence, item_code: str | None = None) -> None:
    problem = check_sequence(element, sequence)
    if problem:
        raise _Rejected(SCHEMA_ERROR, f"XML schema error: {problem}.", item_code)


def _text(element: ET.Element, name: str) -> str | None:
    child = element.find(name)
    return None if child is None else (child.text or "").strip()


def _positive_integer(element: ET.Element, name: str, item_code: str) -> int | None:
    text = _text(element, name)
    if text is None:
        return None
    if not _POSITIVE_INTEGER_RE.match(text) or int(text) < 1:
        raise _Rejected(
            SCHEMA_ERROR, f"{name} must be a positive integer; got {text!r}.", item_code
        )
    return int(text)


@dataclass
class _Context:
    order: Order
    item_code: str | None = None

    def amount(self, element: ET.Element) -> int:
        """An ``Amount`` (``AdjustmentCurrencyAmount``) in minor units of the order's currency."""
        order, code = self.order, self.item_code
        text = (element.text or "").strip()
        if not _AMOUNT_RE.match(text):
            raise _Rejected(
                SCHEMA_ERROR,
                f"Invalid Amount {text!r}: an amount has exactly two decimal places, e.g. 19.99.",
                code,
            )
        currency = element.get("currency")
        if currency is not None:
            if currency not in CURRENCY_CODES:
                raise _Rejected(SCHEMA_ERROR, f"Invalid currency {currency!r} of Amount.", code)
            if currency != order.currency:
                raise _Rejected(
                    WRONG_CURRENCY,
                    f"The currency {currency} of Amount {text} is not the currency of order "
                    f"{order.order_id} ({order.currency}).",
                    code,
                )
        minor = Decimal(text).scaleb(currency_exponent(order.currency))
        if minor != minor.to_integral_value():
            raise _Rejected(
                SCHEMA_ERROR, f"The Amount {text} is not a whole number of {order.currency}.", code
            )
        return int(minor)

    def components(
        self, element: ET.Element, types: tuple[str, ...] | None
    ) -> tuple[Component, ...]:
        """The ``Component`` children of ``element`` (``types``: the allowed ``Type`` values)."""
        parts: list[Component] = []
        for component in element.findall("Component"):
            _sequence(component, _COMPONENT_SEQUENCE, self.item_code)
            kind = _text(component, "Type") or ""
            if (types is not None and kind not in types) or not kind:
                raise _Rejected(
                    SCHEMA_ERROR,
                    f"Invalid component Type {kind!r} in {element.tag}"
                    + (f"; valid types: {', '.join(types)}." if types else "."),
                    self.item_code,
                )
            amount = component.find("Amount")
            assert amount is not None
            parts.append((kind, self.amount(amount)))
        return tuple(parts)


def _parse_item(context: _Context, element: ET.Element) -> Adjustment:
    """One ``AdjustedItem``, checked on its own (schema, ids, enumerations, amounts)."""
    order = context.order
    code = _text(element, "AmazonOrderItemCode")
    context.item_code = code or None
    _sequence(element, _ITEM_SEQUENCE, code)
    if code is None:
        raise _Rejected(
            UNSUPPORTED,
            "MerchantOrderItemID is not supported by the sandbox: identify the item by its "
            "AmazonOrderItemCode.",
        )
    if not _ITEM_CODE.match(code):
        raise _Rejected(SCHEMA_ERROR, f"Invalid AmazonOrderItemCode {code!r}.", code)
    if order.item(code) is None:
        raise _Rejected(
            ITEM_NOT_IN_ORDER,
            f"The order item {code} is not part of order {order.order_id}.",
            code,
        )
    merchant_id_element = element.find("MerchantAdjustmentItemID")
    merchant_id = None
    if merchant_id_element is not None:
        # StringNotNull: a normalizedString of 1 to 50 characters.
        merchant_id = re.sub(r"[\t\n\r]", " ", merchant_id_element.text or "")
        if not 1 <= len(merchant_id) <= 50:
            raise _Rejected(
                SCHEMA_ERROR,
                f"MerchantAdjustmentItemID must have 1 to 50 characters; got {merchant_id!r}.",
                code,
            )
    reason = _text(element, "AdjustmentReason") or ""
    if reason not in ADJUSTMENT_REASONS:
        raise _Rejected(SCHEMA_ERROR, f"Invalid AdjustmentReason {reason!r}.", code)
    components: tuple[Component, ...] = ()
    prices = element.find("ItemPriceAdjustments")
    if prices is not None:
        _sequence(prices, _COMPONENTS_SEQUENCE, code)
        components = context.components(prices, COMPONENT_TYPES)
    promotions = []
    for promotion in element.findall("PromotionAdjustments"):
        _sequence(promotion, _PROMOTION_SEQUENCE, code)
        claim_code = _text(promotion, "PromotionClaimCode")
        if claim_code is not None and not 6 <= len(claim_code) <= 12:
            raise _Rejected(
                SCHEMA_ERROR,
                f"PromotionClaimCode must have 6 to 12 characters: {claim_code!r}.",
                code,
            )
        promotion_id = _text(promotion, "MerchantPromotionID")
        if promotion_id is not None and len(promotion_id) > 80:
            raise _Rejected(SCHEMA_ERROR, "MerchantPromotionID has more than 80 characters.", code)
        parts = context.components(promotion, PROMOTION_TYPES)
        promotions.append((claim_code, promotion_id, parts))
    direct: tuple[Component, ...] = ()
    direct_payments = element.find("DirectPaymentAdjustments")
    if direct_payments is not None:
        _sequence(direct_payments, _COMPONENTS_SEQUENCE, code)
        direct = context.components(direct_payments, None)
    return Adjustment(
        order_item_id=code,
        reason=reason,
        feed_id="",
        message_id="",
        received=0,
        merchant_adjustment_item_id=merchant_id,
        components=components,
        promotions=tuple(promotions),
        direct_payments=direct,
        quantity_cancelled=_positive_integer(element, "QuantityCancelled", code) or 0,
        quantity=_positive_integer(element, "Quantity", code),
    )


def _applied(order: Order, item_id: str, merchant_id: str) -> Adjustment | None:
    for adjustment in order.adjustments:
        if (
            adjustment.order_item_id == item_id
            and adjustment.merchant_adjustment_item_id == merchant_id
        ):
            return adjustment
    return None


def _check_rules(
    order: Order, item: OrderItem, adjustment: Adjustment, earlier: list[Adjustment]
) -> None:
    """Amazon's rules for one adjusted item; ``earlier``: accepted before it in the message."""
    code = item.order_item_id
    cur = order.currency
    same_item = [a for a in earlier if a.order_item_id == code]
    cancelled = adjustment.quantity_cancelled
    if cancelled:
        if adjustment.reason not in CANCEL_REASONS:
            raise _Rejected(
                CANNOT_CANCEL_UNITS,
                f"QuantityCancelled needs the AdjustmentReason NoInventory or CustomerCancel, "
                f"not {adjustment.reason}.",
                code,
            )
        open_units = item.quantity_open - sum(a.quantity_cancelled for a in same_item)
        if cancelled > open_units:
            raise _Rejected(
                QUANTITY_TOO_HIGH,
                f"QuantityCancelled {cancelled} of order item {code} is more than its "
                f"{open_units} unshipped units not yet cancelled (ordered {item.quantity}, "
                f"shipped {item.quantity_shipped}, cancelled {item.quantity_cancelled}).",
                code,
            )
    if adjustment.quantity is not None and adjustment.quantity > item.quantity:
        raise _Rejected(
            QUANTITY_TOO_HIGH,
            f"Quantity {adjustment.quantity} of order item {code} is more than the "
            f"{item.quantity} units ordered.",
            code,
        )
    charged = item.charged()
    for kind, amount in adjustment.components:
        if kind not in REFUNDS_OF_CHARGES:
            continue
        if amount < 0:
            raise _Rejected(
                NOT_A_CREDIT,
                f"The {kind} adjustment {format_amount(amount, cur)} of order item {code} "
                "would charge the buyer; refunds are positive amounts.",
                code,
            )
        before = item.refunded.get(kind, 0) + sum(
            value for a in same_item for k, value in a.components if k == kind
        )
        if before + amount > charged[kind]:
            raise _Rejected(
                REFUND_TOO_HIGH,
                f"The {kind} refund {format_amount(amount, cur)} of order item {code} is more "
                f"than the buyer paid: {format_amount(charged[kind], cur)} charged, "
                f"{format_amount(before, cur)} refunded already.",
                code,
            )
    total = adjustment.total
    if total < 0 or (total == 0 and not cancelled):
        raise _Rejected(
            NOT_A_CREDIT,
            f"The net amount of the adjustment of order item {code} must be a credit to the "
            f"buyer; it is {format_amount(total, cur)}.",
            code,
        )


def _adjust(
    state: SandboxState, seller: Seller, message_id: str, element: ET.Element
) -> list[ProcessingResult]:
    order_id = _text(element, "AmazonOrderID")
    problem = check_sequence(element, _ORDER_SEQUENCE)
    if problem:
        raise _Rejected(SCHEMA_ERROR, f"XML schema error: {problem}.")
    if order_id is None:
        raise _Rejected(
            UNSUPPORTED,
            "MerchantOrderID is not supported by the sandbox: identify the order by its "
            "AmazonOrderID.",
        )
    if not _ORDER_ID.match(order_id):
        raise _Rejected(SCHEMA_ERROR, f"Invalid AmazonOrderID {order_id!r}.")
    action = _text(element, "ActionType")
    if action is not None and action not in ACTION_TYPES:
        raise _Rejected(SCHEMA_ERROR, f"Invalid ActionType {action!r}.")
    cod = _text(element, "CODCollectionMethod")
    if cod is not None and cod not in COD_COLLECTION_METHODS:
        raise _Rejected(SCHEMA_ERROR, f"Invalid CODCollectionMethod {cod!r}.")
    order = state.orders.get(order_id)
    if order is None or order.seller_id != seller.seller_id:
        raise _Rejected(ORDER_NOT_FOUND, f"The order {order_id} was not found for this seller.")
    context = _Context(order)
    adjustments = [_parse_item(context, item) for item in element.findall("AdjustedItem")]
    if order.status == CANCELLED:
        raise _Rejected(
            ORDER_CANCELLED, f"The order {order_id} is cancelled: it cannot be adjusted."
        )
    feed = state.feeds.processing
    received = now_ms()
    accepted: list[Adjustment] = []
    replayed: list[Adjustment] = []
    warnings: list[ProcessingResult] = []
    for adjustment in adjustments:
        adjustment.action_type = action
        code = adjustment.order_item_id
        item = order.item(code)
        assert item is not None
        merchant_id = adjustment.merchant_adjustment_item_id
        if merchant_id is not None:
            previous = _applied(order, code, merchant_id) or next(
                (
                    a
                    for a in accepted
                    if a.order_item_id == code and a.merchant_adjustment_item_id == merchant_id
                ),
                None,
            )
            if previous is not None:
                if previous.content() != adjustment.content():
                    raise _Rejected(
                        ID_REUSED,
                        f"The MerchantAdjustmentItemID {merchant_id} was already used for "
                        f"another adjustment of order item {code}.",
                        code,
                    )
                replayed.append(previous)
                warnings.append(
                    ProcessingResult(
                        message_id,
                        "Warning",
                        ALREADY_APPLIED,
                        f"The adjustment {merchant_id} of order item {code} was already "
                        "applied; it was not applied again.",
                        {"AmazonOrderID": order_id, "AmazonOrderItemCode": code},
                    )
                )
                continue
        _check_rules(order, item, adjustment, accepted)
        adjustment.feed_id = feed.feed_id if feed is not None else ""
        adjustment.message_id = message_id
        adjustment.received = received
        accepted.append(adjustment)
    # The whole message is valid: apply it.
    for previous in replayed:
        previous.replays += 1
    if accepted:
        state.record_adjustments(order, accepted, CANCEL_REASONS)
    return warnings


def check_adjustment(
    state: SandboxState, seller: Seller, message_id: str, element: ET.Element
) -> list[ProcessingResult]:
    """Check one OrderAdjustment and apply it (refund, cancel units)."""
    try:
        return _adjust(state, seller, message_id, element)
    except _Rejected as exc:
        info: dict[str, str] = {}
        order_id = _text(element, "AmazonOrderID")
        if order_id and exc.code != ORDER_NOT_FOUND:
            info["AmazonOrderID"] = order_id
        if exc.item_code:
            info["AmazonOrderItemCode"] = exc.item_code
        return [ProcessingResult(message_id, "Error", exc.code, exc.text, info)]


FEED_PROCESSORS["POST_PAYMENT_ADJUSTMENT_DATA"] = xml_feed_processor(
    "OrderAdjustment", check_message=check_adjustment
)
