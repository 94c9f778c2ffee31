"""A thin, ``requests``-based client of Amazon's Selling Partner API (no Flask).

It knows the endpoints, Login with Amazon tokens, pagination, the mapping of
responses to :mod:`flask_amazon_orders.errors`, retries with backoff and jitter,
and a token-bucket rate limiter per (seller, operation)::

    from flask_amazon_orders.client import LWACredentials, SPAPIClient

    client = SPAPIClient(
        credentials=LWACredentials(client_id, client_secret, refresh_token),
        endpoint="https://sellingpartnerapi-eu.amazon.com",
        seller_key="A1SELLERID",
    )
    for page in client.iter_search_orders(last_updated_after=since, marketplace_ids=["DE_ID"]):
        ...
"""

from __future__ import annotations

from .http import OperationStats, SPAPIClient, default_user_agent, format_datetime
from .limits import ENDPOINTS, PUBLISHED_LIMITS
from .lwa import LWA_TOKEN_URL, LWACredentials, TokenCache
from .ratelimit import InMemoryRateLimiter, RateLimiter
from .retry import RetryPolicy

__all__ = [
    "ENDPOINTS",
    "LWA_TOKEN_URL",
    "PUBLISHED_LIMITS",
    "InMemoryRateLimiter",
    "LWACredentials",
    "OperationStats",
    "RateLimiter",
    "RetryPolicy",
    "SPAPIClient",
    "TokenCache",
    "default_user_agent",
    "format_datetime",
]
