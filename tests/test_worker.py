"""The embedded background worker."""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa
from helpers import connect_store

from flask_amazon_orders.models import AmazonOrder, SyncRun


def test_worker_syncs_every_store_on_its_interval_and_stops(app_factory, seller, sandbox):
    app = app_factory(AMAZON_ORDERS_EMBEDDED_WORKER=True, AMAZON_ORDERS_SYNC_INTERVAL_SECONDS=1)
    ext = app.extensions["amazon_orders"].extension
    with app.app_context():
        connect_store(seller, name="Worker")
        worker = ext.worker
    sandbox.control.generate_orders(seller["seller_id"], 40, seed=31)
    assert worker is not None and not worker.running

    # The first request starts it (so CLI commands and the reloader do not).
    app.test_client().get("/does-not-matter")
    try:
        deadline = time.monotonic() + 10
        while worker.rounds < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.rounds >= 2
        now = dt.datetime.now(dt.timezone.utc)
        sandbox.control.generate_orders(
            seller["seller_id"],
            5,
            seed=32,
            start=(now - dt.timedelta(seconds=5)).isoformat(),
            end=now.isoformat(),
        )
        worker.wake()
        deadline = time.monotonic() + 10
        with app.app_context():
            while time.monotonic() < deadline:
                count = ext.session.scalar(sa.select(sa.func.count()).select_from(AmazonOrder))
                ext.session.remove()
                if count == 45:
                    break
                time.sleep(0.05)
            assert count == 45
    finally:
        assert worker.stop()
    assert not worker.running
    app.test_client().get("/another-request")
    assert not worker.running  # stopped on purpose: requests do not restart it
    with app.app_context():
        triggers = set(ext.session.scalars(sa.select(SyncRun.trigger)))
        assert triggers == {"worker"}


def test_worker_survives_a_failing_round(app_factory, seller, sandbox):
    app = app_factory(AMAZON_ORDERS_EMBEDDED_WORKER=True, AMAZON_ORDERS_SYNC_INTERVAL_SECONDS=1)
    ext = app.extensions["amazon_orders"].extension
    with app.app_context():
        connect_store(seller, name="Revoked")
    sandbox.control.revoke_seller(seller["seller_id"])
    worker = ext._state(app).worker
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while worker.rounds < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.rounds >= 2 and worker.running
    finally:
        worker.stop()
    with app.app_context():
        statuses = set(ext.session.scalars(sa.select(SyncRun.status)))
        assert statuses == {"failed"}
