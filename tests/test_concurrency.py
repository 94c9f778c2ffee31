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
once" tests (default 12; the mixed ones run a third of them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import multiprocessing
import os
import threading
import time
from collections import Counter
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
ROUNDS = int(os.environ.get("AMAZON_ORDERS_RACE_ROUNDS", "12"))
#: Rounds of the heavier mixed tests (each round starts eight actors of four kinds).
MIXED_ROUNDS = max(ROUNDS // 3, 2)


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
def race_app(app_factory: Any, database_url: str) -> Iterator[Callable[..., Flask]]:
    """Apps whose PostgreSQL connections time out on a lock or statement."""

    def make(**config: Any) -> Flask:
        return app_factory(SQLALCHEMY_ENGINE_OPTIONS=_engine_options(database_url), **config)

    yield make
    _let_go()


#: The test's gates and actor threads, let go before its tables are dropped (a test
#: that failed half-way must not leave an actor holding a lock on them).
_GATES: list[Gate] = []
_STARTED: list[threading.Thread] = []


def _let_go() -> None:
    for gate in _GATES:
        gate.open()
    for thread in _STARTED:
        thread.join(JOIN_TIMEOUT)
    _GATES.clear()
    _STARTED.clear()


class Actors:
    """Runs actors in threads, each in its own app context (own session, own connection)."""

    def __init__(self, app: Flask, *, request: bool = False) -> None:
        self.app = app
        #: Run in a request context (a host whose translations read the request).
        self.request = request
        self.threads: dict[str, threading.Thread] = {}
        self.results: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}

    def start(
        self, name: str, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> threading.Thread:
        def run() -> None:
            try:
                context = self.app.test_request_context() if self.request else None
                with context or self.app.app_context():
                    self.results[name] = target(*args, **kwargs)
            except BaseException as exc:  # reported by join()
                self.errors[name] = exc

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads[name] = thread
        _STARTED.append(thread)
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
        _GATES.append(self)

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


def test_the_lease_of_a_killed_worker_elsewhere_is_taken_over_once_it_expires(
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
        # A dead worker of this machine is taken over at once (tests/test_crash.py);
        # one of another machine cannot be checked, and its lease holds until it
        # runs out: a sync now is turned away at once.
        owner = session.get(Store, store_id).sync_lease_owner
        session.execute(
            sa.update(Store)
            .where(Store.id == store_id)
            .values(sync_lease_owner="elsewhere0" + owner[owner.index(".") :])
        )
        session.commit()
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


# == 2. admins cancelling the same order ================================================


@pytest.fixture
def race_shop(database_url: str, sandbox: Any) -> Iterator[Flask]:
    """The example shop (a host with its own orders), its connections with timeouts."""
    from example_app import create_app, init_db
    from example_app.models import db as shop_db

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(database_url),
            "AMAZON_ORDERS_ENDPOINT": sandbox.url,
            "AMAZON_ORDERS_LWA_URL": sandbox.url + "/auth/o2/token",
            "AMAZON_ORDERS_LWA_CLIENT_ID": "sandbox-client-id",
            "AMAZON_ORDERS_LWA_CLIENT_SECRET": "sandbox-client-secret",
            "AMAZON_ORDERS_RETRY_BACKOFF_SECONDS": 0.01,
            "AMAZON_ORDERS_RATE_LIMIT_SCALE": 1000.0,
        }
    )
    with app.app_context():
        shop_db.drop_all()
        init_db()
    yield app
    _let_go()
    with app.app_context():
        shop_db.session.remove()
        shop_db.drop_all()
        shop_db.engine.dispose()


def _amazon_order(
    sandbox: Any, seller: dict[str, Any], *, status: str = "UNSHIPPED", **spec: Any
) -> str:
    moment = (_now() - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    spec.setdefault(
        "items",
        [
            {"sku": "TEA-GREEN-100", "quantity": 1, "unit_price": "8.90"},
            {"sku": "MUG-STONE-350", "quantity": 2, "unit_price": "14.00"},
        ],
    )
    return str(
        sandbox.control.create_order(
            seller["seller_id"],
            status=status,
            created_time=moment,
            last_updated_time=moment,
            **spec,
        )["orderId"]
    )


def _shop_store(shop: Flask, seller: dict[str, Any], *, enabled: bool = True) -> int:
    """The seller connected to the shop (import on: shop orders for its orders), synced."""
    with shop.app_context():
        store = connect_store(seller, order_import_enabled=enabled)
        store.connected_at = _now() - dt.timedelta(days=2)
        get_extension().session.commit()
        assert sync_store(store.id).status == "succeeded"
        return int(store.id)


def _order_row(amazon_order_id: str) -> AmazonOrder:
    session = get_extension().session
    session.expire_all()
    order = session.scalar(
        sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == amazon_order_id)
    )
    assert order is not None
    return order


def _events(order_id: int, kind: str) -> int:
    from flask_amazon_orders.models import OrderEvent

    return _count(OrderEvent, OrderEvent.order_id == order_id, OrderEvent.kind == kind)


def _host_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every ``set_status`` call the shop's host adapter gets: (reference, status)."""
    from example_app.host import ShopAdapter

    calls: list[tuple[str, str]] = []
    real = ShopAdapter.set_status

    def counting(self: Any, reference: str, status: str, **kwargs: Any) -> None:
        calls.append((reference, status))
        real(self, reference, status, **kwargs)

    monkeypatch.setattr(ShopAdapter, "set_status", counting)
    return calls


