"""Order feed documents for Amazon (XML) and their processing reports.

:func:`order_acknowledgement_feed` writes a ``POST_ORDER_ACKNOWLEDGEMENT_DATA``
document that cancels whole orders (SP-API-NOTES §3.2, §3.3): one ``Message``
per order with ``StatusCode`` ``Failure`` and one ``Item`` with the
``CancelReason`` per order item, in the element order of Amazon's schema.
:func:`order_adjustment_feed` writes a ``POST_PAYMENT_ADJUSTMENT_DATA`` document
of item refunds and cancelled quantities (§3.4).
:func:`parse_processing_report` reads the report Amazon returns (§3.6) and
answers, per ``MessageID``, the errors Amazon found. No Flask here.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from xml.sax.saxutils import escape

from ..errors import MalformedResponseError

XML_CONTENT_TYPE = "text/xml; charset=UTF-8"
ORDER_ACKNOWLEDGEMENT = "POST_ORDER_ACKNOWLEDGEMENT_DATA"

#: The CancelReason values of OrderAcknowledgement.xsd (2021 snapshot).
CANCEL_REASONS = (
    "NoInventory",
    "ShippingAddressUndeliverable",
    "CustomerExchange",
    "BuyerCanceled",
    "GeneralAdjustment",
    "CarrierCreditDecision",
    "RiskAssessmentInformationNotValid",
    "CarrierCoverageFailure",
    "CustomerReturn",
    "MerchandiseNotReceived",
    "CannotVerifyInformation",
    "PricingError",
    "RejectOrder",
    "WeatherDelay",
)
# XSD's \w and \d, in ASCII (Python's would also take "_" and other digits).
_ORDER_ID = re.compile(r"[A-Za-z0-9]{3}-[A-Za-z0-9]{7}-[A-Za-z0-9]{7}")
_ITEM_CODE = re.compile(r"[0-9]{14}")


@dataclasses.dataclass(frozen=True)
class OrderCancel:
    """One message of an acknowledgement feed: cancel ``amazon_order_id``."""

    message_id: int
    amazon_order_id: str
    item_codes: Sequence[str]
    reason: str


def _envelope_head(merchant_id: str, message_type: str) -> str:
    """The envelope up to its first Message (SP-API-NOTES §3.2). :raises ValueError:"""
    merchant = merchant_id.strip()
    if not merchant or len(merchant) > 50 or any(c in merchant for c in "\t\r\n"):
        raise ValueError("The MerchantIdentifier must be 1 to 50 characters on one line.")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<AmazonEnvelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="amzn-envelope.xsd">\n'
        f"  <Header><DocumentVersion>1.01</DocumentVersion>"
        f"<MerchantIdentifier>{escape(merchant)}</MerchantIdentifier></Header>\n"
        f"  <MessageType>{message_type}</MessageType>\n"
    )


def _new_message_id(message_id: int, seen: set[int]) -> None:
    """Check a MessageID is a new positive number of at most 20 digits. :raises ValueError:"""
    if not 0 < message_id < 10**20 or message_id in seen:
        raise ValueError(f"MessageID {message_id} is not a new positive number.")
    seen.add(message_id)


def check_cancel(cancel: OrderCancel) -> None:
    """Check one order's message against Amazon's schema. :raises ValueError:"""
    if not _ORDER_ID.fullmatch(cancel.amazon_order_id):
        raise ValueError(f"{cancel.amazon_order_id!r} is not an Amazon order id.")
    if cancel.reason not in CANCEL_REASONS:
        raise ValueError(f"{cancel.reason!r} is not a CancelReason.")
    if not cancel.item_codes:
        raise ValueError(f"Order {cancel.amazon_order_id} has no items to cancel.")
    for code in cancel.item_codes:
        if not _ITEM_CODE.fullmatch(code):
            raise ValueError(f"{code!r} is not an AmazonOrderItemCode (14 digits).")


def order_acknowledgement_feed(merchant_id: str, cancels: Iterable[OrderCancel]) -> bytes:
    """The XML document that cancels every order in ``cancels``.

    :raises ValueError: a value Amazon's schema does not allow (an order id, an
        item code, a reason, a repeated message id, no items).
    """
    parts = [_envelope_head(merchant_id, "OrderAcknowledgement")]
    seen: set[int] = set()
    for cancel in cancels:
        _new_message_id(cancel.message_id, seen)
        check_cancel(cancel)
        items = []
        for code in cancel.item_codes:
            items.append(
                f"<Item><AmazonOrderItemCode>{code}</AmazonOrderItemCode>"
                f"<CancelReason>{cancel.reason}</CancelReason></Item>"
            )
        parts.append(
            f"  <Message><MessageID>{cancel.message_id}</MessageID><OrderAcknowledgement>"
            f"<AmazonOrderID>{cancel.amazon_order_id}</AmazonOrderID>"
            f"<StatusCode>Failure</StatusCode>{''.join(items)}</OrderAcknowledgement></Message>\n"
        )
    if not seen:
        raise ValueError("A feed needs at least one message.")
    parts.append("</AmazonEnvelope>\n")
    return "".join(parts).encode("utf-8")


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """One ``Result`` of a processing report."""

    message_id: str
    code: str  # Error | Warning
    message_code: str
    description: str


@dataclasses.dataclass(frozen=True)
class ProcessingReport:
    """What Amazon says about a processed feed."""

    status: str  # Complete | Processing | Rejected
    processed: int | None
    successful: int | None
    with_error: int | None
    results: tuple[ReportResult, ...]

    def errors_by_message(self) -> dict[str, list[ReportResult]]:
        """The errors (not warnings) per MessageID; ``"0"`` means the whole feed."""
        errors: dict[str, list[ReportResult]] = {}
        for result in self.results:
            if result.code == "Error":
                errors.setdefault(result.message_id, []).append(result)
        return errors

    @property
    def summary(self) -> str:
        if self.processed is None:
            return f"{self.status}"
        return (
            f"{self.status}: {self.processed} processed, {self.successful} successful, "
            f"{self.with_error} with errors"
        )


#: A MessageID or a count of the report: ASCII digits (``str.isdigit`` takes "²" too).
_NUMBER = re.compile(r"[0-9]{1,20}")


def _count(element: ET.Element | None, name: str) -> int | None:
    """A count of the ProcessingSummary, ``None`` if absent. :raises MalformedResponseError:"""
    text = None if element is None else element.findtext(name)
    if text is None:
        return None
    if not _NUMBER.fullmatch(text.strip()):
        raise MalformedResponseError(
            f"The processing report's {name} is not a number.", operation="getFeedDocument"
        )
    return int(text)


def parse_processing_report(document: bytes) -> ProcessingReport:
    """Read an XML processing report.

    :raises MalformedResponseError: the document is not a processing report.
    """
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise MalformedResponseError(
            f"The processing report is not well-formed XML: {exc}", operation="getFeedDocument"
        ) from None
    except (LookupError, ValueError) as exc:  # an encoding expat cannot read
        raise MalformedResponseError(
            f"The processing report's encoding cannot be read: {exc}", operation="getFeedDocument"
        ) from None
    report = root.find("Message/ProcessingReport")
    if root.tag != "AmazonEnvelope" or report is None:
        raise MalformedResponseError(
            "The document is not an AmazonEnvelope with a ProcessingReport.",
            operation="getFeedDocument",
        )
    status = (report.findtext("StatusCode") or "").strip()
    if status not in ("Complete", "Processing", "Rejected"):
        raise MalformedResponseError(
            f"The processing report has no valid StatusCode ({status!r}).",
            operation="getFeedDocument",
        )
    summary = report.find("ProcessingSummary")
    results = []
    for result in report.findall("Result"):
        message_id = (result.findtext("MessageID") or "").strip()
        code = (result.findtext("ResultCode") or "").strip()
        if not _NUMBER.fullmatch(message_id) or code not in ("Error", "Warning"):
            raise MalformedResponseError(
                "A Result of the processing report has no valid MessageID or ResultCode.",
                operation="getFeedDocument",
            )
        results.append(
            ReportResult(
                message_id=str(int(message_id)),
                code=code,
                message_code=(result.findtext("ResultMessageCode") or "").strip(),
                description=(result.findtext("ResultDescription") or "").strip(),
            )
        )
    return ProcessingReport(
        status=status,
        processed=_count(summary, "MessagesProcessed"),
        successful=_count(summary, "MessagesSuccessful"),
        with_error=_count(summary, "MessagesWithError"),
        results=tuple(results),
    )


# -- item adjustments (POST_PAYMENT_ADJUSTMENT_DATA) -----------------------------------

PAYMENT_ADJUSTMENT = "POST_PAYMENT_ADJUSTMENT_DATA"

#: The AdjustmentReason values of OrderAdjustment.xsd (SP-API-NOTES §3.4).
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
#: The ItemPriceAdjustments Component/Type values (SP-API-NOTES §3.4).
PRICE_COMPONENTS = (
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
_CURRENCY = re.compile(r"[A-Z]{3}")
_TWO_DECIMALS = Decimal("0.01")


@dataclasses.dataclass(frozen=True)
class AdjustedItem:
    """One line of an OrderAdjustment: an item's refund and/or cancelled quantity."""

    item_code: str
    #: Ours, for idempotency (StringNotNull, 1 to 50 characters).
    merchant_adjustment_item_id: str
    reason: str
    #: Price component -> amount refunded (positive: a credit to the buyer).
    amounts: Mapping[str, Decimal]
    quantity_cancelled: int | None = None


