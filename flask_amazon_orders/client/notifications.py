"""Read Amazon's ``ORDER_CHANGE`` notifications into plain records (no Flask).

Amazon sends an ``ORDER_CHANGE`` notification to the application's SQS queue
when a subscribed seller's order is placed, changes status, or its buyer asks to
cancel it (SP-API-NOTES §5). The SQS message body is the notification itself,
JSON as described by Amazon's schema ``OrderChangeNotification.json`` (bundled
with the sandbox's models). :func:`parse_order_change` reads one body into an
:class:`OrderChange`.

What the reader checks: everything the schema requires of the parts it reads —
the envelope (``NotificationVersion``, ``NotificationType`` equal to
``ORDER_CHANGE``, ``PayloadVersion``, ``EventTime``, ``Payload``,
``NotificationMetadata`` with its four fields), the order's ``NotificationLevel``,
``SellerId``, ``AmazonOrderId``, ``OrderChangeType``, ``OrderChangeTrigger``,
and the ``Summary``'s ``MarketplaceId`` and ``OrderStatus`` — with their JSON
types, and that every time is an ISO 8601 date-time. Anything else raises
:class:`~flask_amazon_orders.errors.NotificationError` naming the field.

What it tolerates: a value of an enumeration that the schema does not list yet
(a new ``OrderChangeType`` or ``OrderStatus``) is kept as text, and the other
parts of the ``Summary`` (items, dates, programs) are not read at all. A
notification only says *which* order changed; the order itself is read again
with ``getOrder``, so refusing a notification for a field this package does not
use would only delay the change until the next sync.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from ..errors import NotificationError

#: The only notification type this reader accepts.
ORDER_CHANGE = "ORDER_CHANGE"

#: The values the schema lists (for reference; other values are kept as they come).
ORDER_CHANGE_TYPES = ("BuyerRequestedChange", "DeliveryTipChange", "OrderStatusChange")
NOTIFICATION_LEVELS = ("OrderItemLevel", "OrderLevel")


@dataclasses.dataclass(frozen=True)
class OrderChange:
    """One ``ORDER_CHANGE`` notification: which order of which seller changed, and how."""

    #: ``NotificationMetadata.NotificationId``: the same for every delivery of it.
    notification_id: str
    seller_id: str
    marketplace_id: str
    amazon_order_id: str
    #: ``OrderChangeType``: ``OrderStatusChange``, ``BuyerRequestedChange`` …
    change_type: str
    #: ``OrderChangeTrigger.ChangeReason``, e.g. ``Buyer Requested Cancel``.
    change_reason: str
    #: ``Summary.OrderStatus`` in Seller Central's names (``Unshipped``, ``Canceled`` …).
    order_status: str
    #: ``OrderLevel`` or ``OrderItemLevel``.
    notification_level: str
    #: ``EventTime``: when Amazon created the notification.
    event_time: dt.datetime
    #: ``OrderChangeTrigger.TimeOfOrderChange``, when Amazon gives it.
    changed_at: dt.datetime | None
    #: ``NotificationMetadata.PublishTime``.
    published_at: dt.datetime
    subscription_id: str
    application_id: str
    payload_version: str


class _Reader:
    """Reads one notification, naming the field (by its path) in every error."""

    def __init__(self) -> None:
        self.notification_id: str | None = None

    def fail(self, what: str) -> NotificationError:
        return NotificationError(what, notification_id=self.notification_id)

    def obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = parent.get(key)
        if value is None:
            raise self.fail(f"missing {path}")
        if not isinstance(value, dict):
            raise self.fail(f"{path} is not an object")
        return value

    def text(
        self, parent: Mapping[str, Any], key: str, path: str, *, nullable: bool = False
    ) -> Any:
        if key not in parent:
            raise self.fail(f"missing {path}")
        value = parent[key]
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{path} is not a string")
        return value

    def ident(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value: str = self.text(parent, key, path)
        if not value.strip():
            raise self.fail(f"{path} is empty")
        return value

    def time(
        self, parent: Mapping[str, Any], key: str, path: str, *, nullable: bool = False
    ) -> dt.datetime | None:
        value = self.text(parent, key, path, nullable=nullable)
        if value is None:
            return None
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(f"{path} is not an ISO 8601 date-time: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)


def _decode(body: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NotificationError("the message body is not UTF-8 text") from None
    if not isinstance(body, str):
        raise NotificationError(f"the message body is a {type(body).__name__}, not text")
    try:
        data = json.loads(body)
    except ValueError:
        raise NotificationError("the message body is not JSON") from None
    if not isinstance(data, dict):
        raise NotificationError("the message body is not a JSON object")
    return data


def parse_order_change(body: str | bytes | Mapping[str, Any]) -> OrderChange:
    """Parse one ``ORDER_CHANGE`` notification (an SQS message body, or its parsed JSON).

    :raises NotificationError: when the body is not JSON, not an ``ORDER_CHANGE``
        notification, or lacks a field this package needs (see the module's docs).
    """
    data = _decode(body)
    reader = _Reader()
    # The id first, so that every later error names the notification.
    metadata = reader.obj(data, "NotificationMetadata", "NotificationMetadata")
    reader.notification_id = reader.ident(
        metadata, "NotificationId", "NotificationMetadata.NotificationId"
    )
    notification_type = reader.text(data, "NotificationType", "NotificationType")
    if notification_type != ORDER_CHANGE:
        raise reader.fail(
            f"NotificationType is {notification_type[:60]!r}, not {ORDER_CHANGE!r}; "
            "this queue should receive ORDER_CHANGE notifications only"
        )
    reader.text(data, "NotificationVersion", "NotificationVersion")
    payload_version: str = reader.text(data, "PayloadVersion", "PayloadVersion")
    event_time = reader.time(data, "EventTime", "EventTime")
    payload = reader.obj(data, "Payload", "Payload")
    change = reader.obj(payload, "OrderChangeNotification", "Payload.OrderChangeNotification")
    path = "Payload.OrderChangeNotification"
    trigger = reader.obj(change, "OrderChangeTrigger", f"{path}.OrderChangeTrigger")
    summary = reader.obj(change, "Summary", f"{path}.Summary")
    assert event_time is not None
    published_at = reader.time(metadata, "PublishTime", "NotificationMetadata.PublishTime")
    assert published_at is not None
    return OrderChange(
        notification_id=reader.notification_id,
        seller_id=reader.ident(change, "SellerId", f"{path}.SellerId"),
        marketplace_id=reader.ident(summary, "MarketplaceId", f"{path}.Summary.MarketplaceId"),
        amazon_order_id=reader.ident(change, "AmazonOrderId", f"{path}.AmazonOrderId"),
        change_type=reader.ident(change, "OrderChangeType", f"{path}.OrderChangeType"),
        change_reason=reader.text(
            trigger, "ChangeReason", f"{path}.OrderChangeTrigger.ChangeReason"
        ),
        order_status=reader.ident(summary, "OrderStatus", f"{path}.Summary.OrderStatus"),
        notification_level=reader.ident(change, "NotificationLevel", f"{path}.NotificationLevel"),
        event_time=event_time,
        changed_at=reader.time(
            trigger,
            "TimeOfOrderChange",
            f"{path}.OrderChangeTrigger.TimeOfOrderChange",
            nullable=True,
        ),
        published_at=published_at,
        subscription_id=reader.ident(
            metadata, "SubscriptionId", "NotificationMetadata.SubscriptionId"
        ),
        application_id=reader.ident(
            metadata, "ApplicationId", "NotificationMetadata.ApplicationId"
        ),
        payload_version=payload_version,
    )
