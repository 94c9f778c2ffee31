"""Client-side rate limiting: a token bucket per (seller, operation).

Amazon enforces a token bucket per selling partner and operation (SP-API-NOTES
§1.8, §4.6): ``rate`` tokens are added per second up to ``burst``; each call takes
one; a call without a token gets HTTP 429. The client keeps its own bucket for the
same key and waits for a token *before* it calls, so a well-behaved client is
throttled by its own clock rather than by Amazon.

:class:`RateLimiter` is the protocol the client talks to. :class:`InMemoryRateLimiter`
implements it for one process. Several worker processes that call for the same
seller need a shared implementation (Redis, the database) of the same protocol.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import RateLimitWait

#: A bucket key: ``(seller_key, operation)``.
BucketKey = tuple[str, str]


@runtime_checkable
class RateLimiter(Protocol):
    """What the client needs from a rate limiter.

    Implementations must be safe to call from several threads at once.
    """

    def acquire(
        self, key: BucketKey, rate: float, burst: int, *, max_wait: float | None = None
    ) -> float:
        """Take one token from the bucket ``key``, waiting until one is available.

        :param rate: the published (or configured) rate in requests per second,
            used unless a rate announced by Amazon was adopted for ``key``.
        :param burst: the bucket size; a new bucket starts full.
        :param max_wait: if the token is more than this many seconds away, take
            none and raise :class:`~flask_amazon_orders.errors.RateLimitWait`.
        :returns: the seconds spent waiting.
        """
        ...

    def update_rate(self, key: BucketKey, rate: float) -> None:
        """Adopt ``rate`` (from ``x-amzn-RateLimit-Limit``) for ``key`` from now on."""
        ...

    def drain(self, key: BucketKey) -> None:
        """Empty the bucket ``key`` because Amazon answered 429 (it thinks it is empty)."""
        ...


def usable_rate(rate: float) -> bool:
    """Whether ``rate`` (requests per second) can be a bucket's refill rate."""
    return rate > 0 and math.isfinite(rate)


def check_limit(key: BucketKey, rate: float, burst: int) -> None:
    """Refuse a limit no bucket can follow (``ValueError``)."""
    if not usable_rate(rate) or burst < 1:
        raise ValueError(f"invalid rate limit for {key[1]}: rate={rate!r}, burst={burst!r}")


@dataclass
class _Bucket:
    rate: float  # requests per second, before the safety factor
    burst: int
    tokens: float  # may go below zero: each waiting caller has reserved a future token
    updated: float  # clock reading of the last refill
    adopted: bool = False  # rate came from Amazon's header and overrides the seed


class InMemoryRateLimiter:
    """A thread-safe token bucket per key, kept in this process's memory.

    :param safety_factor: fraction of the rate actually used (``0.95`` by
        default), so that a client following a limit never exceeds a server that
        enforces the same limit despite clock drift and network delays.
    :param sleep: how to wait; injectable for tests.
    :param clock: a monotonic clock in seconds; injectable for tests.

    A caller that finds the bucket empty reserves the next token (the balance goes
    negative) and sleeps outside the lock until it is due, so waiting callers are
    served in order and never busy-wait.
    """

    def __init__(
        self,
        *,
        safety_factor: float = 0.95,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < safety_factor <= 1.0:
            raise ValueError("safety_factor must be in (0, 1]")
        self.safety_factor = safety_factor
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[BucketKey, _Bucket] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(safety_factor={self.safety_factor!r})"

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = now - bucket.updated
        if elapsed > 0:
            bucket.tokens = min(
                float(bucket.burst), bucket.tokens + elapsed * bucket.rate * self.safety_factor
            )
        bucket.updated = now

    def _bucket(self, key: BucketKey, rate: float, burst: int, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(rate, burst, float(burst), now)
            return bucket
        self._refill(bucket, now)
        if not bucket.adopted:
            bucket.rate = rate
        bucket.burst = burst
        return bucket

    def acquire(
        self, key: BucketKey, rate: float, burst: int, *, max_wait: float | None = None
    ) -> float:
        check_limit(key, rate, burst)
        with self._lock:
            bucket = self._bucket(key, rate, burst, self._clock())
            left = bucket.tokens - 1.0
            wait = -left / (bucket.rate * self.safety_factor) if left < 0 else 0.0
            if max_wait is not None and wait > max_wait:
                raise RateLimitWait(key[1], wait)
            bucket.tokens = left
        if wait > 0:
            self._sleep(wait)
        return wait

    def update_rate(self, key: BucketKey, rate: float) -> None:
        if not usable_rate(rate):
            return
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return  # acquire() creates buckets; there is nothing to adjust yet
            if bucket.adopted and bucket.rate == rate:
                return
            self._refill(bucket, self._clock())
            bucket.rate = rate
            bucket.adopted = True

    def drain(self, key: BucketKey) -> None:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return
            self._refill(bucket, self._clock())
            bucket.tokens = min(bucket.tokens, 0.0)

    def rate(self, key: BucketKey) -> float | None:
        """The rate (before the safety factor) in use for ``key``, if it has a bucket."""
        with self._lock:
            bucket = self._buckets.get(key)
            return None if bucket is None else bucket.rate


_default_limiter = InMemoryRateLimiter()


def default_rate_limiter() -> InMemoryRateLimiter:
    """The process-wide limiter shared by every client that is not given one."""
    return _default_limiter
