"""The extension's schema history, as Alembic migrations.

``flask amazon-orders db upgrade`` (or :func:`upgrade`) brings the ``amazon_*``
tables to the current version. The extension keeps its version in its own table,
``amazon_orders_alembic_version``, so its history runs beside a shop's own
Flask-Migrate / Alembic history without touching it: run both on deploy, and pass
:func:`include_object` to the shop's Alembic so that its autogenerate leaves the
extension's tables alone::

    Migrate(app, db, include_object=flask_amazon_orders.migrations.include_object)

Needs Alembic (``pip install flask-amazon-orders[migrations]``; Flask-Migrate
brings it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: The folder of the revision files (for ``version_locations``).
VERSIONS = Path(__file__).resolve().parent / "versions"
#: The version table of ``flask amazon-orders db``.
VERSION_TABLE = "amazon_orders_alembic_version"


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """For a shop's Alembic ``include_object``: everything but the extension's tables
    (``amazon_*``, with their columns, indexes and constraints) and its version table."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not str(table or "").startswith("amazon_")


def _alembic() -> Any:
    try:
        import alembic.command
        import alembic.config
        import alembic.migration
    except ImportError:
        raise ImportError(
            "Migrations need Alembic: pip install flask-amazon-orders[migrations]"
        ) from None
    return alembic


def _config(connection: Any) -> Any:
    config = _alembic().config.Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(Path(__file__).resolve().parent))
    config.set_main_option("version_locations", str(VERSIONS))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = VERSION_TABLE
    return config


class UnversionedTablesError(RuntimeError):
    """The ``amazon_*`` tables exist but no revision is recorded for them."""


def upgrade(engine: Any, revision: str = "heads") -> None:
    """Bring the extension's tables on ``engine`` to ``revision`` (default: the newest).

    :raises UnversionedTablesError: the tables exist without a recorded revision
        (made by ``db.create_all()``): :func:`stamp` them with the revision they
        are at first.
    """
    command = _alembic().command
    with engine.connect() as connection:
        unversioned = current(connection) is None and sa.inspect(connection).has_table(
            "amazon_stores"
        )
    if unversioned:
        raise UnversionedTablesError(
            "The amazon_* tables exist but carry no revision (db.create_all() made them). "
            "If they are this version's, record that with 'flask amazon-orders db stamp "
            "heads'; then upgrade."
        )
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def stamp(engine: Any, revision: str = "heads") -> None:
    """Record that the extension's tables are at ``revision``, changing nothing else."""
    command = _alembic().command
    with engine.begin() as connection:
        command.stamp(_config(connection), revision)


def downgrade(engine: Any, revision: str) -> None:
    """Take the extension's tables on ``engine`` back to ``revision``."""
    command = _alembic().command
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def current(bind: Any) -> str | None:
    """The revision the extension's tables are at (``None``: none yet), on an engine
    or a connection."""
    migration = _alembic().migration
    if isinstance(bind, sa.Engine):
        with bind.connect() as connection:
            return current(connection)
    context = migration.MigrationContext.configure(bind, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
