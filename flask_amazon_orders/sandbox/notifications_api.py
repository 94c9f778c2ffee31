"""Notifications API v1: SQS destinations and ``ORDER_CHANGE`` subscriptions.

What the real flow needs, as ``notifications.json`` describes it:

* ``POST /notifications/v1/destinations`` (createDestination, grantless):
  ``{"name": ..., "resourceSpecification": {"sqs": {"arn": ...}}}`` with the
  queue's ARN, ``arn:aws:sqs:<region>:<account>:<queue name>``.
  The queue must exist at the sandbox's ``sqs_endpoint_url``; a second destination
  for the same queue is a 409. EventBridge destinations are refused (Amazon sends
  ``ORDER_CHANGE`` through SQS only).
* ``GET /notifications/v1/destinations`` (getDestinations), ``GET`` and ``DELETE
  /notifications/v1/destinations/{destinationId}`` (getDestination,
  deleteDestination; a destination with subscriptions cannot be deleted), all grantless.
* ``POST /notifications/v1/subscriptions/ORDER_CHANGE`` (createSubscription, the
  seller's token): ``{"payloadVersion": "1.0", "destinationId": ...,
  "processingDirective": {"eventFilter": {"eventFilterType": "ORDER_CHANGE",
  "marketplaceIds": [...], "orderChangeTypes": [...]}}}`` (the directive is
  optional; its filters are applied, its aggregation accepted and not applied;
  ``filterExpression`` is refused). One subscription per seller: a second is a 409.
* ``GET /notifications/v1/subscriptions/ORDER_CHANGE`` (getSubscription, the
  seller's token; 404 without one), and ``GET``/``DELETE
  /notifications/v1/subscriptions/ORDER_CHANGE/{subscriptionId}``
  (getSubscriptionById, deleteSubscriptionById, grantless).

Grantless operations take an access token of the ``client_credentials`` grant
with scope ``sellingpartnerapi::notifications``. Responses are wrapped in
``{"payload": ...}``, errors are ``ErrorList`` bodies. Every operation has the
published usage plan (1 request per second, burst 5) and can be faulted. The
model's static sandbox examples are not served: they match every call, and the
sandbox is stateful. Other notification types are answered 400.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, request

from .notifications import (
    AGGREGATION_PERIODS,
    ORDER_CHANGE,
    ORDER_CHANGE_TYPES,
    PAYLOAD_VERSION,
    SCOPE,
    Conflict,
    NotificationSpecError,
)
from .plumbing import ApiError, sp_api_operation
from .state import SandboxState, Seller
from .util import dumps

bp = Blueprint("amazon_orders_sandbox_notifications", __name__)

_BASE = "/notifications/v1"
_INVALID = "InvalidInput"


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """The notification centre's refusals as Amazon answers them: 400, or 409 for a
    conflict."""
    try:
        yield
    except NotificationSpecError as exc:
        raise ApiError(400, _INVALID, str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, "Conflict", str(exc)) from None


def _payload(value: Any) -> tuple[int, str]:
    return 200, dumps({"payload": value})


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise ApiError(400, _INVALID, "The request body must be a JSON object.")
    return data


def _notification_type(notification_type: str) -> None:
    if notification_type != ORDER_CHANGE:
        raise ApiError(
            400,
            _INVALID,
            f"The sandbox supports the notification type {ORDER_CHANGE} only, "
            f"not {notification_type!r}.",
        )


def _string_list(value: Any, name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ApiError(400, _INVALID, f"{name} must be a non-empty list of strings.")
    for entry in value:
        if allowed is not None and entry not in allowed:
            raise ApiError(
                400, _INVALID, f"Invalid value {entry!r} in {name}. Valid: {', '.join(allowed)}."
            )
    return list(value)


def _directive(value: Any) -> dict[str, Any] | None:
    """Check a ``ProcessingDirective``; return it as it will be shown."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, _INVALID, "processingDirective must be an object.")
    if "filterExpression" in value:
        raise ApiError(
            400, _INVALID, "The sandbox does not evaluate filterExpression; use eventFilter."
        )
    event_filter = value.get("eventFilter")
    if not isinstance(event_filter, dict):
        raise ApiError(400, _INVALID, "processingDirective.eventFilter must be an object.")
    if event_filter.get("eventFilterType") != ORDER_CHANGE:
        raise ApiError(
            400, _INVALID, f"eventFilter.eventFilterType must be {ORDER_CHANGE} for this type."
        )
    result: dict[str, Any] = {"eventFilterType": ORDER_CHANGE}
    if "marketplaceIds" in event_filter:
        result["marketplaceIds"] = _string_list(
            event_filter["marketplaceIds"], "eventFilter.marketplaceIds"
        )
    if "orderChangeTypes" in event_filter:
        result["orderChangeTypes"] = _string_list(
            event_filter["orderChangeTypes"], "eventFilter.orderChangeTypes", ORDER_CHANGE_TYPES
        )
    if "aggregationSettings" in event_filter:
        settings = event_filter["aggregationSettings"]
        period = settings.get("aggregationTimePeriod") if isinstance(settings, dict) else None
        if period not in AGGREGATION_PERIODS:
            raise ApiError(
                400,
                _INVALID,
                "eventFilter.aggregationSettings.aggregationTimePeriod must be "
                f"{' or '.join(AGGREGATION_PERIODS)}.",
            )
        result["aggregationSettings"] = {"aggregationTimePeriod": period}
    unknown = set(event_filter) - {*result, "eventFilterType"}
    if unknown:
        raise ApiError(
            400, _INVALID, f"Unknown eventFilter field(s): {', '.join(sorted(unknown))}."
        )
    return {"eventFilter": result}


