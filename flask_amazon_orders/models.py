"""The extension's tables: stores, Amazon orders and items, order and store events, sync runs.

The classes are ordinary SQLAlchemy declarative models with their own
:data:`metadata`. ``AmazonOrders(app, db=db)`` copies these tables into the
host's ``db.metadata``, so ``db.create_all()`` and the host's migrations see
them, and the host's ``db.session`` reads and writes them on its default engine.
Every table name starts with ``amazon_``. Unique keys make every import
idempotent: one row per (store, Amazon order id) and per (order, order item id).

Money is :class:`~decimal.Decimal`, stored exactly (``NUMERIC`` on PostgreSQL,
text on SQLite). Times are timezone-aware UTC. Buyer data and refresh tokens
are stored only encrypted (see :mod:`flask_amazon_orders.crypto`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from .client.records import STATUS_LABELS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The metadata holding every ``amazon_*`` table.
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC; refuses naive datetimes on the way in."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC times")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


_CENTS = Decimal("0.01")


class Money(sa.TypeDecorator[Decimal]):
    """An exact decimal amount: ``NUMERIC(18, 4)``, or text on SQLite (which has no decimal)."""

    impl = sa.Numeric(18, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(18, 4, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        # The same value on every database: no trailing zeros beyond two decimals
        # (PostgreSQL's NUMERIC(18, 4) would give 59.0000 for Amazon's "59.00").
        amount = Decimal(str(value)).normalize()
        if amount.as_tuple().exponent > -2:  # type: ignore[operator]
            amount = amount.quantize(_CENTS)
        return amount


#: The statuses after which an order changes no more here; buyer data is kept
#: for the retention period after an order reached one.
FINAL_STATUSES = frozenset({"Shipped", "Canceled", "Unfulfillable"})


class Base(DeclarativeBase):
    metadata = metadata


class Store(Base):
    """One Amazon seller account in one marketplace, connected to the shop."""

    __tablename__ = "amazon_stores"
    __table_args__ = (sa.UniqueConstraint("seller_id", "marketplace_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    #: Amazon's seller id, also the merchant token used in feeds.
    seller_id: Mapped[str] = mapped_column(sa.String(40))
    #: ``na``, ``eu`` or ``fe``.
    region: Mapped[str] = mapped_column(sa.String(2))
    marketplace_id: Mapped[str] = mapped_column(sa.String(20))
    refresh_token_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    order_import_enabled: Mapped[bool] = mapped_column(default=False)
    #: The host status a new imported (merchant-fulfilled, unshipped) order starts in.
    import_initial_status: Mapped[str] = mapped_column(sa.String(40), default="Processing")
    #: ``host``: the host numbers its orders; ``amazon``: the Amazon order id is the number.
    order_number_source: Mapped[str] = mapped_column(sa.String(10), default="host")
    active: Mapped[bool] = mapped_column(default=True)
    connected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Everything Amazon changed up to this time is stored.
    sync_cursor: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: An unfinished sync window and its next page, to resume after a crash.
    sync_window_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sync_window_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sync_page_token: Mapped[str | None] = mapped_column(sa.Text)
    sync_page_token_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The sync lease: one sync per store at a time (see ``jobs.sync``).
    sync_lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sync_lease_owner: Mapped[str | None] = mapped_column(sa.String(32))
    #: The feed job's lease (see ``jobs.leases``).
    feed_lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    feed_lease_owner: Mapped[str | None] = mapped_column(sa.String(32))
    last_sync_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_sync_succeeded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_sync_error: Mapped[str | None] = mapped_column(sa.Text)
    #: True when the error needs a person (a revoked refresh token, missing credentials).
    last_sync_error_needs_action: Mapped[bool] = mapped_column(default=False)
    #: What went wrong in the feed job's last run (cancellations, item adjustments,
    #: shipment confirmations), until a run goes through; and whether it needs a person.
    last_feed_error: Mapped[str | None] = mapped_column(sa.Text)
    last_feed_error_needs_action: Mapped[bool] = mapped_column(default=False)
    #: When an admin last asked for a sync ("Sync now"); the worker serves it.
    sync_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    orders: Mapped[list[AmazonOrder]] = relationship(
        back_populates="store", lazy="raise_on_sql", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Store {self.id} {self.name!r} {self.seller_id}@{self.marketplace_id}>"


class AmazonOrder(Base):
    """An Amazon order as last seen from Amazon."""

    __tablename__ = "amazon_orders"
    __table_args__ = (
        sa.UniqueConstraint("store_id", "amazon_order_id"),
        sa.Index("ix_amazon_orders_store_purchased", "store_id", "purchased_at"),
        # Counts per status (narrow), and a status filter sorted by purchase date.
        sa.Index("ix_amazon_orders_store_status", "store_id", "status"),
        sa.Index("ix_amazon_orders_store_status_purchased", "store_id", "status", "purchased_at"),
        sa.Index("ix_amazon_orders_store_import", "store_id", "host_import_state", "purchased_at"),
        sa.Index("ix_amazon_orders_store_host_number", "store_id", "host_order_number"),
        # The purge job's range: closed, not yet purged, oldest first.
        sa.Index("ix_amazon_orders_purge", "buyer_data_purged_at", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    amazon_order_id: Mapped[str] = mapped_column(sa.String(32))
    seller_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    #: Seller Central's status name (``Unshipped``, ``Canceled`` …).
    status: Mapped[str] = mapped_column(sa.String(24))
    #: The Orders API's own value (``UNSHIPPED``, ``CANCELLED`` …).
    amazon_status: Mapped[str] = mapped_column(sa.String(24))
    #: ``MFN`` (merchant-fulfilled) or ``AFN`` (fulfilled by Amazon).
    fulfillment_channel: Mapped[str | None] = mapped_column(sa.String(8))
    service_level: Mapped[str | None] = mapped_column(sa.String(40))
    marketplace_id: Mapped[str | None] = mapped_column(sa.String(20))
    sales_channel: Mapped[str | None] = mapped_column(sa.String(40))
    programs: Mapped[str | None] = mapped_column(sa.String(255))
    purchased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    amazon_updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    earliest_ship_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    latest_ship_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    earliest_delivery_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    latest_delivery_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    order_total: Mapped[Decimal | None] = mapped_column(Money)
    items_count: Mapped[int] = mapped_column(default=0)
    ship_country: Mapped[str | None] = mapped_column(sa.String(2))
    buyer_cancel_requested: Mapped[bool] = mapped_column(default=False)
    buyer_cancel_reason: Mapped[str | None] = mapped_column(sa.Text)
    #: The linked host order (the host contract's reference), once created.
    host_order_ref: Mapped[str | None] = mapped_column(sa.String(64))
    #: The host order's number as the shop shows it (searchable in the admin pages).
    host_order_number: Mapped[str | None] = mapped_column(sa.String(64))
    #: ``created``, ``blocked`` (see :attr:`host_import_error`), or ``None`` (not yet).
    host_import_state: Mapped[str | None] = mapped_column(sa.String(12))
    host_import_error: Mapped[str | None] = mapped_column(sa.Text)
    host_import_attempts: Mapped[int] = mapped_column(default=0)
    host_imported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The host status the extension last set on the host order.
    host_status: Mapped[str | None] = mapped_column(sa.String(40))
    #: The state of the newest cancellation from the admin pages (see
    #: :class:`Cancellation`): ``queued``, ``sent``, ``confirmed``, ``rejected`` or ``None``.
    cancellation_state: Mapped[str | None] = mapped_column(sa.String(12))
    #: Buyer and shipping address, encrypted JSON bound to this order (read it
    #: with :meth:`AmazonOrders.buyer_data`); ``None`` once purged.
    buyer_data_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    #: When the order reached a final status (Shipped, Canceled, Unfulfillable)
    #: as far as we know: the buyer data retention period counts from here.
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: When the retention period was over and the purge job deleted the buyer
    #: data (or found none); none is stored again after it.
    buyer_data_purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    store: Mapped[Store] = relationship(back_populates="orders")
    items: Mapped[list[AmazonOrderItem]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="AmazonOrderItem.id",
        lazy="selectin",
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="OrderEvent.id",
        lazy="raise_on_sql",
    )

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @validates("status")
    def _track_closed(self, _key: str, status: str) -> str:
        if status not in FINAL_STATUSES:
            self.closed_at = None
        elif self.closed_at is None or self.status not in FINAL_STATUSES:
            self.closed_at = utcnow()
        return status

    def __repr__(self) -> str:
        return f"<AmazonOrder {self.amazon_order_id} {self.status}>"


class AmazonOrderItem(Base):
    """One line of an Amazon order."""

    __tablename__ = "amazon_order_items"
    __table_args__ = (
        sa.UniqueConstraint("order_id", "order_item_id"),
        # Search by SKU: the index alone answers which orders hold it.
        sa.Index("ix_amazon_order_items_sku_order", "seller_sku", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_orders.id", ondelete="CASCADE"))
    order_item_id: Mapped[str] = mapped_column(sa.String(20))
    asin: Mapped[str | None] = mapped_column(sa.String(20))
    seller_sku: Mapped[str | None] = mapped_column(sa.String(64))
    title: Mapped[str | None] = mapped_column(sa.Text)
    condition: Mapped[str | None] = mapped_column(sa.String(20))
    quantity_ordered: Mapped[int] = mapped_column(default=0)
    quantity_shipped: Mapped[int] = mapped_column(default=0)
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    item_price: Mapped[Decimal | None] = mapped_column(Money)
    shipping_price: Mapped[Decimal | None] = mapped_column(Money)
    item_tax: Mapped[Decimal | None] = mapped_column(Money)
    shipping_tax: Mapped[Decimal | None] = mapped_column(Money)
    discount: Mapped[Decimal | None] = mapped_column(Money)
    total: Mapped[Decimal | None] = mapped_column(Money)
    buyer_cancel_requested: Mapped[bool] = mapped_column(default=False)
    buyer_cancel_reason: Mapped[str | None] = mapped_column(sa.Text)
    cancelled_by: Mapped[str | None] = mapped_column(sa.String(20))

    order: Mapped[AmazonOrder] = relationship(back_populates="items")

    def __repr__(self) -> str:
        return f"<AmazonOrderItem {self.order_item_id} {self.seller_sku} x{self.quantity_ordered}>"


class OrderEvent(Base):
    """One entry of an order's timeline: imported, status changed, requests to Amazon …"""

    __tablename__ = "amazon_order_events"
    __table_args__ = (sa.Index("ix_amazon_order_events_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_orders.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: What happened: ``imported``, ``status_changed``, ``buyer_cancel_requested`` …
    kind: Mapped[str] = mapped_column(sa.String(40))
    #: Who did it: ``sync``, ``admin:<name>``, ``amazon`` …
    actor: Mapped[str] = mapped_column(sa.String(120), default="sync")
    from_status: Mapped[str | None] = mapped_column(sa.String(24))
    to_status: Mapped[str | None] = mapped_column(sa.String(24))
    #: What happened, in English (for logs and readers that do not know ``params``).
    message: Mapped[str | None] = mapped_column(sa.Text)
    #: What happened, as one of our sentences and its values (``{"text": "imported",
    #: "status": "Unshipped"}``), translated when shown: see :mod:`flask_amazon_orders.events`.
    #: ``None`` in rows from before it, which are shown with their ``message``.
    params: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))

    order: Mapped[AmazonOrder] = relationship(back_populates="events")

    def __repr__(self) -> str:
        return f"<OrderEvent {self.kind} {self.from_status}->{self.to_status}>"


