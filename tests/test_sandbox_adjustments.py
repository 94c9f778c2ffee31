"""The sandbox's ``POST_PAYMENT_ADJUSTMENT_DATA`` processing: refunds and cancelled units."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from test_sandbox import (
    LONG_AGO,
    ORDERS,
    Amazon,
    download_report,
    parse,
    submit_feed,
    wait_for_feed,
)
from test_sandbox_contract import Contract

from flask_amazon_orders.sandbox import SandboxControlError, SandboxServer

ADJUSTMENT = "POST_PAYMENT_ADJUSTMENT_DATA"
SELLER_ID = "A1SELLERADJ001"
ADJUSTMENT_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<AmazonEnvelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:noNamespaceSchemaLocation="amzn-envelope.xsd">
  <Header><DocumentVersion>1.01</DocumentVersion>
    <MerchantIdentifier>A1SELLERADJ001</MerchantIdentifier></Header>
  <MessageType>OrderAdjustment</MessageType>
  {messages}
</AmazonEnvelope>
"""
#: The mug line below: 3 x 12.50 = 37.50, tax 19 % = 7.13, shipping 4.99, its tax 0.95.
MUG = {"sku": "MUG", "quantity": 3, "unit_price": "12.50", "shipping_price": "4.99"}
#: The cable line: 1 x 9.99, tax 1.90, no shipping.
CABLE = {"sku": "CABLE", "quantity": 1, "unit_price": "9.99"}


def adjusted_item(
    code: str,
    *components: tuple[str, str],
    reason: str = "NoInventory",
    merchant_id: str | None = None,
    cancel: int | None = None,
    currency: str | None = "EUR",
    extra: str = "",
) -> str:
    """One ``AdjustedItem``; ``components`` are ``(Type, Amount)`` pairs."""
    parts = [f"<AmazonOrderItemCode>{code}</AmazonOrderItemCode>"]
    if merchant_id is not None:
        parts.append(f"<MerchantAdjustmentItemID>{merchant_id}</MerchantAdjustmentItemID>")
    parts.append(f"<AdjustmentReason>{reason}</AdjustmentReason>")
    if components:
        attribute = f' currency="{currency}"' if currency else ""
        parts.append(
            "<ItemPriceAdjustments>"
            + "".join(
                f"<Component><Type>{kind}</Type><Amount{attribute}>{amount}</Amount></Component>"
                for kind, amount in components
            )
            + "</ItemPriceAdjustments>"
        )
    parts.append(extra)
    if cancel is not None:
        parts.append(f"<QuantityCancelled>{cancel}</QuantityCancelled>")
    return "<AdjustedItem>" + "".join(parts) + "</AdjustedItem>"


def adjustment_message(message_id: str, order_id: str, *items: str, head: str = "") -> str:
    return (
        f"<Message><MessageID>{message_id}</MessageID><OrderAdjustment>"
        f"<AmazonOrderID>{order_id}</AmazonOrderID>{head}{''.join(items)}"
        "</OrderAdjustment></Message>"
    )


def results_of(report: ET.Element) -> list[dict[str, Any]]:
    found = []
    for result in report.findall("Message/ProcessingReport/Result"):
        info = result.find("AdditionalInfo")
        found.append(
            {
                "message_id": result.findtext("MessageID"),
                "code": result.findtext("ResultCode"),
                "number": int(result.findtext("ResultMessageCode") or 0),
                "description": result.findtext("ResultDescription") or "",
                "info": {child.tag: child.text for child in info} if info is not None else {},
            }
        )
    return found


def summary_of(report: ET.Element) -> dict[str, int]:
    summary = report.find("Message/ProcessingReport/ProcessingSummary")
    assert summary is not None
    return {child.tag: int(child.text or 0) for child in summary}


def send(amazon: Amazon, *messages: str) -> ET.Element:
    """Submit one adjustment feed; return its processing report once it is DONE."""
    content = ADJUSTMENT_FEED.format(messages="".join(messages)).encode()
    feed = wait_for_feed(amazon, submit_feed(amazon, content, ADJUSTMENT))
    assert feed["processingStatus"] == "DONE", feed
    return download_report(amazon, feed["resultFeedDocumentId"])


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(enforce_rate_limits=False, feed_processing_seconds=0) as server:
        yield server


