"""Configuration: every ``AMAZON_ORDERS_*`` key, its default, and its validation.

Each key is declared once in :data:`DEFAULTS`. :func:`load_settings` reads the
app's config once (at ``init_app``) into a frozen :class:`Settings` object. A
misspelt ``AMAZON_ORDERS_*`` key gives a warning; a bad value raises
:class:`~flask_amazon_orders.errors.ConfigurationError` naming the key.
Credentials are not checked here: a missing one fails at the first Amazon call,
so the admin pages, ``--help`` and tests work without secrets.
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

PREFIX = "AMAZON_ORDERS_"

#: Every configuration key with its default. The docs' configuration page
#: describes each one; keep the two in step.
DEFAULTS: dict[str, Any] = {
    # Login with Amazon application credentials (one per SP-API application).
    "AMAZON_ORDERS_LWA_CLIENT_ID": None,
    "AMAZON_ORDERS_LWA_CLIENT_SECRET": None,
    "AMAZON_ORDERS_LWA_URL": "https://api.amazon.com/auth/o2/token",
    # SP-API base URL for every store; None picks Amazon's endpoint of the store's region.
    "AMAZON_ORDERS_ENDPOINT": None,
    # Keys that encrypt refresh tokens and buyer data; the first encrypts, all decrypt.
    "AMAZON_ORDERS_ENCRYPTION_KEYS": (),
    # Sync.
    "AMAZON_ORDERS_SYNC_LOOKBACK_DAYS": 30,
    "AMAZON_ORDERS_SYNC_OVERLAP_SECONDS": 300,
    "AMAZON_ORDERS_SYNC_PAGE_SIZE": 100,
    "AMAZON_ORDERS_SYNC_INTERVAL_SECONDS": 300,
    # A worker's sync whose next page waits longer than this for Amazon's rate
    # limit gives way to other stores and goes on when the limit allows.
    "AMAZON_ORDERS_SYNC_MAX_RATE_WAIT_SECONDS": 10,
    "AMAZON_ORDERS_FETCH_BUYER_DATA": True,
    # Days buyer data is kept after an order shipped or was cancelled; then it is purged.
    "AMAZON_ORDERS_BUYER_DATA_RETENTION_DAYS": 30,
    # Embedded background worker (small shops, the example app).
    "AMAZON_ORDERS_EMBEDDED_WORKER": False,
    # HTTP client behaviour.
    "AMAZON_ORDERS_HTTP_TIMEOUT": (5.0, 30.0),
    "AMAZON_ORDERS_RETRY_MAX_ATTEMPTS": 6,
    "AMAZON_ORDERS_RETRY_BACKOFF_SECONDS": 1.0,
    "AMAZON_ORDERS_RETRY_BACKOFF_CAP_SECONDS": 60.0,
    "AMAZON_ORDERS_RATE_LIMIT_SCALE": 1.0,
    # Where the rate-limit buckets live: None (this process) or a redis:// URL (shared).
    "AMAZON_ORDERS_RATE_LIMIT_STORAGE": None,
    # Feeds (cancellations): seconds between polls of a submitted feed.
    "AMAZON_ORDERS_FEED_POLL_SECONDS": 30.0,
    # Push: Amazon's ORDER_CHANGE notifications from an SQS queue (needs boto3).
    "AMAZON_ORDERS_SQS_QUEUE_URL": None,
    # The queue's AWS region; None takes it from the queue URL.
    "AMAZON_ORDERS_SQS_REGION": None,
    # Another SQS endpoint (a local SQS-compatible server in tests).
    "AMAZON_ORDERS_SQS_ENDPOINT_URL": None,
    # Seconds a receive waits for messages (long polling, at most 20).
    "AMAZON_ORDERS_SQS_WAIT_SECONDS": 10,
    # Seconds a received message stays hidden; one not handled comes again after that.
    "AMAZON_ORDERS_SQS_VISIBILITY_TIMEOUT": 60,
    # Admin pages.
    "AMAZON_ORDERS_ADMIN_URL_PREFIX": "/amazon-orders",
    "AMAZON_ORDERS_BASE_TEMPLATE": "amazon_orders/base.html",
    "AMAZON_ORDERS_ADMIN_PAGE_SIZE": 50,
}

#: Amazon's regions and the marketplaces in each (SP-API-NOTES §4.3, §4.4).
MARKETPLACES: dict[str, tuple[str, str, str]] = {
    # marketplace id: (country code, region, name)
    "A2EUQ1WTGCTBG2": ("CA", "na", "Amazon.ca"),
    "ATVPDKIKX0DER": ("US", "na", "Amazon.com"),
    "A1AM78C64UM0Y8": ("MX", "na", "Amazon.com.mx"),
    "A2Q3Y263D00KWC": ("BR", "na", "Amazon.com.br"),
    "A28R8C7NBKEWEA": ("IE", "eu", "Amazon.ie"),
    "A1RKKUPIHCS9HS": ("ES", "eu", "Amazon.es"),
    "A1F83G8C2ARO7P": ("GB", "eu", "Amazon.co.uk"),
    "A13V1IB3VIYZZH": ("FR", "eu", "Amazon.fr"),
    "AMEN7PMS3EDWL": ("BE", "eu", "Amazon.com.be"),
    "A1805IZSGTT6HS": ("NL", "eu", "Amazon.nl"),
    "A1PA6795UKMFR9": ("DE", "eu", "Amazon.de"),
    "APJ6JRA9NG5V4": ("IT", "eu", "Amazon.it"),
    "A2NODRKZP88ZB9": ("SE", "eu", "Amazon.se"),
    "AE08WJ6YKNBMC": ("ZA", "eu", "Amazon.co.za"),
    "A1C3SOZRARQ6R3": ("PL", "eu", "Amazon.pl"),
    "ARBP9OOSHTCHU": ("EG", "eu", "Amazon.eg"),
    "A33AVAJ2PDY3EV": ("TR", "eu", "Amazon.com.tr"),
    "A17E79C6D8DWNP": ("SA", "eu", "Amazon.sa"),
    "A2VIGQ35RCS4UG": ("AE", "eu", "Amazon.ae"),
    "A21TJRUUN4KGV": ("IN", "eu", "Amazon.in"),
    "A19VAU5U5O7RUS": ("SG", "fe", "Amazon.sg"),
    "A39IBJ37TRP1C6": ("AU", "fe", "Amazon.com.au"),
    "A1VC38T7YXB528": ("JP", "fe", "Amazon.co.jp"),
}


def resolve_marketplace(value: str) -> str:
    """Return the marketplace id for an id or a country code (``DE``, ``UK``, ``US`` …)."""
    text = value.strip()
    if text in MARKETPLACES:
        return text
    code = text.upper()
    if code == "UK":
        code = "GB"
    for marketplace_id, (country, _region, _name) in MARKETPLACES.items():
        if country == code:
            return marketplace_id
    raise ConfigurationError(
        f"Unknown Amazon marketplace {value!r}: give a marketplace id such as "
        "A1PA6795UKMFR9 or a country code such as DE."
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated, read-only configuration of one app."""

    lwa_client_id: str | None
    lwa_client_secret: str | None = dataclasses.field(repr=False)
    lwa_url: str
    endpoint: str | None
    encryption_keys: tuple[str, ...] = dataclasses.field(repr=False)
    sync_lookback_days: int
    sync_overlap_seconds: float
    sync_page_size: int
    sync_interval_seconds: float
    sync_max_rate_wait_seconds: float
    fetch_buyer_data: bool
    buyer_data_retention_days: int
    embedded_worker: bool
    http_timeout: tuple[float, float]
    retry_max_attempts: int
    retry_backoff_seconds: float
    retry_backoff_cap_seconds: float
    rate_limit_scale: float
    rate_limit_storage: str | None
    feed_poll_seconds: float
    sqs_queue_url: str | None
    sqs_region: str | None
    sqs_endpoint_url: str | None
    sqs_wait_seconds: float
    sqs_visibility_timeout: int
    admin_url_prefix: str | None
    base_template: str
    admin_page_size: int


