"""The sandbox's Orders v0 ``confirmShipment``, exercised over real HTTP on loopback."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from test_sandbox import LONG_AGO, ORDERS, Amazon, errors_of, parse
from test_sandbox_contract import Contract, load

from flask_amazon_orders.client import InMemoryRateLimiter, LWACredentials, SPAPIClient
from flask_amazon_orders.errors import InvalidInputError
from flask_amazon_orders.sandbox import SandboxControlError, SandboxServer
from flask_amazon_orders.sandbox.reference import MODELS_DIR

V0_MODEL = "ordersV0.json"
REFERENCE_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
DE = "A1PA6795UKMFR9"
UK = "A1F83G8C2ARO7P"
SHIP_DATE = "2026-03-02T09:30:00Z"


def confirmation_path(order_id: str) -> str:
    return f"/orders/v0/orders/{order_id}/shipmentConfirmation"


def package(reference_id: str, items: list[tuple[str, int]], **detail: Any) -> dict[str, Any]:
    """A ``ConfirmShipmentRequest`` body for the DE marketplace."""
    body: dict[str, Any] = {
        "marketplaceId": DE,
        "packageDetail": {
            "packageReferenceId": reference_id,
            "carrierCode": "DHL",
            "shippingMethod": "DHL Paket",
            "trackingNumber": f"00340434161234567{reference_id}",
            "shipDate": SHIP_DATE,
            "orderItems": [{"orderItemId": i, "quantity": q} for i, q in items],
        },
    }
    body["packageDetail"].update(detail)
    return body


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox(enforce_rate_limits=False)


@pytest.fixture
def seller(sandbox: SandboxServer) -> dict[str, Any]:
    return sandbox.control.create_seller("A1SELLERSHIP01")


@pytest.fixture
def amazon(sandbox: SandboxServer, http: requests.Session, seller: dict[str, Any]) -> Amazon:
    return Amazon(sandbox, http).login(seller)


class V0Contract(Contract):
    """The Orders v0 model's responses; its ``Money`` differs, so no stricter pass."""

    def __init__(self, model_name: str) -> None:
        self.model = load(model_name)
        self.strict = self.model["definitions"]
        self.operations = {
            operation["operationId"]: operation
            for methods in self.model["paths"].values()
            for operation in methods.values()
            if isinstance(operation, dict) and "operationId" in operation
        }
        self.checked = {}
        self._validators = {}


@pytest.fixture(scope="module")
def v0_contract() -> Contract:
    return V0Contract(V0_MODEL)


@pytest.fixture(scope="module")
def orders_contract() -> Contract:
    return Contract("orders_2026-01-01.json")


def two_line_order(sandbox: SandboxServer, seller_id: str, **spec: Any) -> dict[str, Any]:
    """An unshipped merchant order: 3 mugs and 1 cable."""
    return sandbox.control.create_order(
        seller_id,
        items=[
            {"sku": "MUG", "quantity": 3, "unit_price": "12.50", "shipping_price": "4.99"},
            {"sku": "CABLE", "quantity": 1, "unit_price": "9.99"},
        ],
        **spec,
    )


def item_ids(order: dict[str, Any]) -> tuple[str, str]:
    first, second = (item["orderItemId"] for item in order["orderItems"])
    return first, second


def fulfilled(order: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (i["fulfillment"]["quantityFulfilled"], i["fulfillment"]["quantityUnfulfilled"])
        for i in order["orderItems"]
    ]


def get_order(amazon: Amazon, contract: Contract, order_id: str) -> dict[str, Any]:
    response = amazon.get(f"{ORDERS}/{order_id}", includedData="FULFILLMENT,PACKAGES")
    return contract.check("getOrder", response)["order"]  # type: ignore[no-any-return]


# -- the happy paths -----------------------------------------------------------------------------