def _shop_status(amazon_order_id: str) -> str | None:
    from example_app.models import ShopOrder

    return get_extension().session.scalar(
        sa.select(ShopOrder.status).where(ShopOrder.amazon_order_id == amazon_order_id)
    )


def _check_cancelled_once(amazon_order_id: str, calls: list[tuple[str, str]]) -> None:
    """One cancellation, one timeline entry, one shop completion for the order."""
    from flask_amazon_orders.models import Cancellation

    order = _order_row(amazon_order_id)
    assert (order.status, order.cancellation_state) == ("Canceled", "queued")
    assert _count(Cancellation, Cancellation.order_id == order.id) == 1
    assert _events(order.id, "cancel_requested") == 1
    assert _events(order.id, "host_order_status_changed") == 1
    assert calls == [(order.host_order_ref, "Complete")]
    assert _shop_status(amazon_order_id) == "Complete"


CHANGED = "no longer Unshipped"


def _meet_after_check(monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Every admin passes the "is it cancellable?" check, then they all go on at once."""
    from flask_amazon_orders.services import cancelling

    barrier = threading.Barrier(parties)
    real = cancelling.why_not_cancellable
    local = threading.local()

    def checked(*args: Any, **kwargs: Any) -> str | None:
        why = real(*args, **kwargs)
        if not getattr(local, "met", False):
            local.met = True
            barrier.wait(WAIT_TIMEOUT)
        return why

    monkeypatch.setattr(cancelling, "why_not_cancellable", checked)


def test_admins_cancelling_one_order_at_once_make_one_cancellation(
    race_shop, sandbox, seller, monkeypatch
):
    from flask_amazon_orders.services.cancelling import cancel_orders

    admins = 5
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    _meet_after_check(monkeypatch, admins)
    reasons = ["NoInventory", "PricingError", "BuyerCanceled", "GeneralAdjustment"]
    actors = Actors(race_shop, request=True)
    with recorded(race_shop, "cancellation_queued", "host_order_status_changed") as seen:
        for n in range(admins):
            actors.start(
                f"admin-{n}",
                lambda n=n: cancel_orders(
                    store_id, [order_id], reason=reasons[n % 4], actor=f"admin:{n}"
                ),
            )
        results = actors.join()
    cancelled = [name for name, r in results.items() if r.cancelled == [order_id]]
    assert len(cancelled) == 1
    for name, result in results.items():
        if name not in cancelled:
            assert result.cancelled == []
            assert CHANGED in result.refused[order_id]
    with race_shop.app_context():
        _check_cancelled_once(order_id, calls)
    assert len(seen["cancellation_queued"]) == 1
    assert len(seen["host_order_status_changed"]) == 1


def test_an_admin_blocked_on_the_row_lock_is_refused_once_the_first_commits(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    """The second admin's claim waits for the first one's row lock, then finds the
    order cancelled (not: both read Unshipped and both cancel)."""
    from flask_amazon_orders.services import cancelling

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    claimed = Gate("first admin claimed, not committed")
    # Called after the claim, before the shop order moves and the commit.
    pause_after(monkeypatch, cancelling, "_host_statuses_before", claimed, thread="first")

    def cancel(reason: str) -> Any:
        return cancelling.cancel_orders(store_id, [order_id], reason=reason)

    actors = Actors(race_shop, request=True)
    actors.start("first", cancel, "NoInventory")
    claimed.wait_reached()
    second = actors.start("second", cancel, "PricingError")
    assert wait_blocked_or_done(database_url, second) == "blocked"
    claimed.open()
    results = actors.join()
    assert results["first"].cancelled == [order_id]
    assert results["second"].cancelled == [] and CHANGED in results["second"].refused[order_id]
    with race_shop.app_context():
        _check_cancelled_once(order_id, calls)


def _browser(shop: Flask) -> Any:
    client = shop.test_client()
    with client.session_transaction() as browser:
        browser["user"] = "mia"
    return client


def _csrf(client: Any, url: str) -> str:
    import re

    page = client.get(url).data.decode()
    page = page[page.index('class="ao"') :]
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_admins_confirming_cancel_order_pages_at_once(race_shop, sandbox, seller, monkeypatch):
    """Through the real pages: one is told "cancelled", the others why not (no 500)."""
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    url = f"/admin/amazon/stores/{store_id}/orders/{order_id}/cancel"
    admins = 3
    browsers = [_browser(race_shop) for _ in range(admins)]
    tokens = [_csrf(browser, url) for browser in browsers]
    _meet_after_check(monkeypatch, admins)

    def confirm(n: int) -> tuple[int, str]:
        response = browsers[n].post(url, data={"reason": "NoInventory", "csrf_token": tokens[n]})
        return response.status_code, response.data.decode()

    actors = Actors(race_shop, request=True)
    for n in range(admins):
        actors.start(f"admin-{n}", confirm, n)
    answers = sorted(actors.join().values())
    assert [status for status, _page in answers] == [302] + [400] * (admins - 1)
    for _status, page in answers[1:]:
        assert "The order changed meanwhile and is no longer Unshipped" in page
    with race_shop.app_context():
        _check_cancelled_once(order_id, calls)


def test_overlapping_bulk_cancellations_cancel_each_order_once(
    race_shop, sandbox, seller, monkeypatch
):
    from flask_amazon_orders.models import Cancellation
    from flask_amazon_orders.services.cancelling import cancel_orders

    order_ids = [_amazon_order(sandbox, seller) for _ in range(6)]
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    _meet_after_check(monkeypatch, 3)
    actors = Actors(race_shop, request=True)
    # Three admins select overlapping orders, in different orders.
    selections = [order_ids[:4], list(reversed(order_ids[2:])), order_ids[::2]]
    for n, selection in enumerate(selections):
        actors.start(
            f"admin-{n}",
            lambda s=selection: cancel_orders(store_id, s, reason="NoInventory"),
        )
    results = actors.join()
    cancelled = [order for result in results.values() for order in result.cancelled]
    assert sorted(cancelled) == sorted(order_ids)  # each once, by one of them
    with race_shop.app_context():
        assert _count(Cancellation) == len(order_ids)
        for order_id in order_ids:
            assert _shop_status(order_id) == "Complete"
    assert len(calls) == len(set(calls)) == len(order_ids)


def test_many_admins_many_rounds_one_cancellation_per_order(race_shop, sandbox, seller):
    from flask_amazon_orders.models import Cancellation
    from flask_amazon_orders.services.cancelling import cancel_orders

    order_ids = [_amazon_order(sandbox, seller) for _ in range(ROUNDS)]
    store_id = _shop_store(race_shop, seller)
    admins = 8
    won = []
    for order_id in order_ids:
        start = threading.Barrier(admins)

        def admin(order_id: str = order_id, start: threading.Barrier = start) -> Any:
            start.wait(WAIT_TIMEOUT)
            return cancel_orders(store_id, [order_id], reason="NoInventory")

        actors = Actors(race_shop, request=True)
        for n in range(admins):
            actors.start(f"admin-{n}", admin)
        results = list(actors.join().values())
        won.append(sum(len(result.cancelled) for result in results))
        assert all(result.cancelled or order_id in result.refused for result in results)
    assert won == [1] * len(order_ids)
    with race_shop.app_context():
        assert _count(Cancellation) == len(order_ids)
        for order_id in order_ids:
            assert _shop_status(order_id) == "Complete"


# == 5. shipments and item cancellations against a cancel (and each other) =============

SHIPPING = "the shipment is being confirmed"


def _ship(amazon_order_id: str, store_id: int, **kwargs: Any) -> Any:
    from flask_amazon_orders.services.shipping import confirm_shipment

    kwargs.setdefault("carrier_code", "DHL")
    kwargs.setdefault("tracking_number", "JJD0099")
    return confirm_shipment(amazon_order_id, store=store_id, **kwargs)


def _cancel(store_id: int, amazon_order_id: str) -> Any:
    from flask_amazon_orders.services.cancelling import cancel_orders

    return cancel_orders(store_id, [amazon_order_id], reason="NoInventory", actor="admin:mia")


def _check_one_of(amazon_order_id: str, calls: list[tuple[str, str]]) -> str:
    """Either the order is cancelled (and nothing shipped), or shipped (and not
    cancelled): never both. Returns which."""
    from flask_amazon_orders.models import Cancellation, Shipment

    order = _order_row(amazon_order_id)
    cancellations = _count(Cancellation, Cancellation.order_id == order.id)
    shipments = _count(Shipment, Shipment.order_id == order.id)
    assert (cancellations, shipments) in ((1, 0), (0, 1)), "cancelled and shipped both"
    if cancellations:
        _check_cancelled_once(amazon_order_id, calls)
        return "cancelled"
    assert (order.status, order.cancellation_state) == ("Unshipped", None)
    assert calls == [] and _shop_status(amazon_order_id) == "Processing"
    return "shipped"


def test_a_shipment_stored_while_an_admin_confirms_the_cancel_wins(
    race_shop, sandbox, seller, monkeypatch
):
    """The admin's page checked "no shipment"; the shop ships before the claim."""
    from flask_amazon_orders.services import cancelling

    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    checked = Gate("admin checked the order")
    pause_after(monkeypatch, cancelling, "why_not_cancellable", checked, thread="admin")
    actors = Actors(race_shop, request=True)
    actors.start("admin", _cancel, store_id, order_id)
    checked.wait_reached()
    with race_shop.test_request_context():
        _ship(order_id, store_id)
    checked.open()
    result = actors.join()["admin"]
    assert result.cancelled == [] and SHIPPING in result.refused[order_id]
    with race_shop.app_context():
        assert _check_one_of(order_id, calls) == "shipped"


def test_an_admin_cancelling_while_the_shop_stores_a_shipment(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    """The shop checked the order and is storing its shipment; the admin confirms."""
    from flask_amazon_orders.services import shipping

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    checked = Gate("shop checked the order")
    pause_after(monkeypatch, shipping, "units_to_ship", checked, thread="shop")
    actors = Actors(race_shop, request=True)
    actors.start("shop", _ship, order_id, store_id)
    checked.wait_reached()
    admin = actors.start("admin", _cancel, store_id, order_id)
    assert wait_blocked_or_done(database_url, admin) == "blocked"
    checked.open()
    results = actors.join()
    assert results["admin"].cancelled == [] and SHIPPING in results["admin"].refused[order_id]
    with race_shop.app_context():
        assert _check_one_of(order_id, calls) == "shipped"


def test_the_shop_shipping_while_an_admin_cancel_is_being_committed(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    from flask_amazon_orders.services import cancelling
    from flask_amazon_orders.services.shipping import ShipmentError

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    claimed = Gate("admin claimed the order")
    pause_after(monkeypatch, cancelling, "_host_statuses_before", claimed, thread="admin")
    actors = Actors(race_shop, request=True)
    actors.start("admin", _cancel, store_id, order_id)
    claimed.wait_reached()
    shop = actors.start("shop", _ship, order_id, store_id)
    assert wait_blocked_or_done(database_url, shop) == "blocked"
    claimed.open()
    actors.join(raise_errors=False)
    assert actors.results["admin"].cancelled == [order_id]
    assert isinstance(actors.errors.get("shop"), ShipmentError)
    assert "Canceled" in str(actors.errors["shop"])
    with race_shop.app_context():
        assert _check_one_of(order_id, calls) == "cancelled"


def test_two_shipments_of_the_last_units_at_once(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    from flask_amazon_orders.models import Shipment
    from flask_amazon_orders.services import shipping

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    checked = Gate("first parcel checked")
    pause_after(monkeypatch, shipping, "units_to_ship", checked, thread="first")
    actors = Actors(race_shop, request=True)
    actors.start("first", _ship, order_id, store_id, tracking_number="P1")
    checked.wait_reached()
    second = actors.start("second", _ship, order_id, store_id, tracking_number="P2")
    assert wait_blocked_or_done(database_url, second) == "blocked"
    checked.open()
    actors.join(raise_errors=False)
    assert "first" in actors.results
    assert isinstance(actors.errors.get("second"), shipping.ShipmentError)
    assert "shipped already" in str(actors.errors["second"])
    with race_shop.app_context():
        assert _count(Shipment) == 1


def test_an_item_cancellation_and_a_shipment_of_the_same_units_at_once(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    from flask_amazon_orders.models import Adjustment, Shipment
    from flask_amazon_orders.services import adjusting, shipping

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    with race_shop.app_context():
        order = _order_row(order_id)
        mug = next(i.order_item_id for i in order.items if i.seller_sku == "MUG-STONE-350")
    planned = Gate("item cancellation planned")
    pause_after(monkeypatch, adjusting, "plan", planned, thread="admin")

    def cancel_mugs() -> Any:
        return adjusting.adjust_items(_order_row(order_id), {mug: 2}, reason="NoInventory")

    actors = Actors(race_shop, request=True)
    actors.start("admin", cancel_mugs)
    planned.wait_reached()
    shop = actors.start("shop", _ship, order_id, store_id, items={mug: 2})
    assert wait_blocked_or_done(database_url, shop) == "blocked"
    planned.open()
    actors.join(raise_errors=False)
    assert len(actors.results["admin"]) == 1
    assert isinstance(actors.errors.get("shop"), shipping.ShipmentError)
    assert "Only 0 unit(s)" in str(actors.errors["shop"])
    with race_shop.app_context():
        assert _count(Adjustment) == 1 and _count(Shipment) == 0


def test_an_item_cancellation_of_an_order_cancelled_since_it_was_loaded(race_shop, sandbox, seller):
    """The Cancel Items page loaded the order; another admin cancels the whole order
    before this one confirms: the item cancellation is refused, not queued too."""
    from flask_amazon_orders.models import Adjustment
    from flask_amazon_orders.services.adjusting import AdjustmentError, adjust_items

    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    with race_shop.test_request_context():
        loaded = _order_row(order_id)
        item = loaded.items[0].order_item_id
        # The other admin, in an app context (and session) of their own.
        with race_shop.app_context(), race_shop.test_request_context():
            assert _cancel(store_id, order_id).cancelled == [order_id]
        with pytest.raises(AdjustmentError, match="The order is Canceled"):
            adjust_items(loaded, {item: 1}, reason="NoInventory")
        assert _count(Adjustment) == 0


# == 3. a cancel during a sync that changes the same order ==============================


def _check_timeline(amazon_order_id: str) -> AmazonOrder:
    """The order's timeline tells one story: each change starts where the one before
    ended, and the last one is the order's status."""
    from flask_amazon_orders.models import OrderEvent

    order = _order_row(amazon_order_id)
    status = None
    for event in get_extension().session.scalars(
        sa.select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
    ):
        if event.from_status is not None:
            assert event.from_status == status, (
                f"{event.kind} says {event.from_status} -> {event.to_status}, "
                f"but the order was {status} then"
            )
        status = event.to_status or status
    assert order.status == status
    return order


def _sync_actor(store_id: int) -> Any:
    run = sync_store(store_id, trigger="worker")
    assert run.status == "succeeded", run.error
    return run


def test_an_admin_cancelling_while_a_sync_stores_the_order_as_shipped(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    """The sync has read the order; Amazon says Shipped; the admin confirms the cancel.
    The sync goes first (it holds the order), the cancel is refused."""
    from flask_amazon_orders.services.cancelling import why_not_cancellable

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    sandbox.control.set_status(order_id, "SHIPPED")
    read = Gate("sync read the order")
    pause_after(monkeypatch, sync_module, "_apply_items", read, thread="sync")
    actors = Actors(race_shop, request=True)
    with recorded(race_shop, "order_status_changed", "cancellation_queued") as seen:
        actors.start("sync", _sync_actor, store_id)
        read.wait_reached()
        admin = actors.start("admin", _cancel, store_id, order_id)
        assert wait_blocked_or_done(database_url, admin) == "blocked"
        read.open()
        results = actors.join()
    assert results["admin"].cancelled == [] and CHANGED in results["admin"].refused[order_id]
    assert seen["cancellation_queued"] == []
    assert [(s["old_status"], s["new_status"]) for s in seen["order_status_changed"]] == [
        ("Unshipped", "Shipped")
    ]
    with race_shop.test_request_context():
        order = _check_timeline(order_id)
        assert (order.status, order.cancellation_state) == ("Shipped", None)
        assert why_not_cancellable(order) is not None
        # The shop order is completed by the sync's import, as for any shipped order.
        assert calls == [(order.host_order_ref, "Complete")]


@pytest.mark.parametrize("amazon", ["SHIPPED", "buyer asks to cancel"])
def test_a_sync_while_an_admin_cancel_is_being_committed(
    race_shop, database_url, sandbox, seller, monkeypatch, amazon
):
    """The admin's claim holds the order; a sync brings Amazon's newer copy. The
    cancel goes first, and the sync starts from the cancelled order: Amazon's
    Shipped is stored (the feed job will find the cancellation too late), an
    older-looking Unshipped copy does not reopen it."""
    from flask_amazon_orders.services import cancelling

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    calls = _host_calls(monkeypatch)
    if amazon == "SHIPPED":
        sandbox.control.set_status(order_id, "SHIPPED")
    else:
        sandbox.control.request_buyer_cancel(order_id)
    claimed = Gate("admin claimed the order")
    pause_after(monkeypatch, cancelling, "_host_statuses_before", claimed, thread="admin")
    actors = Actors(race_shop, request=True)
    with recorded(race_shop, "order_status_changed") as seen:
        actors.start("admin", _cancel, store_id, order_id)
        claimed.wait_reached()
        sync = actors.start("sync", _sync_actor, store_id)
        assert wait_blocked_or_done(database_url, sync) == "blocked"
        claimed.open()
        results = actors.join()
    assert results["admin"].cancelled == [order_id]
    with race_shop.test_request_context():
        order = _check_timeline(order_id)
        assert order.cancellation_state == "queued"  # the cancel's intent, kept
        if amazon == "SHIPPED":
            assert order.status == "Shipped"  # the sync's intent: Amazon's word
            assert [(s["old_status"], s["new_status"]) for s in seen["order_status_changed"]] == [
                ("Canceled", "Shipped")
            ]
        else:
            assert order.status == "Canceled" and order.buyer_cancel_requested
            assert seen["order_status_changed"] == []
        assert calls == [(order.host_order_ref, "Complete")]


def test_the_feed_job_settling_while_a_sync_updates_the_same_orders(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    """The feed job confirms two cancellations (Amazon cancelled both already) while a
    sync page stores both orders: no deadlock, both confirmed once."""
    from flask_amazon_orders.jobs import feeds
    from flask_amazon_orders.models import Cancellation

    _pg_only(database_url)
    order_ids = [_amazon_order(sandbox, seller) for _ in range(2)]
    store_id = _shop_store(race_shop, seller)
    with race_shop.test_request_context():
        low, high = sorted(order_ids, key=lambda o: _order_row(o).id)
        # The higher id first: the feed job settles in the cancellations' order.
        for order_id in (high, low):
            assert _cancel(store_id, order_id).cancelled == [order_id]
    for order_id in order_ids:
        sandbox.control.set_status(order_id, "CANCELLED", cancelled_by="BUYER")
    asked = Gate("feed job asked Amazon about the second order")
    real_status = feeds._Run.amazon_status
    count = {"n": 0}

    def amazon_status(self: Any, amazon_order_id: str) -> Any:
        answer = real_status(self, amazon_order_id)
        count["n"] += 1
        if count["n"] == 2:
            asked.pass_through()
        return answer

    monkeypatch.setattr(feeds._Run, "amazon_status", amazon_status)
    actors = Actors(race_shop, request=True)
    actors.start("feeds", feeds.process_feeds, store_id)
    asked.wait_reached()
    sync = actors.start("sync", _sync_actor, store_id)
    wait_blocked_or_done(database_url, sync)
    asked.open()
    results = actors.join()
    assert results["feeds"].errors == [] and results["feeds"].confirmed == 2
    with race_shop.test_request_context():
        for order_id in order_ids:
            order = _check_timeline(order_id)
            assert (order.status, order.cancellation_state) == ("Canceled", "confirmed")
            assert order.amazon_status == "CANCELLED"
            assert _events(order.id, "cancel_confirmed") == 1
        assert {c.state for c in get_extension().session.scalars(sa.select(Cancellation))} == {
            "confirmed"
        }


def test_a_sync_while_the_feed_job_restores_a_shipped_order(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    """Amazon shipped the order before our cancellation reached it: the feed job
    rejects the cancellation (and gives the shop order its status back) while a
    sync stores the order as Shipped. One story, in one order."""
    from flask_amazon_orders.jobs.feeds import process_feeds
    from flask_amazon_orders.services import cancelling

    _pg_only(database_url)
    order_id = _amazon_order(sandbox, seller)
    store_id = _shop_store(race_shop, seller)
    with race_shop.test_request_context():
        assert _cancel(store_id, order_id).cancelled == [order_id]
    sandbox.control.set_status(order_id, "SHIPPED")
    rejecting = Gate("feed job is rejecting the cancellation")
    pause_after(monkeypatch, cancelling, "_host_statuses_before", rejecting, thread="feeds")
    actors = Actors(race_shop, request=True)
    actors.start("feeds", process_feeds, store_id)
    rejecting.wait_reached()
    sync = actors.start("sync", _sync_actor, store_id)
    assert wait_blocked_or_done(database_url, sync) == "blocked"
    rejecting.open()
    results = actors.join()
    assert results["feeds"].rejected == 1 and results["feeds"].errors == []
    with race_shop.test_request_context():
        order = _check_timeline(order_id)
        assert (order.status, order.cancellation_state) == ("Shipped", "rejected")
        assert _events(order.id, "cancel_rejected") == 1
        assert _shop_status(order_id) == "Complete"  # shipped, after all


# == 4. the import toggle switched while an import runs =================================


def _bare_shop(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A shop with nothing to catch a second order for the same Amazon order (no unique
    key, no find_order): only the extension's claim stands between them."""
    from example_app import amazon_orders
    from example_app.host import ShopAdapter
    from example_app.models import ShopOrder
    from example_app.models import db as shop_db

    class BareShop(ShopAdapter):
        def create_order(
            self, amazon_order: AmazonOrder, *, store: Store, status: str, number: str | None
        ) -> str:
            order = ShopOrder(
                number=f"B-{amazon_order.id}-{threading.get_ident()}-{time.monotonic_ns()}",
                status=status,
                customer=amazon_order.amazon_order_id,
                channel="amazon",
                currency="EUR",
                total=amazon_order.order_total,
            )
            shop_db.session.add(order)
            shop_db.session.flush()
            return str(order.id)

        def find_order(self, amazon_order: AmazonOrder) -> str | None:
            return None

    adapter = BareShop()
    monkeypatch.setattr(amazon_orders, "host", adapter)
    return adapter


def _check_imports(store_id: int) -> dict[str, str | None]:
    """No Amazon order imported twice or half: a host order and the link to it, or
    neither. Returns each order's shop order status (``None``: not imported)."""
    from example_app.models import ShopOrder

    session = get_extension().session
    session.expire_all()
    shop = {
        order.id: order
        for order in session.scalars(sa.select(ShopOrder).where(ShopOrder.channel == "amazon"))
    }
    # The example shop links its orders by Amazon order id; the bare one by customer.
    of = {key: order.amazon_order_id or order.customer for key, order in shop.items()}
    per_order: dict[str, int] = {}
    for amazon_order_id in of.values():
        per_order[amazon_order_id] = per_order.get(amazon_order_id, 0) + 1
    assert all(n == 1 for n in per_order.values()), f"created twice: {per_order}"
    imported: dict[str, str | None] = {}
    for order in session.scalars(sa.select(AmazonOrder).where(AmazonOrder.store_id == store_id)):
        if order.host_order_ref is None:
            assert order.host_import_state in (None, "blocked")
            assert order.amazon_order_id not in per_order
            imported[order.amazon_order_id] = None
            continue
        host = shop[int(order.host_order_ref)]
        assert order.host_import_state == "created" and order.host_imported_at is not None
        assert of[host.id] == order.amazon_order_id and order.host_status == host.status
        imported[order.amazon_order_id] = host.status
    assert set(per_order) <= set(imported)
    return imported


def _settings(client: Any, store_id: int, *, on: bool, status: str = "Processing") -> int:
    url = f"/admin/amazon/stores/{store_id}/settings"
    form = {"csrf_token": _csrf(client, url), "initial_status": status, "number_source": "host"}
    if on:
        form["order_import"] = "on"
    return int(client.post(url, data=form).status_code)


def test_import_switched_off_between_two_orders_of_an_import(
    race_shop, sandbox, seller, monkeypatch
):
    """Admin 1 saves the settings with import on (the import runs in the request);
    after its first shop order admin 2 saves them with import off: the import
    stops there. Switched on again, the rest is imported with the new settings."""
    order_ids = [_amazon_order(sandbox, seller) for _ in range(5)]
    _bare_shop(monkeypatch)
    store_id = _shop_store(race_shop, seller, enabled=False)
    first_done = Gate("the first shop order is committed")

    def after_first(sender: Any, **kwargs: Any) -> None:
        if threading.current_thread().name == "admin-1":
            first_done.pass_through()

    admins = [_browser(race_shop) for _ in range(3)]
    actors = Actors(race_shop)
    with signals.host_order_created.connected_to(after_first, race_shop):
        actors.start("admin-1", _settings, admins[0], store_id, on=True)
        first_done.wait_reached()
        assert _settings(admins[1], store_id, on=False, status="On hold") == 302
        first_done.open()
        assert actors.join()["admin-1"] == 302
    with race_shop.app_context():
        imported = _check_imports(store_id)
        assert Counter(imported.values()) == {"Processing": 1, None: 4}
        assert not get_extension().session.get(Store, store_id).order_import_enabled
    assert _settings(admins[2], store_id, on=True, status="On hold") == 302
    with race_shop.app_context():
        imported = _check_imports(store_id)
        assert set(imported) == set(order_ids)
        assert Counter(imported.values()) == {"Processing": 1, "On hold": 4}


def test_import_switched_off_while_a_shop_order_is_being_created(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    """The order claimed while import was on is imported; none after the switch."""
    _pg_only(database_url)
    [_amazon_order(sandbox, seller) for _ in range(4)]
    adapter = _bare_shop(monkeypatch)
    store_id = _shop_store(race_shop, seller, enabled=False)
    creating = Gate("the first shop order is being created")
    pause_after(monkeypatch, adapter, "create_order", creating, thread="admin-1")
    admins = [_browser(race_shop) for _ in range(2)]
    actors = Actors(race_shop)
    actors.start("admin-1", _settings, admins[0], store_id, on=True)
    creating.wait_reached()
    # Not held up by the import: the switch commits while the order is created.
    assert _settings(admins[1], store_id, on=False) == 302
    creating.open()
    assert actors.join()["admin-1"] == 302
    with race_shop.app_context():
        imported = _check_imports(store_id)
        assert Counter(imported.values()) == {"Processing": 1, None: 3}


def test_import_saved_on_while_the_syncs_import_runs(
    race_shop, database_url, sandbox, seller, monkeypatch
):
    """Two imports of the same orders (the sync's, and the admin's Save): the second
    waits on the order the first is creating, then skips it; each order once."""
    _pg_only(database_url)
    order_ids = [_amazon_order(sandbox, seller) for _ in range(4)]
    adapter = _bare_shop(monkeypatch)
    store_id = _shop_store(race_shop, seller, enabled=False)
    with race_shop.app_context():
        get_extension().session.get(Store, store_id).order_import_enabled = True
        get_extension().session.commit()
    creating = Gate("the sync's import creates its first shop order")
    pause_after(monkeypatch, adapter, "create_order", creating, thread="sync")
    from flask_amazon_orders.services.importing import import_host_orders

    actors = Actors(race_shop)
    actors.start("sync", import_host_orders, store_id)
    creating.wait_reached()
    admin = actors.start("admin", _settings, _browser(race_shop), store_id, on=True)
    assert wait_blocked_or_done(database_url, admin) == "blocked"
    creating.open()
    results = actors.join()
    assert results["admin"] == 302
    with race_shop.app_context():
        imported = _check_imports(store_id)
        assert set(imported) == set(order_ids) and set(imported.values()) == {"Processing"}
    assert len(results["sync"].created) >= 1  # the first order, at least


def test_many_toggles_and_imports_at_once_import_each_order_once(
    race_shop, sandbox, seller, monkeypatch
):
    from flask_amazon_orders.services.importing import import_host_orders, set_order_import

    order_ids = [_amazon_order(sandbox, seller) for _ in range(6)]
    _bare_shop(monkeypatch)
    store_id = _shop_store(race_shop, seller, enabled=False)
    for round_ in range(MIXED_ROUNDS):
        start = threading.Barrier(8)

        def toggle(on: bool, start: threading.Barrier = start) -> Any:
            start.wait(WAIT_TIMEOUT)
            return set_order_import(store_id, on, actor="admin:stress")

        def run_import(start: threading.Barrier = start) -> Any:
            start.wait(WAIT_TIMEOUT)
            return import_host_orders(store_id)

        actors = Actors(race_shop, request=True)
        for n in range(4):
            actors.start(f"toggle-{n}", toggle, (n + round_) % 2 == 0)
            actors.start(f"import-{n}", run_import)
        actors.join()
        with race_shop.app_context():
            _check_imports(store_id)
    with race_shop.test_request_context():
        set_order_import(store_id, True)
        imported = _check_imports(store_id)
        assert set(imported) == set(order_ids) and None not in imported.values()


# == 5b. the feed job: two runs at once; a shipment's answer against a sync ============


def test_feed_job_runs_at_once_send_each_cancellation_once(race_app, sandbox, seller, monkeypatch):
    from flask_amazon_orders.jobs import feeds
    from flask_amazon_orders.models import Cancellation
    from flask_amazon_orders.services.cancelling import cancel_orders

    app = race_app()
    order_ids = [_amazon_order(sandbox, seller) for _ in range(3)]
    with app.app_context():
        store_id = int(connect_store(seller).id)
        assert sync_store(store_id).status == "succeeded"
        assert len(cancel_orders(store_id, order_ids, reason="NoInventory").cancelled) == 3
    runs = 4
    start, tried = threading.Barrier(runs), threading.Barrier(runs)
    real_status = feeds._Run.amazon_status
    local = threading.local()

    def amazon_status(self: Any, amazon_order_id: str) -> Any:
        if not getattr(local, "waited", False):
            local.waited = True
            tried.wait(WAIT_TIMEOUT)  # until every other run has tried
        return real_status(self, amazon_order_id)

    monkeypatch.setattr(feeds._Run, "amazon_status", amazon_status)

    def run() -> Any:
        start.wait(WAIT_TIMEOUT)
        result = feeds.process_feeds(store_id)
        if result.skipped:
            tried.wait(WAIT_TIMEOUT)
        return result

    actors = Actors(app)
    for n in range(runs):
        actors.start(f"feeds-{n}", run)
    results = list(actors.join().values())
    assert sorted(r.skipped for r in results) == [False] + [True] * (runs - 1)
    ran = next(r for r in results if not r.skipped)
    assert ran.errors == [] and len(ran.submitted) == 1
    documents = [feed["document"] for feed in sandbox.control.feeds()]
    assert len(documents) == 1
    assert sorted(o for o in order_ids if o in documents[0]) == sorted(order_ids)
    with app.app_context():
        states = get_extension().session.scalars(sa.select(Cancellation.state)).all()
        assert states == ["sent"] * 3


def test_amazons_answer_to_a_shipment_after_a_sync_stored_more(
    race_app, sandbox, seller, monkeypatch
):
    """The feed job sends one of two units; before its answer is stored, the other one
    is shipped in Seller Central and a sync stores the order as Shipped (2 of 2). The
    answer must not take the order back to Partially Shipped (1 of 2)."""
    from flask_amazon_orders.client.http import SPAPIClient
    from flask_amazon_orders.jobs import feeds

    app = race_app()
    order_id = _amazon_order(
        sandbox, seller, items=[{"sku": "TEA-GREEN-100", "quantity": 2, "unit_price": "8.90"}]
    )
    with app.app_context():
        store_id = int(connect_store(seller).id)
        assert sync_store(store_id).status == "succeeded"
        item = _order_row(order_id).items[0].order_item_id
        _ship(order_id, store_id, items={item: 1})
    answered = Gate("Amazon took the shipment")
    pause_after(monkeypatch, SPAPIClient, "confirm_shipment", answered, thread="feeds")
    actors = Actors(app)
    actors.start("feeds", feeds.process_feeds, store_id)
    answered.wait_reached()
    sandbox.control.set_status(order_id, "SHIPPED")
    with app.app_context():
        assert sync_store(store_id).status == "succeeded"
        assert _order_row(order_id).status == "Shipped"
    answered.open()
    assert actors.join()["feeds"].errors == []
    with app.app_context():
        order = _check_timeline(order_id)
        assert order.status == "Shipped" and order.items[0].quantity_shipped == 2
        assert _events(order.id, "shipment_confirmed") == 1


def test_admins_connecting_the_same_seller_at_once(race_shop, seller, monkeypatch):
    """Both pages checked "not connected yet"; one store is connected, the other
    admin is told it exists (not a 500 from the unique key)."""
    from flask_amazon_orders.crypto import Encryptor

    admins = 2
    checked = threading.Barrier(admins)
    real_encrypt = Encryptor.encrypt

    def encrypt(self: Any, value: str, *, context: str) -> str:  # after the "exists?" check
        if threading.current_thread().name.startswith("admin"):
            checked.wait(WAIT_TIMEOUT)
        return real_encrypt(self, value, context=context)

    monkeypatch.setattr(Encryptor, "encrypt", encrypt)
    url = "/admin/amazon/stores/new"
    browsers = [_browser(race_shop) for _ in range(admins)]
    forms = [
        {
            "name": f"Amazon DE {n}",
            "seller_id": seller["seller_id"],
            "marketplace": "A1PA6795UKMFR9",
            "refresh_token": seller["refresh_token"],
            "csrf_token": _csrf(browser, url),
        }
        for n, browser in enumerate(browsers)
    ]

    def connect(n: int) -> tuple[int, str]:
        response = browsers[n].post(url, data=forms[n])
        return response.status_code, response.data.decode()

    actors = Actors(race_shop)
    for n in range(admins):
        actors.start(f"admin-{n}", connect, n)
    answers = sorted(actors.join().values())
    assert [status for status, _page in answers] == [302, 400]
    assert "is already connected" in answers[1][1]
    with race_shop.app_context():
        assert _count(Store) == 1


# == all at once ==========================================================================


def test_syncs_admins_shop_and_feed_job_at_once_many_rounds(race_shop, sandbox, seller):
    """Each round: two syncs, four admins cancelling, the shop shipping and a feed job
    run start together on the same orders while Amazon ships some of them. Nothing
    fails, and every order's rows tell one story."""
    import random

    from flask_amazon_orders.jobs.feeds import process_feeds
    from flask_amazon_orders.models import Cancellation, Shipment
    from flask_amazon_orders.services.cancelling import PENDING, cancel_orders
    from flask_amazon_orders.services.shipping import ShipmentError

    order_ids = [_amazon_order(sandbox, seller) for _ in range(16)]
    store_id = _shop_store(race_shop, seller)
    pick = random.Random(7)
    for _round in range(MIXED_ROUNDS):
        for order_id in pick.sample(order_ids, 2):
            sandbox.control.set_status(order_id, "SHIPPED")
        start = threading.Barrier(8)

        def sync(start: threading.Barrier = start) -> Any:
            start.wait(WAIT_TIMEOUT)
            return sync_store(store_id, trigger="worker").status

        def admin(chosen: list[str], start: threading.Barrier = start) -> Any:
            start.wait(WAIT_TIMEOUT)
            return cancel_orders(store_id, chosen, reason="NoInventory")

        def shop(order_id: str, start: threading.Barrier = start, round_: int = _round) -> Any:
            start.wait(WAIT_TIMEOUT)
            with contextlib.suppress(ShipmentError):  # not shippable (any more)
                return _ship(order_id, store_id, tracking_number=f"R{round_}")
            return None

        def feeds(start: threading.Barrier = start) -> Any:
            start.wait(WAIT_TIMEOUT)
            return process_feeds(store_id)

        actors = Actors(race_shop, request=True)
        for n in range(2):
            actors.start(f"sync-{n}", sync)
        for n in range(4):
            actors.start(f"admin-{n}", admin, pick.sample(order_ids, 2))
        actors.start("shop", shop, pick.choice(order_ids))
        actors.start("feeds", feeds)
        results = actors.join()
        assert {results["sync-0"], results["sync-1"]} <= {"succeeded", "skipped"}
        assert results["feeds"].errors == []
    with race_shop.test_request_context():
        session = get_extension().session
        for order_id in order_ids:
            order = _check_timeline(order_id)
            cancellations = session.scalars(
                sa.select(Cancellation).where(Cancellation.order_id == order.id)
            ).all()
            shipments = _count(Shipment, Shipment.order_id == order.id)
            pending = [c for c in cancellations if c.state in PENDING]
            assert len(pending) <= 1
            if cancellations:
                assert order.cancellation_state == cancellations[-1].state
                # Never cancelled here and shipped by the shop while on its way.
                assert not (pending and shipments)
            assert _events(order.id, "cancel_requested") == len(cancellations)
        _check_imports(store_id)
