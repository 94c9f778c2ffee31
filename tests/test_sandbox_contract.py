"""Contract test: every response shape of the sandbox validates against Amazon's models.

The schemas come from the official models bundled in
``flask_amazon_orders/sandbox/models/``: for each operation and HTTP status the
response schema in the model's ``paths``, validated with Draft 4 as
``{"$ref": "#/definitions/<Name>", "definitions": ...}``. A second, stricter pass
adds what the model only says in words: the "Possible values" of string fields,
the ``Money`` amount format and UTC date-times.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft4Validator

from flask_amazon_orders.sandbox import SandboxServer
from flask_amazon_orders.sandbox.reference import MODELS_DIR

ORDERS_MODEL = "orders_2026-01-01.json"
FEEDS_MODEL = "feeds_2021-06-30.json"
REFERENCE_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}
ORDERS = "/orders/2026-01-01/orders"
FEEDS = "/feeds/2021-06-30"
LONG_AGO = "2000-01-01T00:00:00Z"
XML = "text/xml; charset=UTF-8"
DE = "A1PA6795UKMFR9"

# The includedData enum straight from Amazon's model, not from the sandbox's code.
INCLUDED = [
    value
    for parameter in json.loads((MODELS_DIR / ORDERS_MODEL).read_text(encoding="utf-8"))["paths"][
        ORDERS
    ]["get"]["parameters"]
    if parameter["name"] == "includedData"
    for value in parameter["items"]["enum"]
]
INCLUDED_COMBINATIONS = [
    [],
    *([value] for value in INCLUDED),
    ["BUYER", "RECIPIENT"],
    ["PROCEEDS", "PROMOTION", "TAX"],
    ["FULFILLMENT", "PACKAGES", "CANCELLATION"],
    INCLUDED,
]
STATUSES = [
    "PENDING_AVAILABILITY",
    "PENDING",
    "UNSHIPPED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "CANCELLED",
    "UNFULFILLABLE",
]


def load(name: str) -> dict[str, Any]:
    return json.loads((MODELS_DIR / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _possible_values(description: str) -> list[str]:
    tail = description.split("**Possible values**", 1)[1]
    return list(dict.fromkeys(re.findall(r"`([A-Za-z0-9_]+)`", tail)))


def strict_definitions(definitions: dict[str, Any]) -> dict[str, Any]:
    """The model's definitions plus what their descriptions promise."""
    strict = copy.deepcopy(definitions)

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            description = node.get("description", "")
            if "**Possible values**" in description:
                values = _possible_values(description)
                if node.get("type") == "array":
                    node["items"] = {**node["items"], "enum": values}
                elif node.get("type") == "string":
                    node["enum"] = values
            if node.get("format") == "date-time":
                node["pattern"] = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$"
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(strict)
    if "Decimal" in strict:
        strict["Decimal"]["pattern"] = r"^-?\d+(\.\d+)?$"
    if "Money" in strict:
        strict["Money"]["properties"]["currencyCode"]["pattern"] = "^[A-Z]{3}$"
    return strict


class Contract:
    """Validates responses against the response schemas of one model."""

    def __init__(self, model_name: str) -> None:
        self.model = load(model_name)
        self.strict = strict_definitions(self.model["definitions"])
        self.operations: dict[str, dict[str, Any]] = {}
        for methods in self.model["paths"].values():
            for operation in methods.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    self.operations[operation["operationId"]] = operation
        self.checked: dict[str, set[int]] = {}
        self._validators: dict[tuple[str, bool], Draft4Validator] = {}

    def validator(self, name: str, strict: bool) -> Draft4Validator:
        key = (name, strict)
        if key not in self._validators:
            definitions = self.strict if strict else self.model["definitions"]
            schema = {"$ref": f"#/definitions/{name}", "definitions": definitions}
            self._validators[key] = Draft4Validator(schema)
        return self._validators[key]

    def check(self, operation_id: str, response: requests.Response) -> Any:
        """Validate ``response`` as the model's answer of ``operation_id``; return the JSON."""
        declared = self.operations[operation_id]["responses"]
        status = str(response.status_code)
        assert status in declared, f"{operation_id} does not declare HTTP {status}"
        spec = declared[status]
        assert response.headers.get("x-amzn-RequestId")
        if "x-amzn-RateLimit-Limit" in spec.get("headers", {}):
            assert float(response.headers["x-amzn-RateLimit-Limit"]) > 0
        else:
            assert "x-amzn-RateLimit-Limit" not in response.headers
        self.checked.setdefault(operation_id, set()).add(response.status_code)
        schema = spec.get("schema")
        if schema is None:
            assert response.content == b""
            return None
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        name = schema["$ref"].rsplit("/", 1)[1]
        self.validator(name, strict=False).validate(body)
        self.validator(name, strict=True).validate(body)
        return body


