"""Published facts about the SP-API: rate limits per operation and regional endpoints.

The numbers come from the usage plans in Amazon's models (``shared/reference/``,
SP-API-NOTES §1.7, §2 and §1.6). They seed the client-side rate limiter; a rate
that Amazon announces in an ``x-amzn-RateLimit-Limit`` response header replaces
the published one for that seller and operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: SP-API operation -> (rate in requests per second, burst).
PUBLISHED_LIMITS: Final[Mapping[str, tuple[float, int]]] = MappingProxyType(
    {
        # Orders API v2026-01-01.
        "searchOrders": (0.0056, 20),
        "getOrder": (0.5, 30),
        # Feeds API 2021-06-30.
        "createFeedDocument": (0.5, 15),
        "createFeed": (0.0083, 15),
        "getFeed": (2.0, 15),
        "getFeeds": (0.0222, 10),
        "cancelFeed": (2.0, 15),
        "getFeedDocument": (0.0222, 10),
        # Orders API v0 (not deprecated for writes).
        "confirmShipment": (2.0, 10),
    }
)

#: Region code -> production SP-API base URL (SP-API-NOTES §4.3).
ENDPOINTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "na": "https://sellingpartnerapi-na.amazon.com",
        "eu": "https://sellingpartnerapi-eu.amazon.com",
        "fe": "https://sellingpartnerapi-fe.amazon.com",
    }
)
