"""The SP-API client: Orders v2026-01-01, Feeds 2021-06-30 and confirmShipment.

:class:`SPAPIClient` is a thin layer over :mod:`requests`. Every call goes through
the same steps:

1. wait for a token of the (seller, operation) bucket of the rate limiter;
2. take an LWA access token from the token cache (fetching one if needed);
3. send the request on this thread's keep-alive session, with the timeout,
   the User-Agent and ``x-amz-access-token``;
4. adopt an ``x-amzn-RateLimit-Limit`` header, map a non-2xx status to an
   exception (:mod:`.responses`), parse a 2xx body once and check its fields;
5. on a failure that may pass, back off and repeat from step 1 (:mod:`.retry`).

No Flask here: the client works in a worker, a CLI or a test alike. Its base URLs
are arguments, so tests and the demo point it at the bundled sandbox.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import math
import platform
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from http.client import RemoteDisconnected
from importlib import metadata
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from ..errors import (
    AccessDeniedError,
    ConfigurationError,
    LWAError,
    MalformedResponseError,
    QuotaExceededError,
    SPAPIError,
    TransportError,
)
from .limits import ENDPOINTS, PUBLISHED_LIMITS
from .lwa import (
    LWA_OPERATION,
    LWA_TOKEN_URL,
    AccessToken,
    LWACredentials,
    TokenCache,
    default_token_cache,
    parse_token_response,
    token_key,
)
from .ratelimit import RateLimiter, default_rate_limiter
from .responses import error_for_response, parse_body, request_id_of
from .retry import RetryPolicy, parse_retry_after

logger = logging.getLogger("flask_amazon_orders.client")

T = TypeVar("T")

_ORDERS: Final = "/orders/2026-01-01/orders"
_FEEDS: Final = "/feeds/2021-06-30/feeds"
_DOCUMENTS: Final = "/feeds/2021-06-30/documents"

DateTimeLike = dt.datetime | str
Values = Sequence[str] | str

#: The slowest rate adopted from ``x-amzn-RateLimit-Limit`` (one call in about three
#: hours; Amazon's slowest published rate is 0.0056/s). A slower announcement is
#: ignored: the limiter would otherwise wait for ages, or past what sleep() takes.
MIN_ADOPTED_RATE: Final = 0.0001


@cache
def default_user_agent() -> str:
    """``Flask-Amazon-Orders/<version> (Language=Python/<x.y>; Platform=<os>)``."""
    try:
        version = metadata.version("Flask-Amazon-Orders")
    except metadata.PackageNotFoundError:
        version = "0"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"Flask-Amazon-Orders/{version} (Language=Python/{python}; Platform={platform.system()})"


def format_datetime(value: DateTimeLike) -> str:
    """An SP-API timestamp: an aware datetime as ISO 8601 in UTC with ``Z``.

    Strings are passed through unchanged. A naive datetime is refused, because
    the client cannot know which time zone it means.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime or a string, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: pass an aware datetime (UTC)")
    value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    millis = value.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def _query_value(value: Any) -> str:
    if isinstance(value, (dt.datetime, str)):
        return format_datetime(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def _query(**values: Any) -> dict[str, str]:
    return {name: _query_value(value) for name, value in values.items() if value is not None}


def _id(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="")


@dataclass
class OperationStats:
    """Counters of one operation of one client.

    :ivar calls: HTTP attempts sent (or tried).
    :ivar retries: attempts repeated after a failure.
    :ivar throttled: HTTP 429 answers received.
    :ivar errors: attempts that failed (error status, bad body, transport error).
    :ivar waited_seconds: time spent waiting on the rate limiter.
    :ivar backoff_seconds: time spent sleeping between retries.
    """

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    errors: int = 0
    waited_seconds: float = 0.0
    backoff_seconds: float = 0.0


@dataclass(frozen=True)
class _Operation:
    name: str
    method: str
    #: Sending it twice has the effect of sending it once.
    idempotent: bool
    #: An SP-API call (rate limited, with an access token), not a presigned URL.
    api: bool = True


_OPERATIONS: Final = {
    op.name: op
    for op in (
        _Operation("searchOrders", "GET", True),
        _Operation("getOrder", "GET", True),
        _Operation("createFeedDocument", "POST", True),  # an unused document is harmless
        _Operation("createFeed", "POST", False),
        _Operation("getFeed", "GET", True),
        _Operation("getFeeds", "GET", True),
        _Operation("cancelFeed", "DELETE", False),
        _Operation("getFeedDocument", "GET", True),
        _Operation("confirmShipment", "POST", False),
        _Operation("uploadFeedDocument", "PUT", True, api=False),
        _Operation("downloadDocument", "GET", True, api=False),
    )
}


class _Failed(Exception):
    """One attempt failed; carries what the retry loop needs. Never escapes the client."""

    def __init__(
        self,
        error: SPAPIError,
        *,
        sent: bool = True,
        retry_after: float | None = None,
        stale_token: str | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        #: The request may have reached the server.
        self.sent = sent
        self.retry_after = retry_after
        #: The cached access token that got a 401/403 (worth one refresh).
        self.stale_token = stale_token


def _request_was_sent(exc: requests.RequestException) -> bool:
    """Whether a failed request may have reached the server (no: the connect failed)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = exc.args[0]
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NewConnectionError):  # refused, unreachable, DNS failure
            return False
    return True


def _closed_without_answer(exc: requests.RequestException) -> bool:
    """Whether the server closed (or reset) the connection before its status line."""
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    reason = exc.args[0]
    if isinstance(reason, ProtocolError) and len(reason.args) > 1:
        reason = reason.args[1]
    return isinstance(reason, RemoteDisconnected | ConnectionResetError)


_INVALID_REQUEST = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
)


class SPAPIClient:
    """A client of the Selling Partner API for one seller account.

    :param credentials: the LWA client id and secret and the seller's refresh
        token. Missing values raise
        :class:`~flask_amazon_orders.errors.MissingCredentialsError` on the first
        SP-API call, not here.
    :param endpoint: the SP-API base URL, or a region code of :data:`ENDPOINTS`.
    :param lwa_url: the full LWA token URL.
    :param seller_key: identifies the seller account in rate-limit bucket keys.
    :param rate_limiter: defaults to the process-wide
        :class:`~.ratelimit.InMemoryRateLimiter`, which has its own clock and sleep.
    :param token_cache: defaults to the process-wide :class:`~.lwa.TokenCache`.
    :param retry: defaults to ``RetryPolicy()``.
    :param timeout: ``(connect, read)`` seconds, or one number for both; used on
        every request, token requests and presigned URLs included.
    :param user_agent: defaults to :func:`default_user_agent`.
    :param rate_scale: multiplies the published rates (for a time-scaled sandbox).
        Rates announced by Amazon in ``x-amzn-RateLimit-Limit`` are used as they are.
    :param sleep: waits between retries; injectable for tests.
    :param clock: a monotonic clock for timing attempts; injectable for tests.

    :ivar max_rate_wait: ``None`` (the default): a call waits for its rate-limit
        token as long as it takes. A number of seconds (Amazon's time, so divided by
        ``rate_scale``): a call whose token is further away is not made and raises
        :class:`~flask_amazon_orders.errors.RateLimitWait`, so that the caller can do
        other work meanwhile (the sync gives way to other stores). Only a call's
        first attempt: its retries wait as the retry policy says.

    The client is thread-safe: each thread gets its own :class:`requests.Session`.
    Call :meth:`close` (or use ``with``) to close the sessions' connections.
    """

    def __init__(
        self,
        *,
        credentials: LWACredentials,
        endpoint: str = ENDPOINTS["eu"],
        lwa_url: str = LWA_TOKEN_URL,
        seller_key: str = "default",
        rate_limiter: RateLimiter | None = None,
        token_cache: TokenCache | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        user_agent: str | None = None,
        rate_scale: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(timeout, (int, float)):
            timeout = (float(timeout), float(timeout))
        if len(timeout) != 2 or not all(t > 0 for t in timeout):
            raise ValueError("timeout must be a positive number or a (connect, read) pair")
        if not (rate_scale > 0 and math.isfinite(rate_scale)):
            raise ValueError("rate_scale must be a positive number")
        self.credentials = credentials
        self.endpoint = ENDPOINTS.get(endpoint, endpoint).rstrip("/")
        self.lwa_url = lwa_url
        self.seller_key = seller_key
        self.rate_limiter = rate_limiter if rate_limiter is not None else default_rate_limiter()
        self.token_cache = token_cache if token_cache is not None else default_token_cache()
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout: tuple[float, float] = (float(timeout[0]), float(timeout[1]))
        self.user_agent = user_agent or default_user_agent()
        self.rate_scale = rate_scale
        self.max_rate_wait: float | None = None
        self._sleep = sleep
        self._clock = clock
        self._token_key = token_key(lwa_url, credentials)
        self._limits = {
            name: (rate * rate_scale, burst) for name, (rate, burst) in PUBLISHED_LIMITS.items()
        }
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._stats: dict[str, OperationStats] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self.endpoint!r}, seller_key={self.seller_key!r}, "
            f"client_id={self.credentials.client_id!r})"
        )

    # -- lifecycle and bookkeeping ---------------------------------------------------

    def __enter__(self) -> SPAPIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's session; a later call opens new ones."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
            self._local = threading.local()
        for session in sessions:
            session.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            with self._lock:
                self._sessions.append(session)
                self._local.session = session
        return session

    @property
    def stats(self) -> dict[str, OperationStats]:
        """A snapshot of the counters per operation (``lwaToken`` for token requests)."""
        with self._lock:
            return {name: replace(stats) for name, stats in self._stats.items()}

    def _count(self, operation: str, **deltas: float) -> None:
        with self._lock:
            stats = self._stats.get(operation)
            if stats is None:
                stats = self._stats[operation] = OperationStats()
            for name, delta in deltas.items():
                setattr(stats, name, getattr(stats, name) + delta)

    # -- the HTTP layer --------------------------------------------------------------

    def _transport_error(
        self, operation: str, url: str, exc: requests.RequestException
    ) -> TransportError:
        parts = urlsplit(url)
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        if isinstance(exc, requests.ConnectTimeout):
            message = f"connecting to {host} timed out after {self.timeout[0]:g} s"
        elif isinstance(exc, requests.ReadTimeout):
            message = f"{host} did not answer within the read timeout of {self.timeout[1]:g} s"
        elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
            message = f"the connection to {host} broke off while the response was being read"
        elif isinstance(exc, requests.exceptions.ContentDecodingError):
            message = f"the response from {host} could not be decoded"
        elif _closed_without_answer(exc):
            message = f"{host} closed the connection before it answered"
        elif not _request_was_sent(exc):
            message = f"could not connect to {host}"
        else:
            message = f"the connection to {host} failed ({type(exc).__name__})"
        error = TransportError(message, operation=operation)
        error.__cause__ = exc
        return error

    def _send(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one request and read the whole body; transport failures raise ``_Failed``."""
        started = self._clock()
        try:
            response = self._session().request(
                method, url, params=params, data=data, headers=headers, timeout=self.timeout
            )
            body = response.content
        except _INVALID_REQUEST as exc:
            raise ConfigurationError(
                f"{operation}: the request URL or a header is invalid ({type(exc).__name__})"
            ) from None
        except requests.RequestException as exc:
            elapsed = self._clock() - started
            self._count(operation, calls=1, errors=1)
            error = self._transport_error(operation, url, exc)
            logger.debug("%s %s failed after %.3f s: %s", operation, method, elapsed, error)
            raise _Failed(error, sent=_request_was_sent(exc)) from exc
        elapsed = self._clock() - started
        status = response.status_code
        request_id = request_id_of(response.headers)
        failed = not 200 <= status < 300
        self._count(operation, calls=1, errors=int(failed), throttled=int(status == 429))
        logger.debug(
            "%s %s -> HTTP %d in %.3f s (request id %s)",
            operation,
            method,
            status,
            elapsed,
            request_id,
        )
        return status, response.headers, body

    def _failure(
        self, operation: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> _Failed:
        return _Failed(
            error_for_response(operation, status, headers, body),
            retry_after=parse_retry_after(headers),
        )

    def _with_retries(self, op: _Operation, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds, retrying what :attr:`retry` allows."""
        policy = self.retry
        number = 1
        refreshed = False
        while True:
            try:
                return attempt()
            except _Failed as failure:
                error = failure.error
                if failure.stale_token is not None and not refreshed:
                    # A cached token may have been revoked early: refresh it once.
                    refreshed = True
                    self.token_cache.invalidate(self._token_key, failure.stale_token)
                    self._count(op.name, retries=1)
                    logger.warning(
                        "%s: access denied with a cached access token; "
                        "fetching a new token and retrying once (request id %s)",
                        op.name,
                        error.request_id,
                    )
                    continue
                if number >= policy.max_attempts or not policy.should_retry(
                    error, idempotent=op.idempotent, sent=failure.sent
                ):
                    raise error from error.__cause__
                delay = policy.delay(number, failure.retry_after)
                logger.warning(
                    "%s: attempt %d of %d failed (%s); retrying in %.2f s",
                    op.name,
                    number,
                    policy.max_attempts,
                    error,
                    delay,
                )
                self._count(op.name, retries=1, backoff_seconds=delay)
                if delay > 0:
                    self._sleep(delay)
                number += 1

    # -- LWA -------------------------------------------------------------------------

    def _fetch_token(self) -> AccessToken:
        form = self.credentials.token_form()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
            "Accept": "application/json",
        }
        try:
            status, response_headers, body = self._send(
                LWA_OPERATION, "POST", self.lwa_url, headers=headers, data=form
            )
        except _Failed as failure:
            # Nothing reached the SP-API, so even a non-idempotent call may be retried.
            raise _Failed(failure.error, sent=False) from failure.error.__cause__
        try:
            return parse_token_response(
                status, response_headers, body, request_id=request_id_of(response_headers)
            )
        except LWAError as error:
            if 200 <= status < 300:
                self._count(LWA_OPERATION, errors=1)
            raise _Failed(
                error, sent=False, retry_after=parse_retry_after(response_headers)
            ) from None

    def _access_token(self) -> tuple[str, bool]:
        """``(token, fresh)``: a cached token, or a new one fetched by this call."""
        self.credentials.check()
        return self.token_cache.get(self._token_key, self._fetch_token)

    # -- SP-API calls ----------------------------------------------------------------

    def _adopt_rate_limit(self, operation: str, headers: Mapping[str, str]) -> None:
        value = headers.get("x-amzn-RateLimit-Limit")
        if not value:
            return
        try:
            rate = float(value)
        except ValueError:
            return
        if rate >= MIN_ADOPTED_RATE and math.isfinite(rate):
            self.rate_limiter.update_rate((self.seller_key, operation), rate)

    def _call(
        self,
        operation: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        parse: bool = True,
    ) -> Any:
        """Call an SP-API operation with rate limiting, auth and retries.

        Returns the parsed and checked JSON body, or ``None`` when ``parse`` is false.
        """
        op = _OPERATIONS[operation]
        url = self.endpoint + path
        key = (self.seller_key, operation)
        rate, burst = self._limits[operation]
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()

        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            if self.max_rate_wait is None or attempts > 1:
                # (A retry, after a 429 say, waits as the retry policy says.)
                waited = self.rate_limiter.acquire(key, rate, burst)
            else:
                cap = self.max_rate_wait / self.rate_scale
                waited = self.rate_limiter.acquire(key, rate, burst, max_wait=cap)
            if waited:
                self._count(operation, waited_seconds=waited)
            token, fresh = self._access_token()
            headers = {"x-amz-access-token": token, "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            status, response_headers, content = self._send(
                operation, op.method, url, headers=headers, params=params, data=data
            )
            self._adopt_rate_limit(operation, response_headers)
            if not 200 <= status < 300:
                failure = self._failure(operation, status, response_headers, content)
                if isinstance(failure.error, QuotaExceededError):
                    self.rate_limiter.drain(key)
                elif isinstance(failure.error, AccessDeniedError) and not fresh:
                    failure.stale_token = token
                raise failure
            if not parse:
                return None
            try:
                return parse_body(operation, status, response_headers, content)
            except MalformedResponseError as error:
                self._count(operation, errors=1)
                raise _Failed(error) from None

        return self._with_retries(op, attempt)

    def search_orders(
        self,
        *,
        created_after: DateTimeLike | None = None,
        created_before: DateTimeLike | None = None,
        last_updated_after: DateTimeLike | None = None,
        last_updated_before: DateTimeLike | None = None,
        fulfillment_statuses: Values | None = None,
        marketplace_ids: Values | None = None,
        fulfilled_by: Values | None = None,
        max_results_per_page: int | None = None,
        pagination_token: str | None = None,
        included_data: Values | None = None,
    ) -> dict[str, Any]:
        """``searchOrders``: one page of orders; the parsed ``SearchOrdersResponse``.

        Datetimes must be aware; lists are sent comma-separated. Amazon wants
        exactly one of ``created_after`` and ``last_updated_after``.
        """
        params = _query(
            createdAfter=created_after,
            createdBefore=created_before,
            lastUpdatedAfter=last_updated_after,
            lastUpdatedBefore=last_updated_before,
            fulfillmentStatuses=fulfillment_statuses,
            marketplaceIds=marketplace_ids,
            fulfilledBy=fulfilled_by,
            maxResultsPerPage=max_results_per_page,
            paginationToken=pagination_token,
            includedData=included_data,
        )
        result: dict[str, Any] = self._call("searchOrders", _ORDERS, params=params)
        return result

    def iter_search_orders(
        self,
        *,
        created_after: DateTimeLike | None = None,
        created_before: DateTimeLike | None = None,
        last_updated_after: DateTimeLike | None = None,
        last_updated_before: DateTimeLike | None = None,
        fulfillment_statuses: Values | None = None,
        marketplace_ids: Values | None = None,
        fulfilled_by: Values | None = None,
        max_results_per_page: int | None = None,
        pagination_token: str | None = None,
        included_data: Values | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every page of a search, following ``pagination.nextToken``.

        Each follow-up request repeats the same filters with the token.
        """
        token = pagination_token
        while True:
            page = self.search_orders(
                created_after=created_after,
                created_before=created_before,
                last_updated_after=last_updated_after,
                last_updated_before=last_updated_before,
                fulfillment_statuses=fulfillment_statuses,
                marketplace_ids=marketplace_ids,
                fulfilled_by=fulfilled_by,
                max_results_per_page=max_results_per_page,
                pagination_token=token,
                included_data=included_data,
            )
            yield page
            pagination = page.get("pagination")
            next_token = pagination.get("nextToken") if isinstance(pagination, dict) else None
            if not next_token:
                return
            if next_token == token:
                raise MalformedResponseError(
                    "the next page token repeats the current one", operation="searchOrders"
                )
            token = next_token

    def get_order(self, order_id: str, *, included_data: Values | None = None) -> dict[str, Any]:
        """``getOrder``: the ``order`` object of one order."""
        path = f"{_ORDERS}/{_id(order_id, 'order_id')}"
        body = self._call("getOrder", path, params=_query(includedData=included_data))
        order: dict[str, Any] = body["order"]
        return order

    def confirm_shipment(self, order_id: str, body: Mapping[str, Any]) -> None:
        """Orders v0 ``confirmShipment`` (``ConfirmShipmentRequest`` body; 204 expected)."""
        path = f"/orders/v0/orders/{_id(order_id, 'order_id')}/shipmentConfirmation"
        self._call("confirmShipment", path, body=body, parse=False)

    def create_feed_document(self, content_type: str) -> dict[str, Any]:
        """``createFeedDocument``: ``{"feedDocumentId": ..., "url": ...}``."""
        result: dict[str, Any] = self._call(
            "createFeedDocument", _DOCUMENTS, body={"contentType": content_type}
        )
        return result

    def upload_feed_document(self, url: str, data: bytes, content_type: str) -> None:
        """PUT ``data`` to the presigned ``url`` with exactly ``content_type``.

        A plain HTTP PUT: no SP-API headers, no rate limiting.
        """
        operation = "uploadFeedDocument"

        def attempt() -> None:
            status, headers, body = self._send(
                operation, "PUT", url, headers={"Content-Type": content_type}, data=data
            )
            if not 200 <= status < 300:
                raise self._failure(operation, status, headers, body)

        self._with_retries(_OPERATIONS[operation], attempt)

    def create_feed(
        self,
        feed_type: str,
        marketplace_ids: Values,
        input_feed_document_id: str,
        feed_options: Mapping[str, str] | None = None,
    ) -> str:
        """``createFeed``: submit an uploaded document; returns the ``feedId``.

        Not idempotent: retried only after a 429 or a failed connect.
        """
        ids = [marketplace_ids] if isinstance(marketplace_ids, str) else list(marketplace_ids)
        spec: dict[str, Any] = {
            "feedType": feed_type,
            "marketplaceIds": ids,
            "inputFeedDocumentId": input_feed_document_id,
        }
        if feed_options:
            spec["feedOptions"] = dict(feed_options)
        body = self._call("createFeed", _FEEDS, body=spec)
        feed_id: str = body["feedId"]
        return feed_id

    def get_feed(self, feed_id: str) -> dict[str, Any]:
        """``getFeed``: the ``Feed`` object (``processingStatus``, ``resultFeedDocumentId`` …)."""
        result: dict[str, Any] = self._call("getFeed", f"{_FEEDS}/{_id(feed_id, 'feed_id')}")
        return result

    def get_feeds(
        self,
        *,
        feed_types: Values | None = None,
        marketplace_ids: Values | None = None,
        page_size: int | None = None,
        processing_statuses: Values | None = None,
        created_since: DateTimeLike | None = None,
        created_until: DateTimeLike | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """``getFeeds``: one page of feeds (``{"feeds": [...], "nextToken": ...}``)."""
        params = _query(
            feedTypes=feed_types,
            marketplaceIds=marketplace_ids,
            pageSize=page_size,
            processingStatuses=processing_statuses,
            createdSince=created_since,
            createdUntil=created_until,
            nextToken=next_token,
        )
        result: dict[str, Any] = self._call("getFeeds", _FEEDS, params=params)
        return result

    def cancel_feed(self, feed_id: str) -> None:
        """``cancelFeed``: cancel a feed that is still ``IN_QUEUE``."""
        self._call("cancelFeed", f"{_FEEDS}/{_id(feed_id, 'feed_id')}", parse=False)

    def get_feed_document(self, feed_document_id: str) -> dict[str, Any]:
        """``getFeedDocument``: ``{"feedDocumentId", "url", "compressionAlgorithm"?}``."""
        path = f"{_DOCUMENTS}/{_id(feed_document_id, 'feed_document_id')}"
        result: dict[str, Any] = self._call("getFeedDocument", path)
        return result

    def download_document(self, url: str, compression_algorithm: str | None = None) -> bytes:
        """GET a presigned document URL; gunzip it when ``compression_algorithm`` is GZIP.

        A body that the HTTP layer already decoded (``Content-Encoding: gzip``) is
        returned as it is.
        """
        if compression_algorithm not in (None, "GZIP"):
            raise ValueError(f"unsupported compressionAlgorithm {compression_algorithm!r}")
        operation = "downloadDocument"

        def attempt() -> bytes:
            status, headers, body = self._send(operation, "GET", url, headers={})
            if not 200 <= status < 300:
                raise self._failure(operation, status, headers, body)
            if compression_algorithm != "GZIP" or body[:2] != b"\x1f\x8b":
                return body
            try:
                return gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                self._count(operation, errors=1)
                raise _Failed(
                    MalformedResponseError(
                        "the GZIP document is corrupt or truncated",
                        status=status,
                        request_id=request_id_of(headers),
                        operation=operation,
                    )
                ) from None

        return self._with_retries(_OPERATIONS[operation], attempt)
