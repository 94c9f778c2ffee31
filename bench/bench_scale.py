"""Benchmark: many stores synced by 1, 2 and 4 Celery workers, against the limits.

The sandbox runs in its own process with Amazon's rate limits enforced and
time-scaled (``--scale``); each store is one seller with ``--orders`` orders.
For each worker count, on a fresh database:

* **ours**: real Celery worker processes (``concurrency 1`` each) on Redis, with
  the rate-limit buckets shared in Redis, sync every store from
  ``amazon_orders.sync_all``: total time until every order is stored, the 429s
  the sandbox sent, SP-API calls per order;
* **the physical limit** for the same work: the fewest calls (one
  ``searchOrders`` page per 100 orders per store) and the least time — the larger
  of what Amazon's published limits allow (per seller: the calls beyond the
  burst at the refill rate) and the time the same number of processes need just
  to *fetch* those pages from the sandbox (no parsing, no database): our ratio to
  it;
* **naive** (one ``getOrder`` per order after a page of ids, for contrast): its
  calls, the least time Amazon's limits allow for it, at Amazon's real rates and
  at the benchmark's scale, and a measured run on ``--naive-stores`` stores.

Then the same with **the limits binding** (``--bound-stores`` stores of
``--bound-orders`` orders, more pages than ``searchOrders``' burst of 20, at a
smaller ``--bound-scale``): the least time Amazon's limits allow is then the
pages beyond the burst at one per 180 s (time-scaled), all sellers in parallel;
ours against it, with every worker count. A store waiting for its limit gives
the worker to the others (``AMAZON_ORDERS_SYNC_MAX_RATE_WAIT_SECONDS``); waiting
store after store instead would take the stores' limit times one after the other.

Usage::

    python bench/bench_scale.py [--stores 50] [--orders 2000] [--workers 1,2,4]
        [--scale 1000] [--db postgresql+psycopg://…] [--redis redis://127.0.0.1:6379/13]

Needs Redis; PostgreSQL is the database to use with several workers (SQLite makes
them wait for each other's writes).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from celery import Celery
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sandbox_process import start_sandbox

from flask_amazon_orders import AmazonOrders
from flask_amazon_orders.client import LWACredentials, RetryPolicy, SPAPIClient
from flask_amazon_orders.client.limits import PUBLISHED_LIMITS
from flask_amazon_orders.client.records import INCLUDED_BUYER_DATA, INCLUDED_DATA
from flask_amazon_orders.client.redis_ratelimit import RedisRateLimiter
from flask_amazon_orders.models import AmazonOrder, Store, SyncRun
from flask_amazon_orders.sandbox import SandboxControl

ROOT = Path(__file__).resolve().parent.parent
HOST_MODULE_DIR = ROOT / "tests"  # celery_shop.py: a minimal host configured by environment
PAGE = 100
MARKETPLACE = "A1PA6795UKMFR9"


def _limit_floor(calls_per_seller: int, operation: str) -> float:
    """Seconds Amazon's published limit allows for that many calls of one seller."""
    rate, burst = PUBLISHED_LIMITS[operation]
    return max(0, calls_per_seller - burst) / rate


def _client(
    url: str, seller_id: str, token: str, limiter: Any, scale: float, **options: Any
) -> SPAPIClient:
    """A plain SP-API client of one sandbox seller (no Flask, no database)."""
    return SPAPIClient(
        credentials=LWACredentials("sandbox-client-id", "sandbox-client-secret", token),
        endpoint=url,
        lwa_url=url + "/auth/o2/token",
        seller_key=seller_id,
        rate_limiter=limiter,
        rate_scale=scale,
        **options,
    )


# -- the fetch-only floor -------------------------------------------------------------


def _fetch(args: tuple[str, list[tuple[str, str]], float, str]) -> int:
    """In a child process: every page of these sellers, fetched and JSON-decoded only."""
    url, sellers, scale, redis_url = args
    limiter = RedisRateLimiter.from_url(redis_url, prefix="bench-fetch")
    pages = 0
    for seller_id, token in sellers:
        with _client(url, seller_id, token, limiter, scale) as client:
            for _page in client.iter_search_orders(
                last_updated_after="2000-01-01T00:00:00Z",
                marketplace_ids=[MARKETPLACE],
                included_data=list(INCLUDED_DATA + INCLUDED_BUYER_DATA),
                max_results_per_page=PAGE,
            ):
                pages += 1
    return pages


