"""The bundled Amazon sandbox, exercised over real HTTP on loopback."""

from __future__ import annotations

import gzip
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import requests

from flask_amazon_orders.sandbox import (
    FEED_PROCESSORS,
    SandboxControl,
    SandboxControlError,
    SandboxServer,
    create_app,
    processing_report,
)
from flask_amazon_orders.sandbox import __main__ as sandbox_cli

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}
ORDERS = "/orders/2026-01-01/orders"
FEEDS = "/feeds/2021-06-30"
LONG_AGO = "2000-01-01T00:00:00Z"
XML = "text/xml; charset=UTF-8"
DE = "A1PA6795UKMFR9"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ago(**delta: float) -> str:
    return iso(datetime.now(timezone.utc) - timedelta(**delta))


class Amazon:
    """A tiny test client for the sandbox's Amazon endpoints."""

    def __init__(self, server: SandboxServer, session: requests.Session) -> None:
        self.server = server
        self.url = server.url
        self.session = session
        self.headers: dict[str, str] = {}

    def token(self, refresh_token: str, /, **extra: str) -> requests.Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **CLIENT, **extra}
        return self.session.post(self.url + "/auth/o2/token", data=data, timeout=10)

    def login(self, seller: dict[str, Any]) -> Amazon:
        response = self.token(seller["refresh_token"])
        assert response.status_code == 200, response.text
        self.headers = {"x-amz-access-token": response.json()["access_token"]}
        return self

    def get(self, path: str, timeout: float = 10, **params: Any) -> requests.Response:
        return self.session.get(
            self.url + path, params=params, headers=self.headers, timeout=timeout
        )

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body, headers=self.headers, timeout=10)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.url + path, headers=self.headers, timeout=10)

    def search(self, **params: Any) -> requests.Response:
        return self.get(ORDERS, **params)

    def search_all(self, **params: Any) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = []
        while True:
            response = self.search(**params)
            assert response.status_code == 200, response.text
            data = response.json()
            orders += data["orders"]
            token = data.get("pagination", {}).get("nextToken")
            if not token:
                return orders
            params = {"paginationToken": token}


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox(enforce_rate_limits=False)


@pytest.fixture
def seller(sandbox: SandboxServer) -> dict[str, Any]:
    return sandbox.control.create_seller("A1SELLERONE001")


@pytest.fixture
def amazon(sandbox: SandboxServer, http: requests.Session, seller: dict[str, Any]) -> Amazon:
    return Amazon(sandbox, http).login(seller)


def errors_of(response: requests.Response) -> list[dict[str, str]]:
    return response.json()["errors"]  # type: ignore[no-any-return]


# -- LWA ---------------------------------------------------------------------------------------


