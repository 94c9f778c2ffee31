"""The example shop's own tables: products and shop orders."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Product(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "shop_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    stock: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)


class ShopOrder(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "shop_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(40), unique=True)
    status: Mapped[str] = mapped_column(sa.String(40), default="Pending")
    customer: Mapped[str] = mapped_column(sa.String(200))
    channel: Mapped[str] = mapped_column(sa.String(20), default="web")
    currency: Mapped[str] = mapped_column(sa.String(3), default="EUR")
    total: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), default=Decimal("0"))
    shipping: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), default=Decimal("0"))
    tax: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), default=Decimal("0"))
    discount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), default=Decimal("0"))
    #: Set on orders imported from Amazon.
    amazon_order_id: Mapped[str | None] = mapped_column(sa.String(32), unique=True)

    lines: Mapped[list[ShopOrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan"
    )


class ShopOrderLine(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "shop_order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("shop_orders.id"))
    sku: Mapped[str] = mapped_column(sa.String(64))
    quantity: Mapped[int] = mapped_column(default=1)
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    tax: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2), default=Decimal("0"))
    #: The Amazon order item this line came from (imported orders).
    amazon_order_item_id: Mapped[str | None] = mapped_column(sa.String(20))

    order: Mapped[ShopOrder] = relationship(back_populates="lines")


#: The shop's own order workflow.
ORDER_STATUSES = ("Pending", "Processing", "Complete", "Canceled")
#: Carriers the shop ships with (Amazon's carrier codes).
CARRIERS = ("DHL", "Deutsche Post", "DPD", "Hermes", "UPS", "GLS")

#: The shop's catalogue, also used to generate the sandbox's Amazon orders so
#: that their SKUs are the shop's own.
CATALOG = [
    ("TEA-GREEN-100", "Green tea, loose leaf, 100 g", "8.90"),
    ("TEA-BLACK-250", "Assam black tea, 250 g", "12.50"),
    ("TEA-CHAI-100", "Masala chai blend, 100 g", "9.40"),
    ("MUG-STONE-350", "Stoneware mug, 350 ml", "14.00"),
    ("POT-CAST-800", "Cast-iron teapot, 0.8 l", "39.90"),
    ("FILTER-PAPER-100", "Paper tea filters, 100 pcs", "3.20"),
    ("INFUSER-STEEL", "Stainless-steel infuser", "7.50"),
    ("HONEY-ACACIA-500", "Acacia honey, 500 g", "11.90"),
]
