"""Benchmark: import N Amazon orders from the sandbox into SQLite, end to end.

Runs the sandbox in its own process (as Amazon would be), with the rate limits
time-scaled so that they are not what is measured, and compares in one run:

* fetch only: every ``searchOrders`` page over loopback HTTP, JSON decoded;
* fetch and parse: the same plus :func:`parse_order` for every order;
* end to end: :func:`sync_store` into a fresh SQLite database (new orders,
  items, events, one commit per page);
* a second sync with no changes.

Each phase runs ``--repeat`` times against a warmed-up sandbox and the best time
is shown (this machine is shared and noisy).

It prints orders per second, the ratio of end to end to fetch only, the peak
memory growth of the sync, and the API calls made (searchOrders, getOrder,
token). Usage::

    python bench/bench_sync.py [--orders 10000] [--db sqlite:///path]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import uuid

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sandbox_process import start_sandbox

from flask_amazon_orders import AmazonOrders
from flask_amazon_orders.client import InMemoryRateLimiter, LWACredentials, SPAPIClient
from flask_amazon_orders.client.records import INCLUDED_BUYER_DATA, INCLUDED_DATA, parse_order
from flask_amazon_orders.jobs.sync import sync_store
from flask_amazon_orders.sandbox import SandboxControl

TIME_SCALE = 100_000.0


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _reset_peak() -> None:
    """Reset VmHWM (the peak RSS) so the next phase's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase; best is shown")
    args = parser.parse_args()

    process, url = start_sandbox(TIME_SCALE)
    try:
        control = SandboxControl(url)
        seller_id = "A" + uuid.uuid4().hex[:12].upper()
        seller = control.create_seller(seller_id=seller_id)
        started = time.perf_counter()
        control.generate_orders(seller_id, args.orders, seed=42)
        print(f"sandbox: generated {args.orders} orders in {time.perf_counter() - started:.2f} s")

        tmp = tempfile.mkdtemp()
        app = Flask("bench")
        app.config.update(
            SECRET_KEY="bench",
            SQLALCHEMY_DATABASE_URI=args.db or f"sqlite:///{os.path.join(tmp, 'bench.sqlite')}",
            AMAZON_ORDERS_ENDPOINT=url,
            AMAZON_ORDERS_LWA_URL=url + "/auth/o2/token",
            AMAZON_ORDERS_LWA_CLIENT_ID="sandbox-client-id",
            AMAZON_ORDERS_LWA_CLIENT_SECRET="sandbox-client-secret",
            AMAZON_ORDERS_RATE_LIMIT_SCALE=TIME_SCALE,
        )
        db = SQLAlchemy(app)
        ext = AmazonOrders(app, db=db, rate_limiter=InMemoryRateLimiter())
        included = list(INCLUDED_DATA + INCLUDED_BUYER_DATA)

        client = SPAPIClient(
            credentials=LWACredentials(
                "sandbox-client-id", "sandbox-client-secret", seller["refresh_token"]
            ),
            endpoint=url,
            lwa_url=url + "/auth/o2/token",
            seller_key=seller_id + "-fetch",
            rate_limiter=InMemoryRateLimiter(),
            rate_scale=TIME_SCALE,
        )
        filters = {
            "last_updated_after": "2000-01-01T00:00:00Z",
            "marketplace_ids": ["A1PA6795UKMFR9"],
            "included_data": included,
            "max_results_per_page": 100,
        }
        # Warm-up: the sandbox renders each order's JSON once and caches it; every
        # timed phase below then pays the same (warm) serving cost.
        for _page in client.iter_search_orders(**filters):
            pass
        fetch_seconds = parse_seconds = math.inf
        for _ in range(args.repeat):
            started = time.perf_counter()
            fetched = sum(len(page["orders"]) for page in client.iter_search_orders(**filters))
            fetch_seconds = min(fetch_seconds, time.perf_counter() - started)
            started = time.perf_counter()
            parsed = 0
            for page in client.iter_search_orders(**filters):
                parsed += len([parse_order(order) for order in page["orders"]])
            parse_seconds = min(parse_seconds, time.perf_counter() - started)

        sync_seconds = math.inf
        peak_growth_mib = 0.0
        for _ in range(args.repeat):
            with app.app_context():
                db.drop_all()
                db.create_all()
                store = ext.add_store(
                    name="Bench",
                    seller_id=seller_id,
                    marketplace="DE",
                    refresh_token=seller["refresh_token"],
                )
                control.reset_counters()
                _reset_peak()
                rss_before = _rss_kib("VmRSS")
                started = time.perf_counter()
                run = sync_store(store, trigger="bench")
                sync_seconds = min(sync_seconds, time.perf_counter() - started)
                growth = (_rss_kib("VmHWM") - rss_before) / 1024
                peak_growth_mib = max(peak_growth_mib, growth)
                assert run.status == "succeeded", run.error
                n = run.orders_seen
                counters = control.counters()["operations"]
                calls = {
                    op: counters.get(op, {}).get("calls", 0)
                    for op in ("searchOrders", "getOrder", "token")
                }
                started = time.perf_counter()
                second = sync_store(store, trigger="bench")
                second_seconds = time.perf_counter() - started
                second_calls = (
                    control.counters()["operations"]["searchOrders"]["calls"]
                    - calls["searchOrders"]
                )
                second_result = (second.orders_created, second.orders_updated)
                db.session.remove()
    finally:
        process.terminate()
        process.wait(10)

    print(f"orders: {n} (fetched {fetched}, parsed {parsed}), items per order ~3")
    print(f"fetch only:        {fetch_seconds:7.2f} s  {fetched / fetch_seconds:8.0f} orders/s")
    print(f"fetch and parse:   {parse_seconds:7.2f} s  {parsed / parse_seconds:8.0f} orders/s")
    print(f"end to end sync:   {sync_seconds:7.2f} s  {n / sync_seconds:8.0f} orders/s")
    print(f"ratio end to end / fetch only: {sync_seconds / fetch_seconds:.2f}x (target <= 3x)")
    print(f"peak memory growth during sync: {peak_growth_mib:.1f} MiB (target < 150 MB)")
    print(
        f"API calls: searchOrders {calls['searchOrders']} "
        f"(minimum ceil(N/100) = {math.ceil(n / 100)}), getOrder {calls['getOrder']}, "
        f"token {calls['token']}"
    )
    print(
        f"second sync, no changes: {second_seconds:.2f} s, {second_calls} searchOrders call(s), "
        f"{second_result[0]} new, {second_result[1]} changed"
    )


if __name__ == "__main__":
    main()
