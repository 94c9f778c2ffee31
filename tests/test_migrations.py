"""The shipped migrations: they make exactly the models' schema, on SQLite and
PostgreSQL, and upgrade a database holding data of the first schema without loss."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_amazon_orders import AmazonOrders, events, get_extension, migrations
from flask_amazon_orders.models import AmazonOrder, OrderEvent, Store, StoreEvent, metadata


@pytest.fixture
def engine(database_url: str):
    """The test database, emptied of every table before and after."""
    made = sa.create_engine(database_url)

    def clean() -> None:
        with made.begin() as conn:
            metadata.drop_all(conn)
            for name in (migrations.VERSION_TABLE, "alembic_version", "shop_things"):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))

    clean()
    yield made
    clean()
    made.dispose()


@pytest.fixture
def keep_logging():
    """Flask-Migrate's env.py runs logging.config.fileConfig, which turns off every
    logger that exists and replaces the root's handlers: put them back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = {
        name: (logger.disabled, logger.level, logger.handlers[:], logger.propagate)
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:], root.level = handlers, level
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            disabled, lvl, own, propagate = loggers.get(name, (False, logging.NOTSET, [], True))
            logger.disabled, logger.level, logger.propagate = disabled, lvl, propagate
            logger.handlers[:] = own


def _app(engine: sa.Engine, name: str) -> tuple[Flask, SQLAlchemy]:
    """An app on the test database whose connections close when released."""
    app = Flask(name)
    app.config.update(
        SECRET_KEY="x",
        SQLALCHEMY_DATABASE_URI=engine.url.render_as_string(hide_password=False),
        SQLALCHEMY_ENGINE_OPTIONS={"poolclass": sa.pool.NullPool},
    )
    return app, SQLAlchemy(app)


def _differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [
            diff
            for diff in compare_metadata(context, metadata)
            # Only the extension's tables (a host's own tables are not ours to judge).
            if "amazon_" in repr(diff) and migrations.VERSION_TABLE not in repr(diff)
        ]


def test_the_migrations_make_exactly_the_models_schema(engine):
    migrations.upgrade(engine)
    assert migrations.current(engine) == "ao0002"
    assert _differences(engine) == []


def test_downgrade_and_upgrade_again(engine):
    migrations.upgrade(engine)
    migrations.downgrade(engine, "ao0001")
    assert migrations.current(engine) == "ao0001"
    assert "closed_at" not in {c["name"] for c in sa.inspect(engine).get_columns("amazon_orders")}
    for table in ("amazon_order_events", "amazon_store_events"):
        assert "params" not in {c["name"] for c in sa.inspect(engine).get_columns(table)}
    migrations.upgrade(engine)
    assert _differences(engine) == []


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)  # naive UTC, as the tables keep it


def test_upgrade_keeps_the_data_of_the_first_schema(engine, tmp_path: Path):
    migrations.upgrade(engine, "ao0001")
    tables = sa.MetaData()
    tables.reflect(engine)
    stores, orders, items = (
        tables.tables[name] for name in ("amazon_stores", "amazon_orders", "amazon_order_items")
    )
    order_events = tables.tables["amazon_order_events"]
    store_events = tables.tables["amazon_store_events"]
    now = _t("2026-10-01T12:00:00")
    with engine.begin() as conn:
        conn.execute(
            stores.insert(),
            {
                "id": 1,
                "name": "Amazon DE",
                "seller_id": "A2OLDSELLER",
                "region": "eu",
                "marketplace_id": "A1PA6795UKMFR9",
                "order_import_enabled": True,
                "import_initial_status": "Processing",
                "order_number_source": "host",
                "active": True,
                "connected_at": now,
                "last_sync_error_needs_action": False,
                "created_at": now,
                "updated_at": now,
            },
        )
        for n, (status, updated) in enumerate(
            [("Unshipped", "2026-10-02T08:00:00"), ("Shipped", "2026-10-03T09:30:00")]
        ):
            conn.execute(
                orders.insert(),
                {
                    "id": n + 1,
                    "store_id": 1,
                    "amazon_order_id": f"028-000000{n}-0000000",
                    "status": status,
                    "amazon_status": status.upper(),
                    "purchased_at": now,
                    "amazon_updated_at": _t(updated),
                    "currency": "EUR",
                    "order_total": "17.80" if engine.dialect.name == "sqlite" else Decimal("17.80"),
                    "items_count": 2,
                    "buyer_cancel_requested": False,
                    "host_import_attempts": 0,
                    "first_seen_at": now,
                    "updated_at": now,
                },
            )
            conn.execute(
                items.insert(),
                {
                    "order_id": n + 1,
                    "order_item_id": f"1000{n}",
                    "seller_sku": "TEA-GREEN-100",
                    "quantity_ordered": 2,
                    "quantity_shipped": 2 if status == "Shipped" else 0,
                    "buyer_cancel_requested": False,
                },
            )
            conn.execute(
                order_events.insert(),
                {
                    "order_id": n + 1,
                    "created_at": now,
                    "kind": "imported",
                    "actor": "sync",
                    "message": f"Imported from Amazon as {status}.",
                },
            )
        conn.execute(
            store_events.insert(),
            {
                "store_id": 1,
                "created_at": now,
                "kind": "settings_changed",
                "actor": "admin:ann",
                "message": "order import on.",
            },
        )
    migrations.upgrade(engine)
    assert _differences(engine) == []
    # The data is all there, and readable through the extension's models.
    app, db = _app(engine, "upgraded")
    AmazonOrders(app, db=db)
    with app.app_context():
        session = get_extension().session
        store = session.get(Store, 1)
        assert store.name == "Amazon DE" and store.last_feed_error_needs_action is False
        found = {o.amazon_order_id: o for o in session.scalars(sa.select(AmazonOrder))}
        assert len(found) == 2
        shipped, open_order = found["028-0000001-0000000"], found["028-0000000-0000000"]
        assert shipped.order_total == Decimal("17.80")
        assert [item.quantity_shipped for item in shipped.items] == [2]
        # An order closed before the upgrade counts its retention from Amazon's last change.
        assert shipped.closed_at == shipped.amazon_updated_at
        assert open_order.closed_at is None
        assert open_order.buyer_data_purged_at is None
        # The events keep their English message and have no params: they are shown
        # with the message.
        timeline = session.scalars(sa.select(OrderEvent).order_by(OrderEvent.id)).all()
        assert [(e.params, events.render(e)) for e in timeline] == [
            (None, "Imported from Amazon as Unshipped."),
            (None, "Imported from Amazon as Shipped."),
        ]
        logged = session.scalars(sa.select(StoreEvent)).one()
        assert (logged.params, events.render(logged)) == (None, "order import on.")
        session.remove()
        db.engine.dispose()