@pytest.fixture
def seller(sandbox: SandboxServer) -> dict[str, Any]:
    return sandbox.control.create_seller(SELLER_ID)


@pytest.fixture
def amazon(sandbox: SandboxServer, http: requests.Session, seller: dict[str, Any]) -> Amazon:
    return Amazon(sandbox, http).login(seller)


@pytest.fixture(scope="module")
def orders_contract() -> Contract:
    return Contract("orders_2026-01-01.json")


@pytest.fixture
def order(sandbox: SandboxServer, seller: dict[str, Any]) -> dict[str, Any]:
    """An unshipped merchant order: 3 mugs and 1 cable."""
    return sandbox.control.create_order(seller["seller_id"], items=[MUG, CABLE])


def codes(order: dict[str, Any]) -> tuple[str, str]:
    mug, cable = (item["orderItemId"] for item in order["orderItems"])
    return mug, cable


def fulfilled(order: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (i["fulfillment"]["quantityFulfilled"], i["fulfillment"]["quantityUnfulfilled"])
        for i in order["orderItems"]
    ]


def get_order(amazon: Amazon, contract: Contract, order_id: str) -> dict[str, Any]:
    response = amazon.get(
        f"{ORDERS}/{order_id}", includedData="FULFILLMENT,CANCELLATION,PACKAGES,PROCEEDS"
    )
    return contract.check("getOrder", response)["order"]  # type: ignore[no-any-return]


def confirm(amazon: Amazon, order_id: str, reference: str, items: list[tuple[str, int]]) -> int:
    body = {
        "marketplaceId": "A1PA6795UKMFR9",
        "packageDetail": {
            "packageReferenceId": reference,
            "carrierCode": "DHL",
            "trackingNumber": f"TRACK-{reference}",
            "shipDate": "2026-03-02T09:30:00Z",
            "orderItems": [{"orderItemId": i, "quantity": q} for i, q in items],
        },
    }
    response = amazon.post(f"/orders/v0/orders/{order_id}/shipmentConfirmation", body)
    return response.status_code


# -- accepted adjustments ------------------------------------------------------------------------


