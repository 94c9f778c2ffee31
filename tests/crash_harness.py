"""Crash consistency: the worker as a real process, killed with SIGKILL and restarted.

Shared by ``tests/test_crash.py`` (the CI profile) and ``bench/bench_crash.py``
(the long run). The parts:

* the example shop (``example_app``: a real host whose adapter creates shop
  orders, order import on) on a file database, set up and read in this process;
* the worker: ``flask --app example_app amazon-orders sync`` / ``worker --once`` /
  ``feeds --wait`` in a process of its own, against the sandbox served over HTTP
  by this process (forked by a launcher that imported the CLI's modules once, so
  a restart does not pay a second of imports);
* kill points: a ``slow`` fault on the N-th call of an operation (the child is
  killed while that request is in flight; the sandbox then completes it, as
  Amazon completes a request whose client has died), the N-th answer served
  plus a few milliseconds (the child is storing it), a count of rows written,
  or a plain random delay. After each kill the child is started again, until
  the job ends by itself;
* snapshots of everything the job wrote, compared with an uninterrupted run on
  the same Amazon data.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from flask_amazon_orders.crypto import buyer_data_context
from flask_amazon_orders.models import metadata
from flask_amazon_orders.sandbox import SandboxServer

REPO = Path(__file__).resolve().parent.parent
#: Amazon's rate limits run this many times faster: they are not what is tested.
TIME_SCALE = 100_000.0
SELLER_ID = "A2CRASHTEAHOUSE"
SECRET_KEY = "crash-test-secret"
#: How long a ``slow`` fault holds the request the child is killed in.
FAULT_DELAY = 0.2
#: The sandbox's counters of answered calls (a call in flight has none yet).
_OUTCOMES = ("ok", "throttled", "errors")
#: Seconds between two counts of rows written (a query each time).
_ROWS_POLL = 0.02


@contextlib.contextmanager
def frozen_search_clock(at: dt.datetime) -> Iterator[None]:
    """Hold the sandbox's ``searchOrders`` clock at ``at``.

    Amazon ends a search window at the time of its first page
    (``lastUpdatedBefore``), and the sync stores that as its cursor; held still,
    an interrupted run and an uninterrupted one end with the same cursor.
    """
    from flask_amazon_orders.sandbox import orders_api

    real = orders_api.now_ms
    frozen = int(at.timestamp() * 1000)
    orders_api.now_ms = lambda: frozen
    try:
        yield
    finally:
        orders_api.now_ms = real


def seed_orders(
    sandbox: SandboxServer, count: int, *, seed: int, end: dt.datetime, **options: Any
) -> dict[str, Any]:
    """A seller with ``count`` orders for the shop's SKUs, placed in the week before ``end``."""
    from example_app.demo import SANDBOX_CATALOG

    seller = sandbox.control.create_seller(
        seller_id=SELLER_ID, name="Crash Teahouse", marketplace_id="A1PA6795UKMFR9"
    )
    sandbox.control.generate_orders(
        SELLER_ID,
        count,
        seed=seed,
        catalog=SANDBOX_CATALOG,
        start=(end - dt.timedelta(days=7)).isoformat(),
        end=end.isoformat(),
        **options,
    )
    return seller


# -- the shop ------------------------------------------------------------------------------


