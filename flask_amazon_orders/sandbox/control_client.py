"""A small Python client for the sandbox's control API."""

from __future__ import annotations

from typing import Any

import requests

from ..errors import AmazonOrdersError


class SandboxControlError(AmazonOrdersError):
    """The control API answered with an error.

    :param status: the HTTP status.
    :param code: the control API's error code (``invalid``, ``not_found``, ``conflict``).
    :param message: what was wrong.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"sandbox control API: {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class SandboxControl:
    """Drive a running sandbox: sellers, orders, faults, counters, feeds, shipments.

    :param base_url: the sandbox's URL, such as ``http://127.0.0.1:8765``.
    :param timeout: seconds to wait for each control call.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._session.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        response = self._session.request(
            method,
            f"{self.base_url}/_sandbox{path}",
            json=body,
            params={k: v for k, v in params.items() if v is not None} or None,
            timeout=self.timeout,
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not 200 <= response.status_code < 300:
            if isinstance(data, dict):
                raise SandboxControlError(
                    response.status_code, str(data.get("error")), str(data.get("message"))
                )
            raise SandboxControlError(response.status_code, "http_error", response.text[:200])
        return data

    # -- sellers ---------------------------------------------------------------------------

    def create_seller(
        self,
        seller_id: str | None = None,
        *,
        name: str | None = None,
        marketplace_id: str | None = None,
        region: str | None = None,
        refresh_token: str | None = None,
    ) -> dict[str, Any]:
        """Register a seller; returns ``{seller_id, refresh_token, marketplace_id, ...}``."""
        body = {
            "seller_id": seller_id,
            "name": name,
            "marketplace_id": marketplace_id,
            "region": region,
            "refresh_token": refresh_token,
        }
        return self._call("POST", "/sellers", {k: v for k, v in body.items() if v is not None})

    def sellers(self) -> list[dict[str, Any]]:
        """Every seller."""
        return self._call("GET", "/sellers")["sellers"]  # type: ignore[no-any-return]

    def revoke_seller(self, seller_id: str) -> dict[str, Any]:
        """Revoke a seller's authorization (its refresh token gets ``invalid_grant``)."""
        return self._call("POST", f"/sellers/{seller_id}/revoke")  # type: ignore[no-any-return]

    def reauthorize_seller(self, seller_id: str) -> dict[str, Any]:
        """Authorize again: returns the seller with a new refresh token (the old one fails)."""
        return self._call("POST", f"/sellers/{seller_id}/authorize")  # type: ignore[no-any-return]

    # -- orders ----------------------------------------------------------------------------

    def create_order(self, seller_id: str, **spec: Any) -> dict[str, Any]:
        """Create one order (``items=[{sku, quantity, unit_price, ...}]``, ``status=...``, ...).

        Returns the order as Orders v2026-01-01 JSON with every optional block.
        """
        return self._call("POST", "/orders", {"seller_id": seller_id, **spec})  # type: ignore[no-any-return]

    def generate_orders(self, seller_id: str, count: int, **options: Any) -> dict[str, Any]:
        """Generate ``count`` orders; returns ``{"created": n, "order_ids": [...]}``."""
        body = {"seller_id": seller_id, "count": count, **options}
        return self._call("POST", "/orders/generate", body)  # type: ignore[no-any-return]

    def get_order(self, order_id: str) -> dict[str, Any]:
        """One order with every optional block."""
        return self._call("GET", f"/orders/{order_id}")  # type: ignore[no-any-return]

    def list_orders(self, seller_id: str | None = None) -> list[dict[str, Any]]:
        """Compact list ``[{orderId, status, lastUpdatedTime, ...}]``."""
        return self._call("GET", "/orders", seller_id=seller_id)["orders"]  # type: ignore[no-any-return]

    def set_status(self, order_id: str, status: str, **cancel: Any) -> dict[str, Any]:
        """Set an order's status (optionally ``cancelled_by=``, ``cancel_reason=``)."""
        body = {"status": status, **cancel}
        return self._call("POST", f"/orders/{order_id}/status", body)  # type: ignore[no-any-return]

    def request_buyer_cancel(self, order_id: str, reason: str | None = None) -> dict[str, Any]:
        """The buyer asks to cancel the order."""
        body = {"reason": reason} if reason is not None else {}
        return self._call("POST", f"/orders/{order_id}/buyer-cancel-request", body)  # type: ignore[no-any-return]

    def advance(self, seller_id: str | None = None, count: int | None = None) -> dict[str, Any]:
        """Move open orders one lifecycle step; returns ``{"advanced": n, "order_ids": [...]}``."""
        body = {k: v for k, v in {"seller_id": seller_id, "count": count}.items() if v is not None}
        return self._call("POST", "/advance", body)  # type: ignore[no-any-return]

    # -- shipment confirmations and payment adjustments -----------------------------------

    def shipments(
        self, order_id: str | None = None, *, seller_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The packages confirmed through ``confirmShipment``, oldest first.

        Each is ``{orderId, sellerId, marketplaceId, packageReferenceId, carrierCode,
        carrierName, shippingMethod, trackingNumber, shipDate, shipFromSupplySourceId,
        codCollectionMethod, orderItems, receivedTime, replays, active}``; ``replays``
        counts identical confirmations received again.
        """
        data = self._call("GET", "/shipments", order_id=order_id, seller_id=seller_id)
        return data["shipments"]  # type: ignore[no-any-return]

    def adjustments(
        self, order_id: str | None = None, *, seller_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The payment adjustments applied from ``POST_PAYMENT_ADJUSTMENT_DATA`` feeds.

        Each is one ``AdjustedItem``: ``{orderId, orderItemId, merchantAdjustmentItemId,
        adjustmentReason, itemPriceAdjustments: [{type, amount}], quantityCancelled,
        total, currency, feedId, messageId, receivedTime, replays, ...}``.
        """
        data = self._call("GET", "/adjustments", order_id=order_id, seller_id=seller_id)
        return data["adjustments"]  # type: ignore[no-any-return]

    def order_adjustments(self, order_id: str) -> dict[str, Any]:
        """One order's adjustments, and per item what was refunded and cancelled.

        ``{orderId, status, currency, items: [{orderItemId, quantityOrdered,
        quantityShipped, quantityCancelled, refunded: {Principal: "19.99", ...}}],
        adjustments: [...]}``.
        """
        return self._call("GET", f"/orders/{order_id}/adjustments")  # type: ignore[no-any-return]

    # -- notifications ---------------------------------------------------------------------

    def notifications(
        self, order_id: str | None = None, *, seller_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The ``ORDER_CHANGE`` notifications made for subscribed sellers, oldest first.

        Each is ``{notificationId, sellerId, orderId, changeType, orderStatus,
        destinationId, createdTime, status, copies, error, messageIds, body}``:
        ``status`` is ``delivered`` (sent to the destination queue, ``copies``
        times), ``failed`` (``error`` says why), ``dropped`` (by a ``notification``
        fault) or ``pending``; ``body`` is the notification as sent.
        """
        data = self._call("GET", "/notifications", order_id=order_id, seller_id=seller_id)
        return data["notifications"]  # type: ignore[no-any-return]

    # -- faults and counters ---------------------------------------------------------------

    def inject_fault(
        self,
        operation: str,
        kind: str,
        count: int = 1,
        after: int = 0,
        delay: float | None = None,
        status: int | None = None,
    ) -> int:
        """Inject a fault; returns its id. See the fault kinds in the sandbox guide."""
        body: dict[str, Any] = {
            "operation": operation,
            "kind": kind,
            "count": count,
            "after": after,
        }
        if delay is not None:
            body["delay"] = delay
        if status is not None:
            body["status"] = status
        return int(self._call("POST", "/faults", body)["fault_id"])

    def faults(self) -> list[dict[str, Any]]:
        """The faults still waiting to fire."""
        return self._call("GET", "/faults")["faults"]  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._call("DELETE", "/faults")

    def counters(self) -> dict[str, Any]:
        """``{"operations": {op: {calls, ok, throttled, faulted, errors}}, "sellers": {...}}``."""
        return self._call("GET", "/counters")  # type: ignore[no-any-return]

    def reset_counters(self) -> None:
        """Set every counter back to zero."""
        self._call("POST", "/counters/reset")

    # -- feeds and reset -------------------------------------------------------------------

    def feeds(self) -> list[dict[str, Any]]:
        """Every feed received, with its document text and processing report."""
        return self._call("GET", "/feeds")["feeds"]  # type: ignore[no-any-return]

    def process_feed(self, feed_id: str) -> dict[str, Any]:
        """Finish processing a feed now; returns it as :meth:`feeds` lists it."""
        return self._call("POST", f"/feeds/{feed_id}/process")  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Forget everything, sellers included."""
        self._call("POST", "/reset")