@pytest.fixture(scope="module")
def orders_contract() -> Contract:
    return Contract(ORDERS_MODEL)


@pytest.fixture(scope="module")
def feeds_contract() -> Contract:
    return Contract(FEEDS_MODEL)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(enforce_rate_limits=False, feed_processing_seconds=0.6) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def login(
    server: SandboxServer, session: requests.Session, seller: dict[str, Any]
) -> dict[str, str]:
    form = {"grant_type": "refresh_token", "refresh_token": seller["refresh_token"], **CLIENT}
    token = session.post(server.url + "/auth/o2/token", data=form, timeout=10).json()
    return {"x-amz-access-token": token["access_token"]}


@pytest.fixture(scope="module")
def world(server: SandboxServer, session: requests.Session) -> dict[str, Any]:
    """A seller with orders of every status, both fulfilment channels and every extra."""
    control = server.control
    seller = control.create_seller("A1CONTRACT0001")
    sid = seller["seller_id"]
    order_ids = []
    for status, fulfilled_by in itertools.product(STATUSES, ["MERCHANT", "AMAZON"]):
        order = control.create_order(
            sid,
            status=status,
            fulfilled_by=fulfilled_by,
            items=[
                {"sku": "MUG", "quantity": 2, "unit_price": "12.49", "shipping_price": "3.99"},
                {
                    "sku": "CABLE",
                    "unit_price": "9.99",
                    "promotion_id": "PROMO-CONTRACT",
                    "promotion_discount": "1.00",
                },
            ],
            seller_order_id=f"SHOP-{status}-{fulfilled_by}",
            buyer_company="Beispiel GmbH" if status == "SHIPPED" else None,
        )
        order_ids.append(order["orderId"])
    asked = control.create_order(sid)
    control.request_buyer_cancel(asked["orderId"], "Ordered by mistake")
    cancelled = control.create_order(sid, buyer_cancel_reason="No longer needed")
    control.set_status(cancelled["orderId"], "CANCELLED", cancel_reason="BUYER_CANCELLED")
    japan = control.create_order(sid, marketplace_id="A1VC38T7YXB528", status="SHIPPED")
    order_ids += [asked["orderId"], cancelled["orderId"], japan["orderId"]]
    generated = control.generate_orders(sid, 300, seed=99, afn_share=0.4)["order_ids"]
    jp_seller = control.create_seller("A1CONTRACTJP01", marketplace_id="A1VC38T7YXB528")
    jp_orders = control.generate_orders(jp_seller["seller_id"], 40, seed=98)["order_ids"]
    control.advance(sid, count=50)
    return {
        "seller": seller,
        "headers": login(server, session, seller),
        "order_ids": order_ids,
        "generated": generated,
        "jp_seller": jp_seller,
        "jp_orders": jp_orders,
    }


# -- the models themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [ORDERS_MODEL, FEEDS_MODEL])
def test_bundled_models_match_the_reference_copy(name: str) -> None:
    reference = REFERENCE_DIR / name
    if not REFERENCE_DIR.is_dir():
        pytest.skip("the shared reference directory is not available")
    assert (MODELS_DIR / name).read_bytes() == reference.read_bytes()


def test_license_and_notice_are_bundled() -> None:
    assert (MODELS_DIR / "LICENSE-amzn-selling-partner-api-models.txt").is_file()
    assert (MODELS_DIR / "NOTICE-amzn-selling-partner-api-models.txt").is_file()


def test_strict_schemas_accept_amazons_own_examples(orders_contract: Contract) -> None:
    for operation_id in ("searchOrders", "getOrder"):
        responses = orders_contract.operations[operation_id]["responses"]
        for status, spec in responses.items():
            for case in spec.get("x-amzn-api-sandbox", {}).get("static", []):
                name = spec["schema"]["$ref"].rsplit("/", 1)[1]
                orders_contract.validator(name, strict=True).validate(case["response"])
                assert status in ("200", "400")


