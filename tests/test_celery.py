"""Real Celery workers (separate processes) and beat, on Redis, against the sandbox."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from helpers import connect_store

from flask_amazon_orders import get_extension
from flask_amazon_orders.models import AmazonOrder, Cancellation, Store, SyncRun
from flask_amazon_orders.runners.celery import beat_schedule, init_celery
from flask_amazon_orders.services.cancelling import cancel_orders

TESTS = Path(__file__).parent
SCALE = 1000.0
STORES = 4
ORDERS = 250


def _broker(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/14"


@pytest.fixture
def celery_world(request, database_url, redis_url, make_sandbox, make_app, tmp_path):
    """A sandbox with STORES sellers, their stores connected, and a way to start workers.

    Parametrize it indirectly with ``{"orders": [n, …], "scale": s, "page_size": p}``
    for other stores, time scale or page size."""
    world = getattr(request, "param", {})
    scale = world.get("scale", SCALE)
    sandbox = make_sandbox(time_scale=scale)
    app, db = make_app(database_url, sandbox.url)
    with app.app_context():
        db.drop_all()
        db.create_all()
        stores = []
        for n, orders in enumerate(world.get("orders", [ORDERS] * STORES)):
            seller = sandbox.control.create_seller(marketplace_id="A1PA6795UKMFR9")
            sandbox.control.generate_orders(seller["seller_id"], orders, seed=n)
            stores.append(connect_store(seller, name=f"Store {n}").id)
    queue = f"amazon-orders-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CELERY_SHOP_DATABASE_URL": database_url,
        "CELERY_SHOP_SANDBOX_URL": sandbox.url,
        "CELERY_SHOP_TIME_SCALE": str(scale),
        "CELERY_SHOP_PAGE_SIZE": str(world.get("page_size", 100)),
        "CELERY_SHOP_REDIS_URL": redis_url,
        "CELERY_SHOP_BROKER_URL": _broker(redis_url),
        "CELERY_SHOP_QUEUE": queue,
        "CELERY_SHOP_SYNC_SECONDS": "3",
        "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
    }
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    handles: list[Any] = []

    def start(*args: str) -> None:
        log = tmp_path / f"celery-{len(processes)}.log"
        command = [sys.executable, "-m", "celery", "-A", "celery_shop:celery", *args]
        handle = log.open("wb")
        handles.append(handle)
        processes.append(
            (subprocess.Popen(command, cwd=TESTS, env=env, stdout=handle, stderr=handle), log)
        )

    def dead() -> list[str]:
        return [log.name for process, log in processes if process.poll() is not None]

    def logs() -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in processes)

    yield {
        "app": app,
        "db": db,
        "sandbox": sandbox,
        "stores": stores,
        "start": start,
        "logs": logs,
        "dead": dead,
        "beat_file": tmp_path / "beat-schedule",
        "queue": queue,
        "broker": _broker(redis_url),
    }
    for process, _ in processes:
        process.terminate()
    for process, _ in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    for handle in handles:
        handle.close()
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _wait(world: dict[str, Any], done, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if world["dead"]():
            pytest.fail(f"A Celery process ended: {world['dead']()}\n{world['logs']()}")
        with world["app"].app_context():
            if done(world["db"].session):
                return
        time.sleep(0.5)
    pytest.fail(f"Celery did not finish: {what}\n{world['logs']()}")


def test_workers_and_beat_import_every_order_once_without_429(celery_world):
    world = celery_world
    for n in range(2):
        world["start"](
            "worker",
            "--concurrency=2",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=INFO",
            "-n",
            f"w{n}-{uuid.uuid4().hex[:6]}@localhost",
        )
    world["start"]("beat", "--loglevel=INFO", "-s", str(world["beat_file"]))
    expected = {
        store_id: len(world["sandbox"].control.list_orders(seller.seller_id))
        for store_id, seller in _sellers(world)
    }

    def all_stored(session) -> bool:
        counts = dict(
            session.execute(
                sa.select(AmazonOrder.store_id, sa.func.count()).group_by(AmazonOrder.store_id)
            ).all()
        )
        return counts == expected

    _wait(world, all_stored, "every store's orders")
    # Cancel a few orders of each store here; the workers send and settle the feeds.
    with world["app"].app_context():
        session = world["db"].session
        cancelled = []
        for store_id in world["stores"]:
            ids = session.scalars(
                sa.select(AmazonOrder.id)
                .where(AmazonOrder.store_id == store_id, AmazonOrder.status == "Unshipped")
                .limit(3)
            ).all()
            result = cancel_orders(store_id, list(ids), reason="NoInventory", actor="test")
            cancelled += result.cancelled

    def all_confirmed(session) -> bool:
        states = session.scalars(sa.select(Cancellation.state)).all()
        return len(states) == len(cancelled) and set(states) == {"confirmed"}

    _wait(world, all_confirmed, "the cancellations")
    with world["app"].app_context():
        session = world["db"].session
        duplicates = session.execute(
            sa.select(AmazonOrder.store_id, AmazonOrder.amazon_order_id)
            .group_by(AmazonOrder.store_id, AmazonOrder.amazon_order_id)
            .having(sa.func.count() > 1)
        ).all()
        assert duplicates == []
        failed = session.scalars(sa.select(SyncRun).where(SyncRun.status == "failed")).all()
        assert failed == []
    counters = world["sandbox"].control.counters()["operations"]
    assert sum(op["throttled"] for op in counters.values()) == 0, counters
    for order_id in cancelled:
        order = world["sandbox"].control.get_order(order_id)
        assert order["fulfillment"]["fulfillmentStatus"] == "CANCELLED"


@pytest.mark.parametrize(
    "celery_world", [{"orders": [300, 40], "scale": 500.0, "page_size": 10}], indirect=True
)
def test_a_store_waiting_for_its_limit_gives_the_worker_to_the_others(celery_world):
    """One worker slot; the first store needs 10 pages beyond searchOrders' burst
    (one every 0.38 s). It gives way, queues its continuation, and the second
    store is synced in the meantime."""
    world = celery_world
    big, small = world["stores"]
    world["start"](
        "worker",
        "--concurrency=1",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "--loglevel=INFO",
        "-n",
        f"w-{uuid.uuid4().hex[:6]}@localhost",
    )
    Celery("sender", broker=world["broker"]).send_task(
        "amazon_orders.sync_all", queue=world["queue"]
    )

    def both_done(session) -> bool:
        done = session.scalars(
            sa.select(SyncRun.store_id).where(SyncRun.status == "succeeded")
        ).all()
        return set(done) == {big, small}

    _wait(world, both_done, "both stores")
    with world["app"].app_context():
        session = world["db"].session
        runs = session.scalars(sa.select(SyncRun).order_by(SyncRun.id)).all()
        big_run = next(run for run in runs if run.store_id == big)
        small_run = next(run for run in runs if run.store_id == small)
        # One run each (the big store's taken up again after each wait), no skips.
        assert len(runs) == 2
        assert big_run.status == small_run.status == "succeeded"
        assert big_run.pages == 30 and small_run.pages == 4
        assert small_run.finished_at < big_run.finished_at  # served meanwhile
        counts = dict(
            session.execute(
                sa.select(AmazonOrder.store_id, sa.func.count()).group_by(AmazonOrder.store_id)
            ).all()
        )
        assert counts == {big: 300, small: 40}
    searches = world["sandbox"].control.counters()["operations"]["searchOrders"]
    assert searches["calls"] == 34 and searches["throttled"] == 0


def _sellers(world: dict[str, Any]) -> list[tuple[int, Any]]:
    with world["app"].app_context():
        session = world["db"].session
        return [(store_id, session.get(Store, store_id)) for store_id in world["stores"]]


def test_init_celery_registers_the_tasks_the_schedule_and_the_dispatch(app):
    from celery import Celery

    celery = Celery("unit", broker="memory://")
    celery.conf.task_always_eager = True
    tasks = init_celery(celery, app)
    names = {name for name in celery.tasks if name.startswith("amazon_orders.")}
    assert names == {
        "amazon_orders.sync_all",
        "amazon_orders.sync_store",
        "amazon_orders.feeds_all",
        "amazon_orders.process_feeds",
        "amazon_orders.purge",
        "amazon_orders.poll_notifications",
    }
    schedule = celery.conf.beat_schedule
    assert "amazon-orders-notifications" not in schedule  # no SQS queue configured
    assert schedule["amazon-orders-sync"]["schedule"] == dt.timedelta(
        seconds=get_extension(app).settings.sync_interval_seconds
    )
    assert schedule == {**schedule, **beat_schedule(sync_seconds=300, feed_seconds=30)}
    queued: list[tuple[str, int]] = []
    tasks.sync_store.delay = lambda store_id: queued.append(("sync", store_id))
    tasks.process_feeds.delay = lambda store_id: queued.append(("feeds", store_id))
    assert get_extension(app).wake_worker("sync", 7) is True
    assert get_extension(app).wake_worker("feeds", 8) is True
    assert queued == [("sync", 7), ("feeds", 8)]