@dataclasses.dataclass(frozen=True)
class OrderAdjustment:
    """One message of an adjustment feed: adjust items of ``amazon_order_id``."""

    message_id: int
    amazon_order_id: str
    currency: str
    items: Sequence[AdjustedItem]


def _amount(value: Decimal) -> str:
    """An amount with exactly two decimals (BaseCurrencyAmount). :raises ValueError:"""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{value!r} is not a decimal amount.")
    if value != value.quantize(_TWO_DECIMALS):
        raise ValueError(f"{value} has more than two decimals.")
    if value < 0:
        raise ValueError(f"{value} is negative; refunds are positive amounts.")
    return f"{value.quantize(_TWO_DECIMALS):.2f}"


def check_adjustment(adjustment: OrderAdjustment) -> None:
    """Check one message against Amazon's schema. :raises ValueError:"""
    if not _ORDER_ID.fullmatch(adjustment.amazon_order_id):
        raise ValueError(f"{adjustment.amazon_order_id!r} is not an Amazon order id.")
    if not _CURRENCY.fullmatch(adjustment.currency):
        raise ValueError(f"{adjustment.currency!r} is not a currency code.")
    if not adjustment.items:
        raise ValueError(f"Order {adjustment.amazon_order_id} has no items to adjust.")
    for item in adjustment.items:
        if not _ITEM_CODE.fullmatch(item.item_code):
            raise ValueError(f"{item.item_code!r} is not an AmazonOrderItemCode (14 digits).")
        ref = item.merchant_adjustment_item_id
        if not ref or len(ref) > 50 or any(c in ref for c in "\t\r\n"):
            raise ValueError("A MerchantAdjustmentItemID must be 1 to 50 characters.")
        if item.reason not in ADJUSTMENT_REASONS:
            raise ValueError(f"{item.reason!r} is not an AdjustmentReason.")
        for component, value in item.amounts.items():
            if component not in PRICE_COMPONENTS:
                raise ValueError(f"{component!r} is not a price component.")
            _amount(value)
        if item.quantity_cancelled is not None and item.quantity_cancelled < 1:
            raise ValueError("QuantityCancelled must be a positive number.")
        if not item.amounts and item.quantity_cancelled is None:
            raise ValueError("An adjusted item needs an amount or a cancelled quantity.")


