"""Cancelling or refunding single order items (seed 004, "Partial refunds").

To cancel part of a multi-item order the seller ships what can be fulfilled and
sends an Order Adjustment for the rest: per item, the quantity cancelled, the
reason (``NoInventory`` or ``CustomerCancel``) and the refund by price component.
:func:`refund_for` computes the refund from Amazon's own prices per unit, never
more than was paid (earlier adjustments of the item count); :func:`adjust_items`
stores the lines (the outbox) and the feed job sends them in one
``POST_PAYMENT_ADJUSTMENT_DATA`` feed per store, each line with its own
MerchantAdjustmentItemID.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any

import sqlalchemy as sa
from babel import numbers

from .. import events
from ..errors import AmazonOrdersError
from ..extension import get_extension
from ..i18n import N_, _
from ..models import Adjustment, AmazonOrder, AmazonOrderItem, OrderEvent, Store
from .cancelling import MEMO_MAX, lock_order

log = logging.getLogger("flask_amazon_orders.adjusting")

#: The item-level reasons of seed 004: feed value -> label.
REASONS = {"NoInventory": N_("No Inventory"), "CustomerCancel": N_("Customer Cancel")}
#: Adjustment states in which the amounts and quantity count as taken.
COUNTING = ("queued", "sent", "confirmed")
#: Our amount fields and the feed's price components.
COMPONENTS = {
    "principal": "Principal",
    "tax": "Tax",
    "shipping": "Shipping",
    "shipping_tax": "ShippingTax",
}


class AdjustmentError(AmazonOrdersError):
    """An item adjustment that cannot be accepted; nothing was stored."""


@dataclasses.dataclass(frozen=True)
class Refund:
    """The refund of ``quantity`` units of one item, by price component."""

    order_item_id: str
    quantity: int
    principal: Decimal
    tax: Decimal
    shipping: Decimal
    shipping_tax: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.tax + self.shipping + self.shipping_tax


def _paid(item: AmazonOrderItem) -> dict[str, Decimal]:
    """What the buyer paid for the item, per component (the promotion taken off the
    principal)."""
    price = (item.item_price or Decimal(0)) - abs(item.discount or Decimal(0))
    return {
        "principal": max(price, Decimal(0)),
        "tax": item.item_tax or Decimal(0),
        "shipping": item.shipping_price or Decimal(0),
        "shipping_tax": item.shipping_tax or Decimal(0),
    }


def taken(order: AmazonOrder) -> dict[str, dict[str, Any]]:
    """Per item: the quantity cancelled and the amounts refunded so far (queued,
    sent or confirmed)."""
    session = get_extension().session
    result: dict[str, dict[str, Any]] = {}
    for adjustment in session.scalars(
        sa.select(Adjustment).where(Adjustment.order_id == order.id, Adjustment.state.in_(COUNTING))
    ):
        entry = result.setdefault(
            adjustment.order_item_id,
            {"quantity": 0, **{name: Decimal(0) for name in COMPONENTS}},
        )
        entry["quantity"] += adjustment.quantity_cancelled
        for name in COMPONENTS:
            entry[name] += getattr(adjustment, name)
    return result


def open_quantity(
    item: AmazonOrderItem, already: Mapping[str, Any] | None, in_shipments: int = 0
) -> int:
    """Units of the item neither shipped, nor in a shipment on its way, nor
    cancelled (nor being cancelled)."""
    cancelled = already["quantity"] if already else 0
    if item.cancelled_by:
        return 0
    return max(item.quantity_ordered - item.quantity_shipped - cancelled - in_shipments, 0)


def _unit(currency: str | None) -> Decimal:
    """The smallest amount of the currency (0.01; 1 for the yen)."""
    digits = numbers.get_currency_precision(currency) if currency else 2
    return Decimal(1).scaleb(-digits)


def refund_for(
    item: AmazonOrderItem,
    quantity: int,
    already: Mapping[str, Any] | None,
    currency: str | None = None,
) -> Refund:
    """The refund for cancelling ``quantity`` units.

    Each component gets its share per unit of what was paid, rounded down to the
    currency's smallest unit; the last units get exactly what is left. The sum is
    never more than the item's total that Amazon charged (promotions on shipping
    included), less what was refunded before.
    """
    paid = _paid(item)
    ordered = max(item.quantity_ordered, 1)
    unit = _unit(currency)
    cancelled_before = already["quantity"] if already else 0
    last = cancelled_before + quantity >= ordered
    amounts: dict[str, Decimal] = {}
    for name, total in paid.items():
        left = total - (already[name] if already else Decimal(0))
        share = (total * quantity / ordered).quantize(unit, rounding=ROUND_DOWN)
        amounts[name] = max(min(left if last else share, left), Decimal(0)).quantize(
            unit, rounding=ROUND_DOWN
        )
    # Never more than the buyer paid for the item in all (Amazon's item total).
    if item.total is not None:
        refunded = sum((already[name] for name in COMPONENTS), Decimal(0)) if already else 0
        room = max(item.total - refunded, Decimal(0))
        excess = sum(amounts.values(), Decimal(0)) - room
        for name in ("shipping_tax", "shipping", "tax", "principal"):
            if excess <= 0:
                break
            cut = min(excess, amounts[name])
            amounts[name] -= cut
            excess -= cut
    return Refund(order_item_id=item.order_item_id, quantity=quantity, **amounts)


def can_adjust(order: AmazonOrder) -> str | None:
    """Why items of ``order`` cannot be cancelled here now, or ``None``."""
    if order.fulfillment_channel != "MFN":
        return _("Amazon fulfils this order; cancel it in Seller Central.")
    if order.cancellation_state in ("queued", "sent", "confirmed") or order.status not in (
        "Unshipped",
        "PartiallyShipped",
    ):
        return _(
            "The order is %(status)s; items can be cancelled only while some are unshipped.",
            status=order.status_label,
        )
    return None


def plan(order: AmazonOrder, quantities: Mapping[str, int]) -> list[Refund]:
    """Check the quantities and compute the refunds. :raises AdjustmentError:"""
    why = can_adjust(order)
    if why:
        raise AdjustmentError(why)
    from .shipping import queued_quantities

    items = {item.order_item_id: item for item in order.items}
    already = taken(order)
    shipping = queued_quantities(order)
    refunds = []
    for item_id, quantity in quantities.items():
        item = items.get(item_id)
        if item is None:
            raise AdjustmentError(_("%(item)s is not an item of this order.", item=item_id))
        if quantity == 0:
            continue
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise AdjustmentError(_("Quantities are whole numbers of units."))
        left = open_quantity(item, already.get(item_id), shipping.get(item_id, 0))
        if quantity > left:
            raise AdjustmentError(
                _(
                    "Only %(left)s unit(s) of %(sku)s are unshipped.",
                    left=left,
                    sku=item.seller_sku or item_id,
                )
            )
        refunds.append(refund_for(item, quantity, already.get(item_id), order.currency))
    if not refunds:
        raise AdjustmentError(_("Choose at least one unit to cancel."))
    return refunds


def adjust_items(
    order: AmazonOrder,
    quantities: Mapping[str, int],
    *,
    reason: str,
    memo: str | None = None,
    store: Store | int | None = None,
    actor: str = "api",
) -> list[Adjustment]:
    """Cancel (and refund) units of an order's items: stored at once, sent to
    Amazon by the feed job.

    :param quantities: Amazon order item id -> units to cancel.
    :param reason: ``NoInventory`` or ``CustomerCancel``.
    :raises AdjustmentError: an invalid line or reason, another store's order;
        nothing is stored.
    """
    session = get_extension().session
    if store is not None and order.store_id != (store if isinstance(store, int) else store.id):
        raise AdjustmentError(_("There is no such order in this store."))
    if reason not in REASONS:
        raise AdjustmentError(_("Choose a reason: No Inventory or Customer Cancel."))
    memo = (memo or "").strip() or None
    if memo is not None and len(memo) > MEMO_MAX:
        raise AdjustmentError(_("The seller memo is longer than %(max)s characters.", max=MEMO_MAX))
    # One adjustment (or shipment) at a time per order, so two admins cannot both
    # cancel the last unit; and the checks read the order as it is now (another
    # admin may have cancelled it since the page loaded it).
    order = lock_order(order)
    try:
        refunds = plan(order, quantities)
    except AdjustmentError:
        session.rollback()  # the row lock goes with it
        raise
    rows = []
    for refund in refunds:
        adjustment = Adjustment(
            store_id=order.store_id,
            order_id=order.id,
            order_item_id=refund.order_item_id,
            reason=reason,
            quantity_cancelled=refund.quantity,
            currency=order.currency,
            principal=refund.principal,
            tax=refund.tax,
            shipping=refund.shipping,
            shipping_tax=refund.shipping_tax,
            memo=memo,
            state="queued",
            actor=actor[:120],
        )
        session.add(adjustment)
        rows.append(adjustment)
        session.add(
            OrderEvent(
                order_id=order.id,
                kind="adjustment_queued",
                actor=actor[:120],
                **events.columns(_queued_text(refund, reason, memo, order.currency)),
            )
        )
    session.commit()
    get_extension().wake_worker("feeds", order.store_id)
    return rows


def _queued_text(
    refund: Refund, reason: str, memo: str | None, currency: str | None
) -> events.Text:
    refunded = {"amount": str(refund.total), "currency": currency}
    if memo:
        return events.Text(
            "adjustment_queued_memo",
            num=refund.quantity,
            item=refund.order_item_id,
            adjustment_reason=reason,
            refund=refunded,
            memo=memo,
        )
    return events.Text(
        "adjustment_queued",
        num=refund.quantity,
        item=refund.order_item_id,
        adjustment_reason=reason,
        refund=refunded,
    )


def _settle(adjustment: Adjustment, state: str, message: events.Text) -> None:
    adjustment.state = state
    adjustment.result = str(message)
    text = events.Text("adjustment_settled", item=adjustment.order_item_id, result=message)
    get_extension().session.add(
        OrderEvent(
            order_id=adjustment.order_id,
            kind="adjustment_confirmed" if state == "confirmed" else "adjustment_rejected",
            actor="amazon",
            **events.columns(text),
        )
    )


def confirm(adjustment: Adjustment, message: events.Text) -> None:
    """Amazon applied the adjustment (in the session; the caller commits)."""
    _settle(adjustment, "confirmed", message)


def reject(adjustment: Adjustment, message: events.Text) -> None:
    """Amazon did not apply it (in the session; the caller commits)."""
    _settle(adjustment, "rejected", message)


def host_adjusted(order: AmazonOrder, adjustment: Adjustment) -> None:
    """Tell the host of a confirmed adjustment (host contract), in a savepoint."""
    adapter = get_extension().host
    if adapter is None or not order.host_order_ref:
        return
    session = get_extension().session
    try:
        with session.begin_nested():
            adapter.items_adjusted(order.host_order_ref, [adjustment], amazon_order=order)
    except Exception as exc:
        log.exception("items_adjusted failed for %s", order.host_order_ref)
        session.add(
            OrderEvent(
                order_id=order.id,
                kind="host_order_failed",
                actor="amazon-orders",
                **events.columns(events.Text("host_order_not_adjusted", error=str(exc))),
            )
        )