def test_cancel_one_of_three_units_and_refund_principal_and_tax(
    sandbox: SandboxServer,
    amazon: Amazon,
    order: dict[str, Any],
    orders_contract: Contract,
) -> None:
    control = sandbox.control
    order_id = order["orderId"]
    mug, cable = codes(order)
    time.sleep(0.01)
    before = amazon.search(lastUpdatedAfter=LONG_AGO).json()["lastUpdatedBefore"]

    report = send(
        amazon,
        adjustment_message(
            "1",
            order_id,
            adjusted_item(
                mug,
                ("Principal", "12.50"),
                ("Tax", "2.38"),
                merchant_id="shop-refund-42-1",
                cancel=1,
            ),
        ),
    )
    assert results_of(report) == []
    assert summary_of(report) == {
        "MessagesProcessed": 1,
        "MessagesSuccessful": 1,
        "MessagesWithError": 0,
        "MessagesWithWarning": 0,
    }

    seen = get_order(amazon, orders_contract, order_id)
    assert seen["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
    assert fulfilled(seen) == [(0, 2), (0, 1)]
    assert [i["quantityOrdered"] for i in seen["orderItems"]] == [3, 1]
    assert all("cancellation" not in i for i in seen["orderItems"])  # only 1 of 3 cancelled
    assert parse(seen["lastUpdatedTime"]) > parse(order["lastUpdatedTime"])
    found = amazon.search(lastUpdatedAfter=before).json()["orders"]
    assert [o["orderId"] for o in found] == [order_id]

    view = control.order_adjustments(order_id)
    assert view["status"] == "UNSHIPPED"
    assert view["items"] == [
        {
            "orderItemId": mug,
            "quantityOrdered": 3,
            "quantityShipped": 0,
            "quantityCancelled": 1,
            "refunded": {"Principal": "12.50", "Tax": "2.38"},
        },
        {
            "orderItemId": cable,
            "quantityOrdered": 1,
            "quantityShipped": 0,
            "quantityCancelled": 0,
            "refunded": {},
        },
    ]
    (adjustment,) = view["adjustments"]
    assert adjustment["merchantAdjustmentItemId"] == "shop-refund-42-1"
    assert adjustment["adjustmentReason"] == "NoInventory"
    assert adjustment["itemPriceAdjustments"] == [
        {"type": "Principal", "amount": "12.50"},
        {"type": "Tax", "amount": "2.38"},
    ]
    assert adjustment["quantityCancelled"] == 1
    assert adjustment["total"] == "14.88"
    assert adjustment["messageId"] == "1"
    assert adjustment["feedId"] == control.feeds()[0]["feedId"]
    assert control.adjustments(order_id) == view["adjustments"]
    assert control.adjustments(seller_id=SELLER_ID) == view["adjustments"]

    # The cancelled unit cannot ship; the other two and the cable can.
    assert confirm(amazon, order_id, "1", [(mug, 3)]) == 400
    assert confirm(amazon, order_id, "1", [(mug, 2), (cable, 1)]) == 204
    shipped = get_order(amazon, orders_contract, order_id)
    assert shipped["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert fulfilled(shipped) == [(2, 0), (1, 0)]
    # A status change through the control API keeps the cancelled unit cancelled.
    again = control.set_status(order_id, "SHIPPED")
    assert fulfilled(again) == [(2, 0), (1, 0)]


def test_cancelling_what_is_left_of_a_partially_shipped_order_makes_it_shipped(
    sandbox: SandboxServer,
    amazon: Amazon,
    order: dict[str, Any],
    orders_contract: Contract,
) -> None:
    order_id = order["orderId"]
    mug, cable = codes(order)
    assert confirm(amazon, order_id, "1", [(mug, 3)]) == 204
    assert get_order(amazon, orders_contract, order_id)["fulfillment"]["fulfillmentStatus"] == (
        "PARTIALLY_SHIPPED"
    )
    report = send(
        amazon,
        adjustment_message(
            "1", order_id, adjusted_item(cable, ("Principal", "9.99"), ("Tax", "1.90"), cancel=1)
        ),
    )
    assert results_of(report) == []
    seen = get_order(amazon, orders_contract, order_id)
    assert seen["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert fulfilled(seen) == [(3, 0), (0, 0)]
    assert seen["orderItems"][1]["cancellation"] == {
        "cancellationExecution": {"cancelledBy": "MERCHANT", "cancelReason": "NO_INVENTORY"}
    }
    assert "cancellation" not in seen["orderItems"][0]
    (package,) = seen["packages"]
    assert package["packageItems"] == [{"orderItemId": mug, "quantity": 3}]
    # advance has nothing to do with a shipped order.
    assert sandbox.control.advance()["advanced"] == 0


def test_cancelling_every_unit_cancels_the_order(
    sandbox: SandboxServer,
    amazon: Amazon,
    order: dict[str, Any],
    orders_contract: Contract,
) -> None:
    order_id = order["orderId"]
    mug, cable = codes(order)
    report = send(
        amazon,
        adjustment_message(
            "1",
            order_id,
            adjusted_item(mug, ("Principal", "25.00"), reason="CustomerCancel", cancel=2),
            adjusted_item(mug, ("Principal", "12.50"), reason="CustomerCancel", cancel=1),
        ),
        adjustment_message(
            "2", order_id, adjusted_item(cable, ("Principal", "9.99"), cancel=1, currency=None)
        ),
    )
    assert results_of(report) == []
    seen = get_order(amazon, orders_contract, order_id)
    assert seen["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
    assert fulfilled(seen) == [(0, 0), (0, 0)]
    assert [i["cancellation"]["cancellationExecution"] for i in seen["orderItems"]] == [
        {"cancelledBy": "MERCHANT", "cancelReason": "BUYER_CANCELLED"},
        {"cancelledBy": "MERCHANT", "cancelReason": "NO_INVENTORY"},
    ]
    assert sandbox.control.advance()["advanced"] == 0

    # A cancelled order takes no further adjustment.
    late = send(
        amazon, adjustment_message("3", order_id, adjusted_item(cable, ("Goodwill", "5.00")))
    )
    (error,) = results_of(late)
    assert (error["message_id"], error["code"], error["number"]) == ("3", "Error", 18041)
    assert error["info"] == {"AmazonOrderID": order_id}


def test_refunds_of_a_shipped_order_and_goodwill(
    sandbox: SandboxServer,
    amazon: Amazon,
    seller: dict[str, Any],
    orders_contract: Contract,
) -> None:
    created = sandbox.control.create_order(seller["seller_id"], items=[MUG], status="SHIPPED")
    (mug,) = (item["orderItemId"] for item in created["orderItems"])
    report = send(
        amazon,
        adjustment_message(
            "1",
            created["orderId"],
            adjusted_item(
                mug,
                ("Principal", "37.50"),
                ("Tax", "7.13"),
                ("Shipping", "4.99"),
                ("ShippingTax", "0.95"),
                ("RestockingFee", "-5.00"),
                ("Goodwill", "10.00"),
                reason="CustomerReturn",
                merchant_id="return-1",
                extra=(
                    "<PromotionAdjustments><MerchantPromotionID>SPRING</MerchantPromotionID>"
                    '<Component><Type>Principal</Type><Amount currency="EUR">-1.00</Amount>'
                    "</Component></PromotionAdjustments>"
                ),
            ),
            head="<ActionType>Refund</ActionType>",
        ),
    )
    assert results_of(report) == []
    seen = get_order(amazon, orders_contract, created["orderId"])
    assert seen["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert fulfilled(seen) == [(3, 0)]
    (adjustment,) = sandbox.control.adjustments(created["orderId"])
    assert adjustment["total"] == "54.57"
    assert adjustment["actionType"] == "Refund"
    assert adjustment["promotionAdjustments"] == [
        {
            "promotionClaimCode": None,
            "merchantPromotionId": "SPRING",
            "components": [{"type": "Principal", "amount": "-1.00"}],
        }
    ]
    # Everything charged is refunded now: one cent more is refused.
    late = send(
        amazon, adjustment_message("2", created["orderId"], adjusted_item(mug, ("Tax", "0.01")))
    )
    assert [r["number"] for r in results_of(late)] == [18044]


def test_a_resent_adjustment_is_not_applied_twice(
    sandbox: SandboxServer,
    amazon: Amazon,
    order: dict[str, Any],
    orders_contract: Contract,
) -> None:
    order_id = order["orderId"]
    mug, cable = codes(order)
    message = adjustment_message(
        "1", order_id, adjusted_item(mug, ("Principal", "12.50"), merchant_id="r-1", cancel=1)
    )
    assert results_of(send(amazon, message)) == []
    after_first = get_order(amazon, orders_contract, order_id)

    report = send(amazon, message)
    (warning,) = results_of(report)
    assert (warning["message_id"], warning["code"], warning["number"]) == ("1", "Warning", 18048)
    assert "r-1" in warning["description"]
    assert summary_of(report)["MessagesSuccessful"] == 1
    assert summary_of(report)["MessagesWithWarning"] == 1
    assert get_order(amazon, orders_contract, order_id) == after_first  # not even touched
    (applied,) = sandbox.control.adjustments(order_id)
    assert applied["replays"] == 1
    assert sandbox.control.order_adjustments(order_id)["items"][0]["quantityCancelled"] == 1

    # A resent line next to a new one: the new one is applied, the old one is not.
    report = send(
        amazon,
        adjustment_message(
            "5",
            order_id,
            adjusted_item(mug, ("Principal", "12.50"), merchant_id="r-1", cancel=1),
            adjusted_item(cable, ("Principal", "2.00"), merchant_id="r-1", reason="PriceError"),
        ),
    )
    assert [r["code"] for r in results_of(report)] == ["Warning"]
    items = sandbox.control.order_adjustments(order_id)["items"]
    assert [(i["quantityCancelled"], i["refunded"]) for i in items] == [
        (1, {"Principal": "12.50"}),
        (0, {"Principal": "2.00"}),
    ]

    # The same MerchantAdjustmentItemID with other content is an error.
    report = send(
        amazon,
        adjustment_message(
            "6", order_id, adjusted_item(mug, ("Principal", "5.00"), merchant_id="r-1")
        ),
    )
    assert [r["number"] for r in results_of(report)] == [18047]
    assert len(sandbox.control.adjustments(order_id)) == 2


def test_refund_limits_count_earlier_adjustments(
    sandbox: SandboxServer, amazon: Amazon, order: dict[str, Any]
) -> None:
    order_id = order["orderId"]
    mug, _cable = codes(order)
    first = send(
        amazon, adjustment_message("1", order_id, adjusted_item(mug, ("Principal", "30.00")))
    )
    assert results_of(first) == []
    # 30.00 + 7.51 > 37.50 in one feed; 7.50 is exactly the rest.
    report = send(
        amazon,
        adjustment_message("2", order_id, adjusted_item(mug, ("Principal", "7.51"))),
        adjustment_message("3", order_id, adjusted_item(mug, ("Principal", "7.50"))),
    )
    (error,) = results_of(report)
    assert (error["message_id"], error["number"]) == ("2", 18044)
    assert "37.50 charged, 30.00 refunded already" in error["description"]
    # Two lines of one message count together, too.
    report = send(
        amazon,
        adjustment_message(
            "4",
            order_id,
            adjusted_item(mug, ("Tax", "4.00")),
            adjusted_item(mug, ("Tax", "3.14")),
        ),
    )
    assert [r["number"] for r in results_of(report)] == [18044]
    items = sandbox.control.order_adjustments(order_id)["items"]
    assert items[0]["refunded"] == {"Principal": "37.50"}


def test_an_error_rejects_its_whole_message_only(
    sandbox: SandboxServer, amazon: Amazon, order: dict[str, Any]
) -> None:
    order_id = order["orderId"]
    mug, cable = codes(order)
    report = send(
        amazon,
        adjustment_message("1", order_id, adjusted_item(cable, ("Principal", "1.00"))),
        adjustment_message(
            "2",
            order_id,
            adjusted_item(mug, ("Principal", "1.00")),
            adjusted_item(cable, ("Principal", "1.00"), cancel=2),
        ),
    )
    assert summary_of(report) == {
        "MessagesProcessed": 2,
        "MessagesSuccessful": 1,
        "MessagesWithError": 1,
        "MessagesWithWarning": 0,
    }
    (error,) = results_of(report)
    assert error["message_id"] == "2"
    assert error["number"] == 18042
    assert error["info"] == {"AmazonOrderID": order_id, "AmazonOrderItemCode": cable}
    items = sandbox.control.order_adjustments(order_id)["items"]
    assert [i["refunded"] for i in items] == [{}, {"Principal": "1.00"}]


def test_japanese_orders_take_whole_yen(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    created = sandbox.control.create_order(
        seller["seller_id"],
        marketplace_id="A1VC38T7YXB528",
        items=[{"sku": "TEA", "quantity": 2, "unit_price": "1500"}],
    )
    (tea,) = (item["orderItemId"] for item in created["orderItems"])
    report = send(
        amazon,
        adjustment_message(
            "1", created["orderId"], adjusted_item(tea, ("Principal", "1500.50"), currency="JPY")
        ),
        adjustment_message(
            "2", created["orderId"], adjusted_item(tea, ("Principal", "1500.00"), currency="JPY")
        ),
    )
    assert [(r["message_id"], r["number"]) for r in results_of(report)] == [("1", 5000)]
    view = sandbox.control.order_adjustments(created["orderId"])
    assert view["currency"] == "JPY"
    assert view["items"][0]["refunded"] == {"Principal": "1500"}


# -- what Amazon refuses -------------------------------------------------------------------------

#: (id, message builder(order_id, mug, cable), ResultMessageCode, part of the description)
REJECTED: list[tuple[str, Callable[[str, str, str], str], int, str]] = [
    (
        "unknown item",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item("99999999999999", ("Principal", "1.00"))
        ),
        18029,
        "not part of order",
    ),
    (
        "item code not 14 digits",
        lambda o, m, c: adjustment_message("9", o, adjusted_item("123", ("Principal", "1.00"))),
        5000,
        "Invalid AmazonOrderItemCode",
    ),
    (
        "cancel more than unshipped",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), cancel=4)
        ),
        18042,
        "more than its 3 unshipped units",
    ),
    (
        "QuantityCancelled 0",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), cancel=0)
        ),
        5000,
        "QuantityCancelled must be a positive integer",
    ),
    (
        "QuantityCancelled not a number",
        lambda o, m, c: adjustment_message(
            "9",
            o,
            adjusted_item(
                m, ("Principal", "1.00"), extra="<QuantityCancelled>one</QuantityCancelled>"
            ),
        ),
        5000,
        "positive integer",
    ),
    (
        "cancel with a reason that cannot cancel",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), reason="CustomerReturn", cancel=1)
        ),
        18043,
        "NoInventory or CustomerCancel",
    ),
    (
        "principal above the item price",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Principal", "37.51"))),
        18044,
        "Principal refund 37.51",
    ),
    (
        "tax above the item tax",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Tax", "7.14"))),
        18044,
        "Tax refund 7.14",
    ),
    (
        "shipping above the shipping charged",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Shipping", "5.00"))),
        18044,
        "Shipping refund",
    ),
    (
        "shipping tax above",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("ShippingTax", "0.96"))),
        18044,
        "ShippingTax refund",
    ),
    (
        "shipping refund of a line without shipping",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(c, ("Shipping", "0.01"))),
        18044,
        "0.00 charged",
    ),
    (
        "gift wrap never charged",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("GiftWrap", "1.00"))),
        18044,
        "GiftWrap refund",
    ),
    (
        "one decimal",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Principal", "12.5"))),
        5000,
        "exactly two decimal places",
    ),
    (
        "three decimals",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Principal", "12.500"))),
        5000,
        "exactly two decimal places",
    ),
    (
        "no decimals",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Principal", "12"))),
        5000,
        "exactly two decimal places",
    ),
    (
        "a comma",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Principal", "12,50"))),
        5000,
        "exactly two decimal places",
    ),
    (
        "negative total",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), ("RestockingFee", "-2.00"))
        ),
        18045,
        "must be a credit to the buyer",
    ),
    (
        "negative principal",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "-1.00"), ("Goodwill", "5.00"))
        ),
        18045,
        "would charge the buyer",
    ),
    (
        "zero without a cancellation",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Principal", "0.00"))),
        18045,
        "must be a credit to the buyer",
    ),
    (
        "no amounts and no cancellation",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m)),
        18045,
        "must be a credit to the buyer",
    ),
    (
        "another currency",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), currency="GBP")
        ),
        18046,
        "not the currency of order",
    ),
    (
        "unknown currency",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), currency="XXX")
        ),
        5000,
        "Invalid currency",
    ),
    (
        "unknown reason",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), reason="BuyerCanceled")
        ),
        5000,
        "Invalid AdjustmentReason",
    ),
    (
        "unknown component type",
        lambda o, m, c: adjustment_message("9", o, adjusted_item(m, ("Refund", "1.00"))),
        5000,
        "Invalid component Type",
    ),
    (
        "promotion component type",
        lambda o, m, c: adjustment_message(
            "9",
            o,
            adjusted_item(
                m,
                ("Principal", "5.00"),
                extra=(
                    "<PromotionAdjustments><Component><Type>Tax</Type><Amount>-1.00</Amount>"
                    "</Component></PromotionAdjustments>"
                ),
            ),
        ),
        5000,
        "Invalid component Type 'Tax' in PromotionAdjustments",
    ),
    (
        "component without an amount",
        lambda o, m, c: adjustment_message(
            "9",
            o,
            adjusted_item(
                m,
                extra=(
                    "<ItemPriceAdjustments><Component><Type>Principal</Type></Component>"
                    "</ItemPriceAdjustments>"
                ),
            ),
        ),
        5000,
        "Component needs Amount",
    ),
    (
        "reason before the adjustment id",
        lambda o, m, c: adjustment_message(
            "9",
            o,
            f"<AdjustedItem><AmazonOrderItemCode>{m}</AmazonOrderItemCode>"
            "<AdjustmentReason>NoInventory</AdjustmentReason>"
            "<MerchantAdjustmentItemID>x-1</MerchantAdjustmentItemID>"
            "<ItemPriceAdjustments><Component><Type>Principal</Type><Amount>1.00</Amount>"
            "</Component></ItemPriceAdjustments></AdjustedItem>",
        ),
        5000,
        "MerchantAdjustmentItemID of AdjustedItem is out of order",
    ),
    (
        "QuantityCancelled before the prices",
        lambda o, m, c: adjustment_message(
            "9",
            o,
            f"<AdjustedItem><AmazonOrderItemCode>{m}</AmazonOrderItemCode>"
            "<AdjustmentReason>NoInventory</AdjustmentReason>"
            "<QuantityCancelled>1</QuantityCancelled>"
            "<ItemPriceAdjustments><Component><Type>Principal</Type><Amount>1.00</Amount>"
            "</Component></ItemPriceAdjustments></AdjustedItem>",
        ),
        5000,
        "out of order",
    ),
    (
        "no reason",
        lambda o, m, c: adjustment_message(
            "9",
            o,
            f"<AdjustedItem><AmazonOrderItemCode>{m}</AmazonOrderItemCode>"
            "<QuantityCancelled>1</QuantityCancelled></AdjustedItem>",
        ),
        5000,
        "AdjustedItem needs AdjustmentReason",
    ),
    (
        "unknown element",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), extra="<Refund>yes</Refund>")
        ),
        5000,
        "unexpected element Refund",
    ),
    (
        "ActionType after the items",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00")) + "<ActionType>Refund</ActionType>"
        ),
        5000,
        "ActionType of OrderAdjustment is out of order",
    ),
    (
        "unknown ActionType",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00")), head="<ActionType>Return</ActionType>"
        ),
        5000,
        "Invalid ActionType",
    ),
    (
        "no AdjustedItem",
        lambda o, m, c: adjustment_message("9", o),
        5000,
        "OrderAdjustment needs AdjustedItem",
    ),
    (
        "adjustment id too long",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), merchant_id="x" * 51)
        ),
        5000,
        "1 to 50 characters",
    ),
    (
        "empty adjustment id",
        lambda o, m, c: adjustment_message(
            "9", o, adjusted_item(m, ("Principal", "1.00"), merchant_id="")
        ),
        5000,
        "1 to 50 characters",
    ),
    (
        "MerchantOrderItemID",
        lambda o, m, c: adjustment_message(
            "9",
            o,
            "<AdjustedItem><MerchantOrderItemID>LINE-1</MerchantOrderItemID>"
            "<AdjustmentReason>NoInventory</AdjustmentReason>"
            "<QuantityCancelled>1</QuantityCancelled></AdjustedItem>",
        ),
        18040,
        "MerchantOrderItemID is not supported",
    ),
    (
        "MerchantOrderID",
        lambda o, m, c: (
            "<Message><MessageID>9</MessageID><OrderAdjustment>"
            "<MerchantOrderID>SHOP-1</MerchantOrderID>"
            + adjusted_item(m, ("Principal", "1.00"))
            + "</OrderAdjustment></Message>"
        ),
        18040,
        "MerchantOrderID is not supported",
    ),
    (
        "order id not 3-7-7",
        lambda o, m, c: adjustment_message("9", "302-123", adjusted_item(m, ("Principal", "1.00"))),
        5000,
        "Invalid AmazonOrderID",
    ),
    (
        "unknown order",
        lambda o, m, c: adjustment_message(
            "9", "302-0000000-0000000", adjusted_item(m, ("Principal", "1.00"))
        ),
        18028,
        "was not found for this seller",
    ),
]


