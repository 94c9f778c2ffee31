"""Benchmark: bulk cancel of 500 orders from the admin pages, and the feed that carries them.

The example shop (a real host: every Amazon order is a shop order) runs on a
fresh SQLite database against the bundled sandbox with Amazon's rate limits
enforced and time-scaled. For each repetition, 500 new unshipped orders are
synced and imported, then an admin confirms **Cancel selected orders** for all
500 in one request (the Flask test client, server-side). Printed:

* the Confirm request's time (median and spread over the repetitions) and its
  SQL statements;
* the feed job for the batch: feeds created, createFeedDocument and uploads,
  getFeed polls and getOrder checks, 429s, and the wall time until Amazon's
  processing report settled every cancellation (time-scaled);
* the polls against getFeed's published rate.

Usage::

    python bench/bench_cancel.py [--orders 500] [--repeat 5] [--sql] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from example_app import amazon_orders, create_app, init_db
from example_app.demo import SANDBOX_CATALOG, sandbox_config
from example_app.models import ShopOrder
from flask_amazon_orders.jobs.feeds import next_poll_due, process_feeds
from flask_amazon_orders.models import AmazonOrder, Cancellation, utcnow
from flask_amazon_orders.sandbox import SandboxServer

TIME_SCALE = 1000.0
SELLER = "ABENCHCANCEL01"


def _orders(control, count: int, seed: int) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    control.generate_orders(
        SELLER,
        count,
        seed=seed,
        catalog=SANDBOX_CATALOG,
        statuses={"UNSHIPPED": 1},
        afn_share=0,
        # New orders (after the previous round's sync cursor).
        start=(now - dt.timedelta(seconds=20)).isoformat(),
        end=now.isoformat(),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sql", action="store_true", help="Show the Confirm request's SQL.")
    parser.add_argument("--profile", action="store_true", help="Profile the Confirm request.")
    args = parser.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="bench-cancel-")
    with SandboxServer(time_scale=TIME_SCALE, seed=11) as sandbox:
        control = sandbox.control
        seller = control.create_seller(seller_id=SELLER, marketplace_id="A1PA6795UKMFR9")
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/bench.sqlite",
                **sandbox_config(sandbox.url, time_scale=TIME_SCALE),
            }
        )
        with app.app_context():
            init_db()
            store = amazon_orders.add_store(
                name="Bench",
                seller_id=SELLER,
                marketplace="DE",
                refresh_token=seller["refresh_token"],
                order_import_enabled=True,
            )
            store.connected_at = utcnow() - dt.timedelta(days=1)
            amazon_orders.session.commit()
            store_id = store.id
        engine_statements: list[str] = []
        with app.app_context():
            engine = amazon_orders.db.engine
        sa.event.listen(engine, "before_cursor_execute", lambda *a: engine_statements.append(a[2]))
        client = app.test_client()
        with client.session_transaction() as browser:
            browser["user"] = "mia"
        url = f"/admin/amazon/stores/{store_id}/cancel"
        confirm_ms: list[float] = []
        statements: list[int] = []
        feed_rows = []
        for round_ in range(args.repeat):
            _orders(control, args.orders, seed=100 + round_)
            with app.app_context():
                run = amazon_orders.sync(store_id)
                assert run.status == "succeeded", run.error
                ids = list(
                    amazon_orders.session.scalars(
                        sa.select(AmazonOrder.id).where(
                            AmazonOrder.status == "Unshipped",
                            AmazonOrder.host_order_ref.is_not(None),
                        )
                    )
                )
            assert len(ids) == args.orders, f"{len(ids)} orders to cancel, not {args.orders}"
            page = client.get(url, query_string={"order": ids[:1]}).data.decode()
            token = re.search(r'class="ao".*?name="csrf_token" value="([^"]+)"', page, re.S)[1]
            engine_statements.clear()
            profile = None
            if args.profile:
                import cProfile

                profile = cProfile.Profile()
                profile.enable()
            started = time.perf_counter()
            response = client.post(
                url, data={"order": ids, "reason": "NoInventory", "csrf_token": token}
            )
            confirm_ms.append((time.perf_counter() - started) * 1000)
            if profile is not None:
                import pstats

                profile.disable()
                order = os.environ.get("BENCH_SORT", "cumulative")
                pstats.Stats(profile).sort_stats(order).print_stats(25)
            statements.append(len(engine_statements))
            if args.sql:
                from collections import Counter

                shapes = Counter(" ".join(x.split())[:90] for x in engine_statements)
                for text, n in shapes.most_common(12):
                    print(f"{n:6} {text}")
            assert response.status_code == 302, response.data[:500]

            control.reset_counters()
            started = time.perf_counter()
            with app.app_context():
                polls_runs = 0
                while True:
                    process_feeds(store_id)
                    polls_runs += 1
                    due = next_poll_due()
                    if due is None:
                        break
                    time.sleep(max(0.0, (due - utcnow()).total_seconds()))
                settled = time.perf_counter() - started
                states = dict(
                    amazon_orders.session.execute(
                        sa.select(Cancellation.state, sa.func.count()).group_by(Cancellation.state)
                    ).all()
                )
                complete = amazon_orders.session.scalar(
                    sa.select(sa.func.count()).where(ShopOrder.status == "Complete")
                )
            ops = control.counters()["operations"]

            def calls(name: str, ops=ops) -> int:
                return int(ops.get(name, {}).get("calls", 0))

            throttled = sum(int(o.get("throttled", 0)) for o in ops.values())
            feed_rows.append(
                (
                    calls("createFeed"),
                    calls("createFeedDocument"),
                    calls("uploadFeedDocument") or calls("upload"),
                    calls("getFeed"),
                    calls("getOrder"),
                    throttled,
                    settled,
                    states.get("confirmed", 0),
                    complete,
                )
            )
    print(f"Bulk cancel of {args.orders} orders, {args.repeat} repetitions (SQLite, example shop)")
    print(
        f"  Confirm request: median {statistics.median(confirm_ms):.0f} ms, "
        f"min {min(confirm_ms):.0f} ms, max {max(confirm_ms):.0f} ms; "
        f"SQL statements {statistics.median(statements):.0f}"
    )
    print(
        "  feed job per batch: createFeed, createFeedDocument, upload, getFeed polls, "
        "getOrder, 429s, settled in (time-scaled x1000), confirmed so far, shop orders Complete"
    )
    for row in feed_rows:
        print(
            f"    {row[0]:>3} {row[1]:>3} {row[2]:>3} {row[3]:>4} {row[4]:>5} {row[5]:>3} "
            f"{row[6]:>7.2f} s {row[7]:>6} {row[8]:>6}"
        )
    print(
        "  getFeed's published rate is 2 requests/s (burst 15); the job polls every "
        "AMAZON_ORDERS_FEED_POLL_SECONDS (30 s, backing off), i.e. 0.033/s at most per feed."
    )


if __name__ == "__main__":
    main()
