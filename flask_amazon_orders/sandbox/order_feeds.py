"""The sandbox processes order feeds like Amazon: ``POST_ORDER_ACKNOWLEDGEMENT_DATA``.

Each ``OrderAcknowledgement`` message is checked as Amazon's schema and rules
have it (SP-API-NOTES §3.3): an ``AmazonOrderID`` of the seller, ``StatusCode``
``Success`` or ``Failure``, items with 14-digit ``AmazonOrderItemCode`` of that
order and a known ``CancelReason``. A ``Failure`` cancels the order when it is
still ``UNSHIPPED`` (or ``PENDING``), every item with its reason; a cancel of an
order that shipped or was cancelled meanwhile, or of an unknown item, is an
error in the processing report, matched to the message's ``MessageID``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from .feeds import FEED_PROCESSORS, ProcessingResult, xml_feed_processor
from .orders import CANCELLED, PENDING, UNSHIPPED

if TYPE_CHECKING:
    from .state import SandboxState, Seller

#: The feed's CancelReason values (OrderAcknowledgement.xsd, 2021 snapshot) and the
#: Orders API's ``cancelReason`` the sandbox records for each.
CANCEL_REASONS = {
    "NoInventory": "NO_INVENTORY",
    "ShippingAddressUndeliverable": "SHIPPING_ADDRESS_UNDELIVERABLE",
    "CustomerExchange": "CUSTOMER_EXCHANGE",
    "BuyerCanceled": "BUYER_CANCELLED",
    "GeneralAdjustment": "GENERAL_ADJUSTMENT",
    "CarrierCreditDecision": "CARRIER_CREDIT_DECISION",
    "RiskAssessmentInformationNotValid": "RISK_ASSESSMENT_INFORMATION_NOT_VALID",
    "CarrierCoverageFailure": "CARRIER_COVERAGE_FAILURE",
    "CustomerReturn": "CUSTOMER_RETURN",
    "MerchandiseNotReceived": "MERCHANDISE_NOT_RECEIVED",
    "CannotVerifyInformation": "CANNOT_VERIFY_INFORMATION",
    "PricingError": "PRICING_ERROR",
    "RejectOrder": "REJECT_ORDER",
    "WeatherDelay": "WEATHER_DELAY",
}
_ORDER_ID = re.compile(r"^\w{3}-\w{7}-\w{7}$")
_ITEM_CODE = re.compile(r"^\d{14}$")
_ELEMENTS = ("AmazonOrderID", "MerchantOrderID", "StatusCode", "Item")
_ITEM_ELEMENTS = ("AmazonOrderItemCode", "MerchantOrderItemID", "CancelReason", "Quantity")


def _error(message_id: str, code: int, text: str, order_id: str | None) -> ProcessingResult:
    info = {"AmazonOrderID": order_id} if order_id else {}
    return ProcessingResult(message_id, "Error", code, text, info)


def _in_order(children: list[ET.Element], allowed: tuple[str, ...]) -> str | None:
    """The first element out of place in an ``xsd:sequence``, if any."""
    position = 0
    for child in children:
        if child.tag not in allowed:
            return f"unexpected element {child.tag}"
        index = allowed.index(child.tag)
        if index < position:
            return f"element {child.tag} is out of order"
        position = index if child.tag == "Item" else index + 1
    return None


def check_acknowledgement(
    state: SandboxState, seller: Seller, message_id: str, element: ET.Element
) -> list[ProcessingResult]:
    """Check one OrderAcknowledgement and apply it (cancel the order)."""
    order_id = (element.findtext("AmazonOrderID") or "").strip()
    misplaced = _in_order(list(element), _ELEMENTS)
    if misplaced:
        return [_error(message_id, 5000, f"XML schema error: {misplaced}.", order_id)]
    if not _ORDER_ID.match(order_id):
        return [_error(message_id, 5000, f"Invalid AmazonOrderID {order_id!r}.", None)]
    status_code = (element.findtext("StatusCode") or "").strip()
    if status_code not in ("Success", "Failure"):
        return [_error(message_id, 5000, f"Invalid StatusCode {status_code!r}.", order_id)]
    order = state.orders.get(order_id)
    if order is None or order.seller_id != seller.seller_id:
        return [
            _error(message_id, 18028, f"The order {order_id} was not found for this seller.", None)
        ]
    items = element.findall("Item")
    by_code = {item.order_item_id: item for item in order.items}
    reasons: set[str] = set()
    for item in items:
        misplaced = _in_order(list(item), _ITEM_ELEMENTS)
        code = (item.findtext("AmazonOrderItemCode") or "").strip()
        reason = (item.findtext("CancelReason") or "").strip()
        if misplaced:
            return [_error(message_id, 5000, f"XML schema error in Item: {misplaced}.", order_id)]
        if not _ITEM_CODE.match(code):
            return [_error(message_id, 5000, f"Invalid AmazonOrderItemCode {code!r}.", order_id)]
        if code not in by_code:
            return [
                _error(
                    message_id,
                    18029,
                    f"The order item {code} is not part of order {order_id}.",
                    order_id,
                )
            ]
        if status_code == "Failure":
            if reason not in CANCEL_REASONS:
                return [_error(message_id, 5000, f"Invalid CancelReason {reason!r}.", order_id)]
            reasons.add(reason)
    if status_code == "Success":
        return []
    if not items or {item.findtext("AmazonOrderItemCode") for item in items} != set(by_code):
        return [
            _error(
                message_id,
                18030,
                f"To cancel order {order_id}, give every item of the order with a CancelReason.",
                order_id,
            )
        ]
    if order.status == CANCELLED:
        return [_error(message_id, 18031, f"The order {order_id} is already cancelled.", order_id)]
    if order.status not in (UNSHIPPED, PENDING):
        return [
            _error(
                message_id,
                18032,
                f"The order {order_id} cannot be cancelled: it is {order.status}.",
                order_id,
            )
        ]
    reason = sorted(reasons)[0]
    state.set_status(
        order_id, CANCELLED, cancelled_by="MERCHANT", cancel_reason=CANCEL_REASONS[reason]
    )
    return []


FEED_PROCESSORS["POST_ORDER_ACKNOWLEDGEMENT_DATA"] = xml_feed_processor(
    "OrderAcknowledgement", check_message=check_acknowledgement
)