# -- Orders ------------------------------------------------------------------------------------


@pytest.mark.parametrize("included", INCLUDED_COMBINATIONS, ids=lambda v: ",".join(v) or "none")
def test_search_orders_pages_validate(
    server: SandboxServer,
    session: requests.Session,
    world: dict[str, Any],
    orders_contract: Contract,
    included: list[str],
) -> None:
    params: dict[str, Any] = {"lastUpdatedAfter": LONG_AGO, "maxResultsPerPage": 100}
    if included:
        params["includedData"] = ",".join(included)
    seen = 0
    while True:
        response = session.get(
            server.url + ORDERS, params=params, headers=world["headers"], timeout=10
        )
        body = orders_contract.check("searchOrders", response)
        assert response.status_code == 200
        seen += len(body["orders"])
        token = body.get("pagination", {}).get("nextToken")
        if not token:
            break
        params = {"paginationToken": token}
    assert seen == len(world["order_ids"]) + len(world["generated"])


def test_search_by_created_time_validates(
    server: SandboxServer,
    session: requests.Session,
    world: dict[str, Any],
    orders_contract: Contract,
) -> None:
    response = session.get(
        server.url + ORDERS,
        params={
            "createdAfter": LONG_AGO,
            "createdBefore": "2099-01-01T00:00:00Z",
            "fulfillmentStatuses": "SHIPPED,CANCELLED",
            "fulfilledBy": "AMAZON",
            "marketplaceIds": DE,
            "includedData": ",".join(INCLUDED),
        },
        headers=world["headers"],
        timeout=10,
    )
    assert response.status_code == 400  # createdBefore must lie in the past
    orders_contract.check("searchOrders", response)
    response = session.get(
        server.url + ORDERS,
        params={"createdAfter": LONG_AGO, "fulfilledBy": "AMAZON", "includedData": "FULFILLMENT"},
        headers=world["headers"],
        timeout=10,
    )
    body = orders_contract.check("searchOrders", response)
    assert body["orders"] and "createdBefore" in body


def test_get_order_validates_for_every_order_and_included_data(
    server: SandboxServer,
    session: requests.Session,
    world: dict[str, Any],
    orders_contract: Contract,
) -> None:
    for order_id in world["order_ids"]:
        for included in INCLUDED_COMBINATIONS:
            params = {"includedData": ",".join(included)} if included else {}
            response = session.get(
                f"{server.url}{ORDERS}/{order_id}",
                params=params,
                headers=world["headers"],
                timeout=10,
            )
            body = orders_contract.check("getOrder", response)
            assert body["order"]["orderId"] == order_id


def test_japanese_orders_with_points_validate(
    server: SandboxServer,
    session: requests.Session,
    world: dict[str, Any],
    orders_contract: Contract,
) -> None:
    headers = login(server, session, world["jp_seller"])
    expenses = 0
    for order_id in world["jp_orders"]:
        response = session.get(
            f"{server.url}{ORDERS}/{order_id}",
            params={"includedData": ",".join(INCLUDED)},
            headers=headers,
            timeout=10,
        )
        body = orders_contract.check("getOrder", response)
        for item in body["order"]["orderItems"]:
            assert "." not in item["product"]["price"]["unitPrice"]["amount"]  # yen
            expenses += "expense" in item
    assert expenses


