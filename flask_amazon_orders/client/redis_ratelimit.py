"""A rate limiter whose token buckets live in Redis, shared by every process.

Amazon counts calls per selling partner and application, whichever process makes
them. With several workers (Celery, several web processes with embedded workers,
cron next to a worker), each process's own buckets would together exceed the
limits; :class:`RedisRateLimiter` keeps one bucket per (seller, operation) in
Redis, and updates it atomically with a Lua script that reads Redis's own clock,
so N processes together stay under one limit.

It implements :class:`~flask_amazon_orders.client.ratelimit.RateLimiter` with the
in-process limiter's semantics — a new bucket starts full (less one token kept in reserve against
the jitter between processes), a rate announced by
Amazon (``x-amzn-RateLimit-Limit``) is adopted, a 429 empties the bucket, and a
caller that finds the bucket empty reserves the next token and sleeps until it is
due. A bucket's key expires once it would have refilled, since an absent bucket
and a full one are the same.

Needs the ``redis`` package (``pip install flask-amazon-orders[redis]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import RateLimitWait
from .ratelimit import BucketKey, check_limit, usable_rate

#: Refill, take one token, return {1, wait}; all under one atomic script. With a
#: longest wait (ARGV[5], negative for none) that the token is further away than,
#: take nothing and return {0, wait}.
#: KEYS[1] bucket; ARGV rate, burst, safety factor, tokens to take (1 or 0), max wait.
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local safety = tonumber(ARGV[3])
local take = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'rate', 'adopted')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if state[4] == '1' and state[3] then
  rate = tonumber(state[3])
end
if tokens == nil then
  tokens = burst
else
  local elapsed = now - updated
  if elapsed > 0 then
    tokens = math.min(burst, tokens + elapsed * rate * safety)
  end
end
local left = tokens - take
local wait = 0
if left < 0 then
  wait = -left / (rate * safety)
end
local max_wait = tonumber(ARGV[5])
if max_wait >= 0 and wait > max_wait then
  return {0, tostring(wait)}
end
tokens = left
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now),
  'burst', tostring(burst))
if state[4] ~= '1' then
  redis.call('HSET', KEYS[1], 'rate', tostring(rate))
end
local ttl = math.ceil((burst - tokens) / (rate * safety)) + 60
redis.call('EXPIRE', KEYS[1], ttl)
return {1, tostring(wait)}
"""

#: Adopt Amazon's rate: refill at the old rate up to now, then switch.
_UPDATE_RATE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local new_rate = tonumber(ARGV[1])
local safety = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'rate', 'adopted', 'burst')
if state[1] == false then
  return 0
end
if state[4] == '1' and tonumber(state[3]) == new_rate then
  return 0
end
local tokens = tonumber(state[1])
local elapsed = now - tonumber(state[2])
local burst = tonumber(state[5])
if elapsed > 0 then
  tokens = math.min(burst, tokens + elapsed * tonumber(state[3]) * safety)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now),
  'rate', tostring(new_rate), 'adopted', '1')
return 1
"""

#: Amazon answered 429: its bucket is empty, so is ours (reservations stay).
_DRAIN = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens == nil then
  return 0
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
if tokens > 0 then
  tokens = 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
return 1
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every process that uses the same Redis.

    :param client: a ``redis.Redis`` client (``decode_responses`` either way).
    :param prefix: the key prefix of the buckets, e.g. per environment.
    :param safety_factor: fraction of the rate actually used (``0.95``), as for
        :class:`~flask_amazon_orders.client.ratelimit.InMemoryRateLimiter`.
    :param sleep: how to wait; injectable for tests.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "amazon-orders:rate",
        safety_factor: float = 0.95,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0.0 < safety_factor <= 1.0:
            raise ValueError("safety_factor must be in (0, 1]")
        self.client = client
        self.prefix = prefix
        self.safety_factor = safety_factor
        self._sleep = sleep
        self._acquire = client.register_script(_ACQUIRE)
        self._update_rate = client.register_script(_UPDATE_RATE)
        self._drain = client.register_script(_DRAIN)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisRateLimiter:
        """A limiter on the Redis at ``url`` (``redis://host:6379/0``)."""
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the installation
            raise ImportError(
                "A Redis rate limiter needs the 'redis' package: "
                "pip install flask-amazon-orders[redis]"
            ) from None
        return cls(redis.Redis.from_url(url, socket_timeout=5), **options)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(prefix={self.prefix!r}, safety_factor={self.safety_factor!r})"
        )

    def _key(self, key: BucketKey) -> str:
        return f"{self.prefix}:{key[0]}:{key[1]}"

    def acquire(
        self, key: BucketKey, rate: float, burst: int, *, max_wait: float | None = None
    ) -> float:
        check_limit(key, rate, burst)
        # One token stays in reserve: calls of several processes reach Amazon with
        # jitter, and its bucket started a moment after ours.
        usable = burst - 1 if burst > 1 else burst
        limit = -1.0 if max_wait is None else max(0.0, max_wait)
        taken, waiting = self._acquire(
            keys=[self._key(key)], args=[rate, usable, self.safety_factor, 1, limit]
        )
        wait = float(waiting)
        if not int(taken):
            raise RateLimitWait(key[1], wait)
        if wait > 0:
            self._sleep(wait)
        return wait

    def update_rate(self, key: BucketKey, rate: float) -> None:
        if not usable_rate(rate):
            return
        self._update_rate(keys=[self._key(key)], args=[rate, self.safety_factor])

    def drain(self, key: BucketKey) -> None:
        self._drain(keys=[self._key(key)])

    def rate(self, key: BucketKey) -> float | None:
        """The rate (before the safety factor) in use for ``key``, if it has a bucket."""
        value = self.client.hget(self._key(key), "rate")
        return None if value is None else float(value)

    def tokens(self, key: BucketKey) -> float | None:
        """The bucket's balance as last written (negative: callers are waiting)."""
        value = self.client.hget(self._key(key), "tokens")
        return None if value is None else float(value)
