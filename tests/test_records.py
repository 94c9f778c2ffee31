"""Parsing Orders v2026-01-01 orders, including every static sandbox example of the model."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest

from flask_amazon_orders.client import LWACredentials, SPAPIClient
from flask_amazon_orders.client.records import parse_order
from flask_amazon_orders.errors import MalformedResponseError

MODEL = Path(__file__).parents[1] / "flask_amazon_orders" / "sandbox" / "models"
ORDERS_MODEL = json.loads((MODEL / "orders_2026-01-01.json").read_text())


def _static_cases(operation_id: str) -> list[dict]:
    cases = []
    for methods in ORDERS_MODEL["paths"].values():
        for operation in methods.values():
            if operation.get("operationId") != operation_id:
                continue
            static = operation["responses"]["200"]["x-amzn-api-sandbox"]["static"]
            cases.extend(static)
    return cases


def _client(sandbox, seller) -> SPAPIClient:
    return SPAPIClient(
        credentials=LWACredentials(
            "sandbox-client-id", "sandbox-client-secret", seller["refresh_token"]
        ),
        endpoint=sandbox.url,
        lwa_url=sandbox.url + "/auth/o2/token",
        seller_key=seller["seller_id"],
    )


def _check(order: dict) -> None:
    record = parse_order(order)
    assert record.amazon_order_id == order["orderId"]
    assert len(record.items) == len(order["orderItems"])
    total = order.get("proceeds", {}).get("grandTotal")
    if total:
        assert record.order_total == Decimal(total["amount"])
        assert record.currency == total["currencyCode"]
    for item, raw in zip(record.items, order["orderItems"], strict=True):
        assert item.order_item_id == raw["orderItemId"]
        assert item.quantity_ordered == raw["quantityOrdered"]
        unit = raw["product"].get("price", {}).get("unitPrice")
        if unit:
            assert item.unit_price == Decimal(unit["amount"])
    assert record.purchased_at.tzinfo is not None


@pytest.mark.parametrize(
    "case", _static_cases("searchOrders"), ids=lambda c: str(c["request"]["parameters"])[:60]
)
def test_client_parses_static_search_orders_examples(sandbox, seller, case):
    params = {k: v["value"] for k, v in case["request"]["parameters"].items()}
    body = _client(sandbox, seller).search_orders(
        created_after=params["createdAfter"],
        marketplace_ids=params.get("marketplaceIds"),
        included_data=params.get("includedData"),
        pagination_token=params.get("paginationToken"),
    )
    assert body == case["response"]
    assert body["orders"]
    for order in body["orders"]:
        _check(order)


@pytest.mark.parametrize(
    "case", _static_cases("getOrder"), ids=lambda c: c["request"]["parameters"]["orderId"]["value"]
)
def test_client_parses_static_get_order_examples(sandbox, seller, case):
    params = {k: v["value"] for k, v in case["request"]["parameters"].items()}
    order = _client(sandbox, seller).get_order(
        params["orderId"], included_data=params.get("includedData")
    )
    assert order == case["response"]["order"]
    _check(order)


def _base_order() -> dict:
    return copy.deepcopy(_static_cases("getOrder")[0]["response"]["order"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.pop("orderId"), "missing 'orderId'"),
        (lambda o: o.pop("fulfillment"), "missing 'fulfillment'"),
        (lambda o: o["fulfillment"].update(fulfillmentStatus="LOST"), "unknown fulfillmentStatus"),
        (lambda o: o.update(createdTime="yesterday"), "not an ISO 8601 time"),
        (lambda o: o.update(orderItems=None), "missing 'orderItems'"),
        (lambda o: o["orderItems"][0].update(quantityOrdered=-1), "non-negative integer"),
        (lambda o: o["orderItems"][0].update(quantityOrdered="2"), "non-negative integer"),
        (lambda o: o["proceeds"]["grandTotal"].update(amount="12,50"), "not a decimal"),
        (lambda o: o["proceeds"]["grandTotal"].update(amount="NaN"), "not a finite"),
        (lambda o: o["orderItems"].append(copy.deepcopy(o["orderItems"][0])), "duplicate"),
        (lambda o: o["orderItems"][0]["proceeds"].update(breakdowns="x"), "is not a list"),
        (lambda o: o["orderItems"][0]["proceeds"]["breakdowns"][0].pop("type"), "missing 'type'"),
        (
            lambda o: o["orderItems"][0]["proceeds"]["breakdowns"][0].update(subtotal=[]),
            "missing 'subtotal'",
        ),
        (lambda o: o["orderItems"][0]["product"].update(price="9.99"), "'price' is not an object"),
        (lambda o: o["orderItems"][0]["product"].update(sellerSku=7), "'sellerSku' is not a str"),
        (lambda o: o["orderItems"][0].update(cancellation=[]), "'cancellation' is not an object"),
        (
            lambda o: o["orderItems"][0]["proceeds"]["proceedsTotal"].update(currencyCode="USD"),
            "mixed currencies",
        ),
    ],
)
def test_malformed_orders_raise_a_clear_error(mutate, message):
    order = _base_order()
    mutate(order)
    with pytest.raises(MalformedResponseError, match=message):
        parse_order(order, operation="getOrder")


def test_status_names_are_seller_centrals():
    order = _base_order()
    for amazon, ours in [
        ("UNSHIPPED", "Unshipped"),
        ("PARTIALLY_SHIPPED", "PartiallyShipped"),
        ("CANCELLED", "Canceled"),
        ("PENDING", "Pending"),
    ]:
        order["fulfillment"]["fulfillmentStatus"] = amazon
        assert parse_order(order).status == ours


def test_buyer_data_is_not_in_the_repr():
    record = parse_order(_base_order())
    assert record.buyer and record.shipping_address
    text = repr(record)
    assert record.buyer["buyerName"] not in text
    assert record.shipping_address["addressLine1"] not in text