def test_orders_error_bodies_validate(
    server: SandboxServer,
    session: requests.Session,
    world: dict[str, Any],
    orders_contract: Contract,
) -> None:
    url, headers = server.url, world["headers"]
    orders_contract.checked.clear()
    bad_search = session.get(url + ORDERS, params={"createdAfter": "x"}, headers=headers)
    assert orders_contract.check("searchOrders", bad_search)["errors"][0]["code"] == "InvalidInput"
    assert session.get(url + ORDERS, timeout=10).status_code == 403
    orders_contract.check("searchOrders", session.get(url + ORDERS, timeout=10))
    bad_id = session.get(f"{url}{ORDERS}/nope", headers=headers, timeout=10)
    orders_contract.check("getOrder", bad_id)
    missing = session.get(f"{url}{ORDERS}/302-0000000-0000000", headers=headers, timeout=10)
    assert orders_contract.check("getOrder", missing)["errors"][0]["code"] == "NotFound"
    forbidden = session.get(
        f"{url}{ORDERS}/302-0000000-0000000", headers={"x-amz-access-token": "x"}, timeout=10
    )
    orders_contract.check("getOrder", forbidden)
    static_400 = session.get(
        url + ORDERS, params={"createdAfter": "TEST_CASE_400"}, headers=headers
    )
    orders_contract.check("searchOrders", static_400)
    for kind, operation in [
        ("429", "searchOrders"),
        ("500_json", "searchOrders"),
        ("expired_pagination_token", "searchOrders"),
        ("429", "getOrder"),
        ("500_json", "getOrder"),
        ("403", "getOrder"),
    ]:
        server.control.inject_fault(operation, kind)
        path = ORDERS if operation == "searchOrders" else f"{ORDERS}/{world['order_ids'][0]}"
        response = session.get(
            url + path, params={"lastUpdatedAfter": LONG_AGO}, headers=headers, timeout=10
        )
        assert response.status_code >= 400
        orders_contract.check(operation, response)
    assert orders_contract.checked["searchOrders"] == {400, 403, 429, 500}
    assert orders_contract.checked["getOrder"] == {400, 403, 404, 429, 500}


def test_real_throttling_validates(session: requests.Session, orders_contract: Contract) -> None:
    with SandboxServer(time_scale=0.001) as sandbox:
        seller = sandbox.control.create_seller()
        headers = login(sandbox, session, seller)
        statuses = []
        for _ in range(21):
            response = session.get(
                sandbox.url + ORDERS, params={"lastUpdatedAfter": LONG_AGO}, headers=headers
            )
            orders_contract.check("searchOrders", response)
            statuses.append(response.status_code)
        assert statuses[-1] == 429


def test_static_examples_served_validate(
    server: SandboxServer,
    session: requests.Session,
    world: dict[str, Any],
    orders_contract: Contract,
) -> None:
    for operation_id in ("searchOrders", "getOrder"):
        for spec in orders_contract.operations[operation_id]["responses"].values():
            for case in spec.get("x-amzn-api-sandbox", {}).get("static", []):
                params = {
                    k: ",".join(v["value"]) if isinstance(v["value"], list) else v["value"]
                    for k, v in case["request"]["parameters"].items()
                }
                path = ORDERS
                if operation_id == "getOrder":
                    path = f"{ORDERS}/{params.pop('orderId')}"
                response = session.get(
                    server.url + path, params=params, headers=world["headers"], timeout=10
                )
                assert orders_contract.check(operation_id, response) == case["response"]


# -- Feeds -------------------------------------------------------------------------------------

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?><AmazonEnvelope><Header>'
    "<DocumentVersion>1.01</DocumentVersion><MerchantIdentifier>A1CONTRACT0001"
    "</MerchantIdentifier></Header><MessageType>OrderAcknowledgement</MessageType>"
    "<Message><MessageID>1</MessageID><OrderAcknowledgement><AmazonOrderID>302-1234567-1234567"
    "</AmazonOrderID><StatusCode>Success</StatusCode></OrderAcknowledgement></Message>"
    "</AmazonEnvelope>"
)


