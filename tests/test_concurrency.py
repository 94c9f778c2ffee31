"""Concurrency: two actors on the same store or order at the same moment (issue 7).

Each actor is a thread with its own app context, so its own session and
database connection (and, for the sync lease, a separate process). The
dangerous interleavings are forced, not hoped for: a function the code calls
between its read and its write is wrapped to stop at a :class:`Gate` until the
test lets it go, or all actors meet at a barrier there; on PostgreSQL the test
waits until the other actor is blocked on the row lock before it lets the first
one go on. Every wait has a timeout, and PostgreSQL connections get a
``lock_timeout`` and ``statement_timeout``, so a deadlock or a hang fails the
test with a message instead of holding up CI.

After each race the rows are checked against both actors' intent: one outcome,
the one a serial order of the two would give, and nothing written twice.

On SQLite one writer at a time holds the whole database, so an actor paused
inside its write transaction would only make the other one wait for the
database lock: those interleavings run on PostgreSQL only (CI runs the suite
once on each). ``AMAZON_ORDERS_RACE_ROUNDS`` sets the rounds of the "many at
once" tests (default 20).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import make_app
from flask import Flask
from helpers import connect_store

from flask_amazon_orders import get_extension, signals
from flask_amazon_orders.jobs import sync as sync_module
from flask_amazon_orders.jobs.sync import sync_store
from flask_amazon_orders.models import AmazonOrder, Store, SyncRun

#: The longest any actor may take; a thread still running then is a deadlock or a hang.
JOIN_TIMEOUT = 60.0
#: The longest a pause point or a barrier waits for the other actor.
WAIT_TIMEOUT = 20.0
#: PostgreSQL gives up a lock wait, or a statement, after these (milliseconds).
PG_OPTIONS = "-c lock_timeout=15000 -c statement_timeout=30000"
#: Orders per searchOrders page in the sync tests (several pages per sync).
PAGE_SIZE = 20
ROUNDS = int(os.environ.get("AMAZON_ORDERS_RACE_ROUNDS", "20"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _engine_options(database_url: str) -> dict[str, Any]:
    if database_url.startswith("postgresql"):
        return {"connect_args": {"options": PG_OPTIONS}}
    return {}


def _is_pg(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def _pg_only(database_url: str) -> None:
    if not _is_pg(database_url):
        pytest.skip(
            "SQLite lets one writer at a time hold the whole database: an actor paused "
            "inside its write transaction only makes the other wait for the database lock, "
            "so this interleaving cannot happen there (it runs on PostgreSQL)"
        )


@pytest.fixture
def race_app(app_factory: Any, database_url: str) -> Callable[..., Flask]:
    """Apps whose PostgreSQL connections time out on a lock or statement."""

    def make(**config: Any) -> Flask:
        return app_factory(SQLALCHEMY_ENGINE_OPTIONS=_engine_options(database_url), **config)

    return make


class Actors:
    """Runs actors in threads, each in its own app context (own session, own connection)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.threads: dict[str, threading.Thread] = {}
        self.results: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                with self.app.app_context():
                    self.results[name] = target(*args)
            except BaseException as exc:  # reported by join()
                self.errors[name] = exc

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads[name] = thread
        thread.start()
        return thread

    def join(self, *, raise_errors: bool = True) -> dict[str, Any]:
        deadline = time.monotonic() + JOIN_TIMEOUT
        for name, thread in self.threads.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                pytest.fail(
                    f"deadlock or hang: actor {name!r} still running after {JOIN_TIMEOUT:.0f} s"
                )
        if raise_errors and self.errors:
            name, exc = next(iter(self.errors.items()))
            raise AssertionError(f"actor {name!r} failed: {exc!r}") from exc
        return self.results


