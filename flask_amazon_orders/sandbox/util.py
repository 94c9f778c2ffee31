"""Small helpers shared by the sandbox modules: time, money, ids and signing.

Times inside the sandbox are integers in **milliseconds** since the epoch (UTC).
Order timestamps are written the way Amazon writes them, ISO 8601 in UTC with a
``Z``: whole seconds as ``2025-01-31T10:00:00Z``, and with milliseconds
(``2025-01-31T10:00:00.123Z``) only when the value has a fraction of a second.
Money is kept as integers in the currency's minor unit (cents) and written as a
decimal string, as the SP-API ``Money`` type does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

#: Currencies without a minor unit (amounts are written without decimals).
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "VND"})


def now_ms() -> int:
    """The current time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as ISO 8601 UTC; milliseconds only when non-zero."""
    seconds, millis = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if millis:
        return f"{text}.{millis:03d}Z"
    return text + "Z"


def iso_ms_always(ms: int) -> str:
    """Format epoch milliseconds as ISO 8601 UTC, always with milliseconds (Feeds style)."""
    seconds, millis = divmod(ms, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def parse_iso(value: str) -> int | None:
    """Parse an ISO 8601 date-time (or date) to epoch milliseconds, or ``None``.

    A value without a time zone is taken as UTC, as Amazon does.
    """
    text = value.strip()
    if not text or not text[0].isdigit():
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return round(parsed.timestamp() * 1000)


def currency_exponent(currency: str) -> int:
    """Number of decimals of ``currency`` (2 for most, 0 for JPY)."""
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


def format_amount(minor: int, currency: str) -> str:
    """Format an amount in minor units as the decimal string Amazon sends."""
    if currency_exponent(currency) == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def money(minor: int, currency: str) -> dict[str, str]:
    """An SP-API ``Money`` object."""
    return {"amount": format_amount(minor, currency), "currencyCode": currency}


def to_minor(value: Any, currency: str) -> int:
    """Convert ``"19.99"``, ``19.99`` or ``Decimal`` to minor units of ``currency``.

    :raises ValueError: if the value is not a number.
    """
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{value!r} is not an amount") from exc
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    scaled = amount.scaleb(currency_exponent(currency))
    return int(scaled.to_integral_value(rounding=ROUND_HALF_UP))


def percent_of(minor: int, basis_points: int) -> int:
    """``minor * basis_points / 10000`` rounded half up (for non-negative amounts)."""
    return (minor * basis_points + 5000) // 10000


def request_id() -> str:
    """A fresh ``x-amzn-RequestId`` value."""
    return str(uuid.uuid4())


def dumps(obj: Any) -> str:
    """Compact JSON, as Amazon sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Signer:
    """HMAC signing of opaque tokens (pagination tokens, presigned URLs)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, message: str) -> str:
        """A hex HMAC-SHA256 of ``message``."""
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        """Whether ``signature`` is the signature of ``message``."""
        return hmac.compare_digest(self.sign(message), signature)

    def seal(self, payload: dict[str, Any]) -> str:
        """Encode ``payload`` as an opaque, tamper-evident token."""
        body = base64.urlsafe_b64encode(dumps(payload).encode()).decode().rstrip("=")
        return f"{body}.{self.sign(body)[:32]}"

    def unseal(self, token: str) -> dict[str, Any] | None:
        """Decode a token made by :meth:`seal`; ``None`` if it is invalid or tampered with."""
        body, _, signature = token.strip().partition(".")
        if not body or not hmac.compare_digest(self.sign(body)[:32], signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, TypeError):
            return None
        return data if isinstance(data, dict) else None
