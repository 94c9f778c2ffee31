"""The Redis rate limiter: the in-process limiter's semantics, shared by processes.

The last test is the point of it: four processes calling Amazon for one seller
stay under the limit together with buckets in Redis (no 429 from the sandbox,
which enforces Amazon's limits), and do not with a limiter each.
"""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest
import redis

from flask_amazon_orders.client import InMemoryRateLimiter, LWACredentials, RetryPolicy, SPAPIClient
from flask_amazon_orders.client.redis_ratelimit import RedisRateLimiter
from flask_amazon_orders.errors import QuotaExceededError, RateLimitWait


@pytest.fixture
def limiter(redis_url: str):
    waits: list[float] = []
    prefix = f"test-rate:{uuid.uuid4().hex}"
    made = RedisRateLimiter(redis.Redis.from_url(redis_url), prefix=prefix, sleep=waits.append)
    made.waits = waits  # type: ignore[attr-defined]
    yield made
    for key in made.client.scan_iter(f"{prefix}:*"):
        made.client.delete(key)


KEY = ("A1SELLER", "getOrder")


def test_a_new_bucket_is_full_then_callers_wait_their_turn(limiter):
    for _ in range(4):  # a burst of 5, one token in reserve
        assert limiter.acquire(KEY, 0.5, 5) == 0
    waits = [limiter.acquire(KEY, 0.5, 5) for _ in range(3)]
    step = 1 / (0.5 * 0.95)
    # Each caller reserves the next token: 1, 2, 3 intervals (less the few ms gone by).
    for n, wait in enumerate(waits, start=1):
        assert n * step - 0.2 < wait <= n * step
    assert limiter.waits == waits
    assert limiter.tokens(KEY) == pytest.approx(-3, abs=0.1)


def test_a_token_further_away_than_max_wait_is_not_taken(limiter):
    for _ in range(2):  # a burst of 3, one token in reserve
        assert limiter.acquire(KEY, 0.5, 3, max_wait=0) == 0
    step = 1 / (0.5 * 0.95)
    for _ in range(3):
        with pytest.raises(RateLimitWait) as refused:
            limiter.acquire(KEY, 0.5, 3, max_wait=step - 0.5)
        assert step - 0.2 < refused.value.seconds <= step
        assert refused.value.operation == "getOrder"
    assert limiter.waits == []
    assert limiter.tokens(KEY) == pytest.approx(0, abs=0.1)  # nothing reserved
    wait = limiter.acquire(KEY, 0.5, 3, max_wait=step)
    assert step - 0.2 < wait <= step
    assert limiter.waits == [wait]


def test_a_rate_announced_by_amazon_is_adopted(limiter):
    for _ in range(2):
        assert limiter.acquire(KEY, 0.5, 3) == 0
    limiter.update_rate(KEY, 5.0)
    assert limiter.rate(KEY) == 5.0
    wait = limiter.acquire(KEY, 0.5, 3)  # the published rate no longer counts
    assert 0 < wait <= 1 / (5.0 * 0.95)
    limiter.update_rate(KEY, float("nan"))  # nonsense is ignored
    assert limiter.rate(KEY) == 5.0


def test_a_429_empties_the_bucket(limiter):
    limiter.acquire(KEY, 1.0, 10)
    limiter.drain(KEY)
    assert limiter.tokens(KEY) == pytest.approx(0, abs=0.05)
    assert limiter.acquire(KEY, 1.0, 10) > 0.9
    limiter.drain(("A1SELLER", "never-used"))  # no bucket: nothing to do
    assert limiter.tokens(("A1SELLER", "never-used")) is None


def test_buckets_are_per_seller_and_operation_and_expire_when_full(limiter):
    limiter.acquire(KEY, 1.0, 1)
    assert limiter.acquire(("A2OTHER", "getOrder"), 1.0, 1) == 0
    assert limiter.acquire(("A1SELLER", "searchOrders"), 1.0, 1) == 0
    ttl = limiter.client.ttl(limiter._key(KEY))
    assert 0 < ttl <= 62  # refilled after ~1 s; the key goes a minute later


def test_bad_limits_are_refused(limiter):
    with pytest.raises(ValueError, match="invalid rate limit"):
        limiter.acquire(KEY, 0, 1)
    with pytest.raises(ValueError):
        RedisRateLimiter(limiter.client, safety_factor=0)


def test_the_extension_uses_the_configured_storage(tmp_path, redis_url):
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_amazon_orders import AmazonOrders, get_extension
    from flask_amazon_orders.errors import ConfigurationError

    def make(storage: str) -> Flask:
        app = Flask("storage")
        app.config.update(
            SECRET_KEY="x",
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'x.sqlite'}",
            AMAZON_ORDERS_RATE_LIMIT_STORAGE=storage,
        )
        AmazonOrders(app, db=SQLAlchemy(app))
        return app

    with make(redis_url).app_context():
        assert isinstance(get_extension()._state().rate_limiter, RedisRateLimiter)
    with pytest.raises(ConfigurationError, match="redis:// URL"):
        make("memcached://x")


# -- several processes, one seller -------------------------------------------------------

#: The sandbox's time scale here: getOrder allows 100/s after a burst of 30.
SCALE = 200.0
PROCESSES = 3
CALLS = 30


def _calls(args: tuple[str, str, str, str, str | None]) -> int:
    """In a child process: getOrder CALLS times; returns how many were throttled."""
    endpoint, refresh_token, seller_id, order_id, shared = args
    limiter = (
        RedisRateLimiter.from_url(shared, prefix=f"test-rate:{seller_id}")
        if shared
        else InMemoryRateLimiter()
    )
    client = SPAPIClient(
        credentials=LWACredentials("sandbox-client-id", "sandbox-client-secret", refresh_token),
        endpoint=endpoint,
        lwa_url=endpoint + "/auth/o2/token",
        seller_key=seller_id,
        rate_limiter=limiter,
        retry=RetryPolicy(max_attempts=1),
        rate_scale=SCALE,
    )
    throttled = 0
    with client:
        for _ in range(CALLS):
            try:
                client.get_order(order_id)
            except QuotaExceededError:
                throttled += 1
    return throttled


def _run(pool: Any, make_sandbox: Any, shared: str | None) -> tuple[int, int]:
    sandbox = make_sandbox(time_scale=SCALE)
    seller = sandbox.control.create_seller(marketplace_id="A1PA6795UKMFR9")
    order_id = sandbox.control.create_order(seller["seller_id"])["orderId"]
    args = (sandbox.url, seller["refresh_token"], seller["seller_id"], order_id, shared)
    throttled = sum(pool.map(_calls, [args] * PROCESSES))
    counted: dict[str, Any] = sandbox.control.counters()["operations"]["getOrder"]
    assert counted["calls"] == PROCESSES * CALLS
    return throttled, counted["throttled"]


def test_processes_sharing_redis_stay_under_the_limit_together(make_sandbox, redis_url):
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        shared_throttled, shared_counted = _run(pool, make_sandbox, redis_url)
        apart_throttled, apart_counted = _run(pool, make_sandbox, None)
    assert shared_throttled == shared_counted == 0
    # Each process on its own limiter believes it has the seller's whole quota.
    assert apart_throttled == apart_counted > 0
