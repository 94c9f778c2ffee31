"""Crash consistency (issue 7): the worker killed with SIGKILL, restarted, and the
end state exactly that of an uninterrupted run.

The worker is the real CLI on the example shop (order import on, so shop orders
are created too) in a process of its own, on a database file (or the PostgreSQL
test database); the sandbox is served over HTTP by the test process (see
``crash_harness``). The kill points are chosen by a seeded RNG: set
``AMAZON_ORDERS_CRASH_SEED`` to repeat a run (the seed is printed and named in
every failure). ``bench/bench_crash.py`` is the long run with many more kills.

"No duplicate feed messages" means: every cancelled order is in exactly one feed
that Amazon processed (``DONE``) and no other order is in one; a feed Amazon
never processed (``FATAL``, ``CANCELLED``) may be followed by one carrying the
same orders; a document uploaded without createFeed is no feed. A shipment is
one package on Amazon; sending it again with its packageReferenceId is a replay
Amazon takes once, and allowed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_harness import FeedScenario, Outcome, Shop, SyncScenario, histogram

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="kills the worker with SIGKILL"),
]

SEED_VAR = "AMAZON_ORDERS_CRASH_SEED"


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get(SEED_VAR) or random.randrange(1_000_000))
    print(f"crash test seed: {value} (repeat with {SEED_VAR}={value})")
    return value


@pytest.fixture
def crash_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database file of its own on SQLite; the test database on PostgreSQL."""
    url = (
        f"sqlite:///{tmp_path / 'shop.sqlite'}"
        if database_url.startswith("sqlite")
        else database_url
    )
    yield url
    Shop(url, "http://127.0.0.1:9").drop()


def _print(title: str, outcome: Outcome) -> None:
    report = outcome.report
    print(
        f"{title}: {sum(report.kills.values())} kills ({histogram(report.kills)}), "
        f"finished before {sum(report.missed.values())} kill points, {report.restarts} restarts "
        f"({histogram(report.commands)}), {report.seconds:.1f} s"
    )


def test_a_5000_order_sync_killed_again_and_again_ends_as_one_never_killed(
    crash_database_url, tmp_path, seed
):
    with SyncScenario(crash_database_url, tmp_path, seed=seed, orders=5000) as sync:
        expected = sync.run_uninterrupted()
        assert not expected.problems(), f"seed {seed}: the uninterrupted run\n{expected.problems()}"
        shop_orders = sum(len(v) for v in expected.snapshot.shop_orders.values())
        assert len(expected.snapshot.orders) == 5000 and shop_orders > 100
        outcome = sync.run_with_kills(
            random.Random(seed),
            kills=8,
            # The dangerous moments first: the token, a page on its way, a page
            # being stored; then random points and phases (shop orders being created).
            first=("token in flight", "searchOrders in flight", "page being stored"),
        )
    _print(f"sync of 5000 orders (seed {seed})", outcome)
    problems = outcome.problems(expected)
    assert not problems, f"seed {seed}:\n{problems}"
    assert sum(outcome.report.kills.values()) >= 5, f"seed {seed}: {outcome.report.log}"
    # Every killed run says so; none stays "running".
    assert set(outcome.snapshot.sync_runs) <= {"succeeded", "failed"}


def test_the_feed_job_killed_again_and_again_sends_each_cancellation_and_shipment_once(
    crash_database_url, tmp_path, seed
):
    feeds = FeedScenario(crash_database_url, tmp_path, seed=seed, orders=60, cancel=40, ship=12)
    expected = feeds.run_uninterrupted()
    assert not feeds.problems(expected), f"seed {seed}: the uninterrupted run"
    outcome = feeds.run_with_kills(
        random.Random(seed),
        kills=6,
        # A document uploaded but never a feed, then createFeed carried out by
        # Amazon while the worker died: the restart must find that feed.
        first=("upload", "createFeed in flight"),
    )
    _print(f"feed job, 40 cancellations and 12 shipments (seed {seed})", outcome)
    problems = feeds.problems(outcome, expected)
    assert not problems, f"seed {seed}:\n{problems}"
    assert outcome.report.kills["createFeed in flight"] == 1, outcome.report.log
    assert sum(outcome.report.kills.values()) >= 3, f"seed {seed}: {outcome.report.log}"