@pytest.mark.parametrize(
    ("build", "number", "fragment"),
    [case[1:] for case in REJECTED],
    ids=[case[0] for case in REJECTED],
)
def test_adjustments_amazon_refuses(
    sandbox: SandboxServer,
    amazon: Amazon,
    order: dict[str, Any],
    build: Callable[[str, str, str], str],
    number: int,
    fragment: str,
) -> None:
    order_id = order["orderId"]
    mug, cable = codes(order)
    report = send(amazon, build(order_id, mug, cable))
    (error,) = results_of(report)
    assert error["message_id"] == "9"
    assert error["code"] == "Error"
    assert error["number"] == number, error
    assert fragment in error["description"]
    assert summary_of(report)["MessagesWithError"] == 1
    # Nothing was applied.
    assert sandbox.control.get_order(order_id) == order
    assert sandbox.control.adjustments() == []


def test_a_cancelled_order_cannot_be_adjusted(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    created = sandbox.control.create_order(seller["seller_id"], items=[MUG], status="CANCELLED")
    (mug,) = (item["orderItemId"] for item in created["orderItems"])
    report = send(
        amazon,
        adjustment_message("1", created["orderId"], adjusted_item(mug, ("Principal", "1.00"))),
    )
    (error,) = results_of(report)
    assert error["number"] == 18041
    assert "is cancelled" in error["description"]
    assert sandbox.control.get_order(created["orderId"]) == created


def test_another_sellers_order_is_not_found(
    sandbox: SandboxServer, http: requests.Session, order: dict[str, Any]
) -> None:
    mug, _cable = codes(order)
    other = Amazon(sandbox, http).login(sandbox.control.create_seller())
    report = send(
        other, adjustment_message("1", order["orderId"], adjusted_item(mug, ("Principal", "1.00")))
    )
    (error,) = results_of(report)
    assert error["number"] == 18028
    assert error["info"] == {}
    assert sandbox.control.get_order(order["orderId"]) == order


def test_an_acknowledgement_is_not_an_adjustment(amazon: Amazon) -> None:
    content = ADJUSTMENT_FEED.replace("OrderAdjustment", "OrderAcknowledgement").format(
        messages="<Message><MessageID>1</MessageID><OrderAcknowledgement/></Message>"
    )
    feed = wait_for_feed(amazon, submit_feed(amazon, content.encode(), ADJUSTMENT))
    assert feed["processingStatus"] == "FATAL"


# -- the control API -------------------------------------------------------------------------------


def test_control_adjustments_filters_and_errors(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any], order: dict[str, Any]
) -> None:
    control = sandbox.control
    second = control.create_order(seller["seller_id"], items=[CABLE])
    mug, _cable = codes(order)
    (cable,) = (item["orderItemId"] for item in second["orderItems"])
    report = send(
        amazon,
        adjustment_message("1", order["orderId"], adjusted_item(mug, ("Principal", "1.00"))),
        adjustment_message("2", second["orderId"], adjusted_item(cable, ("Principal", "1.00"))),
    )
    assert results_of(report) == []
    assert [a["orderId"] for a in control.adjustments()] == [order["orderId"], second["orderId"]]
    assert [a["orderItemId"] for a in control.adjustments(second["orderId"])] == [cable]
    other = control.create_seller()
    assert control.adjustments(seller_id=other["seller_id"]) == []
    assert control.order_adjustments(second["orderId"])["adjustments"][0]["orderItemId"] == cable
    for call in (
        lambda: control.adjustments("302-0000000-0000000"),
        lambda: control.adjustments(seller_id="NOSUCHSELLER"),
        lambda: control.order_adjustments("302-0000000-0000000"),
    ):
        with pytest.raises(SandboxControlError) as info:
            call()
        assert info.value.status == 404