def test_feeds_operations_validate(
    server: SandboxServer,
    session: requests.Session,
    world: dict[str, Any],
    feeds_contract: Contract,
) -> None:
    url, headers = server.url, world["headers"]
    feeds_contract.checked.clear()
    check = feeds_contract.check

    def new_feed(content: str = ENVELOPE) -> str:
        document = session.post(
            f"{url}{FEEDS}/documents", json={"contentType": XML}, headers=headers
        )
        body = check("createFeedDocument", document)
        assert document.status_code == 201
        upload = session.put(body["url"], data=content.encode(), headers={"Content-Type": XML})
        assert upload.status_code == 200
        feed = session.post(
            f"{url}{FEEDS}/feeds",
            json={
                "feedType": "POST_ORDER_ACKNOWLEDGEMENT_DATA",
                "marketplaceIds": [DE],
                "inputFeedDocumentId": body["feedDocumentId"],
                "feedOptions": {"note": "contract"},
            },
            headers=headers,
        )
        assert feed.status_code == 202
        return str(check("createFeed", feed)["feedId"])

    def get_feed(feed_id: str) -> dict[str, Any]:
        response = session.get(f"{url}{FEEDS}/feeds/{feed_id}", headers=headers)
        return check("getFeed", response)  # type: ignore[no-any-return]

    done_id = new_feed()
    statuses = {get_feed(done_id)["processingStatus"]}
    deadline = time.monotonic() + 5
    while (feed := get_feed(done_id))["processingStatus"] != "DONE":
        statuses.add(feed["processingStatus"])
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert {"IN_QUEUE", "IN_PROGRESS"} <= statuses

    cancel_id = new_feed()
    cancelled = session.delete(f"{url}{FEEDS}/feeds/{cancel_id}", headers=headers)
    check("cancelFeed", cancelled)
    assert get_feed(cancel_id)["processingStatus"] == "CANCELLED"
    refused = session.delete(f"{url}{FEEDS}/feeds/{done_id}", headers=headers)
    assert refused.status_code == 400
    check("cancelFeed", refused)

    fatal_id = new_feed("<AmazonEnvelope>")
    server.control.process_feed(fatal_id)
    assert get_feed(fatal_id)["processingStatus"] == "FATAL"

    for params in (
        {"feedTypes": "POST_ORDER_ACKNOWLEDGEMENT_DATA", "pageSize": 2},
        {"feedTypes": "POST_ORDER_ACKNOWLEDGEMENT_DATA", "processingStatuses": "DONE,FATAL"},
    ):
        page = session.get(f"{url}{FEEDS}/feeds", params=params, headers=headers)
        body = check("getFeeds", page)
        if "nextToken" in body:
            rest = session.get(
                f"{url}{FEEDS}/feeds", params={"nextToken": body["nextToken"]}, headers=headers
            )
            check("getFeeds", rest)

    document = session.get(
        f"{url}{FEEDS}/documents/{get_feed(done_id)['resultFeedDocumentId']}", headers=headers
    )
    assert check("getFeedDocument", document)["compressionAlgorithm"] == "GZIP"

    # Errors.
    for response, operation_id in [
        (session.get(f"{url}{FEEDS}/feeds", headers=headers), "getFeeds"),
        (session.get(f"{url}{FEEDS}/feeds/0", headers=headers), "getFeed"),
        (session.delete(f"{url}{FEEDS}/feeds/0", headers=headers), "cancelFeed"),
        (session.get(f"{url}{FEEDS}/documents/none", headers=headers), "getFeedDocument"),
        (session.post(f"{url}{FEEDS}/documents", json={}, headers=headers), "createFeedDocument"),
        (
            session.post(
                f"{url}{FEEDS}/feeds",
                json={"feedType": "X", "marketplaceIds": [DE], "inputFeedDocumentId": "none"},
                headers=headers,
            ),
            "createFeed",
        ),
        (session.get(f"{url}{FEEDS}/feeds/{done_id}"), "getFeed"),
        (session.post(f"{url}{FEEDS}/documents", json={"contentType": XML}), "createFeedDocument"),
    ]:
        assert response.status_code in (400, 403, 404)
        check(operation_id, response)

    for operation_id in ("createFeedDocument", "getFeed", "getFeedDocument", "createFeed"):
        server.control.inject_fault(operation_id, "429")
        server.control.inject_fault(operation_id, "500_json", after=1)
    for _ in range(2):
        check(
            "createFeedDocument",
            session.post(f"{url}{FEEDS}/documents", json={"contentType": XML}, headers=headers),
        )
        check("getFeed", session.get(f"{url}{FEEDS}/feeds/{done_id}", headers=headers))
        check("getFeedDocument", session.get(f"{url}{FEEDS}/documents/x", headers=headers))
        check("createFeed", session.post(f"{url}{FEEDS}/feeds", json={}, headers=headers))

    assert feeds_contract.checked["getFeed"] >= {200, 403, 404, 429, 500}
    assert feeds_contract.checked["createFeed"] >= {202, 400, 429, 500}
    assert feeds_contract.checked["cancelFeed"] >= {200, 400, 404}
    assert feeds_contract.checked["getFeeds"] >= {200, 400}
    assert feeds_contract.checked["createFeedDocument"] >= {201, 400, 403, 429, 500}
    assert feeds_contract.checked["getFeedDocument"] >= {200, 404, 429, 500}
