"""Buyer-data retention, feed-job errors on the dashboard, unreadable orders,
events that are translated when shown, sync runs that give way to other stores
under Amazon's rate limit.

Orders already closed (Shipped, Canceled, Unfulfillable) get ``closed_at`` from
Amazon's last change of them, so the purge job counts their retention period
from there. Order and store events get ``params`` (their sentence and its
values); the events from before keep ``params`` empty and are shown with their
English ``message``.

Revision ID: ao0002
Revises: ao0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flask_amazon_orders import models

revision = "ao0002"
down_revision = "ao0001"
branch_labels = None
depends_on = None

FINAL = ("Shipped", "Canceled", "Unfulfillable")


def upgrade() -> None:
    # Plain ADD COLUMN and CREATE INDEX: no table is copied (on SQLite a copy of
    # amazon_orders would delete its items through their ON DELETE CASCADE).
    op.add_column("amazon_stores", sa.Column("last_feed_error", sa.Text(), nullable=True))
    op.add_column(
        "amazon_stores",
        sa.Column(
            "last_feed_error_needs_action", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column("amazon_orders", sa.Column("closed_at", models.UTCDateTime(), nullable=True))
    op.add_column(
        "amazon_orders", sa.Column("buyer_data_purged_at", models.UTCDateTime(), nullable=True)
    )
    op.create_index(
        "ix_amazon_orders_purge", "amazon_orders", ["buyer_data_purged_at", "closed_at"]
    )
    orders = sa.table(
        "amazon_orders",
        sa.column("status", sa.String()),
        sa.column("amazon_updated_at", sa.DateTime()),
        sa.column("closed_at", sa.DateTime()),
    )
    op.execute(
        orders.update()
        .where(orders.c.status.in_(FINAL), orders.c.closed_at.is_(None))
        .values(closed_at=orders.c.amazon_updated_at)
    )
    for table in ("amazon_order_events", "amazon_store_events"):
        op.add_column(table, sa.Column("params", sa.JSON(), nullable=True))
    op.create_table(
        "amazon_unreadable_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("amazon_order_id", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", models.UTCDateTime(), nullable=False),
        sa.Column("last_tried_at", models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_unreadable_orders_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_unreadable_orders")),
        sa.UniqueConstraint(
            "store_id",
            "amazon_order_id",
            name=op.f("uq_amazon_unreadable_orders_store_id_amazon_order_id"),
        ),
    )
    op.add_column("amazon_sync_runs", sa.Column("resume_at", models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("amazon_sync_runs", "resume_at")
    op.drop_table("amazon_unreadable_orders")
    for table in ("amazon_store_events", "amazon_order_events"):
        op.drop_column(table, "params")
    op.drop_index("ix_amazon_orders_purge", table_name="amazon_orders")
    # DROP COLUMN (SQLite 3.35 and newer, PostgreSQL), never a copy of the table.
    op.drop_column("amazon_orders", "buyer_data_purged_at")
    op.drop_column("amazon_orders", "closed_at")
    op.drop_column("amazon_stores", "last_feed_error_needs_action")
    op.drop_column("amazon_stores", "last_feed_error")
