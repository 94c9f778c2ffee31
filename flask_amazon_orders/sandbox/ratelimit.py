"""Amazon's published usage plans and the token buckets that enforce them.

Each (seller, operation) pair has its own bucket: it holds at most ``burst``
requests and refills at ``rate * time_scale`` requests per second, as Amazon's
token-bucket description says. A small ``time_scale`` makes throttling easy to
reach in tests; a large one makes the sandbox fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class UsagePlan:
    """The published rate (requests per second) and burst of one operation."""

    rate: Decimal
    burst: int


#: The usage plans of the operations the sandbox serves (from the models).
USAGE_PLANS: dict[str, UsagePlan] = {
    "searchOrders": UsagePlan(Decimal("0.0056"), 20),
    "getOrder": UsagePlan(Decimal("0.5"), 30),
    "createFeedDocument": UsagePlan(Decimal("0.5"), 15),
    "createFeed": UsagePlan(Decimal("0.0083"), 15),
    "getFeed": UsagePlan(Decimal("2"), 15),
    "getFeeds": UsagePlan(Decimal("0.0222"), 10),
    "cancelFeed": UsagePlan(Decimal("2"), 15),
    "getFeedDocument": UsagePlan(Decimal("0.0222"), 10),
    "confirmShipment": UsagePlan(Decimal("2"), 10),
    # Notifications API v1: every operation 1 request per second, burst 5.
    **{
        operation: UsagePlan(Decimal("1"), 5)
        for operation in (
            "createDestination",
            "getDestinations",
            "getDestination",
            "deleteDestination",
            "createSubscription",
            "getSubscription",
            "getSubscriptionById",
            "deleteSubscriptionById",
        )
    },
}


def scaled_rate(operation: str, time_scale: float) -> str:
    """The ``x-amzn-RateLimit-Limit`` value of ``operation``: its rate times ``time_scale``."""
    value = (USAGE_PLANS[operation].rate * Decimal(repr(float(time_scale)))).normalize()
    return format(value, "f")


class TokenBucket:
    """A token bucket that starts full."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        """Take one token; ``False`` (throttled) if the bucket is empty."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """Token buckets per (seller, operation), seeded from :data:`USAGE_PLANS`.

    Not thread-safe on its own: the sandbox calls it under its state lock.
    """

    def __init__(self, time_scale: float = 1.0, *, enabled: bool = True) -> None:
        self.time_scale = time_scale
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.headers = {op: scaled_rate(op, time_scale) for op in USAGE_PLANS}

    def allow(self, seller_id: str, operation: str) -> bool:
        """Whether a call of ``operation`` by ``seller_id`` is within its quota now."""
        if not self.enabled or operation not in USAGE_PLANS:
            return True
        key = (seller_id, operation)
        bucket = self._buckets.get(key)
        if bucket is None:
            plan = USAGE_PLANS[operation]
            bucket = TokenBucket(float(plan.rate) * self.time_scale, plan.burst)
            self._buckets[key] = bucket
        return bucket.take()

    def reset(self) -> None:
        """Refill every bucket (forget all usage)."""
        self._buckets.clear()