class Shop:
    """The example shop on ``database_url``, pointed at ``sandbox_url``: set up and
    read here, run as a worker process by :class:`Worker`."""

    def __init__(self, database_url: str, sandbox_url: str) -> None:
        from example_app import create_app

        self.config: dict[str, Any] = {
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "AMAZON_ORDERS_ENDPOINT": sandbox_url,
            "AMAZON_ORDERS_LWA_URL": sandbox_url + "/auth/o2/token",
            "AMAZON_ORDERS_LWA_CLIENT_ID": "sandbox-client-id",
            "AMAZON_ORDERS_LWA_CLIENT_SECRET": "sandbox-client-secret",
            "AMAZON_ORDERS_RATE_LIMIT_SCALE": TIME_SCALE,
            "AMAZON_ORDERS_RETRY_BACKOFF_SECONDS": 0.01,
            "AMAZON_ORDERS_RETRY_BACKOFF_CAP_SECONDS": 0.05,
            "AMAZON_ORDERS_FEED_POLL_SECONDS": 1,
        }
        self.app = create_app(self.config)
        self.url = database_url

    def env(self) -> dict[str, str]:
        """The environment of a worker process: the same shop, configured through
        the example app's ``SHOP_*`` variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "FLASK_"))}
        for key, value in self.config.items():
            env["SHOP_" + key] = value if isinstance(value, str) else json.dumps(value)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        return env

    @property
    def engine(self) -> sa.Engine:
        from example_app.models import db

        with self.app.app_context():
            return db.engine

    def reset(self, seller: dict[str, Any], *, connected: dt.datetime) -> int:
        """Empty tables, the catalogue, and the seller connected with order import on."""
        from example_app import amazon_orders, init_db
        from example_app.models import db

        with self.app.app_context():
            db.session.remove()
            db.drop_all()
            init_db()
            store = amazon_orders.add_store(
                name="Crash Teahouse",
                seller_id=seller["seller_id"],
                marketplace="DE",
                refresh_token=seller["refresh_token"],
                order_import_enabled=True,
            )
            store.connected_at = connected
            db.session.commit()
            store_id = store.id
            db.session.remove()
        return store_id

    def close(self) -> None:
        """Close the database connections this process holds."""
        from example_app.models import db

        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()

    def drop(self) -> None:
        from example_app.models import db

        with self.app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()

    @contextlib.contextmanager
    def context(self) -> Iterator[Any]:
        """An app context; yields the session (removed afterwards)."""
        from example_app.models import db

        with self.app.app_context():
            try:
                yield db.session
            finally:
                db.session.remove()

    def count(self, query: sa.Select[Any]) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    def snapshot(self) -> Snapshot:
        return _snapshot(self)


# -- what the job left ---------------------------------------------------------------------

_ORDER_COLUMNS = (
    "seller_order_id",
    "status",
    "amazon_status",
    "fulfillment_channel",
    "service_level",
    "marketplace_id",
    "sales_channel",
    "programs",
    "purchased_at",
    "amazon_updated_at",
    "earliest_ship_at",
    "latest_ship_at",
    "earliest_delivery_at",
    "latest_delivery_at",
    "currency",
    "order_total",
    "items_count",
    "ship_country",
    "buyer_cancel_requested",
    "buyer_cancel_reason",
    "host_import_state",
    "host_import_error",
    "host_status",
    "cancellation_state",
)
#: Every column of an item but its keys.
_ITEM_COLUMNS = tuple(
    column.name
    for column in metadata.tables["amazon_order_items"].columns
    if column.name not in ("id", "order_id", "order_item_id")
)


@dataclasses.dataclass
class Snapshot:
    """Everything a job leaves in the database, keyed by Amazon order id (never by
    row ids or shop numbers, which a rolled-back transaction may have used up)."""

    orders: dict[str, dict[str, Any]]
    #: Per order: its timeline as a sorted list of (kind, actor, from, to).
    events: dict[str, list[tuple[Any, ...]]]
    #: Per order: the shop orders that carry its Amazon order id.
    shop_orders: dict[str, list[dict[str, Any]]]
    #: Per order: its cancellations (reason, state) and shipments (state).
    cancellations: dict[str, list[tuple[str, str]]]
    shipments: dict[str, list[str]]
    store: dict[str, Any]
    #: Rows per (store, Amazon order id); more than one is a duplicate.
    order_rows: int
    #: Sync runs and feed documents by state.
    sync_runs: collections.Counter[str]
    feed_submissions: collections.Counter[str]

    def duplicates(self) -> list[str]:
        """What the job stored twice (empty: nothing)."""
        found = []
        if self.order_rows != len(self.orders):
            found.append(f"{self.order_rows} order rows for {len(self.orders)} orders")
        for order_id, rows in self.shop_orders.items():
            if len(rows) > 1:
                found.append(f"{order_id}: {len(rows)} shop orders")
        for order_id, events in self.events.items():
            for kind, count in collections.Counter(e[0] for e in events).items():
                if count > 1 and kind in _ONCE:
                    found.append(f"{order_id}: {count} {kind!r} events")
        for order_id, cancellations in self.cancellations.items():
            if len(cancellations) > 1:
                found.append(f"{order_id}: {len(cancellations)} cancellations")
        for order_id, shipments in self.shipments.items():
            if len(shipments) > 1:
                found.append(f"{order_id}: {len(shipments)} shipments")
        return found

    def differences(self, expected: Snapshot) -> list[str]:
        """How this end state differs from ``expected`` (empty: not at all)."""
        found = []
        for name in ("orders", "events", "shop_orders", "cancellations", "shipments", "store"):
            mine, theirs = getattr(self, name), getattr(expected, name)
            for key in sorted(set(mine) | set(theirs)):
                if key not in mine:
                    found.append(f"{name}: {key} missing")
                elif key not in theirs:
                    found.append(f"{name}: {key} not expected")
                elif mine[key] != theirs[key]:
                    found.append(f"{name}: {key}: {mine[key]!r} != {theirs[key]!r}")
        return found


#: Timeline entries an order gets once at most.
_ONCE = frozenset(
    {
        "imported",
        "host_order_created",
        "host_order_completed",
        "cancel_sent",
        "cancellation_confirmed",
        "shipment_confirmed",
    }
)


def _snapshot(shop: Shop) -> Snapshot:
    from example_app import amazon_orders
    from example_app.models import ShopOrder, ShopOrderLine
    from flask_amazon_orders.models import (
        AmazonOrder,
        AmazonOrderItem,
        Cancellation,
        FeedSubmission,
        OrderEvent,
        Shipment,
        Store,
        SyncRun,
    )

    def columns(model: Any, names: tuple[str, ...]) -> list[Any]:
        return [getattr(model, name) for name in names]

    # Plain rows, not ORM objects: a snapshot of 5,000 orders stays quick.
    with shop.context() as session:
        decrypt = amazon_orders.encryptor.decrypt
        orders: dict[str, dict[str, Any]] = {}
        by_id: dict[int, str] = {}
        refs: dict[str, str | None] = {}
        for row in session.execute(
            sa.select(
                AmazonOrder.id,
                AmazonOrder.store_id,
                AmazonOrder.amazon_order_id,
                AmazonOrder.host_order_ref,
                AmazonOrder.buyer_data_encrypted,
                *columns(AmazonOrder, _ORDER_COLUMNS),
            )
        ):
            order_id, store_id, amazon_order_id, ref, buyer, *values = row
            by_id[order_id] = amazon_order_id
            refs[amazon_order_id] = ref
            orders[amazon_order_id] = dict(zip(_ORDER_COLUMNS, values, strict=True))
            context = buyer_data_context(store_id, amazon_order_id)
            orders[amazon_order_id]["buyer"] = decrypt(buyer, context=context) if buyer else None
            orders[amazon_order_id]["items"] = {}
        for order_id, item_id, *values in session.execute(
            sa.select(
                AmazonOrderItem.order_id,
                AmazonOrderItem.order_item_id,
                *columns(AmazonOrderItem, _ITEM_COLUMNS),
            )
        ):
            orders[by_id[order_id]]["items"][item_id] = dict(
                zip(_ITEM_COLUMNS, values, strict=True)
            )
        events: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)
        for order_id, *event in session.execute(
            sa.select(
                OrderEvent.order_id,
                OrderEvent.kind,
                OrderEvent.actor,
                OrderEvent.from_status,
                OrderEvent.to_status,
            )
        ):
            events[by_id[order_id]].append(tuple(event))
        lines: dict[int, list[tuple[Any, ...]]] = collections.defaultdict(list)
        for order_id, *line in session.execute(
            sa.select(
                ShopOrderLine.order_id,
                ShopOrderLine.amazon_order_item_id,
                ShopOrderLine.sku,
                ShopOrderLine.quantity,
                ShopOrderLine.price,
                ShopOrderLine.tax,
            )
        ):
            lines[order_id].append(tuple(line))
        shop_orders: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        shop_columns = ("status", "customer", "currency", "total", "shipping", "tax", "discount")
        for shop_order_id, amazon_order_id, *values in session.execute(
            sa.select(ShopOrder.id, ShopOrder.amazon_order_id, *columns(ShopOrder, shop_columns))
        ):
            row = dict(zip(shop_columns, values, strict=True))
            row["lines"] = sorted(lines[shop_order_id], key=repr)
            # The Amazon order links to this very shop order.
            row["linked"] = refs.get(amazon_order_id or "") == str(shop_order_id)
            shop_orders[amazon_order_id or f"shop order {shop_order_id}"].append(row)
        cancellations: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        for order_id, reason, state in session.execute(
            sa.select(Cancellation.order_id, Cancellation.reason, Cancellation.state)
        ):
            cancellations[by_id[order_id]].append((reason, state))
        shipments: dict[str, list[str]] = collections.defaultdict(list)
        for order_id, state in session.execute(sa.select(Shipment.order_id, Shipment.state)):
            shipments[by_id[order_id]].append(state)
        store = session.scalars(sa.select(Store)).one()
        store_state = {
            "sync_cursor": store.sync_cursor,
            "sync_page_token": store.sync_page_token,
            "sync_window_after": store.sync_window_after,
            "sync_window_before": store.sync_window_before,
            "last_sync_error": store.last_sync_error,
        }
        order_rows = session.scalar(sa.select(sa.func.count()).select_from(AmazonOrder)) or 0
        runs = collections.Counter(session.scalars(sa.select(SyncRun.status)))
        submissions = collections.Counter(session.scalars(sa.select(FeedSubmission.state)))
    return Snapshot(
        orders=orders,
        events={k: sorted(v, key=repr) for k, v in events.items()},
        shop_orders=dict(shop_orders),
        cancellations=dict(cancellations),
        shipments=dict(shipments),
        store={"store": store_state},
        order_rows=order_rows,
        sync_runs=runs,
        feed_submissions=submissions,
    )


# -- what Amazon received ------------------------------------------------------------------


def feed_messages(control: Any) -> dict[str, dict[str, int]]:
    """Per Amazon order id: the order acknowledgement messages in feeds Amazon
    accepted (createFeed), by the feed's end: ``processed`` (``DONE``) or
    ``unprocessed`` (``FATAL``/``CANCELLED``: Amazon applied none of it)."""
    from xml.etree import ElementTree

    found: dict[str, dict[str, int]] = collections.defaultdict(collections.Counter)
    for feed in control.feeds():
        if feed["feedType"] != "POST_ORDER_ACKNOWLEDGEMENT_DATA" or not feed["document"]:
            continue
        end = "processed" if feed["processingStatus"] == "DONE" else "unprocessed"
        root = ElementTree.fromstring(feed["document"])
        for element in root.iter("AmazonOrderID"):
            found[(element.text or "").strip()][end] += 1
    return found


def duplicate_feed_messages(messages: dict[str, dict[str, int]], orders: set[str]) -> list[str]:
    """What "no duplicate feed messages" means, checked: no order is in more than
    one feed that Amazon processed (``DONE``), and no order that was not cancelled
    is in one. (That every cancelled order is in one is checked separately.)
    Messages in a feed Amazon did not process (``FATAL``, ``CANCELLED``) are not
    counted: Amazon applied none of them, and their orders are checked and sent
    once more. Documents uploaded without a createFeed are never feeds."""
    found = []
    for order_id, counts in sorted(messages.items()):
        processed = counts.get("processed", 0)
        if processed > 1 or (processed and order_id not in orders):
            found.append(f"{order_id}: in {processed} processed feeds")
    return found


# -- the worker process ----------------------------------------------------------------------


@dataclasses.dataclass
class KillPoint:
    """When to kill the worker. Exactly one of ``fault``, ``served``, ``rows`` or
    ``delay`` is set."""

    phase: str
    #: Hold the ``after+1``-th call of this operation (a ``slow`` fault) and kill
    #: while it is in flight.
    fault: str | None = None
    after: int = 0
    #: Kill ``jitter`` seconds after the ``count``-th answer of this operation.
    served: str | None = None
    count: int = 1
    jitter: float = 0.0
    #: Kill once this query counts at least ``count`` rows.
    rows: sa.Select[Any] | None = None
    #: Kill after this many seconds.
    delay: float | None = None


@dataclasses.dataclass
class JobReport:
    """How one job went: kills by phase, points the job finished before, restarts."""

    kills: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    missed: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    commands: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    runs: int = 0
    #: Runs started after the first.
    restarts: int = 0
    seconds: float = 0.0
    log: list[str] = dataclasses.field(default_factory=list)

    def add(self, other: JobReport) -> None:
        self.kills.update(other.kills)
        self.missed.update(other.missed)
        self.commands.update(other.commands)
        self.runs += other.runs
        self.restarts += other.restarts
        self.seconds += other.seconds


#: The launcher: a process that has imported what the CLI needs and forks one
#: ``flask --app example_app amazon-orders …`` per request. Each worker is still a
#: process of its own, killed and reaped like any other; forking only saves the
#: second of start-up (imports) that a fresh interpreter pays for every restart.
_LAUNCHER = """
import json, os, sys, traceback
import flask.cli
import example_app
import flask_amazon_orders.cli
import flask_amazon_orders.jobs.feeds
import flask_amazon_orders.jobs.sync
import flask_amazon_orders.runners.embedded

