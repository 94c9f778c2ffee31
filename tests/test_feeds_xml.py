"""The cancellation feed document against a schema written from SP-API-NOTES §3, and
the processing report parser."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from flask_amazon_orders.client.feeds_xml import (
    AdjustedItem,
    OrderAdjustment,
    OrderCancel,
    order_acknowledgement_feed,
    order_adjustment_feed,
    parse_processing_report,
)
from flask_amazon_orders.errors import MalformedResponseError
from flask_amazon_orders.sandbox.feeds import ProcessingResult, processing_report

SCHEMA = etree.XMLSchema(
    etree.parse(str(Path(__file__).parent / "schemas/order_acknowledgement.xsd"))
)


def _cancel(n: int = 1, **changes) -> OrderCancel:
    values = {
        "message_id": n,
        "amazon_order_id": f"028-123456{n}-1234567",
        "item_codes": ["12345678901234", "12345678901235"],
        "reason": "NoInventory",
    }
    values.update(changes)
    return OrderCancel(**values)


def test_the_feed_is_valid_against_the_schema():
    document = order_acknowledgement_feed(
        "A2SELLER", [_cancel(1), _cancel(2, reason="BuyerCanceled")]
    )
    root = etree.fromstring(document)
    SCHEMA.assertValid(root)
    messages = root.findall("Message")
    assert [m.findtext("MessageID") for m in messages] == ["1", "2"]
    first = messages[0].find("OrderAcknowledgement")
    assert [child.tag for child in first] == ["AmazonOrderID", "StatusCode", "Item", "Item"]
    assert first.findtext("StatusCode") == "Failure"
    assert [i.findtext("CancelReason") for i in first.findall("Item")] == ["NoInventory"] * 2
    assert messages[1].findtext("OrderAcknowledgement/Item/CancelReason") == "BuyerCanceled"


def test_the_schema_catches_what_the_builder_refuses():
    # The schema really checks: a hand-made document with a bad item code fails it.
    bad = order_acknowledgement_feed("A2SELLER", [_cancel()]).replace(b"12345678901234", b"1234")
    assert not SCHEMA.validate(etree.fromstring(bad))


@pytest.mark.parametrize(
    "changes",
    [
        {"amazon_order_id": "28-1234567-1234567"},
        {"amazon_order_id": "028-1234567-1234567\n"},
        {"amazon_order_id": "028-123456_-1234567"},
        {"item_codes": ["12345678901234\n"]},
        {"item_codes": ["١٢٣٤٥٦٧٨٩٠١٢٣٤"]},
        {"item_codes": ["1234567890123"]},
        {"item_codes": []},
        {"reason": "Sold out"},
        {"message_id": 0},
    ],
)
def test_values_amazon_would_refuse_are_refused(changes):
    with pytest.raises(ValueError):
        order_acknowledgement_feed("A2SELLER", [_cancel(**changes)])


def test_repeated_message_ids_and_empty_feeds_are_refused():
    with pytest.raises(ValueError):
        order_acknowledgement_feed("A2SELLER", [_cancel(1), _cancel(1)])
    with pytest.raises(ValueError):
        order_acknowledgement_feed("A2SELLER", [])


def test_merchant_identifier_on_one_line():
    with pytest.raises(ValueError):
        order_acknowledgement_feed("A2\nSELLER", [_cancel()])


def test_merchant_identifier_is_escaped():
    document = order_acknowledgement_feed("A&B<C", [_cancel()])
    assert etree.fromstring(document).findtext("Header/MerchantIdentifier") == "A&B<C"


def test_processing_report_is_read_by_message_id():
    report = processing_report(
        "A2SELLER",
        "123",
        3,
        [
            ProcessingResult("2", "Error", 18032, "It is SHIPPED."),
            ProcessingResult("3", "Warning", 1, "Fine."),
        ],
    )
    parsed = parse_processing_report(
        report if isinstance(report, bytes) else gzip.decompress(report)
    )
    assert parsed.status == "Complete"
    assert (parsed.processed, parsed.with_error) == (3, 1)
    assert {k: [r.description for r in v] for k, v in parsed.errors_by_message().items()} == {
        "2": ["It is SHIPPED."]
    }


@pytest.mark.parametrize(
    "document",
    [
        b"not xml",
        b"<AmazonEnvelope/>",
        b"<AmazonEnvelope><Message><ProcessingReport><StatusCode>Odd</StatusCode>"
        b"</ProcessingReport></Message></AmazonEnvelope>",
        b"<AmazonEnvelope><Message><ProcessingReport><StatusCode>Complete</StatusCode>"
        b"<Result><MessageID>x</MessageID><ResultCode>Error</ResultCode></Result>"
        b"</ProcessingReport></Message></AmazonEnvelope>",
    ],
)
def test_a_malformed_report_is_a_typed_error(document):
    with pytest.raises(MalformedResponseError):
        parse_processing_report(document)


# -- item adjustments (POST_PAYMENT_ADJUSTMENT_DATA) ------------------------------------

ADJUSTMENT_SCHEMA = etree.XMLSchema(
    etree.parse(str(Path(__file__).parent / "schemas/order_adjustment.xsd"))
)


def _adjustment(n: int = 1, **changes) -> OrderAdjustment:
    item = {
        "item_code": "12345678901234",
        "merchant_adjustment_item_id": f"shop-{n}-1",
        "reason": "NoInventory",
        "amounts": {"Principal": Decimal("19.99"), "Tax": Decimal("3.80")},
        "quantity_cancelled": 1,
    }
    item.update(changes.pop("item", {}))
    values = {
        "message_id": n,
        "amazon_order_id": f"028-123456{n}-1234567",
        "currency": "EUR",
        "items": [AdjustedItem(**item)],
    }
    values.update(changes)
    return OrderAdjustment(**values)


def test_the_adjustment_feed_is_valid_against_the_schema():
    document = order_adjustment_feed(
        "A2SELLER",
        [_adjustment(1), _adjustment(2, item={"reason": "CustomerCancel", "amounts": {}})],
    )
    root = etree.fromstring(document)
    ADJUSTMENT_SCHEMA.assertValid(root)
    first = root.find("Message/OrderAdjustment/AdjustedItem")
    assert [child.tag for child in first] == [
        "AmazonOrderItemCode",
        "MerchantAdjustmentItemID",
        "AdjustmentReason",
        "ItemPriceAdjustments",
        "QuantityCancelled",
    ]
    assert first.findtext("ItemPriceAdjustments/Component/Amount") == "19.99"
    assert first.find("ItemPriceAdjustments/Component/Amount").get("currency") == "EUR"


def test_the_adjustment_schema_catches_three_decimals():
    bad = order_adjustment_feed("A2SELLER", [_adjustment()]).replace(b"19.99", b"19.999")
    assert not ADJUSTMENT_SCHEMA.validate(etree.fromstring(bad))


@pytest.mark.parametrize(
    "item",
    [
        {"amounts": {"Principal": Decimal("19.999")}},
        {"amounts": {"Principal": Decimal("-1.00")}},
        {"amounts": {"Bonus": Decimal("1.00")}},
        {"reason": "BuyerCanceled"},
        {"quantity_cancelled": 0},
        {"merchant_adjustment_item_id": ""},
        {"merchant_adjustment_item_id": "x" * 51},
        {"item_code": "1234"},
        {"amounts": {}, "quantity_cancelled": None},
    ],
)
def test_adjustments_amazon_would_refuse_are_refused(item):
    with pytest.raises(ValueError):
        order_adjustment_feed("A2SELLER", [_adjustment(item=item)])
