"""The control API under ``/_sandbox/``: seed data, steer time, inject faults, inspect.

Besides the feeds it received, the sandbox shows what the seller told Amazon:
``GET /_sandbox/shipments`` (the packages confirmed through ``confirmShipment``),
``GET /_sandbox/adjustments`` (the payment adjustments applied; both filter by
``?order_id=`` and ``?seller_id=``) and ``GET /_sandbox/orders/<id>/adjustments``
(one order's adjustments with, per item, what was refunded and cancelled).

``GET /_sandbox/notifications`` (``?order_id=``, ``?seller_id=``) lists the
``ORDER_CHANGE`` notifications made for sellers subscribed through the
Notifications API (see :mod:`.notifications_api`): an order created (here, by
``/orders/generate`` or any other way) or changing status (``/status``,
``/advance``, an order acknowledgement or adjustment feed, ``confirmShipment``),
or a buyer's cancellation request, each with the body sent and ``status``
``delivered``, ``failed`` (with the ``error``) or ``dropped``. The faults of
operation ``notification`` (``drop``, ``duplicate``) lose or repeat the next ones.

JSON in, JSON out, no authentication (the sandbox listens on loopback). Errors are
``{"error": <code>, "message": <text>}`` with status 400 (bad input), 404
(unknown seller, order or feed) or 409 (already exists).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, request

from .faults import FaultSpecError
from .generator import ConflictError, SpecError
from .orders import Order
from .plumbing import get_state, json_response
from .state import NotFound, SandboxState
from .util import dumps, format_amount

bp = Blueprint("amazon_orders_sandbox_control", __name__, url_prefix="/_sandbox")


class _BadRequest(Exception):
    pass


def _reply(body: Any, status: int = 200) -> Response:
    return json_response(status, dumps(body))


def _error(status: int, code: str, message: str) -> Response:
    return _reply({"error": code, "message": message}, status)


def _control(view: Callable[..., Any]) -> Callable[..., Response]:
    """Map the sandbox's exceptions to control-API error responses."""

    @wraps(view)
    def endpoint(**kwargs: Any) -> Response:
        try:
            result = view(**kwargs)
        except NotFound as exc:
            return _error(404, "not_found", str(exc.args[0]))
        except ConflictError as exc:
            return _error(409, "conflict", str(exc))
        except (SpecError, FaultSpecError, _BadRequest) as exc:
            return _error(400, "invalid", str(exc))
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple):
            return _reply(result[0], result[1])
        return _reply(result)

    return endpoint


def _body() -> dict[str, Any]:
    if not request.get_data():
        return {}
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise _BadRequest("the request body must be a JSON object")
    return data