class Gate:
    """A pause point: the actor that reaches it waits there until the test opens it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reached = threading.Event()
        self.opened = threading.Event()

    def pass_through(self) -> None:
        self.reached.set()
        if not self.opened.wait(WAIT_TIMEOUT):
            raise AssertionError(f"gate {self.name!r} was never opened")

    def wait_reached(self) -> None:
        if not self.reached.wait(WAIT_TIMEOUT):
            pytest.fail(f"no actor reached the gate {self.name!r} within {WAIT_TIMEOUT:.0f} s")

    def open(self) -> None:
        self.opened.set()


def pause_after(
    monkeypatch: pytest.MonkeyPatch,
    owner: Any,
    name: str,
    gate: Gate,
    *,
    thread: str | None = None,
    times: int = 1,
) -> None:
    """Stop at ``gate`` right after ``owner.name`` returns (in ``thread``, ``times`` times)."""
    real = getattr(owner, name)
    left = {"n": times}
    lock = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if thread is None or threading.current_thread().name == thread:
            with lock:
                stop = left["n"] > 0
                left["n"] -= 1
            if stop:
                gate.pass_through()
        return result

    monkeypatch.setattr(owner, name, wrapper)


def wait_blocked_or_done(database_url: str, actor: threading.Thread) -> str:
    """Wait until ``actor`` waits for a row lock (PostgreSQL) or has finished."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        deadline = time.monotonic() + WAIT_TIMEOUT
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                if not actor.is_alive():
                    return "done"
                waiting = conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                )
                conn.rollback()
                if waiting:
                    return "blocked"
                time.sleep(0.005)
    finally:
        engine.dispose()
    pytest.fail(f"actor {actor.name!r} neither finished nor waited for a lock")


@contextlib.contextmanager
def recorded(app: Flask, *names: str) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """The signals ``names`` sent for ``app`` while the block runs (from any thread)."""
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    lock = threading.Lock()
    receivers = []
    for name in names:

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            with lock:
                seen[_name].append(kwargs)

        getattr(signals, name).connect(receiver, app, weak=False)
        receivers.append((getattr(signals, name), receiver))
    try:
        yield seen
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver, app)


def _count(model: Any, *where: Any) -> int:
    session = get_extension().session
    return int(session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)


# == 1. several workers syncing the same store ===========================================


def _seed_store(app: Flask, sandbox: Any, seller: dict[str, Any], orders: int, seed: int) -> int:
    sandbox.control.generate_orders(seller["seller_id"], orders, seed=seed)
    with app.app_context():
        return int(connect_store(seller).id)


def _check_synced(sandbox: Any, seller: dict[str, Any], store_id: int) -> None:
    """Every Amazon order stored once, with Amazon's status; the lease is free."""
    session = get_extension().session
    session.expire_all()
    stored = session.execute(
        sa.select(AmazonOrder.amazon_order_id, AmazonOrder.amazon_status).where(
            AmazonOrder.store_id == store_id
        )
    ).all()
    amazon = {o["orderId"]: o["status"] for o in sandbox.control.list_orders(seller["seller_id"])}
    assert len(stored) == len({order_id for order_id, _ in stored}), "an order stored twice"
    assert dict(stored) == amazon
    store = session.get(Store, store_id)
    assert store.sync_lease_until is None and store.sync_lease_owner is None
    assert store.sync_page_token is None


def test_workers_syncing_one_store_at_once_one_syncs_the_others_skip(
    race_app, sandbox, seller, monkeypatch
):
    app = race_app(AMAZON_ORDERS_SYNC_PAGE_SIZE=PAGE_SIZE)
    store_id = _seed_store(app, sandbox, seller, 50, seed=71)
    workers = 6
    start = threading.Barrier(workers)
    # The syncing worker stops inside its first page until every other worker has
    # tried and returned: they all find the store taken.
    tried = threading.Barrier(workers)
    real_store_page = sync_module._store_page
    local = threading.local()

    def store_page(*args: Any, **kwargs: Any) -> Any:
        if not getattr(local, "waited", False):
            local.waited = True
            tried.wait(WAIT_TIMEOUT)
        return real_store_page(*args, **kwargs)

    monkeypatch.setattr(sync_module, "_store_page", store_page)

    def worker() -> tuple[str, int]:
        start.wait(WAIT_TIMEOUT)
        run = sync_store(store_id, trigger="worker")
        if run.status == "skipped":
            tried.wait(WAIT_TIMEOUT)
        return run.status, run.id

    actors = Actors(app)
    for n in range(workers):
        actors.start(f"worker-{n}", worker)
    results = actors.join()

    statuses = sorted(status for status, _ in results.values())
    assert statuses == ["skipped"] * (workers - 1) + ["succeeded"]
    with app.app_context():
        _check_synced(sandbox, seller, store_id)
        session = get_extension().session
        winner = session.scalar(sa.select(SyncRun).where(SyncRun.status == "succeeded"))
        assert winner.pages == 3 and winner.orders_created == 50
        assert session.get(Store, store_id).sync_cursor == winner.window_before
        for run in session.scalars(sa.select(SyncRun).where(SyncRun.status == "skipped")):
            assert run.error == "Another sync of this store is running."
            assert run.pages == 0 and run.finished_at is not None