def test_partial_shipment_then_the_rest(
    sandbox: SandboxServer,
    amazon: Amazon,
    seller: dict[str, Any],
    v0_contract: Contract,
    orders_contract: Contract,
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    two_line_order(sandbox, seller["seller_id"])  # an order that does not change
    order_id = created["orderId"]
    mug, cable = item_ids(created)
    time.sleep(0.01)
    before = amazon.search(lastUpdatedAfter=LONG_AGO).json()["lastUpdatedBefore"]

    first = amazon.post(confirmation_path(order_id), package("1", [(mug, 2)]))
    assert first.status_code == 204, first.text
    assert first.content == b""
    assert "Content-Type" not in first.headers
    assert first.headers["x-amzn-RateLimit-Limit"] == "2"
    v0_contract.check("confirmShipment", first)

    order = get_order(amazon, orders_contract, order_id)
    assert order["fulfillment"]["fulfillmentStatus"] == "PARTIALLY_SHIPPED"
    assert fulfilled(order) == [(2, 1), (0, 1)]
    assert parse(order["lastUpdatedTime"]) > parse(created["lastUpdatedTime"])
    (parcel,) = order["packages"]
    assert parcel["packageReferenceId"] == "1"
    assert parcel["carrier"] == "DHL"
    assert parcel["shippingService"] == "DHL Paket"
    assert parcel["trackingNumber"] == "003404341612345671"
    assert parcel["shipTime"] == SHIP_DATE
    assert parcel["packageStatus"] == {"status": "SHIPPED"}
    assert parcel["packageItems"] == [{"orderItemId": mug, "quantity": 2}]
    assert parcel["shipFromAddress"]["countryCode"] == "DE"

    # searchOrders by lastUpdatedAfter finds the changed order.
    changed = amazon.search(lastUpdatedAfter=before, includedData="FULFILLMENT").json()["orders"]
    assert [o["orderId"] for o in changed] == [order_id]
    assert changed[0]["fulfillment"]["fulfillmentStatus"] == "PARTIALLY_SHIPPED"

    rest = package("2", [(mug, 1), (cable, 1)], carrierCode="Other", carrierName="Hermes")
    del rest["packageDetail"]["shippingMethod"]
    assert amazon.post(confirmation_path(order_id), rest).status_code == 204
    order = get_order(amazon, orders_contract, order_id)
    assert order["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert fulfilled(order) == [(3, 0), (1, 0)]
    first_parcel, second_parcel = order["packages"]
    assert first_parcel == parcel
    assert second_parcel["packageReferenceId"] == "2"
    assert second_parcel["carrier"] == "Hermes"
    assert "shippingService" not in second_parcel
    assert second_parcel["packageItems"] == [
        {"orderItemId": mug, "quantity": 1},
        {"orderItemId": cable, "quantity": 1},
    ]

    listed = sandbox.control.shipments(order_id)
    assert [(s["packageReferenceId"], s["replays"], s["active"]) for s in listed] == [
        ("1", 0, True),
        ("2", 0, True),
    ]
    assert listed[0]["orderItems"] == [{"orderItemId": mug, "quantity": 2}]
    assert listed[0]["carrierCode"] == "DHL"
    assert listed[1]["carrierName"] == "Hermes"
    assert listed[0]["shipDate"] == SHIP_DATE
    assert listed[0]["sellerId"] == seller["seller_id"]
    assert sandbox.control.shipments(seller_id=seller["seller_id"]) == listed
    counters = sandbox.control.counters()["operations"]["confirmShipment"]
    assert counters["calls"] == counters["ok"] == 2


def test_a_retry_with_the_same_content_ships_nothing_twice(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any], orders_contract: Contract
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    order_id = created["orderId"]
    mug, cable = item_ids(created)
    body = package("7", [(mug, 1), (cable, 1)])
    body["packageDetail"]["orderItems"][0]["transparencyCodes"] = ["AZ:1234567890ABCDEF"]
    assert amazon.post(confirmation_path(order_id), body).status_code == 204
    after_first = get_order(amazon, orders_contract, order_id)

    # The same package again, written differently: keys in another order, the items
    # swapped, the ship date in another time zone.
    retry = copy.deepcopy(body)
    detail = retry["packageDetail"]
    detail["orderItems"].reverse()
    detail["shipDate"] = "2026-03-02T10:30:00+01:00"
    retry = {"packageDetail": dict(reversed(list(detail.items()))), "marketplaceId": DE}
    for _ in range(2):
        response = amazon.post(confirmation_path(order_id), retry)
        assert response.status_code == 204, response.text
    again = get_order(amazon, orders_contract, order_id)
    assert again == after_first  # nothing shipped twice, lastUpdatedTime unchanged
    assert fulfilled(again) == [(1, 2), (1, 0)]
    assert again["packages"][0]["packageItems"][0]["transparencyCodes"] == ["AZ:1234567890ABCDEF"]
    (listed,) = sandbox.control.shipments(order_id)
    assert listed["replays"] == 2

    # The same reference with other content is refused; a new reference ships.
    changed = package("7", [(mug, 1)])
    refused = amazon.post(confirmation_path(order_id), changed)
    assert refused.status_code == 400
    assert errors_of(refused)[0]["code"] == "InvalidInput"
    assert "packageReferenceId 7" in errors_of(refused)[0]["message"]
    assert amazon.post(confirmation_path(order_id), package("8", [(mug, 1)])).status_code == 204
    assert fulfilled(get_order(amazon, orders_contract, order_id)) == [(2, 1), (1, 0)]


def test_status_changes_keep_confirmed_quantities(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any], orders_contract: Contract
) -> None:
    control, sid = sandbox.control, seller["seller_id"]
    created = two_line_order(sandbox, sid)
    order_id = created["orderId"]
    mug, cable = item_ids(created)
    assert amazon.post(confirmation_path(order_id), package("1", [(cable, 1)])).status_code == 204

    # Setting PARTIALLY_SHIPPED again keeps the confirmed package (not "first item only").
    again = control.set_status(order_id, "PARTIALLY_SHIPPED")
    assert fulfilled(again) == [(0, 3), (1, 0)]
    assert [p["packageReferenceId"] for p in again["packages"]] == ["1"]

    # advance ships the rest in a package of its own.
    assert control.advance(sid)["order_ids"] == [order_id]
    order = get_order(amazon, orders_contract, order_id)
    assert order["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert fulfilled(order) == [(3, 0), (1, 0)]
    confirmed, made_up = order["packages"]
    assert confirmed["packageReferenceId"] == "1"
    assert confirmed["packageItems"] == [{"orderItemId": cable, "quantity": 1}]
    assert made_up["packageReferenceId"] == "2"
    assert made_up["packageItems"] == [{"orderItemId": mug, "quantity": 3}]

    # Back to UNSHIPPED through the control API: the package is taken back, and the
    # same confirmation then ships again.
    rewound = control.set_status(order_id, "UNSHIPPED")
    assert fulfilled(rewound) == [(0, 3), (0, 1)]
    assert "packages" not in rewound
    assert [s["active"] for s in control.shipments(order_id)] == [False]
    assert amazon.post(confirmation_path(order_id), package("1", [(cable, 1)])).status_code == 204
    assert fulfilled(get_order(amazon, orders_contract, order_id)) == [(0, 3), (1, 0)]
    assert [s["active"] for s in control.shipments(order_id)] == [False, True]


def test_a_status_change_ships_the_first_item_when_nothing_was_confirmed(
    sandbox: SandboxServer, seller: dict[str, Any]
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    partial = sandbox.control.set_status(created["orderId"], "PARTIALLY_SHIPPED")
    assert fulfilled(partial) == [(3, 0), (0, 1)]
    (made_up,) = partial["packages"]
    assert made_up["packageReferenceId"] == "1"


def test_the_extensions_client_confirms_a_shipment(
    sandbox: SandboxServer, seller: dict[str, Any]
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    mug, cable = item_ids(created)
    client = SPAPIClient(
        credentials=LWACredentials(
            "sandbox-client-id", "sandbox-client-secret", seller["refresh_token"]
        ),
        endpoint=sandbox.url,
        lwa_url=sandbox.url + "/auth/o2/token",
        seller_key=seller["seller_id"],
        rate_limiter=InMemoryRateLimiter(),
    )
    with client:
        client.confirm_shipment(created["orderId"], package("1", [(mug, 3), (cable, 1)]))
        with pytest.raises(InvalidInputError):
            client.confirm_shipment(created["orderId"], package("2", [(mug, 1)]))
    order = sandbox.control.get_order(created["orderId"])
    assert order["fulfillment"]["fulfillmentStatus"] == "SHIPPED"


# -- what Amazon refuses -------------------------------------------------------------------------


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


def _with(body: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


BAD_BODIES: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("not an object", lambda b: [b], "JSON object"),
    ("no marketplaceId", lambda b: _without(b, "marketplaceId"), "marketplaceId is required"),
    ("another marketplace", lambda b: _with(b, UK, "marketplaceId"), "not the marketplace"),
    ("unknown marketplace", lambda b: _with(b, "XX", "marketplaceId"), "Invalid marketplaceId"),
    ("no packageDetail", lambda b: _without(b, "packageDetail"), "packageDetail is required"),
    (
        "packageReferenceId 0",
        lambda b: _with(b, "0", "packageDetail", "packageReferenceId"),
        "positive numeric",
    ),
    (
        "packageReferenceId not numeric",
        lambda b: _with(b, "PKG-1", "packageDetail", "packageReferenceId"),
        "positive numeric",
    ),
    (
        "packageReferenceId a number",
        lambda b: _with(b, 1, "packageDetail", "packageReferenceId"),
        "packageReferenceId must be a non-empty string",
    ),
    (
        "no carrierCode",
        lambda b: _without(b, "packageDetail", "carrierCode"),
        "carrierCode is required",
    ),
    (
        "carrier Other without a name",
        lambda b: _with(b, "Other", "packageDetail", "carrierCode"),
        "carrierName is required",
    ),
    (
        "no trackingNumber",
        lambda b: _without(b, "packageDetail", "trackingNumber"),
        "trackingNumber is required",
    ),
    (
        "empty trackingNumber",
        lambda b: _with(b, " ", "packageDetail", "trackingNumber"),
        "trackingNumber must be a non-empty string",
    ),
    ("no shipDate", lambda b: _without(b, "packageDetail", "shipDate"), "shipDate is required"),
    (
        "shipDate not ISO 8601",
        lambda b: _with(b, "02/21/2022", "packageDetail", "shipDate"),
        "Invalid shipDate",
    ),
    (
        "shipDate without a time",
        lambda b: _with(b, "2026-03-02", "packageDetail", "shipDate"),
        "Invalid shipDate",
    ),
    (
        "no orderItems",
        lambda b: _without(b, "packageDetail", "orderItems"),
        "orderItems is required",
    ),
    (
        "empty orderItems",
        lambda b: _with(b, [], "packageDetail", "orderItems"),
        "non-empty array",
    ),
    (
        "quantity 0",
        lambda b: _with(b, 0, "packageDetail", "orderItems", 0, "quantity"),
        "at least 1",
    ),
    (
        "negative quantity",
        lambda b: _with(b, -1, "packageDetail", "orderItems", 0, "quantity"),
        "at least 1",
    ),
    (
        "quantity as a string",
        lambda b: _with(b, "1", "packageDetail", "orderItems", 0, "quantity"),
        "must be an integer",
    ),
    (
        "no quantity",
        lambda b: _without(b, "packageDetail", "orderItems", 0, "quantity"),
        "quantity is required",
    ),
    (
        "no orderItemId",
        lambda b: _without(b, "packageDetail", "orderItems", 0, "orderItemId"),
        "orderItemId is required",
    ),
    (
        "unknown order item",
        lambda b: _with(b, "99999999999999", "packageDetail", "orderItems", 0, "orderItemId"),
        "not part of order",
    ),
    (
        "more than unshipped",
        lambda b: _with(b, 4, "packageDetail", "orderItems", 0, "quantity"),
        "more than its unshipped quantity 3",
    ),
    (
        "an item twice",
        lambda b: _with(b, b["packageDetail"]["orderItems"] * 2, "packageDetail", "orderItems"),
        "more than once",
    ),
    (
        "transparencyCodes not a list",
        lambda b: _with(b, "AZ:1", "packageDetail", "orderItems", 0, "transparencyCodes"),
        "transparencyCodes",
    ),
    (
        "COD outside Japan",
        lambda b: _with(b, "DirectPayment", "codCollectionMethod"),
        "only supported in the JP marketplace",
    ),
    (
        "unknown COD method",
        lambda b: _with(b, "Cash", "codCollectionMethod"),
        "codCollectionMethod",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_invalid_confirmations_are_refused(
    sandbox: SandboxServer,
    amazon: Amazon,
    seller: dict[str, Any],
    v0_contract: Contract,
    mutate: Callable[[dict[str, Any]], Any],
    fragment: str,
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    mug, _cable = item_ids(created)
    response = amazon.post(confirmation_path(created["orderId"]), mutate(package("1", [(mug, 1)])))
    assert response.status_code == 400, response.text
    body = v0_contract.check("confirmShipment", response)
    (error,) = body["errors"]
    assert error["code"] == "InvalidInput"
    assert fragment in error["message"]
    assert response.headers["x-amzn-RateLimit-Limit"] == "2"
    assert sandbox.control.get_order(created["orderId"]) == created  # nothing changed
    assert sandbox.control.shipments() == []


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"fulfilled_by": "AMAZON", "status": "PENDING"}, "fulfilled by Amazon"),
        ({"fulfilled_by": "AMAZON", "status": "SHIPPED"}, "fulfilled by Amazon"),
        ({"status": "CANCELLED"}, "it is CANCELLED"),
        ({"status": "PENDING"}, "it is PENDING"),
        ({"status": "PENDING_AVAILABILITY"}, "it is PENDING_AVAILABILITY"),
        ({"status": "UNFULFILLABLE"}, "it is UNFULFILLABLE"),
        ({"status": "SHIPPED"}, "already shipped"),
    ],
)
def test_orders_that_cannot_ship_are_refused(
    sandbox: SandboxServer,
    amazon: Amazon,
    seller: dict[str, Any],
    v0_contract: Contract,
    spec: dict[str, Any],
    fragment: str,
) -> None:
    created = two_line_order(sandbox, seller["seller_id"], **spec)
    mug, _cable = item_ids(created)
    response = amazon.post(confirmation_path(created["orderId"]), package("1", [(mug, 1)]))
    assert response.status_code == 400
    (error,) = v0_contract.check("confirmShipment", response)["errors"]
    assert error["code"] == "InvalidInput"
    assert fragment in error["message"]
    assert sandbox.control.get_order(created["orderId"]) == created


def test_unknown_or_foreign_orders_are_404(
    sandbox: SandboxServer,
    amazon: Amazon,
    http: requests.Session,
    seller: dict[str, Any],
    v0_contract: Contract,
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    mug, _cable = item_ids(created)
    body = package("1", [(mug, 1)])
    missing = amazon.post(confirmation_path("302-0000000-0000000"), body)
    assert missing.status_code == 404
    assert v0_contract.check("confirmShipment", missing)["errors"][0]["code"] == "NotFound"
    assert missing.headers["x-amzn-RateLimit-Limit"] == "2"

    other = Amazon(sandbox, http).login(sandbox.control.create_seller())
    foreign = other.post(confirmation_path(created["orderId"]), body)
    assert foreign.status_code == 404
    v0_contract.check("confirmShipment", foreign)

    bad_id = amazon.post(confirmation_path("12345"), body)
    assert bad_id.status_code == 400
    assert errors_of(bad_id)[0] == {
        "code": "InvalidInput",
        "message": "OrderId: 12345 is invalid, should be in 3-7-7 format.",
    }
    assert sandbox.control.get_order(created["orderId"]) == created


# -- auth, rate limits, faults, static examples ----------------------------------------------------


def test_confirm_shipment_needs_an_access_token(
    sandbox: SandboxServer, http: requests.Session, seller: dict[str, Any], v0_contract: Contract
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    mug, _cable = item_ids(created)
    response = http.post(
        sandbox.url + confirmation_path(created["orderId"]),
        json=package("1", [(mug, 1)]),
        timeout=10,
    )
    assert response.status_code == 403
    assert v0_contract.check("confirmShipment", response)["errors"][0]["code"] == "Unauthorized"
    assert sandbox.control.get_order(created["orderId"]) == created


def test_confirm_shipment_is_rate_limited_at_2_per_second_burst_10(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session, v0_contract: Contract
) -> None:
    server = make_sandbox(time_scale=0.01)
    seller = server.control.create_seller()
    amazon = Amazon(server, http).login(seller)
    statuses = []
    for _ in range(11):
        response = amazon.post(confirmation_path("302-0000000-0000000"), {"marketplaceId": DE})
        v0_contract.check("confirmShipment", response)
        statuses.append(response.status_code)
        if response.status_code != 429:
            assert response.headers["x-amzn-RateLimit-Limit"] == "0.02"
    assert statuses == [400] * 10 + [429]
    assert errors_of(response)[0]["code"] == "QuotaExceeded"
    counters = server.control.counters()["sellers"][seller["seller_id"]]["confirmShipment"]
    assert counters["throttled"] == 1

    fast = make_sandbox(time_scale=100)
    assert (
        Amazon(fast, http)
        .login(fast.control.create_seller())
        .post(confirmation_path("302-0000000-0000000"), {})
        .headers["x-amzn-RateLimit-Limit"]
        == "200"
    )


@pytest.mark.parametrize(("kind", "status"), [("429", 429), ("500_json", 500), ("503_html", 503)])
def test_faults_on_confirm_shipment_ship_nothing(
    sandbox: SandboxServer,
    amazon: Amazon,
    seller: dict[str, Any],
    v0_contract: Contract,
    kind: str,
    status: int,
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    mug, cable = item_ids(created)
    body = package("1", [(mug, 3), (cable, 1)])
    sandbox.control.inject_fault("confirmShipment", kind)
    failed = amazon.post(confirmation_path(created["orderId"]), body)
    assert failed.status_code == status
    if kind != "503_html":
        v0_contract.check("confirmShipment", failed)
    assert sandbox.control.get_order(created["orderId"]) == created
    assert amazon.post(confirmation_path(created["orderId"]), body).status_code == 204
    counters = sandbox.control.counters()["operations"]["confirmShipment"]
    assert counters["faulted"] == 1


def test_a_timed_out_confirmation_is_safe_to_send_again(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    mug, cable = item_ids(created)
    body = package("1", [(mug, 3), (cable, 1)])
    sandbox.control.inject_fault("confirmShipment", "slow", delay=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        amazon.session.post(
            amazon.url + confirmation_path(created["orderId"]),
            json=body,
            headers=amazon.headers,
            timeout=0.3,
        )
    deadline = time.monotonic() + 5
    while not sandbox.control.shipments(created["orderId"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The extension did not see the answer and sends the package again.
    assert amazon.post(confirmation_path(created["orderId"]), body).status_code == 204
    (shipment,) = sandbox.control.shipments(created["orderId"])
    assert shipment["replays"] == 1
    order = sandbox.control.get_order(created["orderId"])
    assert fulfilled(order) == [(3, 0), (1, 0)]


def test_a_dropped_204_closes_the_connection_before_the_status_line(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    created = two_line_order(sandbox, seller["seller_id"])
    mug, cable = item_ids(created)
    body = package("1", [(mug, 3), (cable, 1)])
    sandbox.control.inject_fault("confirmShipment", "drop")
    # A 204 has no body to cut in half: the answer is lost as a whole …
    with pytest.raises(requests.ConnectionError, match="without response"):
        amazon.session.post(
            amazon.url + confirmation_path(created["orderId"]),
            json=body,
            headers=amazon.headers,
            timeout=5,
        )
    # … after Amazon carried the confirmation out; sending it again is a replay.
    assert fulfilled(sandbox.control.get_order(created["orderId"])) == [(3, 0), (1, 0)]
    assert amazon.post(confirmation_path(created["orderId"]), body).status_code == 204
    (shipment,) = sandbox.control.shipments(created["orderId"])
    assert shipment["replays"] == 1


def test_static_examples_of_the_model_are_served(
    make_sandbox: Callable[..., SandboxServer], http: requests.Session, v0_contract: Contract
) -> None:
    server = make_sandbox()
    amazon = Amazon(server, http).login(server.control.create_seller())
    operation = v0_contract.operations["confirmShipment"]
    for status, spec in operation["responses"].items():
        for case in spec.get("x-amzn-api-sandbox", {}).get("static", []):
            parameters = case["request"]["parameters"]
            order_id = parameters["orderId"]["value"]
            body = parameters["body"]["value"]
            reordered = dict(reversed(list(body.items())))
            response = amazon.post(confirmation_path(order_id), reordered)
            assert response.status_code == int(status)
            answer = v0_contract.check("confirmShipment", response)
            if status != "204":
                assert answer == case["response"]
    plain = make_sandbox(static_examples=False)
    amazon = Amazon(plain, http).login(plain.control.create_seller())
    static_204 = operation["responses"]["204"]["x-amzn-api-sandbox"]["static"][0]["request"]
    response = amazon.post(
        confirmation_path(static_204["parameters"]["orderId"]["value"]),
        {**static_204["parameters"]["body"]["value"], "marketplaceId": DE},
    )
    assert response.status_code == 404


# -- the control API and the bundled model ---------------------------------------------------------


def test_control_shipments_filters_and_errors(
    sandbox: SandboxServer, amazon: Amazon, seller: dict[str, Any]
) -> None:
    control = sandbox.control
    first = two_line_order(sandbox, seller["seller_id"])
    second = two_line_order(sandbox, seller["seller_id"])
    for order in (first, second):
        mug, _cable = item_ids(order)
        assert amazon.post(confirmation_path(order["orderId"]), package("1", [(mug, 1)])).ok
    assert [s["orderId"] for s in control.shipments()] == [first["orderId"], second["orderId"]]
    assert [s["orderId"] for s in control.shipments(second["orderId"])] == [second["orderId"]]
    other = control.create_seller()
    assert control.shipments(seller_id=other["seller_id"]) == []
    assert control.shipments(first["orderId"], seller_id=other["seller_id"]) == []
    for call in (
        lambda: control.shipments("302-0000000-0000000"),
        lambda: control.shipments(seller_id="NOSUCHSELLER"),
    ):
        with pytest.raises(SandboxControlError) as info:
            call()
        assert info.value.status == 404
    control.reset()
    assert control.shipments() == []


def test_orders_v0_model_is_bundled_unchanged() -> None:
    bundled = MODELS_DIR / V0_MODEL
    assert bundled.is_file()
    reference = REFERENCE_DIR / V0_MODEL
    if not reference.is_file():
        pytest.skip("the shared reference directory is not available")
    assert bundled.read_bytes() == reference.read_bytes()
