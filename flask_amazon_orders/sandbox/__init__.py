"""A realistic fake of Amazon's SP-API side, served over real HTTP.

The sandbox speaks Login with Amazon (``POST /auth/o2/token``), Orders API
v2026-01-01 (searchOrders, getOrder), Orders API v0 confirmShipment and Feeds API
2021-06-30 with presigned upload/download URLs and processing reports; order
acknowledgements cancel orders and payment adjustments refund and cancel units.
With ``sqs_endpoint_url`` (a local SQS-compatible server), its Notifications API
takes SQS destinations and ``ORDER_CHANGE`` subscriptions, and it sends a
notification to the seller's queue whenever a subscribed seller's order is
created, changes status or gets a cancellation request (see :mod:`.notifications_api`
and :mod:`.notifications`).
It enforces the published rate limits, paginates like Amazon, moves orders
through their lifecycle and has a JSON control API under ``/_sandbox/`` to seed
orders, inject faults and inspect what it received (feeds, shipment
confirmations, adjustments). Its responses validate against the official models
bundled in ``models/``.

Use it in tests::

    from flask_amazon_orders.sandbox import SandboxServer

    with SandboxServer(time_scale=100) as sandbox:
        seller = sandbox.control.create_seller()
        sandbox.control.generate_orders(seller["seller_id"], 250)
        ...  # point the client at sandbox.url

or run it: ``python -m flask_amazon_orders.sandbox --port 8765 --generate 100``.
"""

from __future__ import annotations

from .app import create_app
from .control_client import SandboxControl, SandboxControlError
from .feeds import (
    DEFAULT_FEED_PROCESSOR,
    FEED_PROCESSORS,
    FeedProcessingFatal,
    ProcessingResult,
    processing_report,
    xml_feed_processor,
)
from .server import SandboxServer

__all__ = [
    "DEFAULT_FEED_PROCESSOR",
    "FEED_PROCESSORS",
    "FeedProcessingFatal",
    "ProcessingResult",
    "SandboxControl",
    "SandboxControlError",
    "SandboxServer",
    "create_app",
    "processing_report",
    "xml_feed_processor",
]
