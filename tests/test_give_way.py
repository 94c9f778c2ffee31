"""A sync that would wait for Amazon's rate limit gives way to other stores.

The sandbox enforces Amazon's limits, time-scaled 500 times (``searchOrders``: a
burst of 20, then a page every 0.38 s); pages of 10 orders make the limit bind
with a few hundred orders.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store

from flask_amazon_orders import signals
from flask_amazon_orders.jobs.sync import sync_all, sync_store
from flask_amazon_orders.models import AmazonOrder, Store, SyncRun
from flask_amazon_orders.sandbox import SandboxServer

SCALE = 500.0


@pytest.fixture
def limited(request, database_url: str, make_app: Any) -> Iterator[tuple[Any, Any, SandboxServer]]:
    """An app and a sandbox at time scale SCALE (or the test's indirect parameter)."""
    scale = getattr(request, "param", SCALE)
    with SandboxServer(time_scale=scale) as sandbox:
        app, db = make_app(
            database_url,
            sandbox.url,
            AMAZON_ORDERS_RATE_LIMIT_SCALE=scale,
            AMAZON_ORDERS_SYNC_PAGE_SIZE=10,
        )
        with app.app_context():
            db.drop_all()
            db.create_all()
            try:
                yield app, db, sandbox
            finally:
                db.session.remove()
                db.drop_all()
                db.engine.dispose()


def _store(sandbox: SandboxServer, orders: int, name: str) -> Store:
    seller_id = "A" + uuid.uuid4().hex[:12].upper()
    seller = sandbox.control.create_seller(seller_id=seller_id)
    sandbox.control.generate_orders(seller_id, orders, seed=len(name))
    return connect_store(seller, name=name)


def _orders(db: Any, store_id: int) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(AmazonOrder.amazon_order_id).where(AmazonOrder.store_id == store_id)
        )
    )


def _search_calls(sandbox: SandboxServer) -> tuple[int, int]:
    counters = sandbox.control.counters()["operations"]["searchOrders"]
    return counters["calls"], counters["throttled"]


#: A page every 1.9 s after the burst: the burst's 20 pages take far less, so the
#: 21st is always more than a moment away (at 500, a slow machine gets it).
SLOW = 100.0


@pytest.mark.parametrize("limited", [SLOW], indirect=True)
def test_a_sync_gives_way_then_goes_on_from_its_next_page(limited):
    _app, db, sandbox = limited
    store = _store(sandbox, 230, "Big")
    finished: list[int] = []

    def on_finish(sender: Any, *, store: Any, run: Any, **extra: Any) -> None:
        finished.append(run.id)

    with signals.sync_finished.connected_to(on_finish):
        first = sync_store(store, max_rate_wait=0)
        # The burst of 20 pages, then the 21st is 0.38 s away: the run gives way.
        assert first.status == "paused", first.error
        assert first.pages == 20 and first.orders_created == 200
        assert first.resume_at is not None
        assert (
            0 < (first.resume_at - first.finished_at).total_seconds() <= 1 / (0.0056 * SLOW * 0.95)
        )
        assert db.session.get(Store, store.id).sync_page_token  # where it goes on
        assert db.session.get(Store, store.id).sync_lease_until is None  # not held
        assert finished == []  # not finished yet
        assert _search_calls(sandbox) == (20, 0)

        # At once: the token is not there yet, so nothing is asked and nothing read.
        again = sync_store(store, max_rate_wait=0)
        assert again.id == first.id  # the same sync, going on
        assert again.status == "paused" and again.pages == 20
        assert _search_calls(sandbox) == (20, 0)

        # Waiting as long as it takes (the command line's way), it finishes.
        last = sync_store(store)
    assert last.id == first.id
    assert last.status == "succeeded", last.error
    assert last.resume_at is None and last.finished_at >= last.started_at
    assert last.pages == 23 and last.orders_created == 230 and last.orders_seen == 230
    assert last.api_calls == 23 + 1  # all three parts: the pages and one access token
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SyncRun)) == 1
    ids = _orders(db, store.id)
    assert len(ids) == len(set(ids)) == 230
    assert _search_calls(sandbox) == (23, 0)  # each page read once, never a 429
    assert finished == [last.id]
    stored = db.session.get(Store, store.id)
    assert stored.sync_page_token is None and stored.sync_cursor is not None


