"""LWA credentials, token responses, the token cache, and the retry policy (no server)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

import pytest

from flask_amazon_orders.client import LWACredentials, RetryPolicy, TokenCache
from flask_amazon_orders.client.lwa import AccessToken, parse_token_response, token_key
from flask_amazon_orders.client.retry import parse_retry_after
from flask_amazon_orders.errors import (
    InvalidInputError,
    LWAError,
    MalformedResponseError,
    MissingCredentialsError,
    QuotaExceededError,
    RefreshTokenRevokedError,
    ServerError,
    TransportError,
)

SECRET = "cs-SUPERSECRET"
REFRESH = "Atzr|SUPERSECRET"


# -- credentials -----------------------------------------------------------------------


def test_credentials_hide_secrets() -> None:
    credentials = LWACredentials("client-1", SECRET, REFRESH)
    for text in (repr(credentials), str(credentials), f"{credentials}", f"{credentials!r}"):
        assert "SUPERSECRET" not in text
        assert "client-1" in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        credentials.client_secret = "other"  # type: ignore[misc]


def test_missing_credentials_are_named() -> None:
    assert LWACredentials("id", "secret", "token").missing() == []
    credentials = LWACredentials(None, " ", "token")
    assert credentials.missing() == ["client_id", "client_secret"]
    with pytest.raises(MissingCredentialsError, match="client_id, client_secret"):
        credentials.token_form()
    assert "None" in repr(LWACredentials("id", None, None))


def test_token_key_hashes_the_refresh_token() -> None:
    key = token_key("https://lwa", LWACredentials("id", SECRET, REFRESH))
    assert key[:2] == ("https://lwa", "id")
    assert "SUPERSECRET" not in repr(key)
    assert key != token_key("https://lwa", LWACredentials("id", SECRET, REFRESH + "2"))
    assert key == token_key("https://lwa", LWACredentials("id", "rotated secret", REFRESH))


# -- token responses -------------------------------------------------------------------


def test_parse_token_response() -> None:
    token = parse_token_response(200, {}, b'{"access_token": "Atza|x", "expires_in": 3600}')
    assert token == AccessToken("Atza|x", 3600.0)
    assert "Atza" not in repr(token)


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable"),
    [
        (
            400,
            b'{"error": "invalid_grant", "error_description": "bad"}',
            RefreshTokenRevokedError,
            False,
        ),
        (401, b'{"error": "invalid_client", "error_description": "bad"}', LWAError, False),
        (400, b'{"error": "unsupported_grant_type"}', LWAError, False),
        (429, b"", LWAError, True),
        (500, b'{"error": "server_error"}', LWAError, True),
        (503, b"<html>down</html>", LWAError, True),
        (200, b'{"access_token": ""}', LWAError, True),
        (200, b'{"access_to', LWAError, True),
    ],
)
def test_parse_token_errors(status: int, body: bytes, cls: type, retryable: bool) -> None:
    with pytest.raises(LWAError) as info:
        parse_token_response(status, {"Content-Type": "text/html"}, body, request_id="r1")
    error = info.value
    assert type(error) is cls
    assert error.retryable is retryable
    assert (error.status, error.request_id, error.operation) == (status, "r1", "lwaToken")
    assert error.message


# -- token cache -----------------------------------------------------------------------


def test_cache_refreshes_a_minute_early() -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    issued: list[str] = []

    def fetch() -> AccessToken:
        issued.append(f"t{len(issued) + 1}")
        return AccessToken(issued[-1], 3600)

    key = ("u", "c", "h")
    assert cache.get(key, fetch) == ("t1", True)
    now[0] = 3539.0
    assert cache.get(key, fetch) == ("t1", False)
    now[0] = 3540.0
    assert cache.get(key, fetch) == ("t2", True)
    assert "t2" not in repr(cache)


def test_cache_short_lived_tokens_are_refreshed_halfway() -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    key = ("u", "c", "h")
    cache.get(key, lambda: AccessToken("short", 30))
    now[0] = 14.0
    assert cache.get(key, lambda: AccessToken("new", 30)) == ("short", False)
    now[0] = 15.0
    assert cache.get(key, lambda: AccessToken("new", 30)) == ("new", True)


def test_cache_invalidate_only_the_stale_token() -> None:
    cache = TokenCache()
    key = ("u", "c", "h")
    cache.get(key, lambda: AccessToken("a", 3600))
    cache.invalidate(key, "not-the-cached-one")
    assert cache.get(key, lambda: AccessToken("b", 3600)) == ("a", False)
    cache.invalidate(key, "a")
    assert cache.get(key, lambda: AccessToken("b", 3600)) == ("b", True)
    cache.clear()
    assert cache.get(key, lambda: AccessToken("c", 3600)) == ("c", True)


def test_cache_failed_fetch_caches_nothing() -> None:
    cache = TokenCache()
    key = ("u", "c", "h")

    def fail() -> AccessToken:
        raise TransportError("down")

    with pytest.raises(TransportError):
        cache.get(key, fail)
    assert cache.get(key, lambda: AccessToken("ok", 3600)) == ("ok", True)


def test_cache_one_refresh_per_key_across_threads() -> None:
    cache = TokenCache()
    calls: list[tuple[str, str, str]] = []
    results: list[tuple[str, bool]] = []
    start = threading.Barrier(12)

    def fetch_for(key: tuple[str, str, str]) -> AccessToken:
        calls.append(key)
        time.sleep(0.05)
        return AccessToken(f"token-{key[1]}", 3600)

    def work(index: int) -> None:
        key = ("u", f"client{index % 2}", "h")
        start.wait()
        results.append(cache.get(key, lambda: fetch_for(key)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(calls) == [("u", "client0", "h"), ("u", "client1", "h")]
    assert sorted(token for token, _ in results) == ["token-client0"] * 6 + ["token-client1"] * 6
    assert sum(fresh for _, fresh in results) == 2


# -- retry policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "idempotent", "sent", "expected"),
    [
        (QuotaExceededError("q"), True, True, True),
        (QuotaExceededError("q"), False, True, True),
        (ServerError("s"), True, True, True),
        (ServerError("s"), False, True, False),
        (MalformedResponseError("m"), True, True, True),
        (MalformedResponseError("m"), False, True, False),
        (TransportError("t"), True, True, True),
        (TransportError("t"), False, True, False),
        (TransportError("t"), False, False, True),
        (InvalidInputError("i"), True, True, False),
        (RefreshTokenRevokedError("r"), True, False, False),
    ],
)
def test_should_retry(error: LWAError, idempotent: bool, sent: bool, expected: bool) -> None:
    assert RetryPolicy().should_retry(error, idempotent=idempotent, sent=sent) is expected


def test_delay() -> None:
    fixed = RetryPolicy(backoff_base=0.5, backoff_cap=3.0, jitter=False)
    assert [fixed.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert fixed.delay(1, retry_after=2.5) == 2.5
    assert fixed.delay(1, retry_after=100.0) == 3.0
    jittered = RetryPolicy(backoff_base=1.0, backoff_cap=8.0)
    samples = [jittered.delay(4) for _ in range(200)]
    assert all(0.0 <= sample <= 8.0 for sample in samples)
    assert len(set(samples)) > 1
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_parse_retry_after() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after({"Retry-After": "5"}) == 5.0
    assert parse_retry_after({"Retry-After": "1.5"}) == 1.5
    assert parse_retry_after({"Retry-After": "Thu, 01 Jan 2026 12:00:30 GMT"}, now=now) == 30.0
    assert parse_retry_after({"Retry-After": "Thu, 01 Jan 2026 11:00:00 GMT"}, now=now) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "inf"}) is None
    assert parse_retry_after({}) is None