def _refilled(redis_url: str, scale: float) -> None:
    """Wait until Amazon's (the sandbox's) buckets are full again, then forget ours:
    both sides start the next phase with full buckets."""
    rate, burst = PUBLISHED_LIMITS["searchOrders"]
    time.sleep(burst / (rate * scale) * 1.5)
    redis.Redis.from_url(redis_url).flushdb()


def _fetch_floor(
    url: str,
    sellers: list[tuple[str, str]],
    warm_up: tuple[str, str],
    workers: int,
    scale: float,
    redis_url: str,
) -> float:
    shares = [sellers[n::workers] for n in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_fetch, [(url, [warm_up], scale, redis_url)] * workers)
        _refilled(redis_url, scale)
        started = time.perf_counter()
        pool.map(_fetch, [(url, share, scale, redis_url) for share in shares])
        seconds = time.perf_counter() - started
    _refilled(redis_url, scale)
    return seconds


# -- naive: a page of ids, then getOrder for each ------------------------------------------


def _naive(args: tuple[str, list[tuple[str, str]], float, str]) -> tuple[int, float]:
    url, sellers, scale, redis_url = args
    limiter = RedisRateLimiter.from_url(redis_url, prefix="bench-naive")
    calls = 0
    started = time.perf_counter()
    for seller_id, token in sellers:
        with _client(
            url, seller_id, token, limiter, scale, retry=RetryPolicy(max_attempts=10)
        ) as client:
            for page in client.iter_search_orders(
                last_updated_after="2000-01-01T00:00:00Z",
                marketplace_ids=[MARKETPLACE],
                max_results_per_page=PAGE,
            ):
                calls += 1
                for order in page["orders"]:
                    client.get_order(order["orderId"], included_data=list(INCLUDED_DATA))
                    calls += 1
    return calls, time.perf_counter() - started


# -- ours: Celery workers ---------------------------------------------------------------


def _app(db_url: str, sandbox_url: str, scale: float) -> tuple[Flask, SQLAlchemy]:
    app = Flask("bench_scale")
    app.config.update(
        SECRET_KEY="test-secret",  # the workers' host (celery_shop) decrypts with it
        SQLALCHEMY_DATABASE_URI=db_url,
        AMAZON_ORDERS_ENDPOINT=sandbox_url,
        AMAZON_ORDERS_LWA_URL=sandbox_url + "/auth/o2/token",
        AMAZON_ORDERS_LWA_CLIENT_ID="sandbox-client-id",
        AMAZON_ORDERS_LWA_CLIENT_SECRET="sandbox-client-secret",
        AMAZON_ORDERS_RATE_LIMIT_SCALE=scale,
    )
    db = SQLAlchemy(app)
    AmazonOrders(app, db=db)
    return app, db


@dataclasses.dataclass(frozen=True)
class _Work:
    """What the Celery workers sync, and where."""

    db_url: str
    sandbox_url: str
    scale: float
    redis_url: str
    broker_url: str
    sellers: list[tuple[str, str]]
    expected: int
    logs: Path


