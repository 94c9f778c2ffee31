"""When to send a failed request again, and how long to wait before doing so.

:class:`RetryPolicy` answers two questions for the client: *may* this failure be
retried (:meth:`RetryPolicy.should_retry`), and *how long* to wait first
(:meth:`RetryPolicy.delay`). Waiting is exponential backoff with "full jitter"
(a uniformly random delay between zero and the exponential bound), unless the
server said how long to wait in a ``Retry-After`` header.

Retrying is only safe when sending the request twice cannot do a thing twice. A
read, the presigned upload and ``createFeedDocument`` are idempotent. For the
others (``createFeed``, ``cancelFeed``, ``confirmShipment``) a timeout or a 500 may
mean the request *was* carried out, so they are retried only after a 429 (Amazon
rejected it before doing anything) or when the request never left this machine.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ..errors import QuotaExceededError, SPAPIError


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently the client retries.

    :param max_attempts: attempts in total, the first one included (at least 1).
    :param backoff_base: the bound of the first backoff, in seconds; it doubles
        with every further retry.
    :param backoff_cap: no backoff, and no honoured ``Retry-After``, is longer.
    :param jitter: draw each delay uniformly from ``[0, bound]`` ("full jitter")
        so that many clients do not retry in lockstep. ``False`` waits the bound.
    """

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap must not be negative")

    def should_retry(self, error: SPAPIError, *, idempotent: bool, sent: bool = True) -> bool:
        """Whether ``error`` may be answered by sending the same request again.

        :param idempotent: sending the request twice has the effect of sending it once.
        :param sent: the request may have reached the server. ``False`` when the
            connection could not be made, or when getting the access token failed.
        """
        if not error.retryable:
            return False
        if idempotent or not sent:
            return True
        # Amazon throttles before it does anything, so a 429 is always safe to repeat.
        return isinstance(error, QuotaExceededError)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A ``Retry-After`` value from the server wins over the computed backoff;
        both are capped at :attr:`backoff_cap`.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_cap)
        bound = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
        return random.uniform(0.0, bound) if self.jitter else bound


def parse_retry_after(
    headers: Mapping[str, str], *, now: dt.datetime | None = None
) -> float | None:
    """Read a ``Retry-After`` header (delay seconds or an HTTP date) as seconds.

    Returns ``None`` when the header is absent or unreadable.
    """
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
