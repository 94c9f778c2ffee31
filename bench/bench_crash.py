"""Crash consistency, the long run: kill the worker (SIGKILL) many times, check every end state.

The worker is the real CLI (``flask --app example_app amazon-orders sync`` /
``worker --once`` / ``feeds --wait``) in a process of its own; the sandbox is
served over HTTP by this process with Amazon's rate limits time-scaled (see
``tests/crash_harness.py``). Jobs:

* **sync**: 5,000 orders (a few hundred become shop orders), killed at random
  points and at the dangerous ones (a searchOrders page in flight, a page being
  stored, the LWA token, the shop orders being created), restarted until it ends;
  the end state must equal an uninterrupted run's: the same orders, items, values
  and timelines, one shop order per Amazon order, the same sync cursor.
* **feeds**: cancellations and shipments queued, ``feeds --wait`` killed while
  verifying, at createFeedDocument, the upload, createFeed, getFeed, the report
  and its settling, confirmShipment; every cancellation and shipment must end
  confirmed, Amazon must have each cancelled order in exactly one processed feed
  and each shipment as one package.

The kills are spread over several jobs of each kind; the jobs open in turn with
kills at the dangerous moments (``SYNC_OPENINGS``, ``FEED_OPENINGS``). Printed:
kills by phase, kill points the job finished before, restarts, duplicates and
mismatches found (both must be 0), and the time taken. Usage::

    python bench/bench_crash.py [--kills 100] [--seed N] [--db URL] [--orders 5000]

(``AMAZON_ORDERS_CRASH_KILLS`` sets ``--kills`` too.) Exits with status 1 when a
job ends with a duplicate or a mismatch.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from crash_harness import (  # noqa: E402
    FeedScenario,
    JobReport,
    Problems,
    SyncScenario,
    histogram,
)

#: Kills per job at most: a job then still ends in reasonable time.
SYNC_KILLS_PER_JOB = 15
FEED_KILLS_PER_JOB = 10
#: The jobs in turn open with these kills (the dangerous moments), then random ones.
SYNC_OPENINGS = [("token in flight", "searchOrders in flight", "page being stored"), ()]
FEED_OPENINGS = [
    # createFeed carried out by Amazon while the worker died; the restart dies adopting it.
    ("createFeed in flight", "getFeeds (adopting)", "getFeeds (adopting)"),
    ("upload", "between upload and createFeed", "createFeed in flight"),
    # Six documents built and never sent: no cancellation may count them as attempts.
    ("createFeedDocument",) * 3 + ("upload",) * 3,
    (),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kills", type=int, default=int(os.environ.get("AMAZON_ORDERS_CRASH_KILLS", 100))
    )
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    parser.add_argument("--orders", type=int, default=5000, help="orders of the sync job")
    parser.add_argument("--feed-orders", type=int, default=200, help="orders of the feed job")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"seed {seed} (repeat with --seed {seed})", flush=True)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    database_url = args.db or f"sqlite:///{workdir / 'shop.sqlite'}"
    sync_kills = round(args.kills * 0.6)
    feed_kills = args.kills - sync_kills
    started = time.monotonic()
    totals = {"sync": JobReport(), "feeds": JobReport()}
    jobs = {"sync": 0, "feeds": 0}
    problems = Problems()

    def note(job: str, found: Problems) -> None:
        problems.duplicates.extend(f"{job}: {p}" for p in found.duplicates)
        problems.mismatches.extend(f"{job}: {p}" for p in found.mismatches)

    with SyncScenario(database_url, workdir, seed=seed, orders=args.orders) as sync:
        reference = sync.run_uninterrupted()
        print(
            f"sync, uninterrupted: {len(reference.snapshot.orders)} orders, "
            f"{sum(map(len, reference.snapshot.shop_orders.values()))} shop orders, "
            f"{sync.pages} pages, {reference.report.seconds:.1f} s",
            flush=True,
        )
        note("sync reference", reference.problems())
        left = sync_kills
        while left > 0:
            kills = min(left, SYNC_KILLS_PER_JOB)
            opening = SYNC_OPENINGS[jobs["sync"] % len(SYNC_OPENINGS)]
            outcome = sync.run_with_kills(rng, kills, first=opening)
            found = outcome.problems(reference)
            report = outcome.report
            jobs["sync"] += 1
            totals["sync"].add(report)
            note(f"sync job {jobs['sync']}", found)
            left -= max(sum(report.kills.values()), 1)
            print(
                f"sync job {jobs['sync']}: {sum(report.kills.values())} kills, "
                f"{report.restarts} restarts, {len(found.duplicates)} duplicates, "
                f"{len(found.mismatches)} mismatches, {report.seconds:.1f} s",
                flush=True,
            )

    feeds = FeedScenario(
        database_url,
        workdir,
        seed=seed,
        orders=args.feed_orders,
        cancel=args.feed_orders * 6 // 10,
        ship=args.feed_orders * 2 // 10,
    )
    expected = feeds.run_uninterrupted()
    note("feeds reference", feeds.problems(expected))
    print(
        f"feeds, uninterrupted: {feeds.cancel} cancellations, {feeds.ship} shipments, "
        f"{expected.report.seconds:.1f} s",
        flush=True,
    )
    left = feed_kills
    while left > 0:
        kills = min(left, FEED_KILLS_PER_JOB)
        opening = FEED_OPENINGS[jobs["feeds"] % len(FEED_OPENINGS)]
        outcome = feeds.run_with_kills(rng, kills, first=opening)
        found = feeds.problems(outcome, expected)
        report = outcome.report
        jobs["feeds"] += 1
        totals["feeds"].add(report)
        note(f"feed job {jobs['feeds']}", found)
        left -= max(sum(report.kills.values()), 1)
        print(
            f"feed job {jobs['feeds']}: {sum(report.kills.values())} kills, "
            f"{report.restarts} restarts, {outcome.replays} shipment replays, "
            f"feed documents: {histogram(outcome.snapshot.feed_submissions)}, "
            f"{len(found.duplicates)} duplicates, {len(found.mismatches)} mismatches, "
            f"{report.seconds:.1f} s",
            flush=True,
        )

    print()
    print(f"database: {database_url.split(':', 1)[0]}, seed {seed}")
    for kind, total in totals.items():
        print(
            f"{kind}: {jobs[kind]} jobs, {sum(total.kills.values())} kills, "
            f"{total.restarts} restarts, {total.runs} runs, {total.seconds:.1f} s"
        )
        print(f"  kills by phase: {histogram(total.kills)}")
        print(f"  finished before the kill point: {histogram(total.missed)}")
        print(f"  commands: {histogram(total.commands)}")
    print(f"duplicates found: {len(problems.duplicates)}")
    print(f"mismatches with the uninterrupted run: {len(problems.mismatches)}")
    print(f"total time: {time.monotonic() - started:.1f} s")
    if problems:
        print(problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