def _run_celery(workers: int, work: _Work) -> dict[str, Any]:
    db_url, sandbox_url, scale = work.db_url, work.sandbox_url, work.scale
    redis_url, broker_url, sellers = work.redis_url, work.broker_url, work.sellers
    expected, logs = work.expected, work.logs
    app, db = _app(db_url, sandbox_url, scale)
    control = SandboxControl(sandbox_url)
    with app.app_context():
        db.drop_all()
        db.create_all()
        ext = app.extensions["amazon_orders"].extension
        for n, (seller_id, token) in enumerate(sellers):
            ext.add_store(
                name=f"Store {n}", seller_id=seller_id, marketplace="DE", refresh_token=token
            )
    redis.Redis.from_url(redis_url).flushdb()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CELERY_SHOP_DATABASE_URL": db_url,
        "CELERY_SHOP_SANDBOX_URL": sandbox_url,
        "CELERY_SHOP_TIME_SCALE": str(scale),
        "CELERY_SHOP_REDIS_URL": redis_url,
        "CELERY_SHOP_BROKER_URL": broker_url,
        "CELERY_SHOP_QUEUE": queue,
        "PYTHONPATH": os.pathsep.join([str(HOST_MODULE_DIR), *sys.path]),
    }
    processes = []
    for n in range(workers):
        log = (logs / f"worker-{workers}-{n}.log").open("wb")
        command = [sys.executable, "-m", "celery", "-A", "celery_shop:celery", "worker"]
        command += ["--concurrency=1", "--without-mingle", "--without-gossip"]
        command += ["--without-heartbeat", "-n", f"bench{n}-{queue}@localhost"]
        processes.append(
            subprocess.Popen(command, cwd=HOST_MODULE_DIR, env=env, stdout=log, stderr=log)
        )
    sender = Celery("bench", broker=broker_url)
    try:
        pinged = sender.control.ping(timeout=1.0)
        deadline = time.monotonic() + 120
        while len(pinged) < workers and time.monotonic() < deadline:
            pinged = sender.control.ping(timeout=1.0)
        if len(pinged) < workers:
            raise RuntimeError(f"only {len(pinged)} of {workers} workers came up; see {logs}")
        control.reset_counters()
        started = time.perf_counter()
        sender.send_task("amazon_orders.sync_all", queue=queue)
        with app.app_context():
            session = db.session
            while True:
                stored = session.scalar(sa.select(sa.func.count()).select_from(AmazonOrder))
                done = session.scalar(
                    sa.select(sa.func.count(sa.distinct(SyncRun.store_id))).where(
                        SyncRun.status == "succeeded"
                    )
                )
                failed = session.scalar(
                    sa.select(sa.func.count()).where(SyncRun.status == "failed")
                )
                session.rollback()
                if stored == expected and done == len(sellers):
                    break
                if failed:
                    raise RuntimeError(f"{failed} sync runs failed; see {logs}")
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            stores = session.scalar(sa.select(sa.func.count()).select_from(Store))
            assert stores == len(sellers)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    counters = control.counters()["operations"]
    return {
        "seconds": seconds,
        "calls": {op: c["calls"] for op, c in counters.items() if c["calls"]},
        "throttled": sum(c["throttled"] for c in counters.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--orders", type=int, default=2000, help="orders per store")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--scale", type=float, default=1000.0, help="sandbox time scale")
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--naive-stores", type=int, default=2)
    parser.add_argument("--bound-stores", type=int, default=8, help="0: skip that part")
    parser.add_argument("--bound-orders", type=int, default=5000)
    parser.add_argument("--bound-scale", type=float, default=100.0)
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    db_url = args.db or f"sqlite:///{tmp / 'bench.sqlite'}"
    broker = args.redis.rsplit("/", 1)[0] + "/12"

    sandbox, url = start_sandbox(args.scale)
    try:
        control = SandboxControl(url)
        started = time.perf_counter()
        sellers = []
        for n in range(args.stores):
            seller = control.create_seller(
                seller_id="A" + uuid.uuid4().hex[:12].upper(), marketplace_id=MARKETPLACE
            )
            control.generate_orders(seller["seller_id"], args.orders, seed=n)
            sellers.append((seller["seller_id"], seller["refresh_token"]))
        spare = control.create_seller(
            seller_id="A" + uuid.uuid4().hex[:12].upper(), marketplace_id=MARKETPLACE
        )
        control.generate_orders(spare["seller_id"], PAGE, seed=999)
        warm_up = (spare["seller_id"], spare["refresh_token"])
        total = args.stores * args.orders
        print(
            f"sandbox: {args.stores} stores x {args.orders} orders = {total} orders, "
            f"generated in {time.perf_counter() - started:.1f} s; time scale {args.scale:g}"
        )
        pages = math.ceil(args.orders / PAGE)
        min_calls = args.stores * pages
        limit_floor = _limit_floor(pages, "searchOrders") / args.scale
        print(
            f"physical limit: {min_calls} searchOrders calls ({pages} per store, burst "
            f"{PUBLISHED_LIMITS['searchOrders'][1]}), {min_calls / total:.3f} calls per order; "
            f"Amazon's limits allow it in {limit_floor:.2f} s (sellers in parallel)"
        )
        print()
        print("workers | time s | fetch floor s | ratio | 429s | calls | calls/order")
        work = _Work(db_url, url, args.scale, args.redis, broker, sellers, total, tmp)
        for workers in worker_counts:
            result = _run_celery(workers, work)
            _refilled(args.redis, args.scale)
            floor = _fetch_floor(url, sellers, warm_up, workers, args.scale, args.redis)
            spapi = {op: n for op, n in result["calls"].items() if op != "token"}
            calls = sum(spapi.values())
            bound = max(limit_floor, floor)
            print(
                f"{workers:>7} | {result['seconds']:6.1f} | {floor:13.1f} | "
                f"{result['seconds'] / bound:5.2f} | {result['throttled']:4} | "
                f"{calls:5} | {calls / total:.3f}   {spapi}"
            )
        # Naive, for contrast.
        naive_calls = args.stores * (pages + args.orders)
        per_seller = _limit_floor(args.orders, "getOrder")
        print()
        print(
            f"naive (getOrder per order): {naive_calls} calls "
            f"({naive_calls / total:.2f} per order); Amazon's limits allow it in "
            f"{per_seller:.0f} s = {per_seller / 60:.1f} min per store at real rates "
            f"(getOrder {PUBLISHED_LIMITS['getOrder'][0]}/s after a burst of "
            f"{PUBLISHED_LIMITS['getOrder'][1]}), {per_seller / args.scale:.2f} s at this scale"
        )
        if args.naive_stores:
            redis.Redis.from_url(args.redis).flushdb()
            control.reset_counters()
            calls, seconds = _naive((url, sellers[: args.naive_stores], args.scale, args.redis))
            throttled = sum(c["throttled"] for c in control.counters()["operations"].values())
            print(
                f"naive, measured on {args.naive_stores} stores with 1 process: {calls} calls "
                f"in {seconds:.1f} s ({throttled} x 429); ours needs "
                f"{args.naive_stores * pages} calls for the same orders"
            )
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    if args.bound_stores:
        _bound(args, worker_counts, db_url, broker, tmp)


def _bound(
    args: argparse.Namespace, worker_counts: list[int], db_url: str, broker: str, logs: Path
) -> None:
    """Stores with more pages than the burst, at a scale where Amazon's limits bind."""
    sandbox, url = start_sandbox(args.bound_scale)
    try:
        control = SandboxControl(url)
        sellers = []
        for n in range(args.bound_stores):
            seller = control.create_seller(
                seller_id="A" + uuid.uuid4().hex[:12].upper(), marketplace_id=MARKETPLACE
            )
            control.generate_orders(seller["seller_id"], args.bound_orders, seed=100 + n)
            sellers.append((seller["seller_id"], seller["refresh_token"]))
        total = args.bound_stores * args.bound_orders
        pages = math.ceil(args.bound_orders / PAGE)
        floor = _limit_floor(pages, "searchOrders") / args.bound_scale
        print()
        print(
            f"limits binding: {args.bound_stores} stores x {args.bound_orders} orders "
            f"({pages} pages each, {pages - PUBLISHED_LIMITS['searchOrders'][1]} beyond the "
            f"burst), time scale {args.bound_scale:g}: Amazon's limits allow it in "
            f"{floor:.1f} s (sellers in parallel); store after store, each waiting for its "
            f"limit, it would take {floor * args.bound_stores:.1f} s"
        )
        print("workers | time s | limit s | ratio | 429s | calls | calls/order")
        work = _Work(db_url, url, args.bound_scale, args.redis, broker, sellers, total, logs)
        for workers in worker_counts:
            result = _run_celery(workers, work)
            spapi = {op: n for op, n in result["calls"].items() if op != "token"}
            calls = sum(spapi.values())
            print(
                f"{workers:>7} | {result['seconds']:6.1f} | {floor:7.1f} | "
                f"{result['seconds'] / floor:5.2f} | {result['throttled']:4} | "
                f"{calls:5} | {calls / total:.3f}   {spapi}"
            )
            # Amazon's (the sandbox's) buckets refill before the next worker count.
            rate, burst = PUBLISHED_LIMITS["searchOrders"]
            time.sleep(burst / (rate * args.bound_scale) * 1.1)
            redis.Redis.from_url(args.redis).flushdb()
    finally:
        sandbox.terminate()
        sandbox.wait(10)


if __name__ == "__main__":
    main()