class FeedSubmission(Base):
    """One feed sent (or being sent) to Amazon: its document and where it stands.

    The document is built and stored before anything is sent, so a crash at
    any step resumes with the same document and the same message ids.
    """

    __tablename__ = "amazon_feed_submissions"
    __table_args__ = (sa.Index("ix_amazon_feed_submissions_store_state", "store_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    #: ``POST_ORDER_ACKNOWLEDGEMENT_DATA`` …
    feed_type: Mapped[str] = mapped_column(sa.String(60))
    #: ``built`` → ``creating`` (createFeed sent) → ``submitted`` → ``done``, or
    #: ``fatal`` / ``cancelled`` (Amazon's terminal states) and ``failed`` (given up).
    state: Mapped[str] = mapped_column(sa.String(12), default="built")
    document: Mapped[str] = mapped_column(sa.Text)
    messages: Mapped[int] = mapped_column(default=0)
    feed_document_id: Mapped[str | None] = mapped_column(sa.String(200))
    feed_id: Mapped[str | None] = mapped_column(sa.String(40))
    #: When the document was built (the orders' fresh check ended).
    built_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: When createFeed was (last) sent: a crash right after it is resumed by
    #: looking for a feed Amazon created at that time.
    create_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    processing_status: Mapped[str | None] = mapped_column(sa.String(12))
    polls: Mapped[int] = mapped_column(default=0)
    next_poll_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The processing report's summary, e.g. ``2 processed, 1 with errors``.
    result: Mapped[str | None] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<FeedSubmission {self.id} {self.feed_type} {self.state}>"


class Cancellation(Base):
    """An admin's cancellation of a whole Amazon order: stored first (the outbox),
    then sent to Amazon in a feed with the store's other cancellations."""

    __tablename__ = "amazon_cancellations"
    __table_args__ = (
        sa.Index("ix_amazon_cancellations_store_state", "store_id", "state"),
        sa.Index("ix_amazon_cancellations_order", "order_id", "id"),
        sa.UniqueConstraint("submission_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_orders.id", ondelete="CASCADE"))
    #: The feed's CancelReason: ``NoInventory``, ``BuyerCanceled`` …
    reason: Mapped[str] = mapped_column(sa.String(40))
    #: The seller's note (kept here; Amazon's feed has no field for it).
    memo: Mapped[str | None] = mapped_column(sa.Text)
    #: ``queued`` → ``sent`` → ``confirmed`` or ``rejected``.
    state: Mapped[str] = mapped_column(sa.String(12), default="queued")
    actor: Mapped[str] = mapped_column(sa.String(120), default="admin")
    #: The Amazon status and the shop order's status before the cancellation
    #: (restored if Amazon rejects it).
    status_before: Mapped[str] = mapped_column(sa.String(24))
    host_status_before: Mapped[str | None] = mapped_column(sa.String(40))
    submission_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("amazon_feed_submissions.id", ondelete="SET NULL")
    )
    message_id: Mapped[int | None] = mapped_column()
    #: How many feeds carried it (a FATAL feed's cancellations are sent again).
    attempts: Mapped[int] = mapped_column(default=0)
    #: Amazon's answer (the processing report's message) or why it was not sent.
    result: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    order: Mapped[AmazonOrder] = relationship(lazy="raise_on_sql")

    def __repr__(self) -> str:
        return f"<Cancellation {self.id} order={self.order_id} {self.reason} {self.state}>"


class Adjustment(Base):
    """A cancelled quantity and/or refund of one order item, sent to Amazon in a
    ``POST_PAYMENT_ADJUSTMENT_DATA`` feed (the same outbox and feed job as
    cancellations)."""

    __tablename__ = "amazon_adjustments"
    __table_args__ = (
        sa.Index("ix_amazon_adjustments_store_state", "store_id", "state"),
        sa.Index("ix_amazon_adjustments_order", "order_id", "id"),
        sa.UniqueConstraint("submission_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_orders.id", ondelete="CASCADE"))
    #: Amazon's order item id (AmazonOrderItemCode).
    order_item_id: Mapped[str] = mapped_column(sa.String(20))
    #: ``NoInventory`` or ``CustomerCancel``.
    reason: Mapped[str] = mapped_column(sa.String(40))
    quantity_cancelled: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    principal: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    tax: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    shipping: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    shipping_tax: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    memo: Mapped[str | None] = mapped_column(sa.Text)
    #: ``queued`` → ``sent`` → ``confirmed`` or ``rejected``.
    state: Mapped[str] = mapped_column(sa.String(12), default="queued")
    actor: Mapped[str] = mapped_column(sa.String(120), default="admin")
    submission_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("amazon_feed_submissions.id", ondelete="SET NULL")
    )
    message_id: Mapped[int | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def merchant_adjustment_item_id(self) -> str:
        """Ours, per line, the same at every retry (Amazon applies it once)."""
        return f"amazon-orders-{self.store_id}-{self.id}"

    @property
    def total(self) -> Decimal:
        return self.principal + self.tax + self.shipping + self.shipping_tax

    def __repr__(self) -> str:
        return f"<Adjustment {self.id} item={self.order_item_id} {self.state}>"


class Shipment(Base):
    """A shipment of (some of) an order's items, to be confirmed to Amazon
    (Orders v0 ``confirmShipment``): stored first, sent by the feed job's run."""

    __tablename__ = "amazon_shipments"
    __table_args__ = (
        sa.Index("ix_amazon_shipments_store_state", "store_id", "state"),
        sa.Index("ix_amazon_shipments_order", "order_id", "id"),
        sa.UniqueConstraint("order_id", "host_reference"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_orders.id", ondelete="CASCADE"))
    #: The host's reference of the shipment (idempotency: the same reference twice
    #: is the same shipment).
    host_reference: Mapped[str | None] = mapped_column(sa.String(64))
    carrier_code: Mapped[str] = mapped_column(sa.String(60))
    carrier_name: Mapped[str | None] = mapped_column(sa.String(60))
    shipping_method: Mapped[str | None] = mapped_column(sa.String(60))
    tracking_number: Mapped[str] = mapped_column(sa.String(60))
    ship_date: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: ``[{"order_item_id": …, "quantity": …}]`` as JSON.
    items: Mapped[str] = mapped_column(sa.Text)
    #: ``queued`` → ``confirmed`` or ``rejected``.
    state: Mapped[str] = mapped_column(sa.String(12), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    #: Amazon's answer, or why it is waiting.
    result: Mapped[str | None] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(sa.String(120), default="host")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def package_reference(self) -> str:
        """The ``packageReferenceId`` sent to Amazon (a positive number, unique in the
        order, the same at every retry)."""
        return str(self.id)

    def __repr__(self) -> str:
        return f"<Shipment {self.id} order={self.order_id} {self.state}>"


class StoreEvent(Base):
    """One entry of a store's activity log: connected, settings changed, sync requested …

    Every admin action is recorded with the acting user (``actor``)."""

    __tablename__ = "amazon_store_events"
    __table_args__ = (sa.Index("ix_amazon_store_events_store", "store_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: ``store_connected``, ``settings_changed``, ``sync_requested`` …
    kind: Mapped[str] = mapped_column(sa.String(40))
    actor: Mapped[str] = mapped_column(sa.String(120), default="admin")
    #: What happened, in English.
    message: Mapped[str | None] = mapped_column(sa.Text)
    #: What happened, translated when shown (as :attr:`OrderEvent.params`).
    params: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))

    def __repr__(self) -> str:
        return f"<StoreEvent {self.kind} store={self.store_id}>"


class SyncRun(Base):
    """One run of the order sync for one store."""

    __tablename__ = "amazon_sync_runs"
    __table_args__ = (sa.Index("ix_amazon_sync_runs_store", "store_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    #: ``cli``, ``worker``, ``admin``, ``api`` …
    trigger: Mapped[str] = mapped_column(sa.String(20), default="api")
    #: ``running``, ``succeeded``, ``failed``, ``skipped`` (another sync held the
    #: store) or ``paused`` (it gave way to other stores while Amazon's rate limit
    #: refills; the next run goes on from its next page, at ``resume_at``).
    status: Mapped[str] = mapped_column(sa.String(12), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    pages: Mapped[int] = mapped_column(default=0)
    orders_seen: Mapped[int] = mapped_column(default=0)
    orders_created: Mapped[int] = mapped_column(default=0)
    orders_updated: Mapped[int] = mapped_column(default=0)
    api_calls: Mapped[int] = mapped_column(default=0)
    throttled: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    error_code: Mapped[str | None] = mapped_column(sa.String(60))
    #: When a ``paused`` run's next page is allowed by Amazon's rate limit.
    resume_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<SyncRun {self.id} store={self.store_id} {self.status}>"


class UnreadableOrder(Base):
    """An order Amazon listed that could not be read (a field missing, of the wrong
    type, out of range …): nothing of it is stored. The sync names it on its run and
    reads it again (``getOrder``) at every run until it can be stored."""

    __tablename__ = "amazon_unreadable_orders"
    __table_args__ = (sa.UniqueConstraint("store_id", "amazon_order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("amazon_stores.id", ondelete="CASCADE"))
    amazon_order_id: Mapped[str] = mapped_column(sa.String(32))
    #: Why it could not be read, naming the field.
    error: Mapped[str] = mapped_column(sa.Text)
    #: How often it was read and could not be stored.
    attempts: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_tried_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<UnreadableOrder {self.amazon_order_id} store={self.store_id}>"


def select_store_orders(
    session: Any, store_id: int, amazon_order_ids: list[str], *columns: Any
) -> sa.Select[Any]:
    """``SELECT columns`` of the store's orders with these Amazon order ids.

    On PostgreSQL the ids are one array joined as a table, so each is one lookup
    in the (store, Amazon order id) key: an ``IN`` list of parameters, prepared
    once and planned before the table has statistics (a first import), checks
    every id against every order of the store instead, and a page took ten times
    as long.
    """
    if session.get_bind().dialect.name != "postgresql":
        return sa.select(*columns).where(
            AmazonOrder.store_id == store_id, AmazonOrder.amazon_order_id.in_(amazon_order_ids)
        )
    wanted = (
        sa.func.unnest(sa.literal(amazon_order_ids, postgresql.ARRAY(sa.String)))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    return (
        sa.select(*columns)
        .select_from(AmazonOrder)
        .join(
            wanted,
            sa.and_(
                AmazonOrder.store_id == store_id, AmazonOrder.amazon_order_id == wanted.c.value
            ),
        )
    )


def bulk_insert(session: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows of one shape (the same keys) into ``table``, in the session's
    transaction, with no ids returned.

    On PostgreSQL through psycopg this is one ``COPY … FROM STDIN`` (measured: 40 %
    of the time of an ``executemany``, for pages of 300 items); elsewhere an
    ``executemany``. Either
    way each column's type converts its value as an ``INSERT`` would, and a column
    missing from the rows gets its Python-side default.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        session.execute(sa.insert(table), rows)
        return
    names = list(rows[0])
    defaults = [c for c in table.c if c.name not in rows[0] and c.default is not None]
    for column in defaults:
        if not (column.default.is_scalar or column.default.is_callable):  # type: ignore[union-attr]
            raise TypeError(f"bulk_insert cannot compute the default of {column}")
    columns = [table.c[name] for name in names] + defaults
    processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
    quote = dialect.identifier_preparer.quote
    target = dialect.identifier_preparer.format_table(table)
    statement = f"COPY {target} ({', '.join(quote(c.name) for c in columns)}) FROM STDIN"
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            values = [row[name] for name in names]
            for column in defaults:
                default: Any = column.default
                values.append(default.arg if default.is_scalar else default.arg(None))
            copy.write_row(
                [
                    value if process is None else process(value)
                    for value, process in zip(values, processors, strict=True)
                ]
            )
