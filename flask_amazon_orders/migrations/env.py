"""Alembic environment of ``flask amazon-orders db``: the extension's own history,
in its own version table, on the app's database connection."""

from __future__ import annotations

from alembic import context

from flask_amazon_orders.models import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=config.attributes["version_table"],
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