def child(args, output):
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    code = 1
    try:
        flask.cli.cli.main(["--app", "example_app", "amazon-orders", *args], prog_name="flask")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(request["args"], request["output"])
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class WorkerProcess:
    """One worker process started by the launcher."""

    def __init__(self, launcher: _Launcher, pid: int, output: Path) -> None:
        self._launcher = launcher
        self.pid = pid
        self.output = output
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            answer = self._launcher.answer(timeout=0)
            if answer is not None:
                self.returncode = int(answer["exit"])
        return self.returncode

    def wait(self, timeout: float) -> int:
        if self.returncode is None:
            answer = self._launcher.answer(timeout=timeout)
            if answer is None:
                raise TimeoutError(f"worker {self.pid} still runs after {timeout} s")
            self.returncode = int(answer["exit"])
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            # Not reported yet, so not reaped long ago: the pid is still its own.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class _Launcher:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._buffer = b""

    def start(self, args: tuple[str, ...], output: Path) -> WorkerProcess:
        assert self.process.stdin is not None
        request = json.dumps({"args": list(args), "output": str(output)}) + "\n"
        self.process.stdin.write(request.encode())
        self.process.stdin.flush()
        answer = self.answer(timeout=60)
        assert answer is not None, "the launcher did not start a worker"
        return WorkerProcess(self, int(answer["pid"]), output)

    def answer(self, timeout: float) -> dict[str, Any] | None:
        """The launcher's next line, or ``None`` if none comes within ``timeout``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            wait = max(deadline - time.monotonic(), 0)
            if not select.select([fd], [], [], wait)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"the launcher ended (status {self.process.wait()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(30)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Worker:
    """Runs ``flask --app example_app amazon-orders …`` for a :class:`Shop` and kills it."""

    def __init__(self, shop: Shop, sandbox: SandboxServer, workdir: Path) -> None:
        self.shop = shop
        self.sandbox = sandbox
        self.control = sandbox.control
        self.workdir = workdir
        self.env = shop.env()
        self._runs = 0
        self._launcher: _Launcher | None = None
        self._current: WorkerProcess | None = None

    def start(self, args: tuple[str, ...]) -> WorkerProcess:
        if self._launcher is None:
            self._launcher = _Launcher(self.env, self.workdir)
        self._runs += 1
        self._current = self._launcher.start(args, self.workdir / f"worker-{self._runs:04d}.log")
        return self._current

    def run(self, args: tuple[str, ...], timeout: float = 300) -> tuple[int, str]:
        """Run to the end; returns the exit status and the output."""
        process = self.start(args)
        returncode = process.wait(timeout)
        return returncode, process.output.read_text()

    def close(self) -> None:
        """Stop the launcher (after killing a worker still running)."""
        launcher, self._launcher = self._launcher, None
        if launcher is None:
            return
        current = self._current
        if current is not None and current.poll() is None:
            current.kill()
            current.wait(60)
        launcher.close()

    def _operations(self) -> dict[str, dict[str, int]]:
        """The sandbox's call counters (those of ``GET /_sandbox/counters``), read
        in this process: polled every few milliseconds, HTTP would cost more than
        the worker's own work."""
        state = self.sandbox.state
        with state.lock:
            return {op: dict(counts) for op, counts in state.counters.operations.items()}

    def _calls(self) -> int:
        return sum(counts["calls"] for counts in self._operations().values())

    def _counter(self, operation: str, *names: str) -> int:
        counts = self._operations().get(operation, {})
        return sum(counts.get(name, 0) for name in names)

    def _arm(self, point: KillPoint) -> Callable[[], bool]:
        """Prepare ``point``; returns the test "is it time to kill?"."""
        if point.fault is not None:
            operation = point.fault
            before = self._counter(operation, "faulted")
            self.control.inject_fault(operation, "slow", after=point.after, delay=FAULT_DELAY)
            return lambda: self._counter(operation, "faulted") > before
        if point.served is not None:
            served = point.served
            target = self._counter(served, "ok") + point.count
            return lambda: self._counter(served, "ok") >= target
        if point.rows is not None:
            query, count = point.rows, point.count
            checked = [0.0]

            def written() -> bool:
                if time.monotonic() - checked[0] < _ROWS_POLL:
                    return False
                checked[0] = time.monotonic()
                return self.shop.count(query) >= count

            return written
        # A delay counts from the worker's first request (its start-up is not timed).
        delay = point.delay
        assert delay is not None
        calls = self._calls()
        since: list[float] = []

        def due() -> bool:
            if not since:
                if self._calls() > calls:
                    since.append(time.monotonic())
                return False
            return time.monotonic() - since[0] >= delay

        return due

    def settle(self, timeout: float = 10) -> None:
        """Wait until the sandbox answered every request it received (a dead
        worker's request in flight is still carried out), then drop the faults."""
        deadline = time.monotonic() + timeout
        while True:
            operations = self._operations()
            busy = [
                name
                for name, counts in operations.items()
                if counts["calls"] > sum(counts[outcome] for outcome in _OUTCOMES)
            ]
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.control.clear_faults()
        assert not busy, f"the sandbox is still busy with {busy}"

    def run_with_kills(
        self,
        commands: Callable[[], tuple[str, ...]],
        next_point: Callable[[int], KillPoint | None],
        done: Callable[[], bool],
        *,
        kills: int,
        max_runs: int | None = None,
        run_timeout: float = 120,
    ) -> JobReport:
        """Start the job, kill it at ``next_point(kills_left)``, restart, until it is done.

        A kill point the job finishes before is counted as missed; the job is
        over when a run exits by itself with status 0 and ``done()`` holds. A
        run that does not end within ``run_timeout`` seconds (waiting for a lease,
        say) fails the job.
        """
        report = JobReport()
        started = time.monotonic()
        max_runs = max_runs if max_runs is not None else kills * 2 + 10
        killed = 0
        while True:
            if report.runs >= max_runs:
                raise AssertionError(
                    f"the job did not finish in {report.runs} runs:\n" + "\n".join(report.log[-8:])
                )
            point = next_point(kills - killed) if killed < kills else None
            ready = self._arm(point) if point is not None else None
            args = commands()
            report.commands[" ".join(args)] += 1
            process = self.start(args)
            report.runs += 1
            hit = False
            deadline = time.monotonic() + run_timeout
            while process.poll() is None:
                if ready is not None and ready():
                    assert point is not None
                    if point.jitter:
                        time.sleep(point.jitter)
                    process.kill()
                    hit = True
                    break
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait(60)
                    raise AssertionError(
                        f"run {report.runs} did not end in {run_timeout} s:\n"
                        + process.output.read_text()[-2000:]
                    )
                time.sleep(0.002)
            returncode = process.wait(60)
            self.settle()
            text = process.output.read_text()
            if point is not None:
                if hit and returncode == -signal.SIGKILL:
                    killed += 1
                    report.kills[point.phase] += 1
                    report.log.append(f"run {report.runs}: killed at {point.phase}")
                    continue
                report.missed[point.phase] += 1
            report.log.append(f"run {report.runs}: exit {returncode}: {text[-2000:]}")
            if returncode == 0 and done():
                break
        report.seconds = time.monotonic() - started
        report.restarts = report.runs - 1
        return report


