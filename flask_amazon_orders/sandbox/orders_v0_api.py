"""Orders API v0 ``confirmShipment``: ``POST /orders/v0/orders/{orderId}/shipmentConfirmation``.

The body is checked like the ``ConfirmShipmentRequest`` model of ``ordersV0.json``
(SP-API-NOTES §1.6): ``marketplaceId`` (the order's) and a ``packageDetail`` with
a positive numeric ``packageReferenceId``, ``carrierCode`` (``carrierName`` too
when the code is ``Other``), ``trackingNumber``, an ISO 8601 ``shipDate`` and
``orderItems`` of ``{orderItemId, quantity, transparencyCodes?}``. Then the order
must be the seller's (else 404), merchant-fulfilled and shippable (UNSHIPPED or
PARTIALLY_SHIPPED), and every quantity at least 1 and at most the units of the
item neither shipped nor cancelled. Every refusal is a 400 ``InvalidInput``.

A valid confirmation ships the units (the order becomes PARTIALLY_SHIPPED or
SHIPPED, its ``lastUpdatedTime`` moves), records the package, which getOrder then
lists under ``packages``, and answers 204 without a body. The same
``packageReferenceId`` again with the same content is a retry: 204 again, nothing
ships twice. With different content it is refused.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, request

from .generator import ORDER_ID_RE
from .marketplaces import MARKETPLACES
from .orders import AMAZON, PARTIALLY_SHIPPED, SHIPPED, UNSHIPPED, PackageLine, Shipment
from .plumbing import ApiError, sp_api_operation
from .reference import ORDERS_V0_MODEL, match_static
from .state import SandboxState, Seller
from .util import dumps, iso_ms, now_ms, parse_iso

bp = Blueprint("amazon_orders_sandbox_orders_v0", __name__)

_BASE = "/orders/v0"
_INVALID = "InvalidInput"
#: "Only positive numeric values are supported" (``PackageReferenceId`` in the model).
_REFERENCE_ID_RE = re.compile(r"^[1-9][0-9]{0,19}$")
#: A date-time, not only a date (``shipDate`` has ``format: date-time``).
_DATE_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d")
#: ``codCollectionMethod`` values and the marketplaces that take them.
_COD_METHODS = ("DirectPayment",)
_COD_COUNTRIES = frozenset({"JP"})
#: Statuses in which a confirmation may ship units.
_SHIPPABLE = frozenset({UNSHIPPED, PARTIALLY_SHIPPED})


def _invalid(message: str) -> ApiError:
    return ApiError(400, _INVALID, message)


def _string(data: dict[str, Any], name: str, where: str, *, required: bool = False) -> str | None:
    """A string member; an optional one that is empty counts as absent."""
    value = data.get(name)
    if value is None or (not required and value == ""):
        if required:
            raise _invalid(f"{where}{name} is required.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{where}{name} must be a non-empty string.")
    return value


def _order_items(value: Any) -> tuple[PackageLine, ...]:
    where = "packageDetail.orderItems"
    if value is None:
        raise _invalid(f"{where} is required.")
    if not isinstance(value, list) or not value:
        raise _invalid(f"{where} must be a non-empty array of order items.")
    lines: list[PackageLine] = []
    seen: set[str] = set()
    for index, raw in enumerate(value):
        here = f"{where}[{index}]."
        if not isinstance(raw, dict):
            raise _invalid(f"{where}[{index}] must be an object.")
        item_id = _string(raw, "orderItemId", here, required=True)
        assert item_id is not None
        quantity = raw.get("quantity")
        if quantity is None:
            raise _invalid(f"{here}quantity is required.")
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise _invalid(f"{here}quantity must be an integer.")
        if quantity < 1:
            raise _invalid(f"{here}quantity must be at least 1; got {quantity}.")
        codes = raw.get("transparencyCodes")
        if codes is None:
            codes = []
        if not isinstance(codes, list) or not all(isinstance(c, str) and c for c in codes):
            raise _invalid(f"{here}transparencyCodes must be an array of strings.")
        if item_id in seen:
            raise _invalid(f"{where} lists the order item {item_id} more than once.")
        seen.add(item_id)
        lines.append((item_id, quantity, tuple(codes)))
    return tuple(lines)


def parse_confirmation(body: Any) -> Shipment:
    """Check a ``ConfirmShipmentRequest`` body on its own (without the order).

    :raises ApiError: 400 ``InvalidInput`` naming what is wrong.
    """
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object (ConfirmShipmentRequest).")
    marketplace_id = _string(body, "marketplaceId", "", required=True)
    assert marketplace_id is not None
    if marketplace_id not in MARKETPLACES:
        raise _invalid(f"Invalid marketplaceId: {marketplace_id}.")
    cod = _string(body, "codCollectionMethod", "")
    if cod is not None and cod not in _COD_METHODS:
        raise _invalid(
            f"Invalid value '{cod}' for codCollectionMethod. Valid values: "
            f"{', '.join(_COD_METHODS)}."
        )
    detail = body.get("packageDetail")
    if detail is None:
        raise _invalid("packageDetail is required.")
    if not isinstance(detail, dict):
        raise _invalid("packageDetail must be an object.")
    where = "packageDetail."
    reference_id = _string(detail, "packageReferenceId", where, required=True)
    assert reference_id is not None
    if not _REFERENCE_ID_RE.match(reference_id):
        raise _invalid(
            f"Invalid packageReferenceId '{reference_id}': only positive numeric values "
            "are supported."
        )
    carrier_code = _string(detail, "carrierCode", where, required=True)
    carrier_name = _string(detail, "carrierName", where)
    if carrier_code == "Other" and carrier_name is None:
        raise _invalid('packageDetail.carrierName is required when carrierCode is "Other".')
    shipping_method = _string(detail, "shippingMethod", where)
    tracking_number = _string(detail, "trackingNumber", where, required=True)
    ship_date = _string(detail, "shipDate", where, required=True)
    assert ship_date is not None
    ship_time = parse_iso(ship_date) if _DATE_TIME_RE.match(ship_date.strip()) else None
    if ship_time is None:
        raise _invalid(
            f"Invalid shipDate '{ship_date}': expected an ISO 8601 date-time such as "
            "2025-01-31T10:00:00Z."
        )
    supply_source = _string(detail, "shipFromSupplySourceId", where)
    items = _order_items(detail.get("orderItems"))
    assert carrier_code is not None and tracking_number is not None
    return Shipment(
        reference_id=reference_id,
        marketplace_id=marketplace_id,
        carrier_code=carrier_code,
        tracking_number=tracking_number,
        ship_time=ship_time,
        items=items,
        received=0,
        carrier_name=carrier_name,
        shipping_method=shipping_method,
        ship_from_supply_source_id=supply_source,
        cod_collection_method=cod,
    )


@bp.post(f"{_BASE}/orders/<order_id>/shipmentConfirmation")
@sp_api_operation("confirmShipment")
def confirm_shipment(state: SandboxState, seller: Seller, order_id: str) -> tuple[int, str | None]:
    """confirmShipment: ship the units of one package of a merchant order (204)."""
    body = request.get_json(silent=True, force=True)
    if state.config.static_examples:
        case = match_static(ORDERS_V0_MODEL, "confirmShipment", {"orderId": order_id, "body": body})
        if case is not None:
            return case.status, None if case.status == 204 else dumps(case.response)
    if not ORDER_ID_RE.match(order_id):
        raise _invalid(f"OrderId: {order_id} is invalid, should be in 3-7-7 format.")
    shipment = parse_confirmation(body)
    with state.lock:
        order = state.orders.get(order_id)
        if order is None or order.seller_id != seller.seller_id:
            raise ApiError(404, "NotFound", f"The order {order_id} was not found.")
        marketplace = order.marketplace
        if shipment.marketplace_id != marketplace.marketplace_id:
            raise _invalid(
                f"The marketplaceId {shipment.marketplace_id} is not the marketplace of order "
                f"{order_id} ({marketplace.marketplace_id})."
            )
        if shipment.cod_collection_method and marketplace.country not in _COD_COUNTRIES:
            raise _invalid("codCollectionMethod is only supported in the JP marketplace.")
        if order.fulfilled_by == AMAZON:
            raise _invalid(
                f"The order {order_id} is fulfilled by Amazon; only merchant-fulfilled orders "
                "take shipment confirmations."
            )
        earlier = order.active_shipment(shipment.reference_id)
        if earlier is not None:
            if earlier.content() != shipment.content():
                raise _invalid(
                    f"The packageReferenceId {shipment.reference_id} was already confirmed for "
                    f"order {order_id} with different content (confirmed "
                    f"{iso_ms(earlier.received)}). Use a new packageReferenceId for another "
                    "package."
                )
            earlier.replays += 1  # a retry: nothing ships twice
            return 204, None
        if order.status == SHIPPED:
            raise _invalid(f"The order {order_id} is already shipped: no unit is left to ship.")
        if order.status not in _SHIPPABLE:
            raise _invalid(
                f"The order {order_id} cannot be confirmed as shipped: it is {order.status}."
            )
        for item_id, quantity, _codes in shipment.items:
            item = order.item(item_id)
            if item is None:
                raise _invalid(f"The order item {item_id} is not part of order {order_id}.")
            if quantity > item.quantity_open:
                raise _invalid(
                    f"The quantity {quantity} of order item {item_id} is more than its "
                    f"unshipped quantity {item.quantity_open} (ordered {item.quantity}, "
                    f"shipped {item.quantity_shipped}, cancelled {item.quantity_cancelled})."
                )
        shipment.received = now_ms()
        state.record_shipment(order, shipment)
    return 204, None