@pytest.mark.parametrize("limited", [SLOW], indirect=True)
def test_a_skipped_run_in_between_does_not_split_the_sync(limited):
    from flask_amazon_orders.jobs import leases
    from flask_amazon_orders.jobs.sync import SYNC_LEASE

    _app, db, sandbox = limited
    store = _store(sandbox, 210, "Big")
    first = sync_store(store, max_rate_wait=0)
    assert first.status == "paused"
    assert leases.acquire(db.session, store.id, "other-worker", "sync", SYNC_LEASE)
    assert sync_store(store, max_rate_wait=0).status == "skipped"
    leases.release(db.session, store.id, "other-worker", "sync")
    last = sync_store(store)
    assert last.id == first.id and last.status == "succeeded" and last.pages == 21
    assert len(set(_orders(db, store.id))) == 210


def test_sync_all_serves_the_other_stores_while_one_waits(limited):
    _app, db, sandbox = limited
    big = _store(sandbox, 260, "Big")
    small = _store(sandbox, 50, "Small")
    started = time.monotonic()
    runs = sync_all(trigger="worker", max_rate_wait=0)
    took = time.monotonic() - started

    done = {run.store_id: run for run in runs if run.status == "succeeded"}
    assert set(done) == {big.id, small.id}
    assert all(run.status == "succeeded" for run in runs), runs
    # The small store was done while the big one waited for its limit.
    assert done[small.id].finished_at < done[big.id].finished_at
    assert runs.index(done[small.id]) == 1
    assert done[big.id].pages == 26  # one run, taken up again and again
    # Pages in turns (5 at a time, then as the limit allows): the small store's
    # 5 pages come right after the big store's first 5.
    assert [run.store_id for run in runs][:3] == [big.id, small.id, big.id]
    assert runs.count(done[big.id]) >= 4  # 5 pages a turn, 26 pages
    assert len(_orders(db, big.id)) == 260 and len(_orders(db, small.id)) == 50
    assert _search_calls(sandbox) == (31, 0)
    # 6 pages after the burst, one every 0.38 s: about 2.3 s, not 6 x a long sleep.
    interval = 1 / (0.0056 * SCALE * 0.95)
    assert took >= 5 * interval


def test_sync_all_leaves_the_rest_to_the_next_round_after_until(limited):
    _app, db, sandbox = limited
    big = _store(sandbox, 240, "Big")
    runs = sync_all(trigger="worker", max_rate_wait=0, until=time.monotonic())
    assert [run.status for run in runs] == ["paused"]
    assert len(_orders(db, big.id)) == 50  # its first turn of 5 pages
    assert db.session.scalar(sa.select(SyncRun.status).order_by(SyncRun.id.desc())) == "paused"

    runs = sync_all(trigger="worker", max_rate_wait=0)  # the next round goes on
    assert runs[-1].status == "succeeded"
    assert len(set(_orders(db, big.id))) == 240
    assert _search_calls(sandbox) == (24, 0)


@pytest.mark.parametrize("limited", [SLOW], indirect=True)
def test_the_dashboard_shows_a_paused_sync(limited):
    from helpers import admin_client

    app, _db, sandbox = limited
    store = _store(sandbox, 220, "Big")
    run = sync_store(store, max_rate_wait=0)
    assert run.status == "paused"
    page = admin_client(app).get(f"/amazon-orders/stores/{store.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Paused" in html
    assert "when Amazon&#39;s rate limit allows the next page" in html
    assert "Syncing" in html  # the store's window is read in part
    assert run.resume_at > run.started_at


def test_the_embedded_worker_gives_way_and_a_wake_up_ends_the_wait(limited):
    import threading

    from flask_amazon_orders.runners.embedded import EmbeddedWorker

    app, db, sandbox = limited
    big = _store(sandbox, 300, "Big")
    small = _store(sandbox, 30, "Small")
    worker = EmbeddedWorker(app, interval=60)
    round_ = threading.Thread(target=worker.run_once)
    round_.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = db.session.scalars(
                sa.select(SyncRun.store_id).where(SyncRun.status == "succeeded")
            ).all()
            db.session.rollback()
            if small.id in done:
                break
            time.sleep(0.05)
        assert small.id in done and big.id not in done  # the small one went first
        worker.wake()  # "Sync now" elsewhere: the round ends instead of waiting on
        round_.join(5)
        assert not round_.is_alive()
    finally:
        round_.join()
    assert len(_orders(db, big.id)) < 300
    db.session.remove()
    worker._wake.clear()  # (the loop clears it before the next round)
    worker.run_once()  # the next round goes on from the big store's next page
    assert len(set(_orders(db, big.id))) == 300
    assert _search_calls(sandbox) == (30 + 3 + 1, 0)  # the small store again: 1 call
