"""The token-bucket rate limiter, with a fake clock that the fake sleep advances."""

from __future__ import annotations

import threading

import pytest

from flask_amazon_orders.client import PUBLISHED_LIMITS, InMemoryRateLimiter, RateLimiter
from flask_amazon_orders.errors import RateLimitWait

KEY = ("A1SELLER", "searchOrders")


class FakeTime:
    """A clock that only moves when something sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def limiter_for(fake_time: FakeTime, safety_factor: float = 0.95) -> InMemoryRateLimiter:
    return InMemoryRateLimiter(
        safety_factor=safety_factor, sleep=fake_time.sleep, clock=fake_time.clock
    )


def test_is_a_rate_limiter() -> None:
    assert isinstance(InMemoryRateLimiter(), RateLimiter)


def test_burst_then_paced(fake_time: FakeTime) -> None:
    rate, burst = PUBLISHED_LIMITS["searchOrders"]
    limiter = limiter_for(fake_time)
    waits = [limiter.acquire(KEY, rate, burst) for _ in range(23)]
    interval = 1 / (rate * 0.95)
    assert waits[:20] == [0.0] * 20
    assert waits[20:] == pytest.approx([interval] * 3)
    assert fake_time.now == pytest.approx(3 * interval)
    assert interval == pytest.approx(188, abs=1)  # about one call every three minutes


def test_a_token_further_away_than_max_wait_is_not_taken(fake_time: FakeTime) -> None:
    limiter = limiter_for(fake_time, safety_factor=1.0)
    assert [limiter.acquire(KEY, 0.5, 2, max_wait=0) for _ in range(2)] == [0.0, 0.0]
    with pytest.raises(RateLimitWait) as refused:
        limiter.acquire(KEY, 0.5, 2, max_wait=1.9)
    assert refused.value.seconds == pytest.approx(2.0)
    assert refused.value.operation == "searchOrders"
    assert "2.0 s" in str(refused.value)
    assert fake_time.slept == []  # refused at once, nothing reserved:
    fake_time.now += 0.5
    assert limiter.acquire(KEY, 0.5, 2, max_wait=1.5) == pytest.approx(1.5)
    assert limiter.acquire(KEY, 0.5, 2) == pytest.approx(2.0)  # the next in line


def test_refills_while_idle_up_to_burst(fake_time: FakeTime) -> None:
    limiter = limiter_for(fake_time, safety_factor=1.0)
    for _ in range(5):
        limiter.acquire(KEY, 1.0, 5)
    fake_time.now += 3.0  # three tokens come back
    assert [limiter.acquire(KEY, 1.0, 5) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    fake_time.now += 1000.0  # never more than the burst
    waits = [limiter.acquire(KEY, 1.0, 5) for _ in range(6)]
    assert waits == [0.0] * 5 + [1.0]


def test_safety_factor(fake_time: FakeTime) -> None:
    strict = limiter_for(fake_time, safety_factor=0.5)
    strict.acquire(KEY, 2.0, 1)
    assert strict.acquire(KEY, 2.0, 1) == pytest.approx(1.0)  # 2/s x 0.5 -> one per second
    assert limiter_for(fake_time).safety_factor == 0.95
    with pytest.raises(ValueError):
        InMemoryRateLimiter(safety_factor=0)
    with pytest.raises(ValueError):
        InMemoryRateLimiter(safety_factor=1.5)


def test_follows_a_server_enforcing_the_same_limit(fake_time: FakeTime) -> None:
    """A client pacing itself never finds the server's bucket (same limit) empty."""
    rate, burst = 0.5, 3
    limiter = limiter_for(fake_time)
    server_tokens, server_time = float(burst), 0.0
    for _ in range(200):
        limiter.acquire(KEY, rate, burst)
        server_tokens = min(burst, server_tokens + (fake_time.now - server_time) * rate)
        server_time = fake_time.now
        assert server_tokens >= 1.0
        server_tokens -= 1.0


def test_header_rate_is_adopted(fake_time: FakeTime) -> None:
    limiter = limiter_for(fake_time, safety_factor=1.0)
    limiter.acquire(KEY, 0.0056, 1)
    limiter.update_rate(KEY, 2.0)
    assert limiter.rate(KEY) == 2.0
    assert limiter.acquire(KEY, 0.0056, 1) == pytest.approx(0.5)  # the seed no longer applies
    limiter.update_rate(KEY, 0)  # nonsense is ignored
    limiter.update_rate(KEY, float("nan"))
    assert limiter.rate(KEY) == 2.0
    limiter.update_rate(("other", "getOrder"), 1.0)  # no bucket yet: nothing to adjust
    assert limiter.rate(("other", "getOrder")) is None


def test_seed_rate_follows_the_caller_until_adopted(fake_time: FakeTime) -> None:
    limiter = limiter_for(fake_time, safety_factor=1.0)
    limiter.acquire(KEY, 1.0, 1)
    assert limiter.acquire(KEY, 4.0, 1) == pytest.approx(0.25)
    assert limiter.rate(KEY) == 4.0


def test_buckets_are_per_key(fake_time: FakeTime) -> None:
    limiter = limiter_for(fake_time)
    limiter.acquire(("S1", "getOrder"), 0.5, 1)
    assert limiter.acquire(("S2", "getOrder"), 0.5, 1) == 0.0
    assert limiter.acquire(("S1", "getFeed"), 0.5, 1) == 0.0
    assert limiter.acquire(("S1", "getOrder"), 0.5, 1) > 0.0


def test_drain(fake_time: FakeTime) -> None:
    limiter = limiter_for(fake_time, safety_factor=1.0)
    limiter.acquire(KEY, 2.0, 10)
    limiter.drain(KEY)
    assert limiter.acquire(KEY, 2.0, 10) == pytest.approx(0.5)
    limiter.drain(("unknown", "getOrder"))  # no bucket: nothing to do


def test_rejects_invalid_limits(fake_time: FakeTime) -> None:
    limiter = limiter_for(fake_time)
    with pytest.raises(ValueError):
        limiter.acquire(KEY, 0.0, 1)
    with pytest.raises(ValueError):
        limiter.acquire(KEY, 1.0, 0)


def test_thread_safety() -> None:
    """Concurrent callers each reserve their own token: no token is handed out twice."""
    waits: list[float] = []
    lock = threading.Lock()
    limiter = InMemoryRateLimiter(safety_factor=1.0, sleep=lambda s: None, clock=lambda: 0.0)
    start = threading.Barrier(10)

    def work() -> None:
        start.wait()
        for _ in range(50):
            wait = limiter.acquire(KEY, 4.0, 20)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=work) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # With the clock standing still, the 500 callers got the 20 burst tokens and then
    # one future token each, a quarter of a second apart.
    expected = [0.0] * 20 + [n / 4.0 for n in range(1, 481)]
    assert sorted(waits) == pytest.approx(expected)
