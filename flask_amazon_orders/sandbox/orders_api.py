"""Orders API v2026-01-01: ``searchOrders`` and ``getOrder``.

searchOrders validates its parameters as Amazon does, fixes the window's upper
bound on the first page and carries it, with every filter and the position
reached, in an opaque signed ``paginationToken``. Pages are cut by keyset
(``(lastUpdatedTime, orderId)``, or ``createdTime`` for ``created*`` queries), so
they never shift while orders change: an order changed after the bound simply
leaves the window, to be found by the next search.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from .generator import ORDER_ID_RE
from .orders import FULFILLED_BY, INCLUDED_DATA, STATUSES
from .plumbing import ApiError, expired_token_message, sp_api_operation
from .reference import ORDERS_MODEL, array_parameters, match_static
from .state import SandboxState, Seller
from .util import dumps, iso_ms, now_ms, parse_iso

bp = Blueprint("amazon_orders_sandbox_orders", __name__)

_BASE = "/orders/2026-01-01"
_INVALID = "InvalidInput"


def _array(name: str) -> list[str] | None:
    """A csv (or repeated) query parameter, or ``None`` when absent."""
    raw = request.args.getlist(name)
    if not raw:
        return None
    return [part.strip() for value in raw for part in value.split(",") if part.strip()]


def _enum_set(name: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    values = _array(name)
    if values is None:
        return None
    for value in values:
        if value not in allowed:
            raise ApiError(
                400,
                _INVALID,
                f"Invalid value '{value}' for {name}. Valid values: {', '.join(allowed)}.",
            )
    return frozenset(values)


def _included() -> frozenset[str] | None:
    return _enum_set("includedData", INCLUDED_DATA)


def _max_results() -> int | None:
    raw = request.args.get("maxResultsPerPage")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise ApiError(400, _INVALID, "maxResultsPerPage must be an integer between 1 and 100.")
    return value


def _time(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    value = parse_iso(raw)
    if value is None:
        raise ApiError(
            400, _INVALID, f"Invalid value '{raw}' for {name}: expected an ISO 8601 date-time."
        )
    return value


def _request_parameters(operation: str, **path: str) -> dict[str, Any]:
    arrays = array_parameters(ORDERS_MODEL, operation)
    params: dict[str, Any] = dict(path)
    for name in request.args:
        params[name] = _array(name) if name in arrays else request.args.get(name)
    return params


def _static(operation: str, **path: str) -> tuple[int, str] | None:
    case = match_static(ORDERS_MODEL, operation, _request_parameters(operation, **path))
    if case is None:
        return None
    return case.status, dumps(case.response)


def _window(state: SandboxState, now: int) -> dict[str, Any]:
    """Validate the time parameters of a first-page search; return the window."""
    created_after = _time("createdAfter")
    created_before = _time("createdBefore")
    updated_after = _time("lastUpdatedAfter")
    updated_before = _time("lastUpdatedBefore")
    if (created_after is None) == (updated_after is None):
        raise ApiError(
            400, _INVALID, "Exactly one of createdAfter and lastUpdatedAfter must be provided."
        )
    by_created = created_after is not None
    if by_created and updated_before is not None:
        raise ApiError(
            400, _INVALID, "lastUpdatedBefore cannot be provided together with createdAfter."
        )
    if not by_created and created_before is not None:
        raise ApiError(
            400, _INVALID, "createdBefore cannot be provided together with lastUpdatedAfter."
        )
    prefix = "created" if by_created else "lastUpdated"
    after = created_after if by_created else updated_after
    before = created_before if by_created else updated_before
    assert after is not None
    if after > now:
        raise ApiError(
            400, _INVALID, f"{prefix}After must not be later than the time of the request."
        )
    config = state.config
    if before is not None:
        if before < after:
            raise ApiError(
                400, _INVALID, f"{prefix}Before must be equal to or after {prefix}After."
            )
        if before > now - config.before_min_age * 1000:
            raise ApiError(
                400,
                _INVALID,
                f"{prefix}Before must be at least {config.before_min_age:g} seconds "
                "before the time of the request.",
            )
        bound = before
    else:
        bound = max(after, now - int(config.search_lag * 1000))
    return {"c": by_created, "a": after, "b": bound}


@bp.get(f"{_BASE}/orders")
@sp_api_operation("searchOrders")
def search_orders(state: SandboxState, seller: Seller) -> tuple[int, str]:
    """searchOrders: one page of the seller's orders."""
    config = state.config
    if config.static_examples:
        static = _static("searchOrders")
        if static is not None:
            return static
    now = now_ms()
    included = _included()
    max_results = _max_results()
    token = request.args.get("paginationToken")
    if token is not None:
        query = state.signer.unseal(token)
        if query is None or query.get("sid") != seller.seller_id:
            raise ApiError(400, _INVALID, "Invalid paginationToken.")
        if now - int(query["t"]) > config.pagination_token_ttl * 1000:
            raise ApiError(400, _INVALID, expired_token_message(config.pagination_token_ttl))
        if included is None:
            included = frozenset(query["i"])
        if max_results is None:
            max_results = int(query["n"])
    else:
        query = _window(state, now)
        statuses = _enum_set("fulfillmentStatuses", STATUSES)
        fulfilled_by = _enum_set("fulfilledBy", FULFILLED_BY)
        marketplaces = _array("marketplaceIds")
        if marketplaces is not None and len(marketplaces) > 50:
            raise ApiError(400, _INVALID, "marketplaceIds can contain at most 50 values.")
        query.update(
            {
                "sid": seller.seller_id,
                "s": sorted(statuses or ()),
                "f": sorted(fulfilled_by or ()),
                "m": sorted(marketplaces or ()),
                "p": None,
            }
        )
    included = included or frozenset()
    max_results = max_results or 100
    position = tuple(query["p"]) if query.get("p") else None

    with state.lock:
        state.issue_bound(query["b"])
        page, last_key = state.search(
            seller.seller_id,
            by_created=query["c"],
            after=query["a"],
            bound=query["b"],
            position=position,  # type: ignore[arg-type]
            statuses=frozenset(query["s"]),
            marketplaces=frozenset(query["m"]),
            fulfilled_by=frozenset(query["f"]),
            limit=max_results,
        )
        fragments = [order.to_json(included) for order in page]

    parts = ['{"orders":[', ",".join(fragments), "]"]
    if last_key is not None:
        next_query = dict(query, p=list(last_key), t=now, n=max_results, i=sorted(included))
        parts.append(',"pagination":{"nextToken":' + dumps(state.signer.seal(next_query)) + "}")
    bound_name = "createdBefore" if query["c"] else "lastUpdatedBefore"
    parts.append(f',"{bound_name}":"{iso_ms(query["b"])}"}}')
    return 200, "".join(parts)


@bp.get(f"{_BASE}/orders/<order_id>")
@sp_api_operation("getOrder")
def get_order(state: SandboxState, seller: Seller, order_id: str) -> tuple[int, str]:
    """getOrder: one order of the seller."""
    if state.config.static_examples:
        static = _static("getOrder", orderId=order_id)
        if static is not None:
            return static
    included = _included() or frozenset()
    if not ORDER_ID_RE.match(order_id):
        raise ApiError(400, _INVALID, f"OrderId: {order_id} is invalid, should be in 3-7-7 format.")
    with state.lock:
        order = state.orders.get(order_id)
        if order is None or order.seller_id != seller.seller_id:
            raise ApiError(404, "NotFound", f"The order {order_id} was not found.")
        return 200, '{"order":' + order.to_json(included) + "}"