def _string(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _BadRequest(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise _BadRequest(f"{key} must be a string")
    return value


@bp.get("/")
@_control
def info() -> dict[str, Any]:
    """What this sandbox is and how much it holds."""
    state = get_state()
    with state.lock:
        return {
            "sandbox": "flask-amazon-orders",
            "config": {k: v for k, v in vars(state.config).items() if k not in ("client_secret",)},
            "sellers": len(state.sellers),
            "orders": len(state.orders),
            "feeds": len(state.feeds.feeds),
            "notifications": len(state.notifications.sent),
        }


# -- sellers -----------------------------------------------------------------------------------


@bp.post("/sellers")
@_control
def create_seller() -> tuple[dict[str, Any], int]:
    """Register a seller; returns its id and refresh token."""
    body = _body()
    seller = get_state().create_seller(
        seller_id=_string(body, "seller_id"),
        name=_string(body, "name"),
        marketplace_id=_string(body, "marketplace_id"),
        region=_string(body, "region"),
        refresh_token=_string(body, "refresh_token"),
    )
    return seller.to_dict(), 201


@bp.get("/sellers")
@_control
def list_sellers() -> dict[str, Any]:
    """Every seller."""
    state = get_state()
    with state.lock:
        return {"sellers": [s.to_dict() for s in state.sellers.values()]}


@bp.post("/sellers/<seller_id>/revoke")
@_control
def revoke_seller(seller_id: str) -> dict[str, Any]:
    """The seller withdraws the authorization (its refresh token becomes invalid)."""
    return get_state().revoke_seller(seller_id).to_dict()


@bp.post("/sellers/<seller_id>/authorize")
@_control
def reauthorize_seller(seller_id: str) -> dict[str, Any]:
    """The seller authorizes the application again: a new refresh token replaces the old."""
    return get_state().reauthorize_seller(seller_id).to_dict()


# -- orders ------------------------------------------------------------------------------------


@bp.post("/orders")
@_control
def create_order() -> tuple[dict[str, Any], int]:
    """Create one order; returns it with every optional block."""
    state = get_state()
    body = _body()
    _string(body, "seller_id", required=True)
    with state.lock:
        return state.create_order(body).to_dict(), 201


@bp.post("/orders/generate")
@_control
def generate_orders() -> tuple[dict[str, Any], int]:
    """Generate many realistic orders."""
    state = get_state()
    body = _body()
    seller_id = _string(body, "seller_id", required=True)
    assert seller_id is not None
    options = {k: v for k, v in body.items() if k not in ("seller_id", "count")}
    orders = state.generate_orders(seller_id, body.get("count", 10), options)
    return {"created": len(orders), "order_ids": [o.order_id for o in orders]}, 201


@bp.get("/orders")
@_control
def list_orders() -> dict[str, Any]:
    """Compact list of the orders (of one seller with ``?seller_id=``)."""
    state = get_state()
    seller_id = request.args.get("seller_id")
    with state.lock:
        if seller_id is not None:
            state.seller(seller_id)
        orders = sorted(
            (o for o in state.orders.values() if seller_id in (None, o.seller_id)),
            key=lambda o: (o.created, o.order_id),
        )
        return {"orders": [o.summary() for o in orders]}


@bp.get("/orders/<order_id>")
@_control
def get_order(order_id: str) -> dict[str, Any]:
    """One order with every optional block."""
    state = get_state()
    with state.lock:
        return state.order(order_id).to_dict()


@bp.post("/orders/<order_id>/status")
@_control
def set_status(order_id: str) -> dict[str, Any]:
    """Set an order's status (``{status, cancelled_by?, cancel_reason?}``)."""
    state = get_state()
    body = _body()
    status = _string(body, "status", required=True)
    assert status is not None
    with state.lock:
        order = state.set_status(
            order_id,
            status,
            cancelled_by=_string(body, "cancelled_by"),
            cancel_reason=_string(body, "cancel_reason"),
        )
        return order.to_dict()


@bp.post("/orders/<order_id>/buyer-cancel-request")
@_control
def buyer_cancel_request(order_id: str) -> dict[str, Any]:
    """The buyer asks to cancel the order (``{reason?}``)."""
    state = get_state()
    body = _body()
    with state.lock:
        return state.buyer_cancel_request(order_id, _string(body, "reason")).to_dict()


@bp.post("/advance")
@_control
def advance() -> dict[str, Any]:
    """Move open orders one lifecycle step (``{seller_id?, count?}``)."""
    body = _body()
    count = body.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise _BadRequest("count must be a non-negative integer")
    orders = get_state().advance(_string(body, "seller_id"), count)
    return {"advanced": len(orders), "order_ids": [o.order_id for o in orders]}


# -- what the seller told Amazon ---------------------------------------------------------------


def _orders_of(state: SandboxState) -> list[Order]:
    """The orders named by ``?order_id=`` and ``?seller_id=`` (404 for unknown ones)."""
    order_id = request.args.get("order_id")
    seller_id = request.args.get("seller_id")
    if seller_id is not None:
        state.seller(seller_id)
    if order_id is not None:
        order = state.order(order_id)
        return [order] if seller_id in (None, order.seller_id) else []
    return [o for o in state.orders.values() if seller_id in (None, o.seller_id)]


@bp.get("/shipments")
@_control
def list_shipments() -> dict[str, Any]:
    """The packages confirmed through confirmShipment (``?order_id=``, ``?seller_id=``)."""
    state = get_state()
    with state.lock:
        found = [(s, o) for o in _orders_of(state) for s in o.shipments]
        found.sort(key=lambda pair: (pair[0].received, pair[1].order_id))
        return {"shipments": [shipment.to_dict(order) for shipment, order in found]}


@bp.get("/adjustments")
@_control
def list_adjustments() -> dict[str, Any]:
    """The payment adjustments applied (``?order_id=``, ``?seller_id=``)."""
    state = get_state()
    with state.lock:
        found = [(a, o) for o in _orders_of(state) for a in o.adjustments]
        found.sort(key=lambda pair: (pair[0].received, pair[1].order_id))
        return {"adjustments": [adjustment.to_dict(order) for adjustment, order in found]}


@bp.get("/orders/<order_id>/adjustments")
@_control
def order_adjustments(order_id: str) -> dict[str, Any]:
    """One order's adjustments and, per item, the refunded amounts and cancelled units."""
    state = get_state()
    with state.lock:
        order = state.order(order_id)
        cur = order.currency
        return {
            "orderId": order.order_id,
            "status": order.status,
            "currency": cur,
            "items": [
                {
                    "orderItemId": item.order_item_id,
                    "quantityOrdered": item.quantity,
                    "quantityShipped": item.quantity_shipped,
                    "quantityCancelled": item.quantity_cancelled,
                    "refunded": {
                        kind: format_amount(value, cur) for kind, value in item.refunded.items()
                    },
                }
                for item in order.items
            ],
            "adjustments": [adjustment.to_dict(order) for adjustment in order.adjustments],
        }


# -- notifications -----------------------------------------------------------------------------


@bp.get("/notifications")
@_control
def list_notifications() -> dict[str, Any]:
    """The ORDER_CHANGE notifications made (``?order_id=``, ``?seller_id=``), with
    their bodies and what became of them."""
    state = get_state()
    with state.lock:
        _orders_of(state)  # 404 for an unknown seller or order
        return {
            "notifications": state.notifications.listing(
                request.args.get("seller_id"), request.args.get("order_id")
            )
        }


# -- faults and counters -----------------------------------------------------------------------


@bp.post("/faults")
@_control
def add_fault() -> tuple[dict[str, Any], int]:
    """Inject a fault (see :mod:`.faults`)."""
    state = get_state()
    body = _body()
    unknown = set(body) - {"operation", "kind", "count", "after", "delay", "status"}
    if unknown:
        raise _BadRequest(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    with state.lock:
        fault = state.faults.add(
            body.get("operation"),
            body.get("kind"),
            body.get("count", 1),
            body.get("after", 0),
            body.get("delay"),
            body.get("status"),
        )
    return {"fault_id": fault.fault_id, **fault.to_dict()}, 201


@bp.get("/faults")
@_control
def list_faults() -> dict[str, Any]:
    """The faults still waiting to fire."""
    state = get_state()
    with state.lock:
        return {"faults": state.faults.active()}


@bp.delete("/faults")
@_control
def clear_faults() -> dict[str, Any]:
    """Remove every fault."""
    state = get_state()
    with state.lock:
        state.faults.clear()
    return {"cleared": True}


@bp.get("/counters")
@_control
def counters() -> dict[str, Any]:
    """Call counters per operation and per seller."""
    state = get_state()
    with state.lock:
        return state.counters.to_dict()


@bp.post("/counters/reset")
@_control
def reset_counters() -> dict[str, Any]:
    """Set the counters back to zero."""
    state = get_state()
    with state.lock:
        state.counters.reset()
        return state.counters.to_dict()


# -- feeds and reset ---------------------------------------------------------------------------


@bp.get("/feeds")
@_control
def list_feeds() -> dict[str, Any]:
    """Every feed with its document text and processing report."""
    state = get_state()
    with state.lock:
        feeds = sorted(state.feeds.feeds.values(), key=lambda f: (f.created, f.feed_id))
        return {"feeds": [state.feeds.control_view(feed) for feed in feeds]}


@bp.post("/feeds/<feed_id>/process")
@_control
def process_feed(feed_id: str) -> dict[str, Any]:
    """Finish processing a feed now."""
    state = get_state()
    with state.lock:
        feed = state.feeds.feeds.get(feed_id)
        if feed is None:
            raise NotFound(f"no feed {feed_id!r}")
        state.feeds.finish(feed)
        return state.feeds.control_view(feed)


@bp.post("/reset")
@_control
def reset() -> dict[str, Any]:
    """Forget everything, sellers included."""
    get_state().reset()
    return {"reset": True}