def test_many_workers_many_rounds_never_sync_one_store_twice_at_once(race_app, sandbox, seller):
    app = race_app(AMAZON_ORDERS_SYNC_PAGE_SIZE=25)
    store_id = _seed_store(app, sandbox, seller, 60, seed=72)
    workers = 8
    for _round in range(ROUNDS):
        # Amazon moves some orders on between the rounds: each round has news.
        sandbox.control.advance(seller["seller_id"], count=3)
        start = threading.Barrier(workers)

        def worker(start: threading.Barrier = start) -> str:
            start.wait(WAIT_TIMEOUT)
            return sync_store(store_id, trigger="worker").status

        actors = Actors(app)
        for n in range(workers):
            actors.start(f"worker-{n}", worker)
        statuses = list(actors.join().values())
        assert set(statuses) <= {"succeeded", "skipped"} and "succeeded" in statuses
    with app.app_context():
        session = get_extension().session
        runs = session.scalars(
            sa.select(SyncRun).where(SyncRun.status != "skipped").order_by(SyncRun.started_at)
        ).all()
        assert {run.status for run in runs} == {"succeeded"}
        # The syncs that ran never overlapped: each started after the one before ended.
        for before, after in itertools.pairwise(runs):
            assert after.started_at > before.finished_at
        assert len(runs) + _count(SyncRun, SyncRun.status == "skipped") == workers * ROUNDS
        # The last run saw every change: what is stored is what Amazon has.
        assert sync_store(store_id).status == "succeeded"
        _check_synced(sandbox, seller, store_id)


# -- separate processes ------------------------------------------------------------------


def _process_app(database_url: str, sandbox_url: str) -> Flask:
    app, _db = make_app(
        database_url,
        sandbox_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(database_url),
        AMAZON_ORDERS_SYNC_PAGE_SIZE=PAGE_SIZE,
    )
    return app


def _sync_in_process(
    database_url: str,
    sandbox_url: str,
    store_id: int,
    start: Any,
    tried: Any,
    results: Any,
) -> None:
    """A worker process: sync the store; the syncing one waits until the others tried."""
    app = _process_app(database_url, sandbox_url)
    real_store_page = sync_module._store_page
    waited = []

    def store_page(*args: Any, **kwargs: Any) -> Any:
        if not waited:
            waited.append(True)
            tried.wait(WAIT_TIMEOUT)
        return real_store_page(*args, **kwargs)

    sync_module._store_page = store_page
    with app.app_context():
        start.wait(WAIT_TIMEOUT)
        run = sync_store(store_id, trigger="worker")
        if run.status == "skipped":
            tried.wait(WAIT_TIMEOUT)
        results.put((os.getpid(), run.status))
        get_extension().session.remove()
    app.extensions["sqlalchemy"].engine.dispose()


def _hold_lease_in_process(
    database_url: str, sandbox_url: str, store_id: int, lease_seconds: float, holding: Any
) -> None:
    """A worker process that stores the first page, then hangs (until it is killed)."""
    app = _process_app(database_url, sandbox_url)
    sync_module.SYNC_LEASE = dt.timedelta(seconds=lease_seconds)

    def progress(page: Any) -> None:
        holding.put(page.page)
        time.sleep(JOIN_TIMEOUT * 2)

    with app.app_context():
        sync_store(store_id, trigger="worker", progress=progress)


