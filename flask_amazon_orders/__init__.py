"""Flask-Amazon-Orders: Amazon Seller Central orders in a Flask shop.

::

    from flask_amazon_orders import AmazonOrders

    amazon_orders = AmazonOrders(app, db=db)
"""

from __future__ import annotations

from . import signals
from .errors import (
    AccessDeniedError,
    AmazonOrdersError,
    ConfigurationError,
    InvalidInputError,
    LWAError,
    MalformedResponseError,
    MissingCredentialsError,
    NotFoundError,
    QuotaExceededError,
    RefreshTokenRevokedError,
    ServerError,
    SPAPIError,
    TransportError,
)
from .extension import AmazonOrders, get_extension

__all__ = [
    "AccessDeniedError",
    "AmazonOrders",
    "AmazonOrdersError",
    "ConfigurationError",
    "InvalidInputError",
    "LWAError",
    "MalformedResponseError",
    "MissingCredentialsError",
    "NotFoundError",
    "QuotaExceededError",
    "RefreshTokenRevokedError",
    "SPAPIError",
    "ServerError",
    "TransportError",
    "get_extension",
    "signals",
]