# -- destinations (grantless) ------------------------------------------------------------------


@bp.post(f"{_BASE}/destinations")
@sp_api_operation("createDestination", grantless_scope=SCOPE)
def create_destination(state: SandboxState, seller: None) -> tuple[int, str]:
    """createDestination: an SQS queue to send notifications to."""
    body = _body()
    name = body.get("name")
    if not isinstance(name, str) or not name or len(name) > 256:
        raise ApiError(400, _INVALID, "name must be a string of 1 to 256 characters.")
    spec = body.get("resourceSpecification")
    if not isinstance(spec, dict) or not spec:
        raise ApiError(400, _INVALID, "resourceSpecification is required.")
    if "eventBridge" in spec:
        raise ApiError(
            400,
            _INVALID,
            "The sandbox sends ORDER_CHANGE notifications to SQS only (as Amazon does); "
            "give resourceSpecification.sqs.",
        )
    sqs = spec.get("sqs")
    arn = sqs.get("arn") if isinstance(sqs, dict) else None
    center = state.notifications
    with _refusals():
        queue_url, region = center.resolve_queue(arn)  # network: outside the lock
        assert isinstance(arn, str)  # resolve_queue checked it
        with state.lock:
            destination = center.create_destination(name, arn, queue_url, region)
    return _payload(destination.to_dict())


@bp.get(f"{_BASE}/destinations")
@sp_api_operation("getDestinations", grantless_scope=SCOPE)
def get_destinations(state: SandboxState, seller: None) -> tuple[int, str]:
    """getDestinations: every destination of the application."""
    with state.lock:
        return _payload([d.to_dict() for d in state.notifications.destinations.values()])


def _destination(state: SandboxState, destination_id: str) -> Any:
    destination = state.notifications.destinations.get(destination_id)
    if destination is None:
        raise ApiError(404, "NotFound", f"No destination {destination_id}.")
    return destination


@bp.get(f"{_BASE}/destinations/<destination_id>")
@sp_api_operation("getDestination", grantless_scope=SCOPE)
def get_destination(state: SandboxState, seller: None, destination_id: str) -> tuple[int, str]:
    """getDestination: one destination."""
    with state.lock:
        return _payload(_destination(state, destination_id).to_dict())


@bp.delete(f"{_BASE}/destinations/<destination_id>")
@sp_api_operation("deleteDestination", grantless_scope=SCOPE)
def delete_destination(state: SandboxState, seller: None, destination_id: str) -> tuple[int, str]:
    """deleteDestination: remove a destination without subscriptions."""
    with state.lock:
        _destination(state, destination_id)
        with _refusals():
            state.notifications.delete_destination(destination_id)
    return 200, "{}"


# -- subscriptions -----------------------------------------------------------------------------


@bp.post(f"{_BASE}/subscriptions/<notification_type>")
@sp_api_operation("createSubscription")
def create_subscription(
    state: SandboxState, seller: Seller, notification_type: str
) -> tuple[int, str]:
    """createSubscription: the seller's ORDER_CHANGE notifications go to a destination."""
    _notification_type(notification_type)
    body = _body()
    payload_version = body.get("payloadVersion")
    if payload_version != PAYLOAD_VERSION:
        raise ApiError(
            400, _INVALID, f"payloadVersion must be {PAYLOAD_VERSION!r} for {ORDER_CHANGE}."
        )
    destination_id = body.get("destinationId")
    if not isinstance(destination_id, str) or not destination_id:
        raise ApiError(400, _INVALID, "destinationId is required.")
    directive = _directive(body.get("processingDirective"))
    with state.lock:
        with _refusals():
            subscription = state.notifications.subscribe(
                seller.seller_id, destination_id, directive
            )
        return _payload(subscription.to_dict())


@bp.get(f"{_BASE}/subscriptions/<notification_type>")
@sp_api_operation("getSubscription")
def get_subscription(
    state: SandboxState, seller: Seller, notification_type: str
) -> tuple[int, str]:
    """getSubscription: the seller's subscription to a notification type."""
    _notification_type(notification_type)
    with state.lock:
        subscription = state.notifications.subscriptions.get(seller.seller_id)
        if subscription is None:
            raise ApiError(404, "NotFound", f"The seller has no {ORDER_CHANGE} subscription.")
        return _payload(subscription.to_dict())


def _subscription(state: SandboxState, subscription_id: str) -> Any:
    subscription = state.notifications.subscription_by_id(subscription_id)
    if subscription is None:
        raise ApiError(404, "NotFound", f"No subscription {subscription_id}.")
    return subscription


@bp.get(f"{_BASE}/subscriptions/<notification_type>/<subscription_id>")
@sp_api_operation("getSubscriptionById", grantless_scope=SCOPE)
def get_subscription_by_id(
    state: SandboxState, seller: None, notification_type: str, subscription_id: str
) -> tuple[int, str]:
    """getSubscriptionById: one subscription."""
    _notification_type(notification_type)
    with state.lock:
        return _payload(_subscription(state, subscription_id).to_dict())


@bp.delete(f"{_BASE}/subscriptions/<notification_type>/<subscription_id>")
@sp_api_operation("deleteSubscriptionById", grantless_scope=SCOPE)
def delete_subscription_by_id(
    state: SandboxState, seller: None, notification_type: str, subscription_id: str
) -> tuple[int, str]:
    """deleteSubscriptionById: end a subscription."""
    _notification_type(notification_type)
    with state.lock:
        state.notifications.unsubscribe(_subscription(state, subscription_id))
    return 200, "{}"
