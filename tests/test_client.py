"""The SP-API client against a scriptable HTTP server on 127.0.0.1.

Each test scripts the exact responses it needs (JSON errors, HTML pages, empty
bodies, truncated JSON, dropped connections, slow answers, 429s) on a small
werkzeug server, or on a raw socket server where HTTP must be broken on purpose.
Waiting is replaced by a recording fake ``sleep`` so that backoff costs no time.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from helpers import TOKEN_PATH, FakeAmazon, amazon_error, json_response, serve_fake_amazon
from werkzeug.wrappers import Response

from flask_amazon_orders.client import (
    ENDPOINTS,
    LWA_TOKEN_URL,
    PUBLISHED_LIMITS,
    InMemoryRateLimiter,
    LWACredentials,
    RetryPolicy,
    SPAPIClient,
    TokenCache,
    default_user_agent,
    format_datetime,
)
from flask_amazon_orders.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidInputError,
    LWAError,
    MalformedResponseError,
    MissingCredentialsError,
    NotFoundError,
    QuotaExceededError,
    RateLimitWait,
    RefreshTokenRevokedError,
    ServerError,
    SPAPIError,
    TransportError,
)

CLIENT_ID = "amzn1.application-oa2-client.test"
CLIENT_SECRET = "cs-SUPERSECRET-client"
REFRESH_TOKEN = "Atzr|SUPERSECRET-refresh"
ORDERS = "/orders/2026-01-01/orders"
FEEDS = "/feeds/2021-06-30/feeds"
DOCUMENTS = "/feeds/2021-06-30/documents"


# -- a scriptable fake server (tests/helpers.py) ----------------------------------------


@pytest.fixture
def amazon() -> Iterator[FakeAmazon]:
    with serve_fake_amazon(refresh_token=REFRESH_TOKEN) as fake:
        yield fake


class RawServer:
    """A socket server for broken HTTP: each connection runs the next script step."""

    def __init__(self, steps: list[bytes | None]) -> None:
        self.steps = steps  # bytes to send then close; None: close without answering
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    step = self.steps[min(self.connections, len(self.steps) - 1)]
                    self.connections += 1
                    if step is not None:
                        conn.sendall(step)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self.thread.join(5)


def raw_http(body: bytes, *, content_length: int | None = None) -> bytes:
    length = len(body) if content_length is None else content_length
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@pytest.fixture
def raw_server() -> Iterator[Callable[[list[bytes | None]], RawServer]]:
    servers: list[RawServer] = []

    def start(steps: list[bytes | None]) -> RawServer:
        server = RawServer(steps)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(amazon: FakeAmazon, sleeps: list[float]) -> Iterator[Callable[..., SPAPIClient]]:
    clients: list[SPAPIClient] = []

    def make(**options: Any) -> SPAPIClient:
        options.setdefault("credentials", LWACredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN))
        options.setdefault("endpoint", amazon.url)
        options.setdefault("lwa_url", amazon.url + TOKEN_PATH)
        options.setdefault("seller_key", "A1SELLER")
        options.setdefault("token_cache", TokenCache())
        options.setdefault("rate_limiter", InMemoryRateLimiter(sleep=lambda s: None))
        options.setdefault("retry", RetryPolicy(jitter=False))
        options.setdefault("timeout", (2.0, 2.0))
        options.setdefault("sleep", sleeps.append)
        client = SPAPIClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def orders_page(count: int = 1, next_token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "orders": [{"orderId": f"028-0000000-{i:07d}"} for i in range(count)],
        "createdBefore": "2026-01-01T00:00:00Z",
    }
    if next_token:
        page["pagination"] = {"nextToken": next_token}
    return page


# -- constants and helpers -------------------------------------------------------------


def test_published_facts() -> None:
    assert PUBLISHED_LIMITS["searchOrders"] == (0.0056, 20)
    assert PUBLISHED_LIMITS["getOrder"] == (0.5, 30)
    assert PUBLISHED_LIMITS["createFeed"] == (0.0083, 15)
    assert PUBLISHED_LIMITS["confirmShipment"] == (2.0, 10)
    assert set(PUBLISHED_LIMITS) == {
        "searchOrders",
        "getOrder",
        "createFeedDocument",
        "createFeed",
        "getFeed",
        "getFeeds",
        "cancelFeed",
        "getFeedDocument",
        "confirmShipment",
    }
    assert ENDPOINTS["eu"] == "https://sellingpartnerapi-eu.amazon.com"
    assert LWA_TOKEN_URL == "https://api.amazon.com/auth/o2/token"


def test_default_user_agent() -> None:
    assert re.fullmatch(
        r"Flask-Amazon-Orders/\S+ \(Language=Python/\d+\.\d+; Platform=\S*\)", default_user_agent()
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone.utc), "2026-03-01T12:30:00Z"),
        (
            dt.datetime(2026, 3, 1, 14, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-03-01T12:30:05Z",
        ),
        (
            dt.datetime(2026, 3, 1, 0, 0, 0, 250_999, tzinfo=dt.timezone.utc),
            "2026-03-01T00:00:00.250Z",
        ),
        ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"),
    ],
)
def test_format_datetime(value: Any, expected: str) -> None:
    assert format_datetime(value) == expected


def test_format_datetime_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_datetime(dt.datetime(2026, 3, 1))


# -- requests, headers, tokens ---------------------------------------------------------


def test_search_orders_request(amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]) -> None:
    amazon.on("GET", ORDERS, json_response(orders_page(2)))
    client = make_client()
    body = client.search_orders(
        last_updated_after=dt.datetime(
            2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))
        ),
        fulfillment_statuses=["UNSHIPPED", "CANCELLED"],
        marketplace_ids=["A1PA6795UKMFR9"],
        fulfilled_by="MERCHANT",
        max_results_per_page=100,
        included_data=("PROCEEDS", "FULFILLMENT"),
    )
    assert [o["orderId"] for o in body["orders"]] == ["028-0000000-0000000", "028-0000000-0000001"]

    (token_request,) = amazon.requests_to(TOKEN_PATH)
    assert token_request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert dict(pair.split("=", 1) for pair in token_request.body.decode().split("&")) == {
        "grant_type": "refresh_token",
        "refresh_token": "Atzr%7CSUPERSECRET-refresh",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }

    (seen,) = amazon.requests_to(ORDERS)
    assert seen.args == {
        "lastUpdatedAfter": "2026-01-02T02:04:05Z",
        "fulfillmentStatuses": "UNSHIPPED,CANCELLED",
        "marketplaceIds": "A1PA6795UKMFR9",
        "fulfilledBy": "MERCHANT",
        "maxResultsPerPage": "100",
        "includedData": "PROCEEDS,FULFILLMENT",
    }
    assert seen.headers["X-Amz-Access-Token"] == "Atza|SUPERSECRET-access-1"
    assert seen.headers["User-Agent"] == default_user_agent()
    assert token_request.headers["User-Agent"] == default_user_agent()
    assert client.stats["searchOrders"].calls == 1
    assert client.stats["lwaToken"].calls == 1


def test_token_is_cached_and_shared(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", f"{ORDERS}/1", json_response({"order": {"orderId": "1"}}))
    cache = TokenCache()
    first, second = make_client(token_cache=cache), make_client(token_cache=cache)
    for client in (first, second, first):
        assert client.get_order("1") == {"orderId": "1"}
    assert amazon.tokens_issued == 1
    tokens = {seen.headers["X-Amz-Access-Token"] for seen in amazon.requests_to(f"{ORDERS}/1")}
    assert tokens == {"Atza|SUPERSECRET-access-1"}


def test_token_is_refreshed_early(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", f"{ORDERS}/1", json_response({"order": {"orderId": "1"}}))
    now = [1000.0]
    client = make_client(token_cache=TokenCache(clock=lambda: now[0]))
    client.get_order("1")
    now[0] += 3600 - 61  # more than a minute left: the cached token is used
    client.get_order("1")
    assert amazon.tokens_issued == 1
    now[0] += 2  # less than a minute left: refresh before it expires
    client.get_order("1")
    assert amazon.tokens_issued == 2
    assert amazon.requests_to(f"{ORDERS}/1")[-1].headers["X-Amz-Access-Token"].endswith("-2")


def test_concurrent_threads_refresh_once(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("POST", TOKEN_PATH, amazon.slow(0.3, amazon.issue_token))
    amazon.on("GET", f"{ORDERS}/1", json_response({"order": {"orderId": "1"}}))
    client = make_client()
    results: list[Any] = []
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        results.append(client.get_order("1"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{"orderId": "1"}] * 8
    assert amazon.tokens_issued == 1


def test_invalid_grant_is_not_retried(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on(
        "POST",
        TOKEN_PATH,
        json_response(
            {"error": "invalid_grant", "error_description": "The refresh token is invalid"}, 400
        ),
    )
    client = make_client()
    with pytest.raises(RefreshTokenRevokedError) as info:
        client.search_orders(created_after="2026-01-01T00:00:00Z")
    error = info.value
    assert (error.status, error.code, error.operation) == (400, "invalid_grant", "lwaToken")
    assert "authorize" in error.message
    assert len(amazon.requests_to(TOKEN_PATH)) == 1
    assert amazon.requests_to(ORDERS) == []
    assert sleeps == []


def test_invalid_client_is_not_retried(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on(
        "POST",
        TOKEN_PATH,
        json_response({"error": "invalid_client", "error_description": "Client unknown"}, 401),
    )
    with pytest.raises(LWAError) as info:
        make_client().get_order("1")
    assert type(info.value) is LWAError
    assert info.value.code == "invalid_client"
    assert len(amazon.requests_to(TOKEN_PATH)) == 1


def test_lwa_server_errors_are_retried_even_for_create_feed(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on(
        "POST",
        TOKEN_PATH,
        Response("<html><title>Bad Gateway</title></html>", 502, content_type="text/html"),
        json_response({"error": "rate"}, 429, **{"Retry-After": "3"}),
        amazon.issue_token,
    )
    amazon.on("POST", FEEDS, json_response({"feedId": "F1"}, 202))
    client = make_client()
    assert client.create_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", ["A1PA6795UKMFR9"], "D1") == "F1"
    assert len(amazon.requests_to(TOKEN_PATH)) == 3
    assert len(amazon.requests_to(FEEDS)) == 1
    assert sleeps == [1.0, 3.0]


def test_access_denied_with_cached_token_refreshes_once(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    path = f"{ORDERS}/1"
    ok = json_response({"order": {"orderId": "1"}})
    denied = amazon_error(403, "Unauthorized", "Access to requested resource is denied.")
    amazon.on("GET", path, ok, denied, ok)
    client = make_client()
    client.get_order("1")
    assert client.get_order("1") == {"orderId": "1"}
    tokens = [seen.headers["X-Amz-Access-Token"] for seen in amazon.requests_to(path)]
    assert tokens == [
        "Atza|SUPERSECRET-access-1",
        "Atza|SUPERSECRET-access-1",
        "Atza|SUPERSECRET-access-2",
    ]

    amazon.on("GET", path, denied)  # still denied with the new token: give up
    with pytest.raises(AccessDeniedError):
        client.get_order("1")
    assert len(amazon.requests_to(path)) == 5
    assert amazon.tokens_issued == 3


def test_access_denied_with_fresh_token_is_final(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", ORDERS, amazon_error(403, "Unauthorized", "Missing role"))
    with pytest.raises(AccessDeniedError):
        make_client().search_orders(created_after="2026-01-01T00:00:00Z")
    assert len(amazon.requests_to(ORDERS)) == 1
    assert amazon.tokens_issued == 1


def test_missing_credentials_fail_on_first_call(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    client = make_client(credentials=LWACredentials(CLIENT_ID, "", None))
    with pytest.raises(MissingCredentialsError) as info:
        client.search_orders(created_after="2026-01-01T00:00:00Z")
    assert "client_secret" in str(info.value)
    assert "refresh_token" in str(info.value)
    assert "client_id" not in str(info.value)
    assert amazon.seen == []
    # Presigned URLs need no credentials.
    amazon.on("GET", "/doc", Response(b"report"))
    assert client.download_document(amazon.url + "/doc") == b"report"


# -- error mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "cls", "code", "message"),
    [
        (
            amazon_error(400, "InvalidInput", "Invalid Input", "createdAfter is required"),
            InvalidInputError,
            "InvalidInput",
            "Invalid Input",
        ),
        (
            amazon_error(401, "Unauthorized", "Access token is missing"),
            AccessDeniedError,
            "Unauthorized",
            "Access token is missing",
        ),
        (
            amazon_error(403, "Unauthorized", "Access to requested resource is denied."),
            AccessDeniedError,
            "Unauthorized",
            "Access to requested resource is denied.",
        ),
        (amazon_error(404, "NotFound", "Order not found"), NotFoundError, "NotFound", None),
        (
            amazon_error(429, "QuotaExceeded", "You exceeded your quota"),
            QuotaExceededError,
            "QuotaExceeded",
            None,
        ),
        (amazon_error(500, "InternalFailure", "boom"), ServerError, "InternalFailure", "boom"),
        (Response(b"", 500, {"x-amzn-RequestId": "rid-500"}), ServerError, None, "empty"),
        (
            Response(
                b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
                b"<body>down</body></html>",
                503,
                {"x-amzn-RequestId": "rid-503"},
                content_type="text/html",
            ),
            ServerError,
            None,
            "HTML page titled '503 Service Unavailable'",
        ),
        (amazon_error(413, "RequestEntityTooLarge", "too big"), SPAPIError, None, "too big"),
        (json_response({"message": "Forbidden"}, 403), AccessDeniedError, None, "Forbidden"),
    ],
)
def test_error_mapping(
    amazon: FakeAmazon,
    make_client: Callable[..., SPAPIClient],
    response: Response,
    cls: type[SPAPIError],
    code: str | None,
    message: str | None,
) -> None:
    amazon.on("GET", ORDERS, response)
    client = make_client(retry=RetryPolicy(max_attempts=1))
    with pytest.raises(SPAPIError) as info:
        client.search_orders(created_after="2026-01-01T00:00:00Z")
    error = info.value
    assert type(error) is cls
    assert error.status == response.status_code
    assert error.operation == "searchOrders"
    assert error.request_id == f"rid-{response.status_code}"
    if code is not None:
        assert error.code == code
    if message is not None:
        assert message in error.message
    assert f"HTTP {response.status_code}" in str(error)
    assert f"rid-{response.status_code}" in str(error)


def test_error_details_are_kept(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", ORDERS, amazon_error(400, "InvalidInput", "Invalid Input", "bad date"))
    with pytest.raises(InvalidInputError) as info:
        make_client().search_orders(created_after="yesterday")
    assert info.value.details == "bad date"
    assert str(info.value) == (
        "searchOrders HTTP 400 InvalidInput: Invalid Input (bad date) [request id rid-400]"
    )


@pytest.mark.parametrize(
    ("operation", "method", "path", "body"),
    [
        ("searchOrders", "GET", ORDERS, b'{"orders": [{"orderId": "1"}, {"orderId"'),
        ("searchOrders", "GET", ORDERS, b"<html><body>Service Unavailable</body></html>"),
        ("searchOrders", "GET", ORDERS, b""),
        ("searchOrders", "GET", ORDERS, b'{"pagination": {}}'),
        ("searchOrders", "GET", ORDERS, b'{"orders": null}'),
        ("searchOrders", "GET", ORDERS, b"[]"),
        ("getOrder", "GET", f"{ORDERS}/1", b'{"orderId": "1"}'),
        ("createFeedDocument", "POST", DOCUMENTS, b'{"feedDocumentId": "D1"}'),
        ("getFeed", "GET", f"{FEEDS}/F1", b'{"feedId": "F1"}'),
        ("getFeedDocument", "GET", f"{DOCUMENTS}/D1", b'{"url": "http://x"}'),
    ],
)
def test_malformed_success_bodies(
    amazon: FakeAmazon,
    make_client: Callable[..., SPAPIClient],
    operation: str,
    method: str,
    path: str,
    body: bytes,
) -> None:
    amazon.on(method, path, Response(body, 200, content_type="application/json"))
    client = make_client(retry=RetryPolicy(max_attempts=2, jitter=False))
    calls = {
        "searchOrders": lambda: client.search_orders(created_after="2026-01-01T00:00:00Z"),
        "getOrder": lambda: client.get_order("1"),
        "createFeedDocument": lambda: client.create_feed_document("text/xml; charset=UTF-8"),
        "getFeed": lambda: client.get_feed("F1"),
        "getFeedDocument": lambda: client.get_feed_document("D1"),
    }
    with pytest.raises(MalformedResponseError) as info:
        calls[operation]()
    assert info.value.status == 200
    assert info.value.operation == operation
    assert len(amazon.requests_to(path)) == 2  # idempotent: retried once, then given up


def test_malformed_create_feed_is_not_retried(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("POST", FEEDS, Response(b'{"feed', 202, content_type="application/json"))
    with pytest.raises(MalformedResponseError):
        make_client().create_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", ["A1PA6795UKMFR9"], "D1")
    assert len(amazon.requests_to(FEEDS)) == 1


# -- retries ---------------------------------------------------------------------------


def test_retries_throttled_and_server_errors_with_backoff(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on(
        "GET",
        ORDERS,
        amazon_error(429, "QuotaExceeded", "You exceeded your quota"),
        Response("<html><title>Service Unavailable</title></html>", 503, content_type="text/html"),
        Response(b'{"orders": [', 200, content_type="application/json"),  # truncated JSON
        json_response(orders_page(1)),
    )
    client = make_client()
    assert len(client.search_orders(created_after="2026-01-01T00:00:00Z")["orders"]) == 1
    assert sleeps == [1.0, 2.0, 4.0]
    stats = client.stats["searchOrders"]
    assert (stats.calls, stats.retries, stats.throttled, stats.errors) == (4, 3, 1, 3)
    assert stats.backoff_seconds == 7.0


def test_gives_up_after_max_attempts(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on("GET", f"{ORDERS}/1", amazon_error(503, "ServiceUnavailable", "try later"))
    client = make_client(retry=RetryPolicy(max_attempts=4, backoff_base=0.5, jitter=False))
    with pytest.raises(ServerError) as info:
        client.get_order("1")
    assert info.value.code == "ServiceUnavailable"
    assert len(amazon.requests_to(f"{ORDERS}/1")) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_capped_and_jittered(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on("GET", f"{ORDERS}/1", amazon_error(500, "InternalFailure", "boom"))
    client = make_client(retry=RetryPolicy(max_attempts=6, backoff_base=1.0, backoff_cap=5.0))
    with pytest.raises(ServerError):
        client.get_order("1")
    bounds = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(sleeps) == 5
    assert all(0.0 <= slept <= bound for slept, bound in zip(sleeps, bounds, strict=True))


def test_retry_after_is_honoured_and_capped(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    throttled = amazon_error(429, "QuotaExceeded", "You exceeded your quota")
    throttled.headers["Retry-After"] = "7"
    long_wait = amazon_error(503, "ServiceUnavailable", "later")
    long_wait.headers["Retry-After"] = "3600"
    amazon.on("GET", f"{ORDERS}/1", throttled, long_wait, json_response({"order": {}}))
    client = make_client(retry=RetryPolicy(backoff_cap=60.0))
    assert client.get_order("1") == {}
    assert sleeps == [7.0, 60.0]


def test_read_timeout_is_retried(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    ok = json_response({"order": {"orderId": "1"}})
    amazon.on("GET", f"{ORDERS}/1", amazon.slow(1.0, ok), ok)
    client = make_client(timeout=(2.0, 0.2))
    assert client.get_order("1") == {"orderId": "1"}
    assert sleeps == [1.0]
    assert client.stats["getOrder"].errors == 1


def test_read_timeout_gives_transport_error(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", f"{ORDERS}/1", amazon.slow(1.0, json_response({"order": {}})))
    client = make_client(timeout=(2.0, 0.1), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(TransportError) as info:
        client.get_order("1")
    assert "read timeout of 0.1 s" in str(info.value)
    assert info.value.status is None
    assert isinstance(info.value.__cause__, requests.ReadTimeout)


def test_dropped_connection_is_retried(
    amazon: FakeAmazon,
    make_client: Callable[..., SPAPIClient],
    raw_server: Callable[[list[bytes | None]], RawServer],
    sleeps: list[float],
) -> None:
    page = json.dumps(orders_page(3)).encode()
    server = raw_server([raw_http(page[:20], content_length=len(page)), None, raw_http(page)])
    client = make_client(endpoint=server.url)
    assert len(client.search_orders(created_after="2026-01-01T00:00:00Z")["orders"]) == 3
    assert server.connections == 3
    assert sleeps == [1.0, 2.0]


def test_dropped_connection_gives_transport_error(
    amazon: FakeAmazon,
    make_client: Callable[..., SPAPIClient],
    raw_server: Callable[[list[bytes | None]], RawServer],
) -> None:
    server = raw_server([raw_http(b'{"orders": [', content_length=5000)])
    client = make_client(endpoint=server.url, retry=RetryPolicy(max_attempts=2, jitter=False))
    with pytest.raises(TransportError) as info:
        client.search_orders(created_after="2026-01-01T00:00:00Z")
    assert "broke off" in str(info.value)
    assert server.connections == 2


def test_create_feed_is_not_retried_after_server_error(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on("POST", FEEDS, amazon_error(500, "InternalFailure", "boom"))
    with pytest.raises(ServerError):
        make_client().create_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", ["A1PA6795UKMFR9"], "D1")
    assert len(amazon.requests_to(FEEDS)) == 1
    assert sleeps == []


def test_create_feed_is_not_retried_after_read_timeout(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("POST", FEEDS, amazon.slow(1.0, json_response({"feedId": "F1"}, 202)))
    client = make_client(timeout=(2.0, 0.2))
    with pytest.raises(TransportError):
        client.create_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", ["A1PA6795UKMFR9"], "D1")
    assert len(amazon.requests_to(FEEDS)) == 1


def test_create_feed_is_not_retried_after_dropped_response(
    amazon: FakeAmazon,
    make_client: Callable[..., SPAPIClient],
    raw_server: Callable[[list[bytes | None]], RawServer],
) -> None:
    server = raw_server([None])
    client = make_client(endpoint=server.url)
    with pytest.raises(TransportError) as info:
        client.create_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", ["A1PA6795UKMFR9"], "D1")
    assert server.connections == 1
    assert "closed the connection before it answered" in str(info.value)


def test_create_feed_is_retried_when_throttled(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on(
        "POST",
        FEEDS,
        amazon_error(429, "QuotaExceeded", "You exceeded your quota"),
        json_response({"feedId": "F9"}, 202),
    )
    client = make_client()
    assert client.create_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", "A1PA6795UKMFR9", "D1") == "F9"
    first, second = amazon.requests_to(FEEDS)
    assert (
        json.loads(first.body)
        == json.loads(second.body)
        == {
            "feedType": "POST_ORDER_ACKNOWLEDGEMENT_DATA",
            "marketplaceIds": ["A1PA6795UKMFR9"],
            "inputFeedDocumentId": "D1",
        }
    )
    assert first.headers["Content-Type"] == "application/json"


def test_create_feed_is_retried_when_connect_fails(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the connect is refused, nothing was sent
    client = make_client(
        endpoint=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=3, jitter=False)
    )
    with pytest.raises(TransportError) as info:
        client.create_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", ["A1PA6795UKMFR9"], "D1")
    assert "could not connect" in str(info.value)
    assert client.stats["createFeed"].calls == 3
    assert sleeps == [1.0, 2.0]


def test_invalid_input_is_not_retried(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on("GET", ORDERS, amazon_error(400, "InvalidInput", "Invalid Input"))
    with pytest.raises(InvalidInputError):
        make_client().search_orders(created_after="TEST_CASE_400")
    assert len(amazon.requests_to(ORDERS)) == 1
    assert sleeps == []


def test_bad_endpoint_is_a_configuration_error(make_client: Callable[..., SPAPIClient]) -> None:
    client = make_client(endpoint="no-scheme.example")
    with pytest.raises(ConfigurationError):
        client.get_feed("F1")


# -- rate limiting in the client -------------------------------------------------------


class RecordingLimiter:
    """A RateLimiter that records calls and pretends to wait 0.5 s each time."""

    def __init__(self) -> None:
        self.acquired: list[tuple[tuple[str, str], float, int]] = []
        self.rates: list[tuple[tuple[str, str], float]] = []
        self.drained: list[tuple[str, str]] = []

    def acquire(self, key: tuple[str, str], rate: float, burst: int) -> float:
        self.acquired.append((key, rate, burst))
        return 0.5

    def update_rate(self, key: tuple[str, str], rate: float) -> None:
        self.rates.append((key, rate))

    def drain(self, key: tuple[str, str]) -> None:
        self.drained.append(key)


def test_client_uses_limiter_per_seller_and_operation(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    limited = json_response({"order": {"orderId": "1"}})
    limited.headers["x-amzn-RateLimit-Limit"] = "0.0167"
    amazon.on("GET", f"{ORDERS}/1", limited)
    amazon.on(
        "GET", ORDERS, amazon_error(429, "QuotaExceeded", "quota"), json_response({"orders": []})
    )
    limiter = RecordingLimiter()
    client = make_client(rate_limiter=limiter, seller_key="S1", rate_scale=10.0)
    client.get_order("1")
    client.search_orders(created_after="2026-01-01T00:00:00Z")
    assert limiter.acquired == [
        (("S1", "getOrder"), 5.0, 30),
        (("S1", "searchOrders"), 0.056, 20),
        (("S1", "searchOrders"), 0.056, 20),
    ]
    assert limiter.rates == [(("S1", "getOrder"), 0.0167)]  # adopted as is, not scaled
    assert limiter.drained == [("S1", "searchOrders")]
    assert client.stats["getOrder"].waited_seconds == 0.5
    assert client.stats["searchOrders"].waited_seconds == 1.0


def test_limiter_adopts_header_rate(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    response = json_response({"feedId": "F1", "processingStatus": "IN_QUEUE"})
    response.headers["x-amzn-RateLimit-Limit"] = "0.25"
    amazon.on("GET", f"{FEEDS}/F1", response)
    limiter = InMemoryRateLimiter(sleep=lambda s: None)
    client = make_client(rate_limiter=limiter, seller_key="S2", rate_scale=100.0)
    client.get_feed("F1")
    assert limiter.rate(("S2", "getFeed")) == 0.25
    assert limiter.rate(("S2", "getOrder")) is None


@pytest.mark.parametrize("max_rate_wait", [None, 0.1])
def test_throttled_call_drains_the_bucket_and_the_retry_waits(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], max_rate_wait: float | None
) -> None:
    waits: list[float] = []
    now = [0.0]
    limiter = InMemoryRateLimiter(sleep=waits.append, clock=lambda: now[0], safety_factor=1.0)
    amazon.on("GET", f"{FEEDS}/F1", amazon_error(429, "QuotaExceeded", "quota"), json_response({}))
    client = make_client(rate_limiter=limiter, retry=RetryPolicy(max_attempts=2, jitter=False))
    client.max_rate_wait = max_rate_wait
    with pytest.raises(MalformedResponseError):  # second answer lacks the fields
        client.get_feed("F1")
    # The bucket of 15 emptied by the 429: the retry waits one token at 2/s, also
    # when the client gives way (only a first attempt does).
    assert waits == [0.5]
    if max_rate_wait is None:
        return
    sent = len(amazon.requests_to(f"{FEEDS}/F1"))
    with pytest.raises(RateLimitWait) as refused:  # the retry took the next token
        client.get_feed("F1")
    assert refused.value.seconds == pytest.approx(1.0)
    assert len(amazon.requests_to(f"{FEEDS}/F1")) == sent  # nothing was sent
    now[0] += 0.95  # the token is 0.05 s away now: close enough
    with pytest.raises(MalformedResponseError):
        client.get_feed("F1")
    assert waits[1] == pytest.approx(0.05)  # the first attempt waited (then a retry)


# -- pagination ------------------------------------------------------------------------


def test_iter_search_orders_follows_next_token(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on(
        "GET",
        ORDERS,
        json_response(orders_page(2, "tok-1")),
        json_response(orders_page(2, "tok-2")),
        json_response(orders_page(1)),
    )
    client = make_client()
    pages = list(
        client.iter_search_orders(
            created_after=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
            marketplace_ids=["A1PA6795UKMFR9", "A1F83G8C2ARO7P"],
            max_results_per_page=2,
        )
    )
    assert [len(page["orders"]) for page in pages] == [2, 2, 1]
    filters = {
        "createdAfter": "2026-01-01T00:00:00Z",
        "marketplaceIds": "A1PA6795UKMFR9,A1F83G8C2ARO7P",
        "maxResultsPerPage": "2",
    }
    assert [seen.args for seen in amazon.requests_to(ORDERS)] == [
        filters,
        {**filters, "paginationToken": "tok-1"},
        {**filters, "paginationToken": "tok-2"},
    ]


def test_iter_search_orders_stops_on_a_repeated_token(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", ORDERS, json_response(orders_page(1, "same")))
    pages = make_client().iter_search_orders(created_after="2026-01-01T00:00:00Z")
    with pytest.raises(MalformedResponseError, match="repeats"):
        list(pages)
    assert len(amazon.requests_to(ORDERS)) == 2


# -- feeds and documents ---------------------------------------------------------------


def test_feed_round_trip(amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]) -> None:
    upload_url = amazon.url + "/upload/D1?X-Amz-Signature=abc"
    amazon.on("POST", DOCUMENTS, json_response({"feedDocumentId": "D1", "url": upload_url}, 201))
    amazon.on("PUT", "/upload/D1", Response(b"", 200))
    amazon.on("POST", FEEDS, json_response({"feedId": "F1"}, 202))
    amazon.on(
        "GET",
        f"{FEEDS}/F1",
        json_response({"feedId": "F1", "processingStatus": "DONE", "resultFeedDocumentId": "R1"}),
    )
    report = b"<ProcessingReport>ok</ProcessingReport>"
    amazon.on(
        "GET",
        f"{DOCUMENTS}/R1",
        json_response(
            {"feedDocumentId": "R1", "url": amazon.url + "/report", "compressionAlgorithm": "GZIP"}
        ),
    )
    amazon.on("GET", "/report", Response(gzip.compress(report), 200))
    client = make_client()

    document = client.create_feed_document("text/xml; charset=UTF-8")
    assert document == {"feedDocumentId": "D1", "url": upload_url}
    client.upload_feed_document(document["url"], b"<AmazonEnvelope/>", "text/xml; charset=UTF-8")
    feed_id = client.create_feed(
        "POST_ORDER_ACKNOWLEDGEMENT_DATA", ["A1PA6795UKMFR9"], "D1", {"key": "value"}
    )
    feed = client.get_feed(feed_id)
    result = client.get_feed_document(feed["resultFeedDocumentId"])
    assert client.download_document(result["url"], result["compressionAlgorithm"]) == report

    (created,) = amazon.requests_to(DOCUMENTS)
    assert json.loads(created.body) == {"contentType": "text/xml; charset=UTF-8"}
    (upload,) = amazon.requests_to("/upload/D1")
    assert upload.headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert upload.body == b"<AmazonEnvelope/>"
    assert upload.args == {"X-Amz-Signature": "abc"}
    assert "X-Amz-Access-Token" not in upload.headers
    assert upload.headers["User-Agent"] == default_user_agent()
    (feed_request,) = amazon.requests_to(FEEDS)
    assert json.loads(feed_request.body)["feedOptions"] == {"key": "value"}
    (download,) = amazon.requests_to("/report")
    assert "X-Amz-Access-Token" not in download.headers


def test_upload_errors_are_mapped_and_retried(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], sleeps: list[float]
) -> None:
    amazon.on(
        "PUT",
        "/upload",
        Response(b"", 503),
        Response(
            b"<?xml version='1.0'?><Error><Code>AccessDenied</Code>"
            b"<Message>Request has expired</Message></Error>",
            403,
            {"x-amz-request-id": "s3-rid"},
            content_type="application/xml",
        ),
    )
    with pytest.raises(AccessDeniedError) as info:
        make_client().upload_feed_document(amazon.url + "/upload", b"x", "text/plain")
    assert (info.value.code, info.value.message) == ("AccessDenied", "Request has expired")
    assert info.value.request_id == "s3-rid"
    assert info.value.operation == "uploadFeedDocument"
    assert len(amazon.requests_to("/upload")) == 2  # the 503 was retried, the 403 was not
    assert amazon.tokens_issued == 0


def test_download_without_compression_and_decoded_by_transport(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", "/plain", Response(b"raw bytes"))
    amazon.on(
        "GET",
        "/encoded",
        Response(gzip.compress(b"decoded by requests"), headers={"Content-Encoding": "gzip"}),
    )
    client = make_client()
    assert client.download_document(amazon.url + "/plain") == b"raw bytes"
    assert client.download_document(amazon.url + "/encoded", "GZIP") == b"decoded by requests"
    with pytest.raises(ValueError, match="unsupported"):
        client.download_document(amazon.url + "/plain", "ZIP")


def test_corrupt_gzip_download(amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]) -> None:
    amazon.on("GET", "/report", Response(gzip.compress(b"x" * 1000)[:15]))
    client = make_client(retry=RetryPolicy(max_attempts=2, jitter=False))
    with pytest.raises(MalformedResponseError, match="GZIP"):
        client.download_document(amazon.url + "/report", "GZIP")
    assert len(amazon.requests_to("/report")) == 2


def test_confirm_shipment_cancel_feed_and_get_feeds(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    path = "/orders/v0/orders/028-1234567-8901234/shipmentConfirmation"
    amazon.on("POST", path, Response(b"", 204))
    amazon.on("DELETE", f"{FEEDS}/F1", Response(b"", 200))
    amazon.on("GET", FEEDS, json_response({"feeds": [], "nextToken": None}))
    client = make_client()
    body = {"marketplaceId": "A1PA6795UKMFR9", "packageDetail": {"packageReferenceId": "1"}}
    client.confirm_shipment("028-1234567-8901234", body)
    client.cancel_feed("F1")
    assert client.get_feeds(feed_types=["POST_ORDER_ACKNOWLEDGEMENT_DATA"], page_size=10) == {
        "feeds": [],
        "nextToken": None,
    }
    (confirm,) = amazon.requests_to(path)
    assert json.loads(confirm.body) == body
    assert confirm.headers["Content-Type"] == "application/json"
    assert amazon.requests_to(FEEDS)[-1].args == {
        "feedTypes": "POST_ORDER_ACKNOWLEDGEMENT_DATA",
        "pageSize": "10",
    }


def test_confirm_shipment_is_not_retried_after_server_error(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    path = "/orders/v0/orders/1/shipmentConfirmation"
    amazon.on("POST", path, Response(b"", 502))
    with pytest.raises(ServerError):
        make_client().confirm_shipment("1", {})
    assert len(amazon.requests_to(path)) == 1


def test_path_ids_are_escaped(amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=1))
    with pytest.raises(NotFoundError):
        client.get_order("../feeds")
    assert amazon.seen[-1].path == f"{ORDERS}/../feeds"  # one path segment, not a traversal
    with pytest.raises(ValueError):
        client.get_order("")


# -- timeouts, sessions, secrets, logging ----------------------------------------------


def test_timeout_on_every_request(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    amazon.on("GET", ORDERS, json_response(orders_page(1)))
    amazon.on("PUT", "/upload", Response(b""))
    amazon.on("GET", "/doc", Response(b"doc"))
    timeouts: list[Any] = []
    original = requests.Session.request

    def recording(self: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
        timeouts.append(kwargs.get("timeout"))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    client = make_client(timeout=(1.5, 2.5))
    client.search_orders(created_after="2026-01-01T00:00:00Z")
    client.upload_feed_document(amazon.url + "/upload", b"x", "text/plain")
    client.download_document(amazon.url + "/doc")
    assert timeouts == [(1.5, 2.5)] * 4  # token, searchOrders, upload, download


def test_one_session_per_thread_with_keep_alive(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient]
) -> None:
    amazon.on("GET", f"{ORDERS}/1", json_response({"order": {}}))
    client = make_client()
    sessions: list[requests.Session] = []

    def work() -> None:
        client.get_order("1")
        sessions.append(client._session())
        client.get_order("1")
        sessions.append(client._session())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(session) for session in sessions}) == 2
    client.close()
    assert client.get_order("1") == {}  # a closed client opens a new session


def test_secrets_never_leak(
    amazon: FakeAmazon,
    make_client: Callable[..., SPAPIClient],
    caplog: pytest.LogCaptureFixture,
    raw_server: Callable[[list[bytes | None]], RawServer],
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = LWACredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    cache = TokenCache()
    path = f"{ORDERS}/1"
    amazon.on(
        "GET",
        path,
        json_response({"order": {}}),
        amazon_error(403, "Unauthorized", "denied"),
        amazon_error(503, "ServiceUnavailable", "later"),
        json_response({"order": {}}),
    )
    client = make_client(credentials=credentials, token_cache=cache)
    client.get_order("1")
    client.get_order("1")  # 403 -> token refresh -> 503 -> retry

    errors: list[BaseException] = []
    amazon.on(
        "POST",
        TOKEN_PATH,
        json_response({"error": "invalid_grant", "error_description": "revoked"}, 400),
    )
    other = make_client(credentials=LWACredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN + "x"))
    with pytest.raises(RefreshTokenRevokedError) as info:
        other.get_order("1")
    errors.append(info.value)
    broken = raw_server([None])
    failing = make_client(
        credentials=credentials,
        token_cache=cache,
        endpoint=broken.url,
        retry=RetryPolicy(max_attempts=2, jitter=False),
    )
    with pytest.raises(TransportError) as transport:
        failing.get_order("1")
    errors.append(transport.value)

    texts = [
        caplog.text,
        repr(credentials),
        str(credentials),
        repr(client),
        repr(cache),
        *(str(error) for error in errors),
        *(repr(error) for error in errors),
    ]
    assert "GET -> HTTP 503" in caplog.text
    for text in texts:
        assert "SUPERSECRET" not in text
    assert CLIENT_ID in repr(credentials)


def test_logging(
    amazon: FakeAmazon, make_client: Callable[..., SPAPIClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_amazon_orders.client")
    amazon.on(
        "GET",
        f"{ORDERS}/1",
        amazon_error(503, "ServiceUnavailable", "later"),
        json_response({"order": {"buyer": {"buyerName": "Erika Mustermann"}}}),
    )
    make_client().get_order("1")
    records = [r for r in caplog.records if r.name == "flask_amazon_orders.client"]
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any(m.startswith("lwaToken POST -> HTTP 200") for m in debug)
    assert any(m.startswith("getOrder GET -> HTTP 503") and "rid-503" in m for m in debug)
    assert any(m.startswith("getOrder GET -> HTTP 200") for m in debug)
    assert len(warnings) == 1
    assert "attempt 1 of 6 failed" in warnings[0]
    assert "ServiceUnavailable" in warnings[0]
    assert "Mustermann" not in caplog.text


def test_defaults_are_process_wide() -> None:
    credentials = LWACredentials(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    with (
        SPAPIClient(credentials=credentials, endpoint="na") as first,
        SPAPIClient(credentials=credentials, seller_key="other") as second,
    ):
        assert first.rate_limiter is second.rate_limiter
        assert first.token_cache is second.token_cache
        assert isinstance(first.rate_limiter, InMemoryRateLimiter)
        assert first.retry == RetryPolicy()
        assert first.timeout == (5.0, 30.0)
        assert first.endpoint == ENDPOINTS["na"]
        assert second.endpoint == ENDPOINTS["eu"]
        assert first.lwa_url == LWA_TOKEN_URL
        assert first.user_agent == default_user_agent()
    with pytest.raises(ValueError):
        SPAPIClient(credentials=credentials, timeout=(0, 1))
    with pytest.raises(ValueError):
        SPAPIClient(credentials=credentials, rate_scale=0)
