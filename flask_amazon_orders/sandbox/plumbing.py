"""The HTTP plumbing every sandbox endpoint shares.

:func:`sp_api_operation` wraps an SP-API view: it counts the call, applies an
injected fault, checks the ``x-amz-access-token``, enforces the usage plan and
adds Amazon's response headers (``x-amzn-RequestId`` always,
``x-amzn-RateLimit-Limit`` on 2xx/400/404). :func:`plain_operation` does the
counting and faults for the endpoints without SP-API auth (LWA, presigned URLs).
Fault responses come in the dialect of the endpoint: SP-API JSON, LWA JSON or
S3 XML.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Response, current_app, g, request

from .util import dumps, request_id

if TYPE_CHECKING:
    from .faults import Fault
    from .state import SandboxState, Seller

#: Key of the sandbox state in ``app.extensions``.
EXTENSION_KEY = "amazon_orders_sandbox"

#: Error dialects of the endpoint families.
SP_API = "spapi"
LWA = "lwa"
S3 = "s3"

_DENIED = "Access to requested resource is denied."


def get_state() -> SandboxState:
    """The :class:`~.state.SandboxState` of the current app."""
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


class ApiError(Exception):
    """Raised by SP-API views: becomes an ``ErrorList`` response."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_list(code: str, message: str, details: str | None = None) -> str:
    """An SP-API ``ErrorList`` body."""
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return dumps({"errors": [error]})


def json_response(
    status: int,
    body: str | None,
    *,
    rate_limit: str | None = None,
    extra: dict[str, str] | None = None,
) -> Response:
    """A JSON response with ``x-amzn-RequestId`` (and the rate header when Amazon sends it)."""
    response = Response(body or "", status=status, content_type="application/json")
    response.headers["x-amzn-RequestId"] = request_id()
    if rate_limit is not None and (200 <= status < 300 or status in (400, 404)):
        response.headers["x-amzn-RateLimit-Limit"] = rate_limit
    if extra:
        response.headers.update(extra)
    return response


def s3_error(status: int, code: str, message: str) -> Response:
    """An S3-style XML error response."""
    rid = request_id().replace("-", "")[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{rid}</RequestId><HostId>{request_id()}</HostId></Error>"
    )
    response = Response(body, status=status, content_type="application/xml")
    response.headers["x-amz-request-id"] = rid
    return response


def lwa_error(status: int, error: str, description: str) -> Response:
    """An LWA (OAuth 2.0) error response."""
    return json_response(status, dumps({"error": error, "error_description": description}))


# -- faults ------------------------------------------------------------------------------------


def fault_response(fault: Fault, family: str) -> Response:
    """The response of an error-kind fault, in the dialect of ``family``."""
    kind = fault.kind
    default_status = {"429": 429, "500": 500, "500_json": 500, "503_html": 503, "403": 403}.get(
        kind, 400
    )
    status = fault.status or default_status
    if kind == "500":
        response = Response(b"", status=status)
        del response.headers["Content-Type"]
        response.headers["x-amzn-RequestId"] = request_id()
        return response
    if kind == "503_html":
        body = (
            "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
            "<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service "
            "your request. Please try again later.</p></body></html>\n"
        )
        response = Response(body, status=status, content_type="text/html; charset=utf-8")
        response.headers["x-amzn-RequestId"] = request_id()
        return response
    if kind == "invalid_grant":
        return lwa_error(
            400, "invalid_grant", "The request has an invalid grant parameter : refresh_token"
        )
    if family == S3:
        code, message = {
            "429": ("SlowDown", "Please reduce your request rate."),
            "500_json": ("InternalError", "We encountered an internal error. Please try again."),
            "403": ("AccessDenied", "Access Denied"),
        }[kind]
        return s3_error(status, code, message)
    if family == LWA:
        error, description = {
            "429": ("slow_down", "Too many requests. Please slow down."),
            "500_json": ("server_error", "The server encountered an unexpected error."),
            "403": ("access_denied", "The client is not allowed to request a token."),
        }[kind]
        return lwa_error(status, error, description)
    if kind == "429":
        body = error_list(
            "QuotaExceeded", "You exceeded your quota for the requested resource.", ""
        )
    elif kind == "500_json":
        body = error_list(
            "InternalFailure", "We encountered an internal error. Please try again.", ""
        )
    else:  # "403"
        body = error_list("Unauthorized", _DENIED, "")
    return json_response(status, body)