def order_adjustment_feed(merchant_id: str, adjustments: Iterable[OrderAdjustment]) -> bytes:
    """The XML document of item refunds and cancellations (SP-API-NOTES §3.4), the
    elements in the order of Amazon's schema. :raises ValueError:"""
    parts = [_envelope_head(merchant_id, "OrderAdjustment")]
    seen: set[int] = set()
    for adjustment in adjustments:
        _new_message_id(adjustment.message_id, seen)
        check_adjustment(adjustment)
        lines = []
        for item in adjustment.items:
            components = "".join(
                f"<Component><Type>{component}</Type>"
                f'<Amount currency="{adjustment.currency}">{_amount(value)}</Amount></Component>'
                for component, value in item.amounts.items()
            )
            prices = (
                f"<ItemPriceAdjustments>{components}</ItemPriceAdjustments>" if components else ""
            )
            quantity = (
                f"<QuantityCancelled>{item.quantity_cancelled}</QuantityCancelled>"
                if item.quantity_cancelled is not None
                else ""
            )
            lines.append(
                f"<AdjustedItem><AmazonOrderItemCode>{item.item_code}</AmazonOrderItemCode>"
                f"<MerchantAdjustmentItemID>{escape(item.merchant_adjustment_item_id)}"
                f"</MerchantAdjustmentItemID><AdjustmentReason>{item.reason}</AdjustmentReason>"
                f"{prices}{quantity}</AdjustedItem>"
            )
        parts.append(
            f"  <Message><MessageID>{adjustment.message_id}</MessageID><OrderAdjustment>"
            f"<AmazonOrderID>{adjustment.amazon_order_id}</AmazonOrderID>"
            f"{''.join(lines)}</OrderAdjustment></Message>\n"
        )
    if not seen:
        raise ValueError("A feed needs at least one message.")
    parts.append("</AmazonEnvelope>\n")
    return "".join(parts).encode("utf-8")