def _spawn() -> Any:
    return multiprocessing.get_context("spawn")


def test_worker_processes_syncing_one_store_at_once(race_app, database_url, sandbox, seller):
    app = race_app(AMAZON_ORDERS_SYNC_PAGE_SIZE=PAGE_SIZE)
    store_id = _seed_store(app, sandbox, seller, 45, seed=73)
    context = _spawn()
    workers = 3
    start, tried, results = context.Barrier(workers), context.Barrier(workers), context.Queue()
    processes = [
        context.Process(
            target=_sync_in_process,
            args=(database_url, sandbox.url, store_id, start, tried, results),
            daemon=True,
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=JOIN_TIMEOUT) for _ in processes]
    finally:
        for process in processes:
            process.join(WAIT_TIMEOUT)
            if process.is_alive():
                process.kill()
    assert sorted(status for _pid, status in outcomes) == ["skipped", "skipped", "succeeded"]
    assert len({pid for pid, _status in outcomes}) == workers
    with app.app_context():
        _check_synced(sandbox, seller, store_id)
        assert _count(SyncRun, SyncRun.status == "succeeded") == 1


def test_the_lease_of_a_killed_worker_is_taken_over_once_it_expires(
    race_app, database_url, sandbox, seller
):
    app = race_app(AMAZON_ORDERS_SYNC_PAGE_SIZE=PAGE_SIZE)
    store_id = _seed_store(app, sandbox, seller, 50, seed=74)
    context = _spawn()
    holding = context.Queue()
    process = context.Process(
        target=_hold_lease_in_process,
        args=(database_url, sandbox.url, store_id, 2.0, holding),
        daemon=True,
    )
    process.start()
    try:
        assert holding.get(timeout=JOIN_TIMEOUT) == 1  # page 1 of 3 is committed
    finally:
        process.kill()
        process.join(WAIT_TIMEOUT)
    with app.app_context():
        session = get_extension().session
        # The dead worker's lease still holds: a sync now is turned away at once.
        assert sync_store(store_id).status == "skipped"
        until = session.get(Store, store_id).sync_lease_until
        while _now() <= until:
            time.sleep(0.05)
        sandbox.control.reset_counters()
        run = sync_store(store_id)
        assert run.status == "succeeded", run.error
        # It went on at the dead worker's next page: pages 2 and 3 only.
        assert sandbox.control.counters()["operations"]["searchOrders"]["calls"] == 2
        assert run.orders_created == 30
        _check_synced(sandbox, seller, store_id)


def test_a_slow_sync_whose_lease_was_taken_over_stops_and_leaves_the_store_free(
    race_app, sandbox, seller, monkeypatch
):
    """A sync that outlived its lease (not dead, only slow) must not write on."""
    app = race_app(AMAZON_ORDERS_SYNC_PAGE_SIZE=PAGE_SIZE)
    store_id = _seed_store(app, sandbox, seller, 50, seed=75)
    gate = Gate("after page 1")

    def progress(page: Any) -> None:
        if page.page == 1:
            gate.pass_through()

    actors = Actors(app)
    actors.start("slow", lambda: sync_store(store_id, progress=progress))
    gate.wait_reached()
    with app.app_context():
        # Its lease runs out; another worker takes the store over and finishes.
        session = get_extension().session
        session.execute(
            sa.update(Store)
            .where(Store.id == store_id)
            .values(sync_lease_until=_now() - dt.timedelta(seconds=1))
        )
        session.commit()
        taken_over = sync_store(store_id)
        assert taken_over.status == "succeeded"
        cursor = session.get(Store, store_id).sync_cursor
    gate.open()
    slow = actors.join()["slow"]
    assert slow.status == "failed"
    assert "took over" in slow.error
    with app.app_context():
        session = get_extension().session
        store = session.get(Store, store_id)
        assert store.sync_cursor == cursor  # the slow one wrote no cursor of its own
        assert store.last_sync_error is None  # not the store's error
        _check_synced(sandbox, seller, store_id)
        # The store is free for the next sync at once.
        assert sync_store(store_id).status == "succeeded"