# -- kill plans ------------------------------------------------------------------------------


def _next_phase(rng: random.Random, phases: list[str], first: list[str]) -> str:
    """The first of ``first`` the job can still reach (taken off), else a random phase."""
    while first:
        phase = first.pop(0)
        if phase in phases:
            return phase
    return rng.choice(phases)


@dataclasses.dataclass
class SyncPlan:
    """Chooses kill points for a sync of ``pages`` pages creating ``host_orders`` shop orders."""

    rng: random.Random
    shop: Shop
    pages: int
    host_orders: int
    #: How long the uninterrupted run took (for random delays within the job).
    seconds: float
    #: Phases to kill in first, in this order (each when the job can still reach it).
    first: list[str] = dataclasses.field(default_factory=list)
    page_size: int = 100

    def __call__(self, kills_left: int) -> KillPoint:
        from example_app.models import ShopOrder
        from flask_amazon_orders.models import AmazonOrder

        rng = self.rng
        stored = self.shop.count(sa.select(sa.func.count()).select_from(AmazonOrder))
        created = self.shop.count(sa.select(sa.func.count()).select_from(ShopOrder))
        pages_left = max(self.pages - stored // self.page_size, 0)
        imports_left = self.host_orders - created
        # Spread the kills over what is left of the job.
        reach = max(1, 2 * pages_left // (kills_left + 1))
        # Kill in the pages or in the shop orders' creation after them, as the
        # time left is shared between the two (twenty shop orders take about a page).
        in_pages = pages_left > 1 and (
            bool(self.first)
            or imports_left <= 1
            or rng.random() < pages_left / (pages_left + imports_left / 20)
        )
        phases = ["random"]
        if in_pages:
            phases += ["searchOrders in flight", "page being stored", "token in flight"]
        elif imports_left > 1:
            phases.append("host import")
        phase = _next_phase(rng, phases, self.first)
        if phase == "searchOrders in flight":
            return KillPoint(phase, fault="searchOrders", after=rng.randrange(reach))
        if phase == "page being stored":
            return KillPoint(
                phase,
                served="searchOrders",
                count=rng.randint(1, reach),
                jitter=rng.uniform(0, 0.03),
            )
        if phase == "token in flight":
            return KillPoint(phase, fault="token")
        if phase == "host import":
            ahead = max(1, 2 * imports_left // (kills_left + 1))
            return KillPoint(
                phase,
                rows=sa.select(sa.func.count()).select_from(ShopOrder),
                count=created + rng.randint(1, min(ahead, imports_left - 1)),
            )
        left = (pages_left + imports_left / 10) / (self.pages + self.host_orders / 10)
        return KillPoint(phase, delay=rng.uniform(0, 2 * self.seconds * left / (kills_left + 1)))


def sync_commands(rng: random.Random) -> Callable[[], tuple[str, ...]]:
    """The sync as cron runs it (``sync``) or as a worker round (``worker --once``)."""
    return lambda: rng.choice([("sync",), ("worker", "--once")])


def sync_done(shop: Shop) -> Callable[[], bool]:
    from flask_amazon_orders.models import SyncRun

    def done() -> bool:
        newest = sa.select(SyncRun.status).order_by(SyncRun.id.desc()).limit(1)
        with shop.engine.connect() as connection:
            return connection.scalar(newest) == "succeeded"

    return done


@dataclasses.dataclass
class FeedPlan:
    """Chooses kill points for the feed job (cancellations and shipments)."""

    rng: random.Random
    shop: Shop
    #: Phases to kill in first, in this order (each when the job can still reach it).
    first: list[str] = dataclasses.field(default_factory=list)

    def __call__(self, kills_left: int) -> KillPoint:
        from flask_amazon_orders.models import Cancellation, FeedSubmission, Shipment

        rng = self.rng
        with self.shop.engine.connect() as connection:
            submissions = collections.Counter(
                connection.scalars(sa.select(FeedSubmission.state)).all()
            )
            queued = connection.scalar(
                sa.select(sa.func.count())
                .select_from(Cancellation)
                .where(Cancellation.state == "queued")
            )
            shipments = connection.scalar(
                sa.select(sa.func.count()).select_from(Shipment).where(Shipment.state == "queued")
            )
        phases = ["random"]
        if submissions["creating"]:
            phases.append("getFeeds (adopting)")
        if submissions["creating"] or submissions["submitted"]:
            phases += ["getFeed (polling)", "report download", "settling the report"]
        elif queued:
            phases += [
                "getOrder (verifying)",
                "createFeedDocument",
                "upload",
                "between upload and createFeed",
                "createFeed in flight",
            ]
        if shipments:
            phases.append("confirmShipment")
        phase = _next_phase(rng, phases, self.first)
        if phase == "getOrder (verifying)":
            return KillPoint(phase, fault="getOrder", after=rng.randrange(max(queued or 1, 1)))
        if phase == "confirmShipment":
            return KillPoint(phase, fault="confirmShipment", after=rng.randrange(shipments or 1))
        faults = {
            "getFeeds (adopting)": "getFeeds",
            "createFeedDocument": "createFeedDocument",
            "upload": "upload",
            "createFeed in flight": "createFeed",
            "getFeed (polling)": "getFeed",
            "report download": "download",
        }
        if phase in faults:
            return KillPoint(phase, fault=faults[phase])
        if phase == "between upload and createFeed":
            return KillPoint(phase, served="upload", jitter=rng.uniform(0, 0.01))
        if phase == "settling the report":
            return KillPoint(phase, served="download", jitter=rng.uniform(0, 0.02))
        return KillPoint(phase, delay=rng.uniform(0, 0.4))


def feeds_done(shop: Shop) -> Callable[[], bool]:
    from flask_amazon_orders.models import Cancellation, Shipment

    def done() -> bool:
        with shop.engine.connect() as connection:
            pending = connection.scalar(
                sa.select(sa.func.count())
                .select_from(Cancellation)
                .where(Cancellation.state.in_(("queued", "sent")))
            )
            queued = connection.scalar(
                sa.select(sa.func.count()).select_from(Shipment).where(Shipment.state == "queued")
            )
        return not pending and not queued

    return done


def histogram(counter: collections.Counter[str]) -> str:
    return ", ".join(f"{phase} {n}" for phase, n in counter.most_common()) or "none"


# -- the scenarios ---------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """One job's end state, what Amazon received, and how the job went."""

    snapshot: Snapshot
    report: JobReport
    #: Feed messages per Amazon order id (see :func:`feed_messages`).
    messages: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: Packages confirmed per Amazon order id, and how often each was sent again.
    packages: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    replays: int = 0

    def problems(self, expected: Outcome | None = None) -> Problems:
        """Duplicates in the end state, and how it differs from ``expected``."""
        return Problems(
            self.snapshot.duplicates(),
            self.snapshot.differences(expected.snapshot) if expected is not None else [],
        )


@dataclasses.dataclass
class Problems:
    """What a job got wrong: something done twice, or an end state that differs."""

    duplicates: list[str] = dataclasses.field(default_factory=list)
    mismatches: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.duplicates or self.mismatches)

    def __str__(self) -> str:
        lines = [f"duplicate: {p}" for p in self.duplicates[:20]]
        lines += [f"mismatch: {p}" for p in self.mismatches[:20]]
        return "\n".join(lines)


class SyncScenario:
    """A sync of ``orders`` orders (one sandbox, read only), each run from an empty shop.

    Use it as a context manager: it serves the sandbox and holds its search clock.
    """

    def __init__(self, database_url: str, workdir: Path, *, seed: int, orders: int) -> None:
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.sandbox = SandboxServer(time_scale=TIME_SCALE, seed=seed)
        self.database_url = database_url
        self.workdir = workdir
        self.seed = seed
        self.orders = orders
        self._stack = contextlib.ExitStack()
        self.reference: Outcome | None = None
        self.pages = 0
        self.seconds = 0.0

    def __enter__(self) -> SyncScenario:
        self._stack.enter_context(self.sandbox)
        self._stack.enter_context(frozen_search_clock(self.now))
        self.seller = seed_orders(
            self.sandbox, self.orders, seed=self.seed, end=self.now - dt.timedelta(minutes=5)
        )
        self.shop = Shop(self.database_url, self.sandbox.url)
        self.worker = Worker(self.shop, self.sandbox, self.workdir)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.worker.close()
        self.shop.close()
        self._stack.close()

    def _reset(self) -> None:
        # Orders of the last eight hours become shop orders (a few hundred).
        self.shop.reset(self.seller, connected=self.now - dt.timedelta(hours=8))

    def run_uninterrupted(self) -> Outcome:
        self._reset()
        before = self.worker._counter("searchOrders", "ok")
        started = time.monotonic()
        returncode, output = self.worker.run(("sync",))
        assert returncode == 0, output
        report = JobReport(runs=1, seconds=time.monotonic() - started)
        report.commands["sync"] += 1
        self.pages = self.worker._counter("searchOrders", "ok") - before
        self.seconds = report.seconds
        self.reference = Outcome(self.shop.snapshot(), report)
        return self.reference

    def run_with_kills(
        self, rng: random.Random, kills: int, *, first: tuple[str, ...] = ()
    ) -> Outcome:
        """Run the sync, killed ``kills`` times: at ``first`` (phases of
        :class:`SyncPlan`), then at random points and phases."""
        assert self.reference is not None, "run_uninterrupted() first"
        self._reset()
        plan = SyncPlan(
            rng,
            self.shop,
            pages=self.pages,
            host_orders=sum(len(v) for v in self.reference.snapshot.shop_orders.values()),
            seconds=self.seconds,
            first=list(first),
        )
        report = self.worker.run_with_kills(
            sync_commands(rng), plan, sync_done(self.shop), kills=kills
        )
        return Outcome(self.shop.snapshot(), report)


class FeedScenario:
    """Cancellations and shipments of ``orders`` unshipped orders sent by the feed job;
    each run on a new sandbox with the same orders."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        seed: int,
        orders: int,
        cancel: int,
        ship: int,
    ) -> None:
        assert cancel + ship <= orders
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.database_url = database_url
        self.workdir = workdir
        self.seed = seed
        self.orders = orders
        self.cancel = cancel
        self.ship = ship
        self.cancelled: set[str] = set()

    @contextlib.contextmanager
    def _queued(self) -> Iterator[tuple[SandboxServer, Shop, Worker]]:
        """A new sandbox, the orders synced, cancellations and shipments queued."""
        from example_app import amazon_orders
        from flask_amazon_orders.models import AmazonOrder
        from flask_amazon_orders.services.cancelling import cancel_orders
        from flask_amazon_orders.services.shipping import confirm_shipment

        with (
            SandboxServer(time_scale=TIME_SCALE, seed=self.seed) as sandbox,
            frozen_search_clock(self.now),
        ):
            seller = seed_orders(
                sandbox,
                self.orders,
                seed=self.seed,
                end=self.now - dt.timedelta(minutes=5),
                statuses={"UNSHIPPED": 1},
                afn_share=0,
            )
            shop = Shop(self.database_url, sandbox.url)
            store_id = shop.reset(seller, connected=self.now - dt.timedelta(days=30))
            with shop.context() as session:
                assert amazon_orders.sync(store_id).status == "succeeded"
                ids = sorted(session.scalars(sa.select(AmazonOrder.amazon_order_id)))
                to_cancel = ids[: self.cancel]
                result = cancel_orders(store_id, to_cancel, reason="NoInventory", actor="cli")
                assert result.cancelled == to_cancel, result.refused
                for n, order_id in enumerate(ids[self.cancel : self.cancel + self.ship]):
                    confirm_shipment(
                        order_id,
                        carrier_code="DHL",
                        tracking_number=f"0034043{n:011d}",
                        host_reference=f"parcel-{n}",
                        store=store_id,
                    )
                session.commit()
            self.cancelled = set(to_cancel)
            worker = Worker(shop, sandbox, self.workdir)
            try:
                yield sandbox, shop, worker
            finally:
                worker.close()
                shop.close()

    def _outcome(self, sandbox: SandboxServer, shop: Shop, report: JobReport) -> Outcome:
        packages = sandbox.control.shipments()
        return Outcome(
            shop.snapshot(),
            report,
            messages=feed_messages(sandbox.control),
            packages=collections.Counter(p["orderId"] for p in packages),
            replays=sum(p["replays"] for p in packages),
        )

    def run_uninterrupted(self) -> Outcome:
        with self._queued() as (sandbox, shop, worker):
            started = time.monotonic()
            returncode, output = worker.run(("feeds", "--wait"))
            assert returncode == 0, output
            report = JobReport(runs=1, seconds=time.monotonic() - started)
            report.commands["feeds --wait"] += 1
            return self._outcome(sandbox, shop, report)

    def run_with_kills(
        self, rng: random.Random, kills: int, *, first: tuple[str, ...] = ()
    ) -> Outcome:
        """Run the feed job, killed ``kills`` times: at ``first`` (phases of
        :class:`FeedPlan`), then at random points and phases."""
        with self._queued() as (sandbox, shop, worker):
            plan = FeedPlan(rng, shop, first=list(first))
            report = worker.run_with_kills(
                lambda: ("feeds", "--wait"), plan, feeds_done(shop), kills=kills
            )
            return self._outcome(sandbox, shop, report)

    def problems(self, outcome: Outcome, expected: Outcome | None = None) -> Problems:
        """As :meth:`Outcome.problems`, and what Amazon received twice or not at all."""
        found = outcome.problems(expected)
        found.duplicates += duplicate_feed_messages(outcome.messages, self.cancelled)
        found.duplicates += [
            f"{order_id}: {n} packages confirmed on Amazon"
            for order_id, n in outcome.packages.items()
            if n != 1
        ]
        found.mismatches += [
            f"{order_id}: in no processed feed"
            for order_id in sorted(self.cancelled)
            if not outcome.messages.get(order_id, {}).get("processed")
        ]
        states = {s for c in outcome.snapshot.cancellations.values() for _r, s in c}
        if states != {"confirmed"}:
            found.mismatches.append(f"cancellations end as {sorted(states)}")
        shipped = {s for v in outcome.snapshot.shipments.values() for s in v}
        if self.ship and shipped != {"confirmed"}:
            found.mismatches.append(f"shipments end as {sorted(shipped)}")
        if len(outcome.packages) != self.ship:
            found.mismatches.append(
                f"{len(outcome.packages)} orders shipped on Amazon, not {self.ship}"
            )
        return found
