"""The schema of Flask-Amazon-Orders 0.1: stores, orders, items, timelines,
cancellations, adjustments, shipments, feed submissions, sync runs.

Revision ID: ao0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flask_amazon_orders import models

revision = "ao0001"
down_revision = None
branch_labels = ("amazon_orders",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "amazon_stores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("seller_id", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=2), nullable=False),
        sa.Column("marketplace_id", sa.String(length=20), nullable=False),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=True),
        sa.Column("order_import_enabled", sa.Boolean(), nullable=False),
        sa.Column("import_initial_status", sa.String(length=40), nullable=False),
        sa.Column("order_number_source", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("connected_at", models.UTCDateTime(), nullable=False),
        sa.Column("sync_cursor", models.UTCDateTime(), nullable=True),
        sa.Column("sync_window_after", models.UTCDateTime(), nullable=True),
        sa.Column("sync_window_before", models.UTCDateTime(), nullable=True),
        sa.Column("sync_page_token", sa.Text(), nullable=True),
        sa.Column("sync_page_token_at", models.UTCDateTime(), nullable=True),
        sa.Column("sync_lease_until", models.UTCDateTime(), nullable=True),
        sa.Column("sync_lease_owner", sa.String(length=32), nullable=True),
        sa.Column("feed_lease_until", models.UTCDateTime(), nullable=True),
        sa.Column("feed_lease_owner", sa.String(length=32), nullable=True),
        sa.Column("last_sync_at", models.UTCDateTime(), nullable=True),
        sa.Column("last_sync_succeeded_at", models.UTCDateTime(), nullable=True),
        sa.Column("last_sync_error", sa.Text(), nullable=True),
        sa.Column("last_sync_error_needs_action", sa.Boolean(), nullable=False),
        sa.Column("sync_requested_at", models.UTCDateTime(), nullable=True),
        sa.Column("created_at", models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_stores")),
        sa.UniqueConstraint(
            "seller_id", "marketplace_id", name=op.f("uq_amazon_stores_seller_id_marketplace_id")
        ),
    )
    op.create_table(
        "amazon_feed_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("feed_type", sa.String(length=60), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("feed_document_id", sa.String(length=200), nullable=True),
        sa.Column("feed_id", sa.String(length=40), nullable=True),
        sa.Column("built_at", models.UTCDateTime(), nullable=True),
        sa.Column("create_sent_at", models.UTCDateTime(), nullable=True),
        sa.Column("processing_status", sa.String(length=12), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", models.UTCDateTime(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_feed_submissions_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_feed_submissions")),
    )
    op.create_index(
        "ix_amazon_feed_submissions_store_state",
        "amazon_feed_submissions",
        ["store_id", "state"],
        unique=False,
    )
    op.create_table(
        "amazon_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("amazon_order_id", sa.String(length=32), nullable=False),
        sa.Column("seller_order_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("amazon_status", sa.String(length=24), nullable=False),
        sa.Column("fulfillment_channel", sa.String(length=8), nullable=True),
        sa.Column("service_level", sa.String(length=40), nullable=True),
        sa.Column("marketplace_id", sa.String(length=20), nullable=True),
        sa.Column("sales_channel", sa.String(length=40), nullable=True),
        sa.Column("programs", sa.String(length=255), nullable=True),
        sa.Column("purchased_at", models.UTCDateTime(), nullable=False),
        sa.Column("amazon_updated_at", models.UTCDateTime(), nullable=False),
        sa.Column("earliest_ship_at", models.UTCDateTime(), nullable=True),
        sa.Column("latest_ship_at", models.UTCDateTime(), nullable=True),
        sa.Column("earliest_delivery_at", models.UTCDateTime(), nullable=True),
        sa.Column("latest_delivery_at", models.UTCDateTime(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("order_total", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("items_count", sa.Integer(), nullable=False),
        sa.Column("ship_country", sa.String(length=2), nullable=True),
        sa.Column("buyer_cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("buyer_cancel_reason", sa.Text(), nullable=True),
        sa.Column("host_order_ref", sa.String(length=64), nullable=True),
        sa.Column("host_order_number", sa.String(length=64), nullable=True),
        sa.Column("host_import_state", sa.String(length=12), nullable=True),
        sa.Column("host_import_error", sa.Text(), nullable=True),
        sa.Column("host_import_attempts", sa.Integer(), nullable=False),
        sa.Column("host_imported_at", models.UTCDateTime(), nullable=True),
        sa.Column("host_status", sa.String(length=40), nullable=True),
        sa.Column("cancellation_state", sa.String(length=12), nullable=True),
        sa.Column("buyer_data_encrypted", sa.Text(), nullable=True),
        sa.Column("first_seen_at", models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_orders_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_orders")),
        sa.UniqueConstraint(
            "store_id", "amazon_order_id", name=op.f("uq_amazon_orders_store_id_amazon_order_id")
        ),
    )
    op.create_index(
        "ix_amazon_orders_store_host_number",
        "amazon_orders",
        ["store_id", "host_order_number"],
        unique=False,
    )
    op.create_index(
        "ix_amazon_orders_store_import",
        "amazon_orders",
        ["store_id", "host_import_state", "purchased_at"],
        unique=False,
    )
    op.create_index(
        "ix_amazon_orders_store_purchased",
        "amazon_orders",
        ["store_id", "purchased_at"],
        unique=False,
    )
    op.create_index(
        "ix_amazon_orders_store_status", "amazon_orders", ["store_id", "status"], unique=False
    )
    op.create_index(
        "ix_amazon_orders_store_status_purchased",
        "amazon_orders",
        ["store_id", "status", "purchased_at"],
        unique=False,
    )
    op.create_table(
        "amazon_store_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("created_at", models.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_store_events_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_store_events")),
    )
    op.create_index(
        "ix_amazon_store_events_store", "amazon_store_events", ["store_id", "id"], unique=False
    )
    op.create_table(
        "amazon_sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("started_at", models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", models.UTCDateTime(), nullable=True),
        sa.Column("window_after", models.UTCDateTime(), nullable=True),
        sa.Column("window_before", models.UTCDateTime(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("orders_seen", sa.Integer(), nullable=False),
        sa.Column("orders_created", sa.Integer(), nullable=False),
        sa.Column("orders_updated", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_sync_runs_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_sync_runs")),
    )
    op.create_index(
        "ix_amazon_sync_runs_store", "amazon_sync_runs", ["store_id", "id"], unique=False
    )
    op.create_table(
        "amazon_adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_item_id", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("quantity_cancelled", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("principal", models.Money(precision=18, scale=4), nullable=False),
        sa.Column("tax", models.Money(precision=18, scale=4), nullable=False),
        sa.Column("shipping", models.Money(precision=18, scale=4), nullable=False),
        sa.Column("shipping_tax", models.Money(precision=18, scale=4), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["amazon_orders.id"],
            name=op.f("fk_amazon_adjustments_order_id_amazon_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_adjustments_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["amazon_feed_submissions.id"],
            name=op.f("fk_amazon_adjustments_submission_id_amazon_feed_submissions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_adjustments")),
        sa.UniqueConstraint(
            "submission_id",
            "message_id",
            name=op.f("uq_amazon_adjustments_submission_id_message_id"),
        ),
    )
    op.create_index(
        "ix_amazon_adjustments_order", "amazon_adjustments", ["order_id", "id"], unique=False
    )
    op.create_index(
        "ix_amazon_adjustments_store_state",
        "amazon_adjustments",
        ["store_id", "state"],
        unique=False,
    )
    op.create_table(
        "amazon_cancellations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("status_before", sa.String(length=24), nullable=False),
        sa.Column("host_status_before", sa.String(length=40), nullable=True),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["amazon_orders.id"],
            name=op.f("fk_amazon_cancellations_order_id_amazon_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_cancellations_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["amazon_feed_submissions.id"],
            name=op.f("fk_amazon_cancellations_submission_id_amazon_feed_submissions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_cancellations")),
        sa.UniqueConstraint(
            "submission_id",
            "message_id",
            name=op.f("uq_amazon_cancellations_submission_id_message_id"),
        ),
    )
    op.create_index(
        "ix_amazon_cancellations_order", "amazon_cancellations", ["order_id", "id"], unique=False
    )
    op.create_index(
        "ix_amazon_cancellations_store_state",
        "amazon_cancellations",
        ["store_id", "state"],
        unique=False,
    )
    op.create_table(
        "amazon_order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("created_at", models.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["amazon_orders.id"],
            name=op.f("fk_amazon_order_events_order_id_amazon_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_order_events")),
    )
    op.create_index(
        "ix_amazon_order_events_order", "amazon_order_events", ["order_id", "id"], unique=False
    )
    op.create_table(
        "amazon_order_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_item_id", sa.String(length=20), nullable=False),
        sa.Column("asin", sa.String(length=20), nullable=True),
        sa.Column("seller_sku", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("condition", sa.String(length=20), nullable=True),
        sa.Column("quantity_ordered", sa.Integer(), nullable=False),
        sa.Column("quantity_shipped", sa.Integer(), nullable=False),
        sa.Column("unit_price", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("item_price", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("shipping_price", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("item_tax", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("shipping_tax", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("discount", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("total", models.Money(precision=18, scale=4), nullable=True),
        sa.Column("buyer_cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("buyer_cancel_reason", sa.Text(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["amazon_orders.id"],
            name=op.f("fk_amazon_order_items_order_id_amazon_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_order_items")),
        sa.UniqueConstraint(
            "order_id", "order_item_id", name=op.f("uq_amazon_order_items_order_id_order_item_id")
        ),
    )
    op.create_index(
        "ix_amazon_order_items_sku_order",
        "amazon_order_items",
        ["seller_sku", "order_id"],
        unique=False,
    )
    op.create_table(
        "amazon_shipments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("host_reference", sa.String(length=64), nullable=True),
        sa.Column("carrier_code", sa.String(length=60), nullable=False),
        sa.Column("carrier_name", sa.String(length=60), nullable=True),
        sa.Column("shipping_method", sa.String(length=60), nullable=True),
        sa.Column("tracking_number", sa.String(length=60), nullable=False),
        sa.Column("ship_date", models.UTCDateTime(), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("created_at", models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["amazon_orders.id"],
            name=op.f("fk_amazon_shipments_order_id_amazon_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["amazon_stores.id"],
            name=op.f("fk_amazon_shipments_store_id_amazon_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amazon_shipments")),
        sa.UniqueConstraint(
            "order_id", "host_reference", name=op.f("uq_amazon_shipments_order_id_host_reference")
        ),
    )
    op.create_index(
        "ix_amazon_shipments_order", "amazon_shipments", ["order_id", "id"], unique=False
    )
    op.create_index(
        "ix_amazon_shipments_store_state", "amazon_shipments", ["store_id", "state"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_amazon_shipments_store_state", table_name="amazon_shipments")
    op.drop_index("ix_amazon_shipments_order", table_name="amazon_shipments")
    op.drop_table("amazon_shipments")
    op.drop_index("ix_amazon_order_items_sku_order", table_name="amazon_order_items")
    op.drop_table("amazon_order_items")
    op.drop_index("ix_amazon_order_events_order", table_name="amazon_order_events")
    op.drop_table("amazon_order_events")
    op.drop_index("ix_amazon_cancellations_store_state", table_name="amazon_cancellations")
    op.drop_index("ix_amazon_cancellations_order", table_name="amazon_cancellations")
    op.drop_table("amazon_cancellations")
    op.drop_index("ix_amazon_adjustments_store_state", table_name="amazon_adjustments")
    op.drop_index("ix_amazon_adjustments_order", table_name="amazon_adjustments")
    op.drop_table("amazon_adjustments")
    op.drop_index("ix_amazon_sync_runs_store", table_name="amazon_sync_runs")
    op.drop_table("amazon_sync_runs")
    op.drop_index("ix_amazon_store_events_store", table_name="amazon_store_events")
    op.drop_table("amazon_store_events")
    op.drop_index("ix_amazon_orders_store_status_purchased", table_name="amazon_orders")
    op.drop_index("ix_amazon_orders_store_status", table_name="amazon_orders")
    op.drop_index("ix_amazon_orders_store_purchased", table_name="amazon_orders")
    op.drop_index("ix_amazon_orders_store_import", table_name="amazon_orders")
    op.drop_index("ix_amazon_orders_store_host_number", table_name="amazon_orders")
    op.drop_table("amazon_orders")
    op.drop_index("ix_amazon_feed_submissions_store_state", table_name="amazon_feed_submissions")
    op.drop_table("amazon_feed_submissions")
    op.drop_table("amazon_stores")