def test_refresh_token_grant_returns_an_access_token(
    sandbox: SandboxServer, http: requests.Session, seller: dict[str, Any]
) -> None:
    response = Amazon(sandbox, http).token(seller["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"].startswith("Atza|")
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"] == seller["refresh_token"]
    assert response.headers["x-amzn-RequestId"]


def test_token_endpoint_accepts_a_json_body(
    sandbox: SandboxServer, http: requests.Session, seller: dict[str, Any]
) -> None:
    body = {"grant_type": "refresh_token", "refresh_token": seller["refresh_token"], **CLIENT}
    response = http.post(sandbox.url + "/auth/o2/token", json=body, timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"refresh_token": "Atzr|unknown"}, 400, "invalid_grant"),
        ({"refresh_token": ""}, 400, "invalid_request"),
        ({"grant_type": ""}, 400, "invalid_request"),
        ({"client_id": ""}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_token_endpoint_errors(
    sandbox: SandboxServer,
    http: requests.Session,
    seller: dict[str, Any],
    form: dict[str, str],
    status: int,
    error: str,
) -> None:
    response = Amazon(sandbox, http).token(seller["refresh_token"], **form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_revoked_seller_gets_invalid_grant_and_its_tokens_stop_working(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    assert amazon.search(lastUpdatedAfter=LONG_AGO).status_code == 200
    sandbox.control.revoke_seller(seller["seller_id"])
    response = amazon.token(seller["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert amazon.search(lastUpdatedAfter=LONG_AGO).status_code == 403


def test_client_credentials_grant_gives_a_grantless_token(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    url = sandbox.url + "/auth/o2/token"
    form = {"grant_type": "client_credentials", "scope": "sellingpartnerapi::notifications"}
    response = http.post(url, data={**form, **CLIENT}, timeout=10)
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert "refresh_token" not in response.json()
    orders = http.get(
        sandbox.url + ORDERS,
        params={"lastUpdatedAfter": LONG_AGO},
        headers={"x-amz-access-token": token},
        timeout=10,
    )
    assert orders.status_code == 403
    bad = http.post(url, data={**form, "scope": "sellingpartnerapi::everything", **CLIENT})
    assert bad.json()["error"] == "invalid_scope"
    missing = http.post(url, data={"grant_type": "client_credentials", **CLIENT}, timeout=10)
    assert missing.json()["error"] == "invalid_request"


# -- SP-API auth -------------------------------------------------------------------------------


def test_missing_access_token_is_403(sandbox: SandboxServer, http: requests.Session) -> None:
    response = http.get(sandbox.url + ORDERS, params={"lastUpdatedAfter": LONG_AGO}, timeout=10)
    assert response.status_code == 403
    assert response.json() == {
        "errors": [
            {
                "code": "Unauthorized",
                "message": "Access to requested resource is denied.",
                "details": "Access token is missing in the request header.",
            }
        ]
    }
    assert response.headers["x-amzn-RequestId"]
    assert "x-amzn-RateLimit-Limit" not in response.headers


def test_unknown_access_token_is_403(sandbox: SandboxServer, http: requests.Session) -> None:
    response = http.get(
        sandbox.url + ORDERS + "/302-1234567-1234567",
        headers={"x-amz-access-token": "Atza|made-up"},
        timeout=10,
    )
    assert response.status_code == 403
    assert errors_of(response)[0]["code"] == "Unauthorized"
    assert "invalid" in errors_of(response)[0]["details"]


def test_expired_access_token_is_403(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(access_token_ttl=0.3)
    amazon = Amazon(server, http).login(server.control.create_seller())
    assert amazon.search(lastUpdatedAfter=LONG_AGO).status_code == 200
    time.sleep(0.4)
    response = amazon.search(lastUpdatedAfter=LONG_AGO)
    assert response.status_code == 403
    assert "expired" in errors_of(response)[0]["details"]


def test_a_seller_only_sees_its_own_orders(
    sandbox: SandboxServer, http: requests.Session, amazon: Amazon, seller: dict[str, Any]
) -> None:
    mine = sandbox.control.create_order(seller["seller_id"])
    other_seller = sandbox.control.create_seller("A2OTHERSELLER2")
    theirs = sandbox.control.create_order(other_seller["seller_id"])
    found = amazon.search_all(lastUpdatedAfter=LONG_AGO)
    assert [o["orderId"] for o in found] == [mine["orderId"]]
    assert amazon.get(f"{ORDERS}/{theirs['orderId']}").status_code == 404
    assert amazon.get(f"{ORDERS}/{mine['orderId']}").status_code == 200


# -- searchOrders ------------------------------------------------------------------------------


def _ids(orders: list[dict[str, Any]]) -> list[str]:
    return [o["orderId"] for o in orders]


def test_search_filters(sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]) -> None:
    control, sid = sandbox.control, seller["seller_id"]
    unshipped = control.create_order(sid, status="UNSHIPPED")["orderId"]
    shipped = control.create_order(sid, status="SHIPPED")["orderId"]
    pending = control.create_order(sid, status="PENDING")["orderId"]
    afn = control.create_order(sid, status="SHIPPED", fulfilled_by="AMAZON")["orderId"]
    french = control.create_order(sid, marketplace_id="A13V1IB3VIYZZH")["orderId"]

    def found(**params: Any) -> set[str]:
        return set(_ids(amazon.search_all(lastUpdatedAfter=LONG_AGO, **params)))

    assert found() == {unshipped, shipped, pending, afn, french}
    assert found(fulfillmentStatuses="SHIPPED") == {shipped, afn}
    assert found(fulfillmentStatuses="UNSHIPPED,PENDING") == {unshipped, pending, french}
    assert found(fulfillmentStatuses=["UNSHIPPED", "PENDING"]) == {unshipped, pending, french}
    assert found(fulfilledBy="AMAZON") == {afn}
    assert found(fulfilledBy="MERCHANT", fulfillmentStatuses="SHIPPED") == {shipped}
    assert found(marketplaceIds="A13V1IB3VIYZZH") == {french}
    assert found(marketplaceIds=f"{DE},A13V1IB3VIYZZH") == {
        unshipped,
        shipped,
        pending,
        afn,
        french,
    }


def test_search_windows_by_created_and_by_last_update(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    control, sid = sandbox.control, seller["seller_id"]
    old = control.create_order(
        sid, created_time="2025-01-10T10:00:00Z", last_updated_time="2025-01-20T10:00:00Z"
    )["orderId"]
    newer = control.create_order(sid, created_time="2025-01-15T10:00:00Z")["orderId"]

    by_created = amazon.search(
        createdAfter="2025-01-10T10:00:00Z", createdBefore="2025-01-14T00:00:00Z"
    )
    assert _ids(by_created.json()["orders"]) == [old]
    assert by_created.json()["createdBefore"] == "2025-01-14T00:00:00Z"
    assert "lastUpdatedBefore" not in by_created.json()
    # "at or after" and "at or before" are inclusive; results come in time order.
    by_update = amazon.search(
        lastUpdatedAfter="2025-01-15T10:00:00Z", lastUpdatedBefore="2025-01-20T10:00:00Z"
    )
    assert _ids(by_update.json()["orders"]) == [newer, old]
    assert by_update.json()["lastUpdatedBefore"] == "2025-01-20T10:00:00Z"
    assert _ids(amazon.search(createdAfter="2025-01-11T00:00:00Z").json()["orders"]) == [newer]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "Exactly one of createdAfter and lastUpdatedAfter"),
        ({"createdAfter": LONG_AGO, "lastUpdatedAfter": LONG_AGO}, "Exactly one"),
        ({"createdAfter": LONG_AGO, "lastUpdatedBefore": LONG_AGO}, "cannot be provided"),
        ({"lastUpdatedAfter": LONG_AGO, "createdBefore": LONG_AGO}, "cannot be provided"),
        ({"createdAfter": "yesterday"}, "ISO 8601"),
        (
            {"createdAfter": "2025-02-01T00:00:00Z", "createdBefore": "2025-01-01T00:00:00Z"},
            "after",
        ),
        ({"lastUpdatedAfter": "2999-01-01T00:00:00Z"}, "later than the time of the request"),
        ({"lastUpdatedAfter": LONG_AGO, "maxResultsPerPage": "0"}, "between 1 and 100"),
        ({"lastUpdatedAfter": LONG_AGO, "maxResultsPerPage": "101"}, "between 1 and 100"),
        ({"lastUpdatedAfter": LONG_AGO, "maxResultsPerPage": "ten"}, "between 1 and 100"),
        ({"lastUpdatedAfter": LONG_AGO, "fulfillmentStatuses": "Unshipped"}, "fulfillmentStatuses"),
        ({"lastUpdatedAfter": LONG_AGO, "fulfilledBy": "AFN"}, "fulfilledBy"),
        ({"lastUpdatedAfter": LONG_AGO, "includedData": "EVERYTHING"}, "includedData"),
        ({"lastUpdatedAfter": LONG_AGO, "marketplaceIds": ",".join(["X"] * 51)}, "at most 50"),
        ({"lastUpdatedAfter": LONG_AGO, "paginationToken": "garbage"}, "paginationToken"),
    ],
)
def test_search_validation_errors(amazon: Amazon, params: dict[str, str], fragment: str) -> None:
    response = amazon.search(**params)
    assert response.status_code == 400
    (error,) = errors_of(response)
    assert error["code"] == "InvalidInput"
    assert fragment in error["message"]
    assert response.headers["x-amzn-RateLimit-Limit"] == "0.0056"


def test_explicit_before_must_be_two_minutes_old(amazon: Amazon) -> None:
    too_recent = amazon.search(lastUpdatedAfter=LONG_AGO, lastUpdatedBefore=ago(seconds=60))
    assert too_recent.status_code == 400
    assert "at least 120 seconds before" in errors_of(too_recent)[0]["message"]
    bound = ago(minutes=3)
    fine = amazon.search(lastUpdatedAfter=LONG_AGO, lastUpdatedBefore=bound)
    assert fine.status_code == 200
    assert fine.json()["lastUpdatedBefore"] == bound


def test_search_lag_moves_the_default_upper_bound(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(search_lag=60, enforce_rate_limits=False)
    seller = server.control.create_seller()
    amazon = Amazon(server, http).login(seller)
    server.control.create_order(seller["seller_id"])
    before = datetime.now(timezone.utc)
    response = amazon.search(lastUpdatedAfter=LONG_AGO)
    bound = parse(response.json()["lastUpdatedBefore"])
    assert timedelta(seconds=59) <= before - bound <= timedelta(seconds=62)
    assert response.json()["orders"] == []
    old = server.control.create_order(seller["seller_id"], created_time=ago(minutes=5))
    assert _ids(amazon.search(lastUpdatedAfter=LONG_AGO).json()["orders"]) == [old["orderId"]]


def test_without_before_the_bound_is_now(amazon: Amazon) -> None:
    before = datetime.now(timezone.utc)
    bound = parse(amazon.search(lastUpdatedAfter=LONG_AGO).json()["lastUpdatedBefore"])
    assert abs(bound - before) < timedelta(seconds=2)


def test_pagination_is_stable_while_orders_change(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    control, sid = sandbox.control, seller["seller_id"]
    control.generate_orders(sid, 250, statuses=["UNSHIPPED"], seed=1)
    expected = amazon.search_all(lastUpdatedAfter=LONG_AGO)
    expected_ids = _ids(expected)
    assert len(expected_ids) == 250
    keys = [(o["lastUpdatedTime"], o["orderId"]) for o in expected]
    assert keys == sorted(keys)

    first = amazon.search(lastUpdatedAfter=LONG_AGO, maxResultsPerPage=100).json()
    assert _ids(first["orders"]) == expected_ids[:100]
    bound = first["lastUpdatedBefore"]
    # Meanwhile: an order already served changes, an order not yet served changes,
    # and a new order arrives.
    control.set_status(expected_ids[10], "SHIPPED")
    moved = control.set_status(expected_ids[220], "CANCELLED")
    control.create_order(sid)

    second = amazon.search(paginationToken=first["pagination"]["nextToken"]).json()
    assert _ids(second["orders"]) == expected_ids[100:200]
    assert second["lastUpdatedBefore"] == bound
    third = amazon.search(paginationToken=second["pagination"]["nextToken"]).json()
    assert _ids(third["orders"]) == [i for i in expected_ids[200:] if i != expected_ids[220]]
    assert "pagination" not in third
    # The changed order left the window; the next window (from the bound) has it.
    later = _ids(amazon.search_all(lastUpdatedAfter=bound))
    assert moved["orderId"] in later
    assert expected_ids[10] in later
    assert parse(moved["lastUpdatedTime"]) > parse(bound)


def test_pagination_token_carries_filters_and_page_size(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    sandbox.control.generate_orders(seller["seller_id"], 30, seed=2)
    first = amazon.search(
        createdAfter=LONG_AGO,
        fulfilledBy="MERCHANT",
        maxResultsPerPage=7,
        includedData="FULFILLMENT",
    ).json()
    seen = first["orders"]
    token = first["pagination"]["nextToken"]
    while token:
        page = amazon.search(paginationToken=token).json()
        assert len(page["orders"]) <= 7
        assert "createdBefore" in page
        seen += page["orders"]
        token = page.get("pagination", {}).get("nextToken")
    assert seen
    assert all(o["fulfillment"]["fulfilledBy"] == "MERCHANT" for o in seen)
    created = [o["createdTime"] for o in seen]
    assert created == sorted(created)
    assert len(set(_ids(seen))) == len(seen)


def test_pagination_token_of_another_seller_or_tampered_is_invalid(
    sandbox: SandboxServer, http: requests.Session, amazon: Amazon, seller: dict[str, Any]
) -> None:
    sandbox.control.generate_orders(seller["seller_id"], 5, seed=3)
    token = amazon.search(lastUpdatedAfter=LONG_AGO, maxResultsPerPage=2).json()["pagination"][
        "nextToken"
    ]
    tampered = token[:-3] + ("abc" if not token.endswith("abc") else "xyz")
    assert amazon.search(paginationToken=tampered).status_code == 400
    other = Amazon(sandbox, http).login(sandbox.control.create_seller())
    response = other.search(paginationToken=token)
    assert response.status_code == 400
    assert "paginationToken" in errors_of(response)[0]["message"]


def test_pagination_token_expires(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(pagination_token_ttl=0.3, enforce_rate_limits=False)
    seller = server.control.create_seller()
    server.control.generate_orders(seller["seller_id"], 5, seed=4)
    amazon = Amazon(server, http).login(seller)
    token = amazon.search(lastUpdatedAfter=LONG_AGO, maxResultsPerPage=2).json()["pagination"][
        "nextToken"
    ]
    time.sleep(0.4)
    response = amazon.search(paginationToken=token)
    assert response.status_code == 400
    assert errors_of(response)[0]["code"] == "InvalidInput"
    assert "expired" in errors_of(response)[0]["message"]


def test_static_examples_are_served_on_an_exact_match(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox()
    amazon = Amazon(server, http).login(server.control.create_seller())
    response = amazon.search(
        createdAfter="2024-12-20T00:00:00Z",
        marketplaceIds="A2Q3Y263D00KWC",
        includedData="BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,TAX,PAYMENT",
    )
    assert response.status_code == 200
    assert _ids(response.json()["orders"]) == ["171-2345678-9012345"]
    assert amazon.search(createdAfter="TEST_CASE_400").status_code == 400
    order = amazon.get(
        f"{ORDERS}/028-1234567-8901234", includedData="BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,TAX"
    )
    assert order.json()["order"]["salesChannel"]["marketplaceId"] == "A33AVAJ2PDY3EV"
    # Not an exact match (an extra parameter): the real search answers.
    close = amazon.search(
        createdAfter="2024-12-20T00:00:00Z", marketplaceIds="A2Q3Y263D00KWC", maxResultsPerPage=5
    )
    assert close.json()["orders"] == []

    plain = make_sandbox(static_examples=False)
    amazon = Amazon(plain, http).login(plain.control.create_seller())
    response = amazon.search(
        createdAfter="2024-12-20T00:00:00Z",
        marketplaceIds="A2Q3Y263D00KWC",
        includedData="BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,TAX,PAYMENT",
    )
    assert response.json()["orders"] == []


# -- getOrder and includedData -----------------------------------------------------------------


def test_get_order(sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]) -> None:
    created = sandbox.control.create_order(seller["seller_id"])
    response = amazon.get(f"{ORDERS}/{created['orderId']}")
    assert response.status_code == 200
    assert response.headers["x-amzn-RateLimit-Limit"] == "0.5"
    order = response.json()["order"]
    assert order["orderId"] == created["orderId"]
    assert order["lastUpdatedTime"] == created["lastUpdatedTime"]

    bad = amazon.get(f"{ORDERS}/12345")
    assert bad.status_code == 400
    assert errors_of(bad)[0] == {
        "code": "InvalidInput",
        "message": "OrderId: 12345 is invalid, should be in 3-7-7 format.",
    }
    missing = amazon.get(f"{ORDERS}/302-0000000-0000000")
    assert missing.status_code == 404
    assert errors_of(missing)[0]["code"] == "NotFound"
    assert missing.headers["x-amzn-RateLimit-Limit"] == "0.5"
    assert amazon.get(f"{ORDERS}/{created['orderId']}", includedData="NOPE").status_code == 400


ALWAYS = {"orderId", "createdTime", "lastUpdatedTime", "salesChannel", "orderItems"}


@pytest.mark.parametrize(
    ("included", "order_keys", "item_keys"),
    [
        ("", set(), set()),
        ("BUYER", {"buyer"}, set()),
        ("RECIPIENT", {"recipient"}, set()),
        ("PROCEEDS", {"proceeds"}, {"proceeds"}),
        ("FULFILLMENT", {"fulfillment"}, {"fulfillment"}),
        ("CANCELLATION", set(), {"cancellation"}),
        ("PROMOTION", set(), {"promotion"}),
        ("TAX", {"tax"}, {"tax"}),
        ("PACKAGES", {"packages"}, set()),
        ("EXPENSE", set(), set()),
        ("PAYMENT", {"payment"}, set()),
    ],
)
def test_included_data_gates_the_optional_blocks(
    sandbox: SandboxServer,
    amazon: Amazon,
    seller: dict[str, Any],
    included: str,
    order_keys: set[str],
    item_keys: set[str],
) -> None:
    created = sandbox.control.create_order(
        seller["seller_id"],
        status="SHIPPED",
        seller_order_id=None,
        buyer_cancel_reason="Found a better price elsewhere",
        items=[{"sku": "SKU-1", "unit_price": "10.00", "promotion_discount": "1.00"}],
    )
    params = {"includedData": included} if included else {}
    order = amazon.get(f"{ORDERS}/{created['orderId']}", **params).json()["order"]
    assert set(order) == ALWAYS | order_keys
    (item,) = order["orderItems"]
    assert set(item) == {"orderItemId", "quantityOrdered", "product"} | item_keys
    assert set(item["product"]) >= {"asin", "title", "sellerSku", "condition", "price"}
    assert item["product"]["price"]["unitPrice"] == {"amount": "10.00", "currencyCode": "EUR"}


def test_recipient_and_packages_only_where_amazon_gives_them(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    control, sid = sandbox.control, seller["seller_id"]
    every = "RECIPIENT,PACKAGES,FULFILLMENT"
    pending = control.create_order(sid, status="PENDING")
    order = amazon.get(f"{ORDERS}/{pending['orderId']}", includedData=every).json()["order"]
    assert "recipient" not in order
    assert "packages" not in order
    afn = control.create_order(sid, status="SHIPPED", fulfilled_by="AMAZON")
    order = amazon.get(f"{ORDERS}/{afn['orderId']}", includedData=every).json()["order"]
    assert "packages" not in order
    assert "phone" not in order["recipient"]["deliveryAddress"]
    mfn = control.create_order(
        sid, status="SHIPPED", items=[{"sku": "A", "quantity": 2}, {"sku": "B"}]
    )
    order = amazon.get(f"{ORDERS}/{mfn['orderId']}", includedData=every).json()["order"]
    (package,) = order["packages"]
    assert package["carrier"] and package["trackingNumber"]
    assert [(p["orderItemId"], p["quantity"]) for p in package["packageItems"]] == [
        (i["orderItemId"], i["quantityOrdered"]) for i in order["orderItems"]
    ]
    assert order["recipient"]["deliveryAddress"]["countryCode"] == "DE"


def test_proceeds_add_up(sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]) -> None:
    created = sandbox.control.create_order(
        seller["seller_id"],
        items=[
            {
                "sku": "MUG",
                "quantity": 2,
                "unit_price": "19.99",
                "shipping_price": "4.99",
                "tax_rate": "0.19",
                "promotion_id": "PROMO-1",
                "promotion_discount": "4.00",
            },
            {"sku": "CABLE", "quantity": 1, "unit_price": 9.99},
        ],
    )
    order = amazon.get(f"{ORDERS}/{created['orderId']}", includedData="PROCEEDS,PROMOTION").json()[
        "order"
    ]
    first, second = order["orderItems"]

    def breakdown(item: dict[str, Any]) -> dict[str, str]:
        return {b["type"]: b["subtotal"]["amount"] for b in item["proceeds"]["breakdowns"]}

    # 2 x 19.99 = 39.98; tax 19 % of (39.98 - 4.00) = 6.84 and of 4.99 = 0.95.
    assert breakdown(first) == {
        "ITEM": "39.98",
        "SHIPPING": "4.99",
        "TAX": "7.79",
        "DISCOUNT": "-4.00",
    }
    tax = next(b for b in first["proceeds"]["breakdowns"] if b["type"] == "TAX")
    assert {d["subtype"]: d["value"]["amount"] for d in tax["detailedBreakdowns"]} == {
        "ITEM": "6.84",
        "SHIPPING": "0.95",
    }
    assert first["proceeds"]["proceedsTotal"]["amount"] == "48.76"
    assert first["promotion"] == {"breakdowns": [{"promotionId": "PROMO-1"}]}
    assert breakdown(second) == {"ITEM": "9.99", "SHIPPING": "0.00", "TAX": "1.90"}
    assert "promotion" not in second
    total = sum(Decimal(i["proceeds"]["proceedsTotal"]["amount"]) for i in order["orderItems"])
    assert Decimal(order["proceeds"]["grandTotal"]["amount"]) == total == Decimal("60.65")
    by_type = {b["type"]: b["subtotal"]["amount"] for b in order["proceeds"]["breakdowns"]}
    assert by_type == {"ITEM": "49.97", "SHIPPING": "4.99", "TAX": "9.69", "DISCOUNT": "-4.00"}


# -- rate limits -------------------------------------------------------------------------------


def test_rate_limit_answers_429_after_the_burst(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(time_scale=0.01)
    seller = server.control.create_seller()
    order = server.control.create_order(seller["seller_id"])
    amazon = Amazon(server, http).login(seller)
    for _ in range(30):
        response = amazon.get(f"{ORDERS}/{order['orderId']}")
        assert response.status_code == 200
        assert response.headers["x-amzn-RateLimit-Limit"] == "0.005"
    throttled = amazon.get(f"{ORDERS}/{order['orderId']}")
    assert throttled.status_code == 429
    assert throttled.json() == {
        "errors": [
            {
                "code": "QuotaExceeded",
                "message": "You exceeded your quota for the requested resource.",
                "details": "",
            }
        ]
    }
    assert throttled.headers["x-amzn-RequestId"]
    assert "x-amzn-RateLimit-Limit" not in throttled.headers
    # Other operations and other sellers have their own buckets.
    assert amazon.search(lastUpdatedAfter=LONG_AGO).status_code == 200
    other = Amazon(server, http).login(server.control.create_seller())
    assert other.get(f"{ORDERS}/{order['orderId']}").status_code == 404
    counters = server.control.counters()
    assert counters["operations"]["getOrder"] == {
        "calls": 32,
        "ok": 30,
        "throttled": 1,
        "faulted": 0,
        "errors": 1,
    }
    assert counters["sellers"][seller["seller_id"]]["getOrder"]["throttled"] == 1


def test_a_request_whose_body_never_comes_is_counted_as_an_error(
    sandbox: SandboxServer, amazon: Amazon
) -> None:
    import socket

    # The client (a worker killed while sending) went away after its headers.
    request = (
        "POST /feeds/2021-06-30/feeds HTTP/1.1\r\nHost: sandbox\r\n"
        f"x-amz-access-token: {amazon.headers['x-amz-access-token']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
    )
    with socket.create_connection(("127.0.0.1", sandbox.port)) as client:
        client.sendall(request.encode())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counts = sandbox.control.counters()["operations"].get("createFeed", {})
        if counts.get("errors"):
            break
        time.sleep(0.01)
    assert counts == {"calls": 1, "ok": 0, "throttled": 0, "faulted": 0, "errors": 1}
    assert sandbox.control.feeds() == []


def test_the_bucket_refills_at_the_scaled_rate(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    # 0.56 requests per second: a loaded machine cannot send 21 requests slowly
    # enough for a token to come back in between.
    server = make_sandbox(time_scale=100)
    amazon = Amazon(server, http).login(server.control.create_seller())
    statuses = [amazon.search(lastUpdatedAfter=LONG_AGO).status_code for _ in range(21)]
    assert statuses[:20] == [200] * 20
    assert statuses[20] == 429
    time.sleep(1.9)
    response = amazon.search(lastUpdatedAfter=LONG_AGO)
    assert response.status_code == 200
    assert response.headers["x-amzn-RateLimit-Limit"] == "0.56"


def test_token_endpoint_is_not_rate_limited(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(time_scale=0.001)
    seller = server.control.create_seller()
    amazon = Amazon(server, http)
    assert all(amazon.token(seller["refresh_token"]).status_code == 200 for _ in range(40))


# -- lifecycle ---------------------------------------------------------------------------------


def test_status_changes_adjust_items_and_bump_last_updated(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    control = sandbox.control
    order = control.create_order(
        seller["seller_id"], items=[{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]
    )
    assert order["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
    stamps = [parse(order["lastUpdatedTime"])]

    partial = control.set_status(order["orderId"], "PARTIALLY_SHIPPED")
    assert [i["fulfillment"] for i in partial["orderItems"]] == [
        {"quantityFulfilled": 2, "quantityUnfulfilled": 0},
        {"quantityFulfilled": 0, "quantityUnfulfilled": 1},
    ]
    stamps.append(parse(partial["lastUpdatedTime"]))
    shipped = control.set_status(order["orderId"], "SHIPPED")
    assert all(i["fulfillment"]["quantityUnfulfilled"] == 0 for i in shipped["orderItems"])
    assert shipped["packages"][0]["packageItems"]
    stamps.append(parse(shipped["lastUpdatedTime"]))
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    seen = amazon.get(f"{ORDERS}/{order['orderId']}", includedData="FULFILLMENT").json()["order"]
    assert seen["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert seen["lastUpdatedTime"] == shipped["lastUpdatedTime"]


def test_cancel_and_buyer_cancel_request(sandbox: SandboxServer, seller: dict[str, Any]) -> None:
    control = sandbox.control
    order = control.create_order(seller["seller_id"])
    asked = control.request_buyer_cancel(order["orderId"], "Ordered by mistake")
    assert parse(asked["lastUpdatedTime"]) > parse(order["lastUpdatedTime"])
    for item in asked["orderItems"]:
        assert item["cancellation"] == {
            "cancellationRequest": {"requester": "BUYER", "cancelReason": "Ordered by mistake"}
        }
    cancelled = control.set_status(order["orderId"], "CANCELLED")
    assert cancelled["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
    for item in cancelled["orderItems"]:
        assert item["cancellation"]["cancellationExecution"] == {
            "cancelledBy": "BUYER",
            "cancelReason": "BUYER_CANCELLED",
        }
        assert item["fulfillment"]["quantityFulfilled"] == 0
    other = control.create_order(seller["seller_id"])
    by_merchant = control.set_status(other["orderId"], "CANCELLED", cancel_reason="NO_INVENTORY")
    assert by_merchant["orderItems"][0]["cancellation"]["cancellationExecution"] == {
        "cancelledBy": "MERCHANT",
        "cancelReason": "NO_INVENTORY",
    }


def test_advance_moves_orders_one_step(sandbox: SandboxServer, seller: dict[str, Any]) -> None:
    control, sid = sandbox.control, seller["seller_id"]
    mfn = control.create_order(sid, status="PENDING", items=[{"sku": "A"}, {"sku": "B"}])
    single = control.create_order(sid, status="UNSHIPPED", items=[{"sku": "C"}])
    afn = control.create_order(sid, status="PENDING", fulfilled_by="AMAZON")

    def status(order: dict[str, Any]) -> str:
        return control.get_order(order["orderId"])["fulfillment"]["fulfillmentStatus"]

    assert control.advance(sid)["advanced"] == 3
    assert (status(mfn), status(single), status(afn)) == ("UNSHIPPED", "SHIPPED", "SHIPPED")
    assert control.advance(sid)["order_ids"] == [mfn["orderId"]]
    assert status(mfn) == "PARTIALLY_SHIPPED"
    control.advance()
    assert status(mfn) == "SHIPPED"
    assert control.advance(sid)["advanced"] == 0


# -- faults ------------------------------------------------------------------------------------


@pytest.fixture
def faulty(sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]) -> Amazon:
    sandbox.control.generate_orders(seller["seller_id"], 20, seed=5)
    return amazon


def test_fault_429(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("searchOrders", "429")
    response = faulty.search(lastUpdatedAfter=LONG_AGO)
    assert response.status_code == 429
    assert errors_of(response)[0]["code"] == "QuotaExceeded"
    assert faulty.search(lastUpdatedAfter=LONG_AGO).status_code == 200


def test_fault_500_has_an_empty_body(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("searchOrders", "500")
    response = faulty.search(lastUpdatedAfter=LONG_AGO)
    assert response.status_code == 500
    assert response.content == b""


def test_fault_500_json_with_another_status(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("getOrder", "500_json")
    sandbox.control.inject_fault("getOrder", "500_json", status=503, after=1)
    first = faulty.get(f"{ORDERS}/302-1234567-1234567")
    assert first.status_code == 500
    assert errors_of(first)[0]["code"] == "InternalFailure"
    assert faulty.get(f"{ORDERS}/302-1234567-1234567").status_code == 503


def test_fault_503_html(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("searchOrders", "503_html")
    response = faulty.search(lastUpdatedAfter=LONG_AGO)
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text


def test_fault_truncated_json(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("searchOrders", "truncated_json")
    response = faulty.search(lastUpdatedAfter=LONG_AGO)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    with pytest.raises(ValueError):
        response.json()


def test_fault_drop_breaks_the_connection(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("searchOrders", "drop")
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        faulty.search(lastUpdatedAfter=LONG_AGO)
    assert faulty.search(lastUpdatedAfter=LONG_AGO).status_code == 200


def test_fault_drop_on_the_token_endpoint_and_an_upload(
    sandbox: SandboxServer, faulty: Amazon, seller: dict[str, Any]
) -> None:
    sandbox.control.inject_fault("token", "drop")
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        faulty.token(seller["refresh_token"])
    url = faulty.post(f"{FEEDS}/documents", {"contentType": XML}).json()["url"]
    sandbox.control.inject_fault("upload", "drop")
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        faulty.session.put(url, data=b"<x/>", headers={"Content-Type": XML}, timeout=10)
    upload = faulty.session.put(url, data=b"<x/>", headers={"Content-Type": XML}, timeout=10)
    assert upload.status_code == 200


def test_fault_slow_triggers_read_timeouts(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("searchOrders", "slow", delay=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        faulty.get(ORDERS, timeout=0.15, lastUpdatedAfter=LONG_AGO)
    sandbox.control.inject_fault("searchOrders", "slow", delay=0.2)
    started = time.monotonic()
    assert faulty.search(lastUpdatedAfter=LONG_AGO).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_fault_expired_pagination_token(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("searchOrders", "expired_pagination_token")
    response = faulty.search(lastUpdatedAfter=LONG_AGO)
    assert response.status_code == 400
    assert errors_of(response)[0]["code"] == "InvalidInput"
    assert "expired" in errors_of(response)[0]["message"]


def test_fault_403(sandbox: SandboxServer, faulty: Amazon) -> None:
    sandbox.control.inject_fault("getOrder", "403")
    response = faulty.get(f"{ORDERS}/302-1234567-1234567")
    assert response.status_code == 403
    assert errors_of(response)[0]["code"] == "Unauthorized"


def test_fault_invalid_grant_on_the_token_endpoint(
    sandbox: SandboxServer, faulty: Amazon, seller: dict[str, Any]
) -> None:
    sandbox.control.inject_fault("token", "invalid_grant")
    response = faulty.token(seller["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert faulty.token(seller["refresh_token"]).status_code == 200


def test_fault_after_count_and_wildcard(sandbox: SandboxServer, faulty: Amazon) -> None:
    control = sandbox.control
    control.inject_fault("searchOrders", "500", count=2, after=1)
    codes = [faulty.search(lastUpdatedAfter=LONG_AGO).status_code for _ in range(4)]
    assert codes == [200, 500, 500, 200]
    control.inject_fault("*", "429")
    assert faulty.get(f"{ORDERS}/302-1234567-1234567").status_code == 429
    control.inject_fault("*", "503_html", count=5)
    control.clear_faults()
    assert control.faults() == []
    assert faulty.search(lastUpdatedAfter=LONG_AGO).status_code == 200
    ops = control.counters()["operations"]
    assert ops["searchOrders"]["faulted"] == 2
    assert ops["searchOrders"]["calls"] == 5
    assert ops["getOrder"]["faulted"] == 1


@pytest.mark.parametrize(
    ("operation", "kind", "extra"),
    [
        ("searchOrders", "explode", {}),
        ("getOrderz", "500", {}),
        ("getOrder", "fatal", {}),
        ("searchOrders", "invalid_grant", {}),
        ("token", "expired_pagination_token", {}),
        ("searchOrders", "500", {"count": 0}),
        ("searchOrders", "500", {"after": -1}),
        ("searchOrders", "500", {"delay": 1}),
        ("searchOrders", "slow", {"status": 500}),
        ("searchOrders", "500", {"status": 200}),
    ],
)
def test_invalid_faults_are_refused(
    sandbox: SandboxServer, operation: str, kind: str, extra: dict[str, Any]
) -> None:
    with pytest.raises(SandboxControlError) as info:
        sandbox.control.inject_fault(operation, kind, **extra)
    assert info.value.status == 400


# -- feeds -------------------------------------------------------------------------------------

ACK_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<AmazonEnvelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:noNamespaceSchemaLocation="amzn-envelope.xsd">
  <Header><DocumentVersion>1.01</DocumentVersion>
    <MerchantIdentifier>A1SELLERONE001</MerchantIdentifier></Header>
  <MessageType>OrderAcknowledgement</MessageType>
  {messages}
</AmazonEnvelope>
"""


def ack_message(
    message_id: str,
    order_id: str = "302-1234567-1234567",
    item_codes: tuple[str, ...] = ("12345678901234",),
) -> str:
    items = "".join(
        f"<Item><AmazonOrderItemCode>{code}</AmazonOrderItemCode>"
        "<CancelReason>NoInventory</CancelReason></Item>"
        for code in item_codes
    )
    return (
        f"<Message><MessageID>{message_id}</MessageID><OrderAcknowledgement>"
        f"<AmazonOrderID>{order_id}</AmazonOrderID><StatusCode>Failure</StatusCode>"
        f"{items}</OrderAcknowledgement></Message>"
    )


def unshipped_order(server: SandboxServer, seller_id: str) -> tuple[str, tuple[str, ...]]:
    """A new unshipped order of the seller: its id and its item codes."""
    order = server.control.create_order(seller_id, status="UNSHIPPED")
    return order["orderId"], tuple(item["orderItemId"] for item in order["orderItems"])


def submit_feed(
    amazon: Amazon,
    content: bytes,
    feed_type: str = "POST_ORDER_ACKNOWLEDGEMENT_DATA",
    content_type: str = XML,
) -> str:
    document = amazon.post(f"{FEEDS}/documents", {"contentType": content_type})
    assert document.status_code == 201, document.text
    upload = amazon.session.put(
        document.json()["url"], data=content, headers={"Content-Type": content_type}, timeout=10
    )
    assert upload.status_code == 200, upload.text
    feed = amazon.post(
        f"{FEEDS}/feeds",
        {
            "feedType": feed_type,
            "marketplaceIds": [DE],
            "inputFeedDocumentId": document.json()["feedDocumentId"],
        },
    )
    assert feed.status_code == 202, feed.text
    return str(feed.json()["feedId"])


def wait_for_feed(amazon: Amazon, feed_id: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        feed = amazon.get(f"{FEEDS}/feeds/{feed_id}").json()
        if feed["processingStatus"] in ("DONE", "FATAL", "CANCELLED"):
            return feed  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, feed
        time.sleep(0.05)


def download_report(amazon: Amazon, document_id: str) -> ET.Element:
    info = amazon.get(f"{FEEDS}/documents/{document_id}")
    assert info.status_code == 200
    assert info.json()["compressionAlgorithm"] == "GZIP"
    raw = amazon.session.get(info.json()["url"], timeout=10)
    assert raw.status_code == 200
    return ET.fromstring(gzip.decompress(raw.content))


def test_feed_flow_from_upload_to_processing_report(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=1.2)
    seller = server.control.create_seller("A1SELLERONE001")
    amazon = Amazon(server, http).login(seller)

    document = amazon.post(f"{FEEDS}/documents", {"contentType": XML})
    assert document.status_code == 201
    assert document.headers["x-amzn-RateLimit-Limit"] == "0.5"
    url = document.json()["url"]
    assert url.startswith(server.url + "/_sandbox/s3/upload/")
    first_order, second_order = (unshipped_order(server, "A1SELLERONE001") for _ in range(2))
    content = ACK_FEED.format(
        messages=ack_message("1", *first_order) + ack_message("2", *second_order)
    ).encode()
    refused = http.put(url, data=content, headers={"Content-Type": "text/xml"}, timeout=10)
    assert refused.status_code == 403
    assert ET.fromstring(refused.content).findtext("Code") == "SignatureDoesNotMatch"
    assert http.put(url, data=content, headers={"Content-Type": XML}, timeout=10).status_code == 200

    created = amazon.post(
        f"{FEEDS}/feeds",
        {
            "feedType": "POST_ORDER_ACKNOWLEDGEMENT_DATA",
            "marketplaceIds": [DE],
            "inputFeedDocumentId": document.json()["feedDocumentId"],
        },
    )
    assert created.status_code == 202
    feed_id = created.json()["feedId"]
    first = amazon.get(f"{FEEDS}/feeds/{feed_id}")
    assert first.headers["x-amzn-RateLimit-Limit"] == "2"
    assert first.json()["processingStatus"] == "IN_QUEUE"
    assert "resultFeedDocumentId" not in first.json()
    statuses = set()
    deadline = time.monotonic() + 5
    while (feed := amazon.get(f"{FEEDS}/feeds/{feed_id}").json())["processingStatus"] != "DONE":
        statuses.add(feed["processingStatus"])
        assert time.monotonic() < deadline
        time.sleep(0.15)  # getFeed allows 2 requests per second after a burst of 15
    assert "IN_PROGRESS" in statuses
    assert feed["processingStartTime"] <= feed["processingEndTime"]

    report = download_report(amazon, feed["resultFeedDocumentId"])
    assert report.findtext("MessageType") == "ProcessingReport"
    processing = report.find("Message/ProcessingReport")
    assert processing is not None
    assert processing.findtext("DocumentTransactionID") == feed_id
    assert processing.findtext("StatusCode") == "Complete"
    assert processing.findtext("ProcessingSummary/MessagesProcessed") == "2"
    assert processing.findtext("ProcessingSummary/MessagesSuccessful") == "2"
    assert processing.findtext("ProcessingSummary/MessagesWithError") == "0"

    (listed,) = server.control.feeds()
    assert listed["feedId"] == feed_id
    assert listed["processingStatus"] == "DONE"
    assert f"<AmazonOrderID>{first_order[0]}</AmazonOrderID>" in listed["document"]
    assert "<ProcessingReport>" in listed["report"]
    for order_id, _items in (first_order, second_order):
        cancelled = server.control.get_order(order_id)
        assert cancelled["fulfillment"]["fulfillmentStatus"] == "CANCELLED"


def test_report_download_with_content_encoding_header(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    amazon = Amazon(server, http).login(server.control.create_seller())
    feed = wait_for_feed(
        amazon, submit_feed(amazon, ACK_FEED.format(messages=ack_message("1")).encode())
    )
    info = amazon.get(
        f"{FEEDS}/documents/{feed['resultFeedDocumentId']}", enableContentEncodingUrlHeader="true"
    )
    raw = http.get(info.json()["url"], timeout=10)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert ET.fromstring(raw.content).findtext("MessageType") == "ProcessingReport"


def test_processing_report_lists_message_errors(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    seller = server.control.create_seller()
    amazon = Amazon(server, http).login(seller)
    first, second = (unshipped_order(server, seller["seller_id"]) for _ in range(2))
    messages = (
        ack_message("1", *first)
        + ack_message("1", *second)
        + "<Message><MessageID>3</MessageID><OrderAdjustment/></Message>"
        + ack_message("4", *second)
    )
    feed = wait_for_feed(amazon, submit_feed(amazon, ACK_FEED.format(messages=messages).encode()))
    assert feed["processingStatus"] == "DONE"
    report = download_report(amazon, feed["resultFeedDocumentId"])
    summary = report.find("Message/ProcessingReport/ProcessingSummary")
    assert summary is not None
    assert summary.findtext("MessagesProcessed") == "4"
    assert summary.findtext("MessagesSuccessful") == "2"
    assert summary.findtext("MessagesWithError") == "2"
    results = report.findall("Message/ProcessingReport/Result")
    assert sorted(r.findtext("MessageID") for r in results) == ["1", "3"]
    assert {r.findtext("ResultCode") for r in results} == {"Error"}


def test_malformed_xml_ends_fatal_with_a_report(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    amazon = Amazon(server, http).login(server.control.create_seller())
    feed = wait_for_feed(amazon, submit_feed(amazon, b"<AmazonEnvelope><Header>"))
    assert feed["processingStatus"] == "FATAL"
    report = download_report(amazon, feed["resultFeedDocumentId"])
    (result,) = report.findall("Message/ProcessingReport/Result")
    assert result.findtext("ResultCode") == "Error"
    assert "XML Parsing Error" in (result.findtext("ResultDescription") or "")


def test_wrong_message_type_for_the_feed_type_is_fatal(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    amazon = Amazon(server, http).login(server.control.create_seller())
    content = ACK_FEED.format(messages=ack_message("1")).encode()
    feed = wait_for_feed(amazon, submit_feed(amazon, content, "POST_PAYMENT_ADJUSTMENT_DATA"))
    assert feed["processingStatus"] == "FATAL"


def test_flat_file_feeds_get_a_tab_separated_summary(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    amazon = Amazon(server, http).login(server.control.create_seller())
    tsv = "text/tab-separated-values; charset=UTF-8"
    content = b"order-id\tamazon-order-item-code\tcancellation-reason-code\n"
    content += b"302-1234567-1234567\t12345678901234\tNoInventory\n"
    feed_id = submit_feed(amazon, content, "POST_FLAT_FILE_ORDER_ACKNOWLEDGEMENT_DATA", tsv)
    feed = wait_for_feed(amazon, feed_id)
    info = amazon.get(f"{FEEDS}/documents/{feed['resultFeedDocumentId']}").json()
    text = gzip.decompress(http.get(info["url"], timeout=10).content).decode()
    assert "Number of records processed\t\t1" in text


def test_feed_processors_are_pluggable(
    make_sandbox: Callable[..., SandboxServer],
    http: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    seller = server.control.create_seller()
    order = server.control.create_order(seller["seller_id"])
    amazon = Amazon(server, http).login(seller)

    def cancel_everything(state: Any, who: Any, document: bytes) -> bytes:
        assert document == b"cancel please"
        state.set_status(order["orderId"], "CANCELLED")
        return processing_report(who.seller_id, state.feeds.processing.feed_id, 1, [])

    monkeypatch.setitem(FEED_PROCESSORS, "SANDBOX_TEST_FEED", cancel_everything)
    feed = wait_for_feed(amazon, submit_feed(amazon, b"cancel please", "SANDBOX_TEST_FEED"))
    assert feed["processingStatus"] == "DONE"
    status = server.control.get_order(order["orderId"])["fulfillment"]["fulfillmentStatus"]
    assert status == "CANCELLED"


def test_a_failing_processor_ends_the_feed_fatal(
    make_sandbox: Callable[..., SandboxServer],
    http: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    amazon = Amazon(server, http).login(server.control.create_seller())

    def broken(state: Any, seller: Any, document: bytes) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setitem(FEED_PROCESSORS, "SANDBOX_BROKEN_FEED", broken)
    feed = wait_for_feed(amazon, submit_feed(amazon, b"x", "SANDBOX_BROKEN_FEED"))
    assert feed["processingStatus"] == "FATAL"
    assert "resultFeedDocumentId" not in feed
    assert server.control.feeds()[0]["error"] == "RuntimeError: boom"


def test_fatal_fault_on_create_feed(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    amazon = Amazon(server, http).login(server.control.create_seller())
    server.control.inject_fault("createFeed", "fatal")
    feed = wait_for_feed(
        amazon, submit_feed(amazon, ACK_FEED.format(messages=ack_message("1")).encode())
    )
    assert feed["processingStatus"] == "FATAL"


def test_upload_faults_and_refusals(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(presigned_url_ttl=0)
    amazon = Amazon(server, http).login(server.control.create_seller())
    url = amazon.post(f"{FEEDS}/documents", {"contentType": XML}).json()["url"]
    time.sleep(0.01)
    expired = http.put(url, data=b"<x/>", headers={"Content-Type": XML}, timeout=10)
    assert expired.status_code == 403
    assert ET.fromstring(expired.content).findtext("Code") == "AccessDenied"

    server = make_sandbox()
    amazon = Amazon(server, http).login(server.control.create_seller())
    url = amazon.post(f"{FEEDS}/documents", {"contentType": XML}).json()["url"]
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    response = http.put(forged, data=b"<x/>", headers={"Content-Type": XML}, timeout=10)
    assert response.status_code == 403
    assert ET.fromstring(response.content).findtext("Code") == "AccessDenied"
    server.control.inject_fault("upload", "403")
    refused = http.put(url, data=b"<x/>", headers={"Content-Type": XML}, timeout=10)
    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/xml"
    assert http.put(url, data=b"<x/>", headers={"Content-Type": XML}, timeout=10).status_code == 200
    assert server.control.counters()["operations"]["upload"]["faulted"] == 1


def test_create_feed_validation(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox()
    amazon = Amazon(server, http).login(server.control.create_seller())
    empty_doc = amazon.post(f"{FEEDS}/documents", {"contentType": XML}).json()["feedDocumentId"]
    base = {"feedType": "POST_ORDER_ACKNOWLEDGEMENT_DATA", "marketplaceIds": [DE]}
    for body in (
        {**base, "inputFeedDocumentId": "amzn1.tortuga.4.eu.nope"},
        {**base, "inputFeedDocumentId": empty_doc},
        {**base, "marketplaceIds": [], "inputFeedDocumentId": empty_doc},
        {**base, "marketplaceIds": [DE] * 26, "inputFeedDocumentId": empty_doc},
        {"marketplaceIds": [DE], "inputFeedDocumentId": empty_doc},
    ):
        response = amazon.post(f"{FEEDS}/feeds", body)
        assert response.status_code == 400, body
        assert errors_of(response)[0]["code"] == "InvalidInput"
    assert amazon.post(f"{FEEDS}/documents", {}).status_code == 400


def test_cancel_feed_only_in_queue(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=600)
    amazon = Amazon(server, http).login(server.control.create_seller())
    content = ACK_FEED.format(messages=ack_message("1")).encode()
    queued = submit_feed(amazon, content)
    response = amazon.delete(f"{FEEDS}/feeds/{queued}")
    assert response.status_code == 200
    assert response.content == b""
    assert amazon.get(f"{FEEDS}/feeds/{queued}").json()["processingStatus"] == "CANCELLED"
    done = submit_feed(amazon, content)
    server.control.process_feed(done)
    refused = amazon.delete(f"{FEEDS}/feeds/{done}")
    assert refused.status_code == 400
    assert "IN_QUEUE" in errors_of(refused)[0]["message"]
    assert amazon.delete(f"{FEEDS}/feeds/999").status_code == 404


def test_get_feeds(make_sandbox: Callable[..., SandboxServer], http: requests.Session) -> None:
    server = make_sandbox(feed_processing_seconds=600, enforce_rate_limits=False)
    amazon = Amazon(server, http).login(server.control.create_seller())
    content = ACK_FEED.format(messages=ack_message("1")).encode()
    ids = [submit_feed(amazon, content) for _ in range(3)]
    server.control.process_feed(ids[0])

    assert amazon.get(f"{FEEDS}/feeds").status_code == 400
    page = amazon.get(
        f"{FEEDS}/feeds", feedTypes="POST_ORDER_ACKNOWLEDGEMENT_DATA", pageSize=2
    ).json()
    assert [f["feedId"] for f in page["feeds"]] == [ids[2], ids[1]]
    rest = amazon.get(f"{FEEDS}/feeds", nextToken=page["nextToken"]).json()
    assert [f["feedId"] for f in rest["feeds"]] == [ids[0]]
    assert "nextToken" not in rest
    both = amazon.get(f"{FEEDS}/feeds", nextToken=page["nextToken"], pageSize=2)
    assert both.status_code == 400
    done = amazon.get(
        f"{FEEDS}/feeds", feedTypes="POST_ORDER_ACKNOWLEDGEMENT_DATA", processingStatuses="DONE"
    ).json()
    assert [f["feedId"] for f in done["feeds"]] == [ids[0]]
    other = amazon.get(f"{FEEDS}/feeds", feedTypes="POST_PAYMENT_ADJUSTMENT_DATA").json()
    assert other == {"feeds": []}
    bad = amazon.get(
        f"{FEEDS}/feeds", feedTypes="POST_ORDER_ACKNOWLEDGEMENT_DATA", processingStatuses="BUSY"
    )
    assert bad.status_code == 400


def test_feeds_are_private_to_their_seller(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(feed_processing_seconds=0)
    amazon = Amazon(server, http).login(server.control.create_seller())
    feed = wait_for_feed(
        amazon, submit_feed(amazon, ACK_FEED.format(messages=ack_message("1")).encode())
    )
    other = Amazon(server, requests.Session()).login(server.control.create_seller())
    try:
        assert other.get(f"{FEEDS}/feeds/{feed['feedId']}").status_code == 404
        document = other.get(f"{FEEDS}/documents/{feed['resultFeedDocumentId']}")
        assert document.status_code == 404
    finally:
        other.session.close()


# -- control API -------------------------------------------------------------------------------


def test_control_api_errors(sandbox: SandboxServer, seller: dict[str, Any]) -> None:
    control = sandbox.control
    cases: list[tuple[Callable[[], Any], int]] = [
        (lambda: control.create_seller("A1SELLERONE001"), 409),
        (lambda: control.create_seller("not valid!"), 400),
        (lambda: control.create_seller(marketplace_id="XX"), 400),
        (lambda: control.create_order("NOSUCHSELLER"), 404),
        (lambda: control.create_order(seller["seller_id"], status="Shipped"), 400),
        (lambda: control.create_order(seller["seller_id"], items=[]), 400),
        (lambda: control.create_order(seller["seller_id"], items=[{"quantity": 1}]), 400),
        (
            lambda: control.create_order(seller["seller_id"], items=[{"sku": "A", "quantity": 0}]),
            400,
        ),
        (
            lambda: control.create_order(
                seller["seller_id"], items=[{"sku": "A", "unit_price": "x"}]
            ),
            400,
        ),
        (
            lambda: control.create_order(seller["seller_id"], items=[{"sku": "A", "tax_rate": 19}]),
            400,
        ),
        (lambda: control.create_order(seller["seller_id"], order_id="1-2-3"), 400),
        (lambda: control.create_order(seller["seller_id"], created_time="noon"), 400),
        (lambda: control.generate_orders(seller["seller_id"], -1), 400),
        (lambda: control.generate_orders(seller["seller_id"], 5, statuses={"LOST": 1}), 400),
        (lambda: control.generate_orders(seller["seller_id"], 5, afn_share=2), 400),
        (lambda: control.generate_orders(seller["seller_id"], 5, catalog=[{"title": "x"}]), 400),
        (lambda: control.get_order("302-0000000-0000000"), 404),
        (lambda: control.set_status("302-0000000-0000000", "SHIPPED"), 404),
        (lambda: control.revoke_seller("NOSUCHSELLER"), 404),
        (lambda: control.process_feed("123"), 404),
        (lambda: control.advance("NOSUCHSELLER"), 404),
        (lambda: control.list_orders("NOSUCHSELLER"), 404),
    ]
    for call, status in cases:
        with pytest.raises(SandboxControlError) as info:
            call()
        assert info.value.status == status
        assert info.value.message
    order = control.create_order(seller["seller_id"], order_id="302-1111111-2222222")
    with pytest.raises(SandboxControlError) as info:
        control.create_order(seller["seller_id"], order_id=order["orderId"])
    assert info.value.status == 409
    with pytest.raises(SandboxControlError) as info:
        control.set_status(order["orderId"], "LOST")
    assert info.value.status == 400


def test_control_api_rejects_a_non_object_body(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    response = http.post(sandbox.url + "/_sandbox/sellers", data="[1, 2]", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_control_lists_sellers_and_orders_and_resets(
    sandbox: SandboxServer, seller: dict[str, Any]
) -> None:
    control = sandbox.control
    created = control.create_order(seller["seller_id"], status="PENDING")
    assert [s["seller_id"] for s in control.sellers()] == [seller["seller_id"]]
    (listed,) = control.list_orders(seller["seller_id"])
    assert listed["orderId"] == created["orderId"]
    assert listed["status"] == "PENDING"
    assert listed["lastUpdatedTime"] == created["lastUpdatedTime"]
    control.reset()
    assert control.sellers() == []
    assert control.list_orders() == []


def test_created_order_defaults_are_complete(
    sandbox: SandboxServer, seller: dict[str, Any]
) -> None:
    order = sandbox.control.create_order(seller["seller_id"])
    assert {"buyer", "recipient", "proceeds", "fulfillment", "tax"} <= set(order)
    assert order["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
    assert order["fulfillment"]["fulfilledBy"] == "MERCHANT"
    assert order["salesChannel"] == {
        "channelName": "AMAZON",
        "marketplaceId": DE,
        "marketplaceName": "Amazon.de",
    }
    assert order["proceeds"]["grandTotal"]["currencyCode"] == "EUR"
    assert order["recipient"]["deliveryAddress"]["countryCode"] == "DE"
    assert 1 <= len(order["orderItems"]) <= 3


def test_generated_orders_look_real(sandbox: SandboxServer, seller: dict[str, Any]) -> None:
    control = sandbox.control
    catalog = [
        {"sku": "HOST-1", "title": "Host product one", "price": "10.00"},
        {"sku": "HOST-2", "title": "Host product two", "price": "25.50", "asin": "B0HOST0002"},
    ]
    result = control.generate_orders(
        seller["seller_id"], 200, seed=11, catalog=catalog, afn_share=0.5
    )
    assert result["created"] == 200
    orders = [control.get_order(order_id) for order_id in result["order_ids"][:60]]
    statuses = {o["fulfillment"]["fulfillmentStatus"] for o in orders}
    assert {"UNSHIPPED", "SHIPPED"} <= statuses
    assert {o["fulfillment"]["fulfilledBy"] for o in orders} == {"MERCHANT", "AMAZON"}
    for order in orders:
        assert len(order["orderId"]) == 19 and order["orderId"][3] == "-"
        assert order["createdTime"] <= order["lastUpdatedTime"]
        for item in order["orderItems"]:
            assert len(item["orderItemId"]) == 14 and item["orderItemId"].isdigit()
            assert item["product"]["sellerSku"] in {"HOST-1", "HOST-2"}
            item_tax = next(
                d["value"]["amount"]
                for b in item["proceeds"]["breakdowns"]
                if b["type"] == "TAX"
                for d in b["detailedBreakdowns"]
                if d["subtype"] == "ITEM"
            )
            net = Decimal(item["proceeds"]["breakdowns"][0]["subtotal"]["amount"])
            discount = sum(
                -Decimal(b["subtotal"]["amount"])
                for b in item["proceeds"]["breakdowns"]
                if b["type"] == "DISCOUNT"
            )
            expected = ((net - discount) * Decimal("0.19")).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert Decimal(item_tax) == expected
        if order["fulfillment"]["fulfilledBy"] == "AMAZON":
            assert order["fulfillment"]["fulfillmentStatus"] in {"PENDING", "SHIPPED", "CANCELLED"}


def test_same_seed_gives_the_same_orders(make_sandbox: Callable[..., SandboxServer]) -> None:
    results = []
    for _ in range(2):
        server = make_sandbox(seed=42)
        seller = server.control.create_seller("A1SEEDED000001")
        results.append(server.control.generate_orders(seller["seller_id"], 20)["order_ids"])
    assert results[0] == results[1]


def test_generate_ten_thousand_orders_and_read_them_all(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session
) -> None:
    server = make_sandbox(time_scale=1000, enforce_rate_limits=False)
    seller = server.control.create_seller()
    result = server.control.generate_orders(seller["seller_id"], 10_000, seed=7)
    assert result["created"] == 10_000
    amazon = Amazon(server, http).login(seller)
    orders = amazon.search_all(
        lastUpdatedAfter=LONG_AGO, maxResultsPerPage=100, includedData="FULFILLMENT,PROCEEDS"
    )
    assert len(orders) == 10_000
    assert set(_ids(orders)) == set(result["order_ids"])
    items = sum(len(o["orderItems"]) for o in orders)
    assert 25_000 < items < 35_000


# -- app, server and CLI -----------------------------------------------------------------------


def test_unknown_config_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="time_scal"):
        create_app({"time_scal": 2})
    with pytest.raises(ValueError, match="time_scale"):
        create_app({"time_scale": 0})


def test_unknown_paths_get_json_errors(sandbox: SandboxServer, http: requests.Session) -> None:
    response = http.get(sandbox.url + "/orders/v0/orders", timeout=10)
    assert response.status_code == 404
    assert errors_of(response)[0]["code"] == "NotFound"
    response = http.get(sandbox.url + "/_sandbox/nothing", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_server_is_quiet(
    sandbox: SandboxServer, amazon: Amazon, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    amazon.search(lastUpdatedAfter=LONG_AGO)
    amazon.get(f"{ORDERS}/nonsense")
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_control_client_needs_a_running_server() -> None:
    server = SandboxServer()
    with pytest.raises(RuntimeError):
        _ = server.control
    with SandboxControl("http://127.0.0.1:9") as control, pytest.raises(requests.ConnectionError):
        control.counters()


def test_command_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sandbox_cli, "_wait_forever", interrupt)
    exit_code = sandbox_cli.main(
        ["--port", "0", "--time-scale", "10", "--seller-id", "A1CLISELLER001", "--generate", "5"]
    )
    assert exit_code == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out
    assert "A1CLISELLER001" in out
    assert "refresh_token: Atzr|" in out
    assert "generated 5 orders" in out


def test_taken_port_raises_oserror_not_systemexit():
    with SandboxServer() as first, pytest.raises(OSError, match="in use"):
        SandboxServer(port=first.port).start()
