"""Property tests of every parser of Amazon's answers (no database).

Each parser, fed arbitrary input or a mutated valid document (see ``fuzzing.py``),
returns a valid value or raises the package's typed error, never anything else:
orders (:func:`parse_order`), success and error bodies (:mod:`.client.responses`),
LWA token answers, ``Retry-After``, processing reports, and every client call
against a loopback server that answers whatever hypothesis draws.

``@example`` rows are the inputs that broke a parser once; they stay as regression
tests.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fuzzing import (
    bodies,
    headers,
    mutated,
    odd_strings,
    orders,
    problems_storing,
    reports,
    scaled,
    valid_answer,
    valid_orders,
    valid_report,
)
from helpers import TOKEN_PATH, FakeAmazon, serve_fake_amazon
from hypothesis import example, given
from hypothesis import strategies as st
from werkzeug.wrappers import Response

from flask_amazon_orders.client import (
    InMemoryRateLimiter,
    LWACredentials,
    RetryPolicy,
    SPAPIClient,
    TokenCache,
)
from flask_amazon_orders.client.feeds_xml import parse_processing_report
from flask_amazon_orders.client.lwa import AccessToken, parse_token_response
from flask_amazon_orders.client.records import MAX_LENGTHS, OrderRecord, parse_order
from flask_amazon_orders.client.responses import (
    FIELD_VALUES,
    ID_LENGTHS,
    REQUIRED_FIELDS,
    error_for_response,
    parse_body,
)
from flask_amazon_orders.client.retry import parse_retry_after
from flask_amazon_orders.errors import (
    AmazonOrdersError,
    LWAError,
    MalformedResponseError,
    QuotaExceededError,
    ServerError,
    SPAPIError,
)
from flask_amazon_orders.models import AmazonOrder, AmazonOrderItem


def _with(path: list[Any], value: Any, order_index: int = 0) -> dict[str, Any]:
    """A copy of a valid order with the field at ``path`` set to ``value``."""
    order = copy.deepcopy(valid_orders()[order_index])
    target = order
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return order


def _generated(path: list[Any], value: Any) -> dict[str, Any]:
    """Like :func:`_with`, on the first sandbox-generated order (it has every part)."""
    return _with(path, value, order_index=len(valid_orders()) - 24)


#: The first item's TAX breakdown details in a generated order.
TAX_DETAILS = ["orderItems", 0, "proceeds", "breakdowns", 2, "detailedBreakdowns"]


# -- orders ----------------------------------------------------------------------------


def check_order(raw: Any) -> OrderRecord | None:
    """Parse ``raw``: a storable record, or ``None`` after a typed error."""
    try:
        record = parse_order(raw, operation="searchOrders")
    except MalformedResponseError as exc:
        assert exc.operation == "searchOrders"
        assert exc.message
        return None
    assert problems_storing(record, AmazonOrder.__table__) == []
    assert len(",".join(record.programs)) <= 255
    assert sum(item.quantity_ordered for item in record.items) < 2**31
    for item in record.items:
        assert problems_storing(item, AmazonOrderItem.__table__) == []
        assert 0 <= item.quantity_shipped <= item.quantity_ordered
    return record


def test_every_valid_order_parses_into_a_storable_record() -> None:
    for raw in valid_orders():
        record = check_order(raw)
        assert record is not None
        assert record.amazon_order_id == raw["orderId"]


def test_the_length_limits_are_the_columns() -> None:
    columns = {**AmazonOrderItem.__table__.columns, **AmazonOrder.__table__.columns}
    assert {name: columns[name].type.length for name in MAX_LENGTHS} == dict(MAX_LENGTHS)


@scaled(3)
@given(orders())
# Each of these raised something else than MalformedResponseError, or gave a
# record the database refuses (too long, NUL, out of NUMERIC(18, 4)).
@example(_with(["createdTime"], "0001-01-01T00:00:00+01:00"))  # OverflowError
@example(_with(["orderAliases"], 7))  # TypeError: not iterable
@example(_with(["orderId"], "028-1234567-8901234" * 3))  # longer than the column
@example(_with(["orderItems", 0, "product", "title"], "Echo\x00Dot"))  # NUL
@example(_with(["orderItems", 0, "product", "sellerSku"], "SKU-\ud800"))  # not UTF-8
@example(_with(["proceeds", "grandTotal", "amount"], "1e30"))  # NUMERIC(18, 4) overflow
@example(_with(["proceeds", "grandTotal", "amount"], "0.00001"))  # rounded by the database
@example(_with(["proceeds", "grandTotal", "amount"], "1_000"))  # Decimal() takes it
@example(_with(["proceeds", "grandTotal", "currencyCode"], "EURO"))  # currency column: 3
@example(_with(["recipient", "deliveryAddress", "countryCode"], "DEU"))  # ship_country: 2
@example(_with(["orderItems", 0, "quantityOrdered"], 2**40))  # INTEGER overflow
@example(_with(["programs"], ["PRIME" * 60]))  # programs column: 255
@example(_generated(TAX_DETAILS, 5))  # TypeError: not iterable
@example(_generated([*TAX_DETAILS, 0, "subtype"], ["ITEM"]))  # TypeError: str + list
def test_an_order_parses_into_a_storable_record_or_a_typed_error(raw: Any) -> None:
    check_order(raw)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (TAX_DETAILS, 5, "'detailedBreakdowns' is not a list"),
        ([*TAX_DETAILS, 0, "subtype"], ["ITEM"], "'subtype' is not a string"),
        (["orderId"], "x" * 33, "'orderId' is longer than 32 characters"),
        (["orderItems", 0, "product", "title"], "a\x00b", "'title' contains a NUL"),
        (["createdTime"], "0001-01-01T00:00:00+01:00", "'createdTime' is not an ISO 8601"),
        (["proceeds", "grandTotal", "amount"], "1e30", "amount 1e\\+30 is out of range"),
        (["proceeds", "grandTotal", "amount"], "0.00001", "more than four decimals"),
        (["proceeds", "grandTotal", "amount"], " 12.50", "not a decimal number"),
        (["proceeds", "grandTotal", "currencyCode"], "EURO", "not a three-letter code"),
        (["orderAliases"], {"aliasId": "x"}, "'orderAliases' is not a list"),
        (["orderItems", 0, "quantityOrdered"], 2**31, "'quantityOrdered' is larger than"),
        (["recipient", "deliveryAddress", "countryCode"], "DEU", "'countryCode' is longer"),
    ],
)
def test_errors_name_the_field(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=message):
        parse_order(_generated(path, value))


# -- success and error bodies --------------------------------------------------------------

OPERATIONS = sorted(REQUIRED_FIELDS)
statuses = st.one_of(
    st.sampled_from([200, 201, 202, 204, 400, 401, 403, 404, 429, 500, 503]),
    st.integers(100, 599),
)


def _success_bodies(operation: str) -> st.SearchStrategy[bytes]:
    if operation in ("searchOrders", "getOrder"):
        order = st.integers(0, len(valid_orders()) - 1).map(lambda i: valid_orders()[i])
        if operation == "getOrder":
            valid = order.map(lambda o: {"order": o})
        else:
            valid = st.lists(order, max_size=3).map(
                lambda o: {"orders": o, "pagination": {"nextToken": "tok"}}
            )
    else:
        valid = valid_answer(operation)
    return st.one_of(bodies(), valid.flatmap(mutated).map(lambda v: json.dumps(v).encode()))


@scaled(3)
@given(st.sampled_from(OPERATIONS).flatmap(lambda op: st.tuples(st.just(op), _success_bodies(op))))
@example(("searchOrders", b'{"orders": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"))
@example(("searchOrders", b'{"orders": [], "pagination": {"nextToken": "\\ud800"}}'))
@example(("getFeed", b'{"feedId": "1", "processingStatus": "DONE", "resultFeedDocumentId": 7}'))
@example(("getFeed", b'{"feedId": "1", "processingStatus": "FINISHED"}'))
@example(("createFeed", json.dumps({"feedId": "9" * 41}).encode()))
@example(("getFeedDocument", b'{"feedDocumentId": "D", "url": "x", "compressionAlgorithm": 1}'))
@example(("getFeeds", b'{"feeds": [7]}'))
def test_a_success_body_is_checked_or_a_typed_error(case: tuple[str, bytes]) -> None:
    operation, body = case
    try:
        data = parse_body(operation, 200, {"x-amzn-RequestId": "r1"}, body)
    except MalformedResponseError as exc:
        assert (exc.operation, exc.status, exc.request_id) == (operation, 200, "r1")
        return
    check_answer(operation, data)


def check_answer(operation: str, data: Any) -> None:
    """A success body holds what the client and the jobs read, with the right types."""
    assert isinstance(data, dict)
    for name, kind in REQUIRED_FIELDS[operation]:
        assert isinstance(data[name], kind) and data[name] != ""
    for name, allowed in FIELD_VALUES.items():
        if data.get(name) is not None:
            assert data[name] in allowed
    for name, length in ID_LENGTHS.items():
        if data.get(name) is not None:
            assert isinstance(data[name], str) and 0 < len(data[name]) <= length
    if operation == "searchOrders":
        token = (data.get("pagination") or {}).get("nextToken")
        if token is not None:
            assert isinstance(token, str) and "\x00" not in token
            token.encode("utf-8")  # it goes into the next request's query string
    if operation == "getFeeds":
        for feed in data["feeds"]:
            assert isinstance(feed["feedId"], str) and len(feed["feedId"]) <= ID_LENGTHS["feedId"]
    if "url" in data:
        assert data["url"].startswith(("http://", "https://"))


@scaled(3)
@given(st.sampled_from([*OPERATIONS, "confirmShipment", "uploadFeedDocument"]), statuses, headers())
def test_an_error_body_becomes_the_matching_typed_error(
    operation: str, status: int, response_headers: dict[str, str]
) -> None:
    for body in (b"", b"[" * 5_000, json.dumps({"errors": [{"code": "\x00" * 3}]}).encode()):
        error = error_for_response(operation, status, response_headers, body)
        check_error(error, operation, status)


@scaled(3)
@given(st.sampled_from(OPERATIONS), statuses, headers(), bodies())
@example("searchOrders", 400, {}, b"[" * 5_000)  # RecursionError
@example("getOrder", 500, {"x-amzn-RequestId": "r\x00"}, b'{"errors": [{"message": "a\\u0000"}]}')
def test_any_error_response_becomes_a_typed_error(
    operation: str, status: int, response_headers: dict[str, str], body: bytes
) -> None:
    check_error(error_for_response(operation, status, response_headers, body), operation, status)


def check_error(error: SPAPIError, operation: str, status: int) -> None:
    assert isinstance(error, SPAPIError)
    assert (error.operation, error.status) == (operation, status)
    if status == 429:
        assert isinstance(error, QuotaExceededError)
    if 500 <= status < 600:
        assert isinstance(error, ServerError)
    text = str(error) + repr(error)
    for part in (text, error.message, error.code or "", error.details or ""):
        assert "\x00" not in part
        part.encode("utf-8")  # storable and loggable


# -- LWA token answers, Retry-After ------------------------------------------------------

TOKEN_ANSWER = {
    "access_token": "Atza|IwEBIExample",
    "token_type": "bearer",
    "expires_in": 3600,
    "refresh_token": "Atzr|IwEBIExample",
}
LWA_ERROR = {"error": "invalid_grant", "error_description": "The refresh token is invalid"}


@scaled(3)
@given(
    statuses,
    headers(),
    st.one_of(
        bodies(),
        st.sampled_from([TOKEN_ANSWER, LWA_ERROR])
        .flatmap(mutated)
        .map(lambda v: json.dumps(v).encode()),
    ),
)
@example(200, {}, json.dumps({**TOKEN_ANSWER, "expires_in": 10**400}).encode())  # Overflow
@example(200, {}, b'{"access_token": "x", "expires_in": NaN}')  # a token never cached
@example(200, {}, json.dumps({**TOKEN_ANSWER, "access_token": "Atza|\u00e9\u20ac"}).encode())
@example(200, {}, b"[" * 5_000)  # RecursionError
def test_a_token_answer_gives_a_usable_token_or_a_typed_error(
    status: int, response_headers: dict[str, str], body: bytes
) -> None:
    try:
        token = parse_token_response(status, response_headers, body, request_id="r1")
    except LWAError as exc:
        assert (exc.operation, exc.status, exc.request_id) == ("lwaToken", status, "r1")
        assert not (200 <= status < 300) or exc.retryable
        return
    assert 200 <= status < 300
    assert isinstance(token, AccessToken)
    assert 0 < token.expires_in < math.inf
    token.value.encode("ascii")  # it goes into a header
    assert token.value.isprintable() and " " not in token.value


@scaled(3)
@given(headers())
@example({"Retry-After": "Mon, 01 Jan 0001 00:00:00 +2359"})
@example({"Retry-After": "1e400"})
def test_retry_after_is_a_finite_delay_or_none(response_headers: dict[str, str]) -> None:
    delay = parse_retry_after(response_headers)
    assert delay is None or (0 <= delay < math.inf)


# -- processing reports ------------------------------------------------------------------


@scaled(3)
@given(reports())
@example(valid_report().replace(b">2</MessageID>", b">\xc2\xb2</MessageID>"))  # "²".isdigit()
@example(
    valid_report().replace(b"<MessagesProcessed>3<", b"<MessagesProcessed>" + b"9" * 5000 + b"<")
)
@example(valid_report().replace(b'encoding="UTF-8"', b'encoding="no-such-codec"'))  # LookupError
@example(valid_report().replace(b'encoding="UTF-8"', b'encoding="shift_jis"'))  # ValueError
def test_a_processing_report_is_read_or_a_typed_error(document: bytes) -> None:
    try:
        report = parse_processing_report(document)
    except MalformedResponseError as exc:
        assert exc.operation == "getFeedDocument"
        return
    assert report.status in ("Complete", "Processing", "Rejected")
    for result in report.results:
        assert result.code in ("Error", "Warning")
        assert result.message_id == str(int(result.message_id))
    for count in (report.processed, report.successful, report.with_error):
        assert count is None or count >= 0
    report.summary.encode("utf-8")


def test_the_valid_report_is_read() -> None:
    report = parse_processing_report(valid_report())
    assert sorted(report.errors_by_message()) == ["0", "2"]
    assert report.processed == 3


# -- every client call against a loopback server that answers anything -----------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAmazon]:
    with serve_fake_amazon() as server:
        yield server


def _checked_sleep(seconds: float) -> None:
    """The client's and the limiter's sleep: never asked for an unbounded wait."""
    assert 0 <= seconds < 4 * 3600, seconds


def _client(fake: FakeAmazon) -> SPAPIClient:
    return SPAPIClient(
        credentials=LWACredentials("client-id", "client-secret", "Atzr|refresh"),
        endpoint=fake.url,
        lwa_url=fake.url + TOKEN_PATH,
        token_cache=TokenCache(),
        rate_limiter=InMemoryRateLimiter(sleep=_checked_sleep),
        retry=RetryPolicy(max_attempts=2, jitter=False),
        timeout=(2.0, 2.0),
        sleep=_checked_sleep,
    )


DOCUMENT = "/feeds/2021-06-30/documents"
FEEDS = "/feeds/2021-06-30/feeds"
ORDERS = "/orders/2026-01-01/orders"
#: Operation -> (method, path, the call, what a valid answer looks like).
CALLS: dict[str, tuple[str, str, Callable[[SPAPIClient, str], Any]]] = {
    "searchOrders": (
        "GET",
        ORDERS,
        lambda c, url: list(c.iter_search_orders(created_after="2026-01-01T00:00:00Z")),
    ),
    "getOrder": ("GET", ORDERS + "/028-1", lambda c, url: c.get_order("028-1")),
    "confirmShipment": (
        "POST",
        "/orders/v0/orders/028-1/shipmentConfirmation",
        lambda c, url: c.confirm_shipment("028-1", {"marketplaceId": "A1PA6795UKMFR9"}),
    ),
    "createFeedDocument": ("POST", DOCUMENT, lambda c, url: c.create_feed_document("text/xml")),
    "uploadFeedDocument": ("PUT", "/upload", lambda c, url: c.upload_feed_document(url, b"x", "t")),
    "createFeed": ("POST", FEEDS, lambda c, url: c.create_feed("T", ["M"], "D1")),
    "getFeed": ("GET", FEEDS + "/F1", lambda c, url: c.get_feed("F1")),
    "getFeeds": ("GET", FEEDS, lambda c, url: c.get_feeds(page_size=10)),
    "getFeedDocument": ("GET", DOCUMENT + "/D1", lambda c, url: c.get_feed_document("D1")),
    "downloadDocument": (
        "GET",
        "/download",
        lambda c, url: c.download_document(url, "GZIP"),
    ),
}


def _answers(operation: str) -> st.SearchStrategy[tuple[int, dict[str, str], bytes]]:
    """An HTTP answer: any status and headers, and a body that is anything, or a
    mutated valid answer of ``operation``."""
    header_values = st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=30,
    )
    response_headers = st.dictionaries(
        st.sampled_from(["x-amzn-RequestId", "x-amzn-RateLimit-Limit", "Retry-After"]),
        st.one_of(header_values, odd_strings.filter(lambda s: s.isprintable() and s.isascii())),
        max_size=3,
    )
    body = bodies()
    if operation in REQUIRED_FIELDS:
        body = st.one_of(body, _success_bodies(operation))
    if operation == "downloadDocument":
        body = st.one_of(body, st.binary(max_size=60).map(gzip.compress), reports())
    status = st.one_of(st.sampled_from([200, 200, 200, 201, 204, 400, 403, 429, 503]), statuses)
    return st.tuples(status.filter(lambda s: s >= 200), response_headers, body)


@scaled(1)
@given(
    st.sampled_from(sorted(CALLS)).flatmap(lambda op: st.tuples(st.just(op), _answers(op))),
    st.one_of(st.none(), _answers("token")),
)
@example(("getOrder", (200, {}, b'{"order": {}}')), (200, {}, b'{"access_token": "A\xc3\xa9"}'))
@example(("getOrder", (200, {"x-amzn-RateLimit-Limit": "1e-300"}, b'{"order": {}}')), None)
@example(("searchOrders", (200, {}, b'{"orders": [], "pagination": {"nextToken": 5}}')), None)
@example(("getFeed", (200, {}, b'{"feedId": "\\ud800", "processingStatus": "DONE"}')), None)
def test_every_client_call_returns_its_answer_or_a_typed_error(
    fake: FakeAmazon,
    case: tuple[str, tuple[int, dict[str, str], bytes]],
    token_answer: tuple[int, dict[str, str], bytes] | None,
) -> None:
    operation, (status, response_headers, body) = case
    method, path, call = CALLS[operation]
    answer = Response(body, status, response_headers, content_type="application/json")
    fake.routes.clear()
    fake.on(method, path, answer)
    if operation == "searchOrders":  # a second page, in case the first one has a token
        fake.on(method, path, answer, Response(b'{"orders": []}', 200))
    if token_answer is None:
        fake.on("POST", TOKEN_PATH, fake.issue_token)
    else:
        token_status, token_headers, token_body = token_answer
        fake.on("POST", TOKEN_PATH, Response(token_body, token_status, token_headers))
    client = _client(fake)
    try:
        result = call(client, fake.url + path)
    except AmazonOrdersError:
        return
    finally:
        client.close()
    if operation in REQUIRED_FIELDS and operation != "getOrder":
        for page in result if operation == "searchOrders" else [result]:
            check_answer(operation, page)
    elif operation == "getOrder":
        assert isinstance(result, dict)
    elif operation == "createFeed":
        assert isinstance(result, str) and 0 < len(result) <= ID_LENGTHS["feedId"]
    elif operation == "downloadDocument":
        assert isinstance(result, bytes)
    else:
        assert result is None
