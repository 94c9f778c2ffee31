"""The ``flask amazon-orders`` commands."""

from __future__ import annotations

import sqlalchemy as sa

from flask_amazon_orders.models import AmazonOrder, Store


def test_store_add_list_and_sync(app, db, seller, sandbox):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "amazon-orders",
            "store",
            "add",
            "--name",
            "Amazon DE",
            "--seller-id",
            seller["seller_id"],
            "--marketplace",
            "DE",
        ],
        input=seller["refresh_token"] + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "Connected store" in result.output
    assert seller["refresh_token"] not in result.output

    listing = runner.invoke(args=["amazon-orders", "store", "list"])
    assert listing.exit_code == 0
    assert "Amazon DE" in listing.output and seller["seller_id"] in listing.output
    assert "never" in listing.output
    assert seller["refresh_token"] not in listing.output

    sandbox.control.generate_orders(seller["seller_id"], 120, seed=21)
    synced = runner.invoke(args=["amazon-orders", "sync", "--store", "Amazon DE"])
    assert synced.exit_code == 0, synced.output
    assert "page 1: 100 orders, 100 new" in synced.output
    assert "page 2: 20 orders, 20 new" in synced.output
    assert "120 orders seen, 120 new" in synced.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AmazonOrder)) == 120


def test_store_add_refuses_bad_input_cleanly(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "amazon-orders",
            "store",
            "add",
            "--name",
            "X",
            "--seller-id",
            "A1VALIDSELLER",
            "--marketplace",
            "Atlantis",
            "--refresh-token",
            "tok",
        ]
    )
    assert result.exit_code == 1
    assert "Unknown Amazon marketplace 'Atlantis'" in result.output
    assert "Traceback" not in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Store)) == 0


def test_sync_failure_exits_non_zero_with_the_reason(app, store, seller, sandbox):
    sandbox.control.revoke_seller(seller["seller_id"])
    result = app.test_cli_runner().invoke(args=["amazon-orders", "sync"])
    assert result.exit_code == 1
    assert "Authorize the app again" in result.output
    assert "Sync failed for: Amazon DE" in result.output


def test_worker_once_exits_non_zero_when_a_sync_failed(app, store, seller, sandbox):
    sandbox.control.revoke_seller(seller["seller_id"])
    result = app.test_cli_runner().invoke(args=["amazon-orders", "worker", "--once"])
    assert result.exit_code == 1
    assert result.output.startswith("Amazon DE: failed - ")
    assert "Authorize the app again" in result.output


def test_sync_unknown_store(app, db):
    result = app.test_cli_runner().invoke(args=["amazon-orders", "sync", "--store", "nope"])
    assert result.exit_code == 1
    assert "No store 'nope'" in result.output


def test_worker_once_and_generate_key(app, store, seller, sandbox, db):
    sandbox.control.generate_orders(seller["seller_id"], 7, seed=22)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["amazon-orders", "worker", "--once"])
    assert result.exit_code == 0
    assert result.output == "Amazon DE: succeeded\n"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AmazonOrder)) == 7
    key = runner.invoke(args=["amazon-orders", "generate-key"]).output.strip()
    assert len(key) == 44


def test_store_settings_show_change_and_refuse_bad_values(app, store):
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["amazon-orders", "store", "settings", "Amazon DE"])
    assert shown.exit_code == 0
    assert "order import off" in shown.output and "'Processing'" in shown.output
    changed = runner.invoke(
        args=[
            "amazon-orders",
            "store",
            "settings",
            str(store.id),
            "--initial-status",
            "New",
            "--number-source",
            "amazon",
        ]
    )
    assert changed.exit_code == 0, changed.output
    assert "start as 'New'" in changed.output and "numbers from amazon" in changed.output
    bad = runner.invoke(args=["amazon-orders", "store", "settings", "1", "--initial-status", " "])
    assert bad.exit_code == 1 and "1 to 40 characters" in bad.output
    on = runner.invoke(args=["amazon-orders", "store", "settings", "Amazon DE", "--import"])
    # This test app registered no host adapter: say so loudly, keep the toggle on.
    assert on.exit_code == 0
    assert "registered no host adapter" in on.output
    assert "order import on" in on.output


def test_sync_warns_when_import_is_on_but_no_host_adapter_is_registered(app, store, sandbox):
    from flask_amazon_orders.services.importing import set_order_import

    set_order_import(store, True)
    result = app.test_cli_runner().invoke(args=["amazon-orders", "sync"])
    assert result.exit_code == 0
    assert "Warning: Order import is enabled, but the shop registered no host adapter" in (
        result.output
    )