def _drop_after_half(response: Response) -> Response:
    """Promise the full body, send half of it, then cut the connection."""
    body = response.get_data()
    socket_ = request.environ.get("werkzeug.socket")

    def cut() -> None:
        if socket_ is not None:
            with contextlib.suppress(OSError):
                socket_.shutdown(socket.SHUT_RDWR)

    if len(body) < 2:
        # Nothing to cut in half (a 204 has no body, and werkzeug would send it
        # without running a stream): the connection closes before the status line.
        cut()
        return response

    def stream() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        cut()

    dropped = Response(stream(), status=response.status_code, direct_passthrough=True)
    dropped.headers.clear()
    dropped.headers.extend(response.headers)
    dropped.headers["Content-Length"] = str(len(body))
    return dropped


def _post_process(response: Response, kind: str | None) -> Response:
    if kind == "truncated_json":
        body = response.get_data()
        response.set_data(body[: len(body) // 2])
    elif kind == "drop":
        return _drop_after_half(response)
    return response


def _count_failed(state: SandboxState, operation: str, seller_id: str | None) -> None:
    """Count a call whose view raised (a client that went away before its body
    came, say) as an error, so that every call has an outcome."""
    with state.lock:
        state.counters.count(operation, seller_id, "errors")


def _outcome(status: int) -> str:
    if status == 429:
        return "throttled"
    return "ok" if status < 400 else "errors"


# -- wrappers ----------------------------------------------------------------------------------

#: An SP-API view: ``view(state, seller, **path_args) -> (status, json text or None)``.
SpApiView = Callable[..., tuple[int, str | None]]


def sp_api_operation(
    operation: str, *, grantless_scope: str | None = None
) -> Callable[[SpApiView], Callable[..., Response]]:
    """Turn ``view`` into the endpoint of the SP-API operation ``operation``.

    A grantless operation (``grantless_scope``) takes an access token of the
    ``client_credentials`` grant for that scope instead of a seller's, and its
    view gets ``None`` as the seller.
    """

    def decorator(view: SpApiView) -> Callable[..., Response]:
        @functools.wraps(view)
        def endpoint(**kwargs: Any) -> Response:
            return _run_sp_api(operation, view, kwargs, grantless_scope)

        return endpoint

    return decorator


def _authenticate(state: SandboxState, token: str | None) -> tuple[Seller | None, str | None]:
    """``(seller, None)`` or ``(None, details of the 403)``. Call under the lock."""
    if not token:
        return None, "Access token is missing in the request header."
    access = state.access_tokens.get(token)
    if access is None:
        return None, "The access token you provided is invalid."
    if access.expires_at <= time.time() * 1000:
        return None, "The access token you provided has expired."
    if access.seller_id is None:
        return None, "The access token you provided is not authorized for this operation."
    seller = state.sellers.get(access.seller_id)
    if seller is None or seller.revoked:
        return None, "The access token you provided is invalid."
    return seller, None


def _authenticate_grantless(state: SandboxState, token: str | None, scope: str) -> str | None:
    """``None`` for a grantless token of ``scope``, else the details of the 403."""
    if not token:
        return "Access token is missing in the request header."
    access = state.access_tokens.get(token)
    if access is None:
        return "The access token you provided is invalid."
    if access.expires_at <= time.time() * 1000:
        return "The access token you provided has expired."
    if access.seller_id is not None or access.scope != scope:
        return (
            "This operation is grantless: it needs an access token of the client_credentials "
            f"grant with scope {scope}."
        )
    return None


#: Whom the usage plan of a grantless operation is counted for (the application).
GRANTLESS_CALLER = "application"


def _run_sp_api(
    operation: str, view: SpApiView, kwargs: dict[str, Any], grantless_scope: str | None = None
) -> Response:
    state = get_state()
    rate = state.limiter.headers[operation]
    token = request.headers.get("x-amz-access-token")
    with state.lock:
        if grantless_scope is None:
            seller, denied = _authenticate(state, token)
        else:
            seller, denied = None, _authenticate_grantless(state, token, grantless_scope)
        seller_id = seller.seller_id if seller else None
        fault = state.faults.take(operation)
        state.counters.count(operation, seller_id, "calls")
        if fault is not None:
            state.counters.count(operation, seller_id, "faulted")
    post: str | None = None
    g.sandbox_fault = None
    if fault is not None:
        kind = fault.kind
        if kind == "slow":
            time.sleep(fault.delay or 0)
        elif kind in ("drop", "truncated_json"):
            post = kind
        elif kind == "fatal":
            g.sandbox_fault = kind
        elif kind == "expired_pagination_token":
            return json_response(
                400,
                error_list(
                    "InvalidInput", expired_token_message(state.config.pagination_token_ttl)
                ),
                rate_limit=rate,
            )
        else:
            return fault_response(fault, SP_API)
    if denied is not None or (seller is None and grantless_scope is None):
        with state.lock:
            state.counters.count(operation, seller_id, "errors")
        return json_response(403, error_list("Unauthorized", _DENIED, denied))
    with state.lock:
        allowed = state.limiter.allow(seller_id or GRANTLESS_CALLER, operation)
        if not allowed:
            state.counters.count(operation, seller_id, "throttled")
    if not allowed:
        return json_response(
            429,
            error_list("QuotaExceeded", "You exceeded your quota for the requested resource.", ""),
        )
    try:
        status, body = view(state, seller, **kwargs)
    except ApiError as exc:
        status, body = exc.status, error_list(exc.code, exc.message, exc.details)
    except Exception:
        _count_failed(state, operation, seller_id)
        raise
    if post is None:
        with state.lock:
            state.counters.count(operation, seller_id, _outcome(status))
    response = json_response(status, body, rate_limit=rate)
    if body is None:
        del response.headers["Content-Type"]
    return _post_process(response, post)


def expired_token_message(ttl: float) -> str:
    """The 400 message for a pagination token past its lifetime."""
    hours = ttl / 3600
    lifetime = f"{hours:g} hours" if hours >= 1 else f"{ttl:g} seconds"
    return f"The paginationToken has expired. Pagination tokens are valid for {lifetime}."


#: A plain view: ``view(state) -> Response``.
PlainView = Callable[..., Response]


def plain_operation(
    operation: str, family: str, seller_of: Callable[[SandboxState, dict[str, Any]], str | None]
) -> Callable[[PlainView], Callable[..., Response]]:
    """Counting and faults for an endpoint without SP-API auth or rate limits.

    ``seller_of(state, path_args)`` names the seller to count the call for, if known.
    """

    def decorator(view: PlainView) -> Callable[..., Response]:
        @functools.wraps(view)
        def endpoint(**kwargs: Any) -> Response:
            state = get_state()
            with state.lock:
                seller_id = seller_of(state, kwargs)
                fault = state.faults.take(operation)
                state.counters.count(operation, seller_id, "calls")
                if fault is not None:
                    state.counters.count(operation, seller_id, "faulted")
            post = None
            if fault is not None:
                if fault.kind == "slow":
                    time.sleep(fault.delay or 0)
                elif fault.kind in ("drop", "truncated_json"):
                    post = fault.kind
                else:
                    return fault_response(fault, family)
            try:
                response = view(state, **kwargs)
            except Exception:
                _count_failed(state, operation, seller_id)
                raise
            if post is None:
                with state.lock:
                    state.counters.count(operation, seller_id, _outcome(response.status_code))
            return _post_process(response, post)

        return endpoint

    return decorator