def _number(config: Mapping[str, Any], key: str, kind: type, minimum: float) -> Any:
    value = config[key]
    if isinstance(value, bool):
        raise ConfigurationError(f"{key} must be a number, not {value!r}.")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number, not {value!r}.") from None
    if number < minimum:
        raise ConfigurationError(f"{key} must be at least {minimum}, not {value!r}.")
    return number


def _optional_text(config: Mapping[str, Any], key: str) -> str | None:
    value = config[key]
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a string.")
    return value


def _flag(config: Mapping[str, Any], key: str) -> bool:
    value = config[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"{key} must be true or false, not {value!r}.")


def _keys(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config[key]
    if value is None:
        return ()
    if isinstance(value, str):
        # Commas separate keys; a passphrase may contain spaces.
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{key} must be a list of strings or a comma-separated string.")
    return tuple(value)


def _timeout(config: Mapping[str, Any], key: str) -> tuple[float, float]:
    value = config[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = (value, value)
    try:
        connect, read = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{key} must be seconds or a (connect, read) pair of seconds, not {value!r}."
        ) from None
    if connect <= 0 or read <= 0:
        raise ConfigurationError(f"{key} must be positive, not {value!r}.")
    return connect, read


def set_defaults(config: dict[str, Any]) -> None:
    """Declare every default on the app's config and warn about unknown keys."""
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)
    for key in config:
        if key.startswith(PREFIX) and key not in DEFAULTS:
            close = difflib.get_close_matches(key, list(DEFAULTS), n=1, cutoff=0.85)
            hint = f" Did you mean {close[0]}?" if close else ""
            warnings.warn(
                f"Unknown configuration key {key}; Flask-Amazon-Orders ignores it.{hint}",
                UserWarning,
                stacklevel=3,
            )


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate the app's ``AMAZON_ORDERS_*`` keys into a :class:`Settings`."""
    endpoint = _optional_text(config, "AMAZON_ORDERS_ENDPOINT")
    lwa_url = _optional_text(config, "AMAZON_ORDERS_LWA_URL")
    for key, url in (("AMAZON_ORDERS_ENDPOINT", endpoint), ("AMAZON_ORDERS_LWA_URL", lwa_url)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{key} must be an http(s) URL, not {url!r}.")
    if lwa_url is None:
        raise ConfigurationError("AMAZON_ORDERS_LWA_URL must be set.")
    page_size = _number(config, "AMAZON_ORDERS_SYNC_PAGE_SIZE", int, 1)
    if page_size > 100:
        raise ConfigurationError(
            "AMAZON_ORDERS_SYNC_PAGE_SIZE must be at most 100 (Amazon's limit)."
        )
    return Settings(
        lwa_client_id=_optional_text(config, "AMAZON_ORDERS_LWA_CLIENT_ID"),
        lwa_client_secret=_optional_text(config, "AMAZON_ORDERS_LWA_CLIENT_SECRET"),
        lwa_url=lwa_url,
        endpoint=endpoint.rstrip("/") if endpoint else None,
        encryption_keys=_keys(config, "AMAZON_ORDERS_ENCRYPTION_KEYS"),
        sync_lookback_days=_number(config, "AMAZON_ORDERS_SYNC_LOOKBACK_DAYS", int, 0),
        sync_overlap_seconds=_number(config, "AMAZON_ORDERS_SYNC_OVERLAP_SECONDS", float, 0),
        sync_page_size=page_size,
        sync_interval_seconds=_number(config, "AMAZON_ORDERS_SYNC_INTERVAL_SECONDS", float, 1),
        sync_max_rate_wait_seconds=_number(
            config, "AMAZON_ORDERS_SYNC_MAX_RATE_WAIT_SECONDS", float, 0
        ),
        fetch_buyer_data=_flag(config, "AMAZON_ORDERS_FETCH_BUYER_DATA"),
        buyer_data_retention_days=_number(
            config, "AMAZON_ORDERS_BUYER_DATA_RETENTION_DAYS", int, 0
        ),
        embedded_worker=_flag(config, "AMAZON_ORDERS_EMBEDDED_WORKER"),
        http_timeout=_timeout(config, "AMAZON_ORDERS_HTTP_TIMEOUT"),
        retry_max_attempts=_number(config, "AMAZON_ORDERS_RETRY_MAX_ATTEMPTS", int, 1),
        retry_backoff_seconds=_number(config, "AMAZON_ORDERS_RETRY_BACKOFF_SECONDS", float, 0),
        retry_backoff_cap_seconds=_number(
            config, "AMAZON_ORDERS_RETRY_BACKOFF_CAP_SECONDS", float, 0
        ),
        rate_limit_scale=_number(config, "AMAZON_ORDERS_RATE_LIMIT_SCALE", float, 0.000001),
        rate_limit_storage=_storage(config, "AMAZON_ORDERS_RATE_LIMIT_STORAGE"),
        feed_poll_seconds=_number(config, "AMAZON_ORDERS_FEED_POLL_SECONDS", float, 1),
        **_sqs(config),
        admin_url_prefix=_url_prefix(config, "AMAZON_ORDERS_ADMIN_URL_PREFIX"),
        base_template=_optional_text(config, "AMAZON_ORDERS_BASE_TEMPLATE")
        or "amazon_orders/base.html",
        admin_page_size=_page_size(config, "AMAZON_ORDERS_ADMIN_PAGE_SIZE"),
    )


def _sqs(config: Mapping[str, Any]) -> dict[str, Any]:
    queue_url = _optional_text(config, "AMAZON_ORDERS_SQS_QUEUE_URL")
    endpoint_url = _optional_text(config, "AMAZON_ORDERS_SQS_ENDPOINT_URL")
    region = _optional_text(config, "AMAZON_ORDERS_SQS_REGION")
    for key, url in (
        ("AMAZON_ORDERS_SQS_QUEUE_URL", queue_url),
        ("AMAZON_ORDERS_SQS_ENDPOINT_URL", endpoint_url),
    ):
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{key} must be an http(s) URL, not {url!r}.")
    if queue_url is not None and region is None:
        from .client.sqs import region_of

        if region_of(queue_url) is None:
            raise ConfigurationError(
                "AMAZON_ORDERS_SQS_REGION must be set: the queue URL "
                f"{queue_url!r} names no AWS region."
            )
    wait = _number(config, "AMAZON_ORDERS_SQS_WAIT_SECONDS", float, 0)
    if wait > 20:
        raise ConfigurationError(
            f"AMAZON_ORDERS_SQS_WAIT_SECONDS must be at most 20 (SQS's limit), not {wait!r}."
        )
    visibility = _number(config, "AMAZON_ORDERS_SQS_VISIBILITY_TIMEOUT", int, 0)
    if visibility > 43200:
        raise ConfigurationError(
            "AMAZON_ORDERS_SQS_VISIBILITY_TIMEOUT must be at most 43200 (12 hours, SQS's "
            f"limit), not {visibility!r}."
        )
    return {
        "sqs_queue_url": queue_url,
        "sqs_region": region,
        "sqs_endpoint_url": endpoint_url,
        "sqs_wait_seconds": wait,
        "sqs_visibility_timeout": visibility,
    }


def _storage(config: Mapping[str, Any], key: str) -> str | None:
    value = _optional_text(config, key)
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            f"{key} must be None (buckets in this process) or a redis:// URL, not {value!r}."
        )
    return value


def _url_prefix(config: Mapping[str, Any], key: str) -> str | None:
    value = config[key]
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigurationError(
            f"{key} must be a URL path starting with '/', or None to leave the admin "
            f"pages out, not {value!r}."
        )
    return value.rstrip("/") or "/"


def _page_size(config: Mapping[str, Any], key: str) -> int:
    size: int = _number(config, key, int, 1)
    if size > 500:
        raise ConfigurationError(f"{key} must be at most 500, not {size!r}.")
    return size
