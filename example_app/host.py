"""The shop's side of the host contract: how Amazon orders become shop orders."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from flask import url_for

from flask_amazon_orders.host import HostAdapter, HostOrderError
from flask_amazon_orders.models import AmazonOrder, Store

from .models import Product, ShopOrder, ShopOrderLine, db


def _customer(amazon_order: AmazonOrder) -> str:
    from . import amazon_orders

    data = amazon_orders.buyer_data(amazon_order)
    if data is None:
        return "Amazon customer"
    buyer = data.get("buyer") or {}
    address = data.get("shipping_address") or {}
    return buyer.get("buyerName") or address.get("name") or "Amazon customer"


class ShopAdapter(HostAdapter):
    """Creates and updates the shop's orders; works in ``db.session``, never commits."""

    def create_order(
        self, amazon_order: AmazonOrder, *, store: Store, status: str, number: str | None
    ) -> str:
        lines = []
        for item in amazon_order.items:
            product = db.session.scalar(sa.select(Product).where(Product.sku == item.seller_sku))
            if product is None:
                raise HostOrderError(f"Unknown SKU {item.seller_sku!r} ({item.title}).")
            if not product.enabled:
                raise HostOrderError(f"Product {product.sku} is disabled in the shop.")
            quantity = item.quantity_ordered
            unit = item.unit_price if item.unit_price is not None else product.price
            lines.append(
                ShopOrderLine(
                    sku=product.sku,
                    quantity=quantity,
                    price=unit,
                    tax=item.item_tax or Decimal("0"),
                    amazon_order_item_id=item.order_item_id,
                )
            )

        def total(field: str) -> Decimal:
            return sum(
                (getattr(item, field) or Decimal("0") for item in amazon_order.items),
                Decimal("0"),
            )

        order = ShopOrder(
            shipping=total("shipping_price"),
            tax=total("item_tax") + total("shipping_tax"),
            discount=total("discount"),
            number=number or _next_number(),
            status=status,
            customer=_customer(amazon_order),
            channel="amazon",
            currency=amazon_order.currency or "EUR",
            total=amazon_order.order_total or Decimal("0"),
            amazon_order_id=amazon_order.amazon_order_id,
            lines=lines,
        )
        db.session.add(order)
        db.session.flush()
        return str(order.id)

    def set_status(self, reference: str, status: str, *, amazon_order: AmazonOrder) -> None:
        order = db.session.get(ShopOrder, int(reference))
        if order is None:
            raise HostOrderError(f"Shop order {reference} does not exist.")
        order.status = status

    def items_adjusted(
        self, reference: str, adjustments: list, *, amazon_order: AmazonOrder
    ) -> None:
        # Amazon cancelled units and refunded them: the shop's order follows.
        order = db.session.get(ShopOrder, int(reference))
        if order is None:
            raise HostOrderError(f"Shop order {reference} does not exist.")
        for adjustment in adjustments:
            for line in order.lines:
                if line.amazon_order_item_id == adjustment.order_item_id:
                    line.quantity = max(line.quantity - adjustment.quantity_cancelled, 0)
            order.total = max(order.total - adjustment.total, Decimal("0"))

    def order_status(self, reference: str) -> str | None:
        return self.order_statuses([reference])[reference]

    def order_statuses(self, references: list[str]) -> dict[str, str | None]:
        # One query; the orders stay loaded for the set_status calls that follow
        # (the session holds unchanged objects only weakly, so keep them here).
        orders = db.session.scalars(
            sa.select(ShopOrder).where(ShopOrder.id.in_([int(r) for r in references]))
        ).all()
        db.session.info.setdefault("shop_orders", []).extend(orders)
        found = {str(order.id): order.status for order in orders}
        return {reference: found.get(reference) for reference in references}

    def order_number(self, reference: str) -> str | None:
        return db.session.scalar(sa.select(ShopOrder.number).where(ShopOrder.id == int(reference)))

    def order_url(self, reference: str) -> str | None:
        return url_for("shop.order_detail", order_id=int(reference))

    def find_order(self, amazon_order: AmazonOrder) -> str | None:
        order_id = db.session.scalar(
            sa.select(ShopOrder.id).where(ShopOrder.amazon_order_id == amazon_order.amazon_order_id)
        )
        return str(order_id) if order_id is not None else None


def _next_number() -> str:
    last = db.session.scalar(sa.select(sa.func.max(ShopOrder.id))) or 0
    return f"T{10001 + last}"
