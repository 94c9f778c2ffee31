"""Login with Amazon (LWA): credentials, the refresh-token grant, and a token cache.

SP-API calls carry an LWA access token in ``x-amz-access-token``. The token is
obtained by a form-encoded POST to the LWA token URL with the seller's refresh
token and the application's client id and secret (SP-API-NOTES §4.1), and it is
valid for one hour. :class:`TokenCache` keeps it and hands it to every client
that uses the same credentials, refreshing a minute before it expires.

The HTTP exchange itself happens in :mod:`~flask_amazon_orders.client.http`, so
that token requests get the same session, timeout, retries and logging as any
call; this module builds the request and reads the answer.

Secrets (client secret, refresh token, access token) never appear in a repr, a
message or a log line.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from ..errors import LWAError, MissingCredentialsError, RefreshTokenRevokedError

#: Amazon's LWA token endpoint (the same for every region).
LWA_TOKEN_URL: Final = "https://api.amazon.com/auth/o2/token"

#: The operation name used for token requests in errors, logs and client stats.
LWA_OPERATION: Final = "lwaToken"

#: An access token goes into a header: visible ASCII only.
_TOKEN = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class LWACredentials:
    """An application's LWA client id and secret and one seller's refresh token.

    Empty values are allowed here and reported, by name, on the first call that
    needs them (:class:`~flask_amazon_orders.errors.MissingCredentialsError`).
    Only the client id is shown by ``repr``/``str``.
    """

    client_id: str | None
    client_secret: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)

    def __repr__(self) -> str:
        secret = "'***'" if self.client_secret else "None"
        token = "'***'" if self.refresh_token else "None"
        return (
            f"LWACredentials(client_id={self.client_id!r}, client_secret={secret}, "
            f"refresh_token={token})"
        )

    __str__ = __repr__

    def missing(self) -> list[str]:
        """Names of the credentials that are empty."""
        return [
            name
            for name in ("client_id", "client_secret", "refresh_token")
            if not (getattr(self, name) or "").strip()
        ]

    def check(self) -> None:
        """Raise :class:`MissingCredentialsError` naming every missing credential."""
        missing = self.missing()
        if missing:
            raise MissingCredentialsError(
                f"Amazon LWA credentials are missing: {', '.join(missing)}. "
                "Configure them before calling Amazon."
            )

    def token_form(self) -> dict[str, str]:
        """The form fields of the refresh-token grant."""
        self.check()
        assert self.client_id and self.client_secret and self.refresh_token
        return {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


#: A token cache key: ``(lwa_url, client_id, sha256 of the refresh token)``.
TokenKey = tuple[str, str, str]


def token_key(lwa_url: str, credentials: LWACredentials) -> TokenKey:
    """The cache key for ``credentials``; the refresh token only enters as a hash."""
    digest = hashlib.sha256((credentials.refresh_token or "").encode()).hexdigest()
    return (lwa_url, credentials.client_id or "", digest)


class AccessToken(NamedTuple):
    """An access token as LWA issued it."""

    value: str
    expires_in: float

    def __repr__(self) -> str:
        return f"AccessToken(value='***', expires_in={self.expires_in!r})"


def parse_token_response(
    status: int, headers: Mapping[str, str], body: bytes, *, request_id: str | None = None
) -> AccessToken:
    """Read LWA's answer to a token request, or raise the matching :class:`LWAError`.

    ``invalid_grant`` raises :class:`RefreshTokenRevokedError`. Errors that may pass
    (HTTP 429 and 5xx, an unreadable success body) raise an :class:`LWAError` whose
    ``retryable`` is true; every other refusal (``invalid_client`` …) is final.
    """
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        data = None
    if not isinstance(data, dict):
        data = None

    if 200 <= status < 300:
        token = data.get("access_token") if data else None
        expires_in = _lifetime(data.get("expires_in", 3600)) if data else None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token) or expires_in is None:
            error = LWAError(
                "the LWA token response is not a JSON object with access_token and expires_in",
                status=status,
                request_id=request_id,
                operation=LWA_OPERATION,
            )
            error.retryable = True
            raise error
        return AccessToken(token, expires_in)

    code = data.get("error") if data else None
    description = data.get("error_description") if data else None
    if not isinstance(code, str):
        code = None
    if isinstance(description, str) and description:
        message = description
    elif data is None and body:
        content_type = headers.get("Content-Type") or "no content type"
        message = f"the LWA token endpoint answered with a non-JSON body ({content_type})"
    else:
        message = "the LWA token endpoint refused to issue an access token"
    cls = RefreshTokenRevokedError if code == "invalid_grant" else LWAError
    if cls is RefreshTokenRevokedError:
        message += "; the seller must authorize the application again"
    error = cls(message, status=status, code=code, request_id=request_id, operation=LWA_OPERATION)
    if status == 429 or status >= 500:
        error.retryable = True
    raise error


def _lifetime(value: object) -> float | None:
    """``expires_in`` as positive, finite seconds, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float
        return None
    return seconds if 0 < seconds < math.inf else None


@dataclass
class _Entry:
    token: str
    refresh_at: float  # clock reading after which the token is refreshed
    expires_at: float


class TokenCache:
    """Access tokens per :data:`TokenKey`, shared between threads and clients.

    A token is refreshed ``refresh_margin`` seconds (60 by default) before it
    expires (at most halfway through a very short lifetime). Only one thread
    refreshes a given key at a time; the others wait for it and use its token.

    :param clock: a monotonic clock in seconds; injectable for tests.
    """

    def __init__(
        self, *, refresh_margin: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._entries: dict[TokenKey, _Entry] = {}
        self._key_locks: dict[TokenKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokens={len(self._entries)})"

    def _valid(self, key: TokenKey) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.refresh_at:
            return entry
        return None

    def get(self, key: TokenKey, fetch: Callable[[], AccessToken]) -> tuple[str, bool]:
        """Return ``(access_token, fresh)`` for ``key``, calling ``fetch`` when needed.

        ``fresh`` is true when this call fetched the token itself. Whatever
        ``fetch`` raises propagates, and nothing is cached.
        """
        entry = self._valid(key)
        if entry is not None:
            return entry.token, False
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._valid(key)  # another thread may have refreshed meanwhile
            if entry is not None:
                return entry.token, False
            started = self._clock()
            token = fetch()
            lifetime = max(token.expires_in, 0.0)
            margin = min(self.refresh_margin, lifetime / 2)
            with self._lock:
                self._entries[key] = _Entry(
                    token.value, started + lifetime - margin, started + lifetime
                )
            return token.value, True

    def invalidate(self, key: TokenKey, token: str | None = None) -> None:
        """Forget the token for ``key`` (only if it still is ``token``, when given)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (token is None or entry.token == token):
                del self._entries[key]

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._entries.clear()


_default_cache = TokenCache()


def default_token_cache() -> TokenCache:
    """The process-wide token cache shared by every client that is not given one."""
    return _default_cache