def test_the_cli_applies_and_shows_the_revision(engine, tmp_path):
    app, db = _app(engine, "cli")
    AmazonOrders(app, db=db)
    runner = app.test_cli_runner()
    assert "none" in runner.invoke(args=["amazon-orders", "db", "current"]).output
    result = runner.invoke(args=["amazon-orders", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "ao0002" in result.output
    assert runner.invoke(args=["amazon-orders", "db", "current"]).output.strip() == "ao0002"


def test_tables_made_by_create_all_are_stamped_not_upgraded(engine):
    with engine.begin() as conn:
        metadata.create_all(conn)
    app, db = _app(engine, "stamp")
    AmazonOrders(app, db=db)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["amazon-orders", "db", "upgrade"])
    assert refused.exit_code == 1 and "db stamp" in refused.output
    stamped = runner.invoke(args=["amazon-orders", "db", "stamp"])
    assert stamped.exit_code == 0 and "ao0002" in stamped.output
    assert runner.invoke(args=["amazon-orders", "db", "upgrade"]).exit_code == 0
    assert _differences(engine) == []
    with app.app_context():
        db.engine.dispose()
    with app.app_context():
        db.engine.dispose()


# Flask-Migrate's own env.py template still tries Flask-SQLAlchemy's old get_engine first.
@pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")
def test_a_flask_migrate_host_keeps_its_history_and_ours_apart(engine, tmp_path, keep_logging):
    """A shop with Flask-Migrate autogenerates its own revisions without the
    extension's tables (``include_object``) and runs both histories on deploy."""
    from flask_migrate import Migrate, init, migrate, upgrade

    app, db = _app(engine, "shop_with_migrate")

    class Thing(db.Model):  # type: ignore[name-defined]
        __tablename__ = "shop_things"
        id = sa.Column(sa.Integer, primary_key=True)

    AmazonOrders(app, db=db)
    directory = str(tmp_path / "migrations")
    Migrate(app, db, directory=directory, include_object=migrations.include_object)
    before = sorted(p.name for p in migrations.VERSIONS.glob("*.py"))
    with app.app_context():
        init(directory=directory)
        migrate(directory=directory, message="shop things")
        written = list((Path(directory) / "versions").glob("*.py"))
        assert len(written) == 1
        text = written[0].read_text()
        assert "shop_things" in text and "amazon_" not in text
        upgrade(directory=directory)
    result = app.test_cli_runner().invoke(args=["amazon-orders", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        names = set(sa.inspect(db.engine).get_table_names())
        assert {"shop_things", "alembic_version", migrations.VERSION_TABLE} <= names
        assert {"amazon_orders", "amazon_unreadable_orders"} <= names
        # A second autogenerate of the shop finds nothing of ours to change.
        migrate(directory=directory, message="nothing")
        assert len(list((Path(directory) / "versions").glob("*.py"))) == 1
        db.engine.dispose()
    assert sorted(p.name for p in migrations.VERSIONS.glob("*.py")) == before
