"""Flask-Amazon-Orders: Amazon Seller Central orders in a Flask shop."""

from __future__ import annotations

from .errors import AmazonOrdersError

__all__ = ["AmazonOrdersError"]
