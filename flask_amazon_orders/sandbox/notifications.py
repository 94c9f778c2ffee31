"""Notifications: destinations, ``ORDER_CHANGE`` subscriptions, and sending the notifications.

The state keeps one :class:`NotificationCenter`. It holds what the Notifications
API created (SQS destinations, one ``ORDER_CHANGE`` subscription per seller) and,
for every subscribed seller, the status each order was last notified with. When
such a seller's order is created, changes status, or gets a buyer's cancellation
request (through the control API, a feed, a shipment confirmation, ``/advance``
…), the state calls :meth:`NotificationCenter.order_created` or
:meth:`NotificationCenter.order_changed` under its lock, which puts a notification
that validates against Amazon's ``OrderChangeNotification.json`` into an outbox.
:meth:`NotificationCenter.flush` sends the outbox to the destination queues,
outside the lock; the sandbox app does that at the end of every request, so the
notifications of a change are in the queue when the call that made it returns.
A white-box test that changes the state directly calls ``state.notifications.flush()``.

Sending uses ``boto3`` against the sandbox's ``sqs_endpoint_url`` (a local
SQS-compatible server), imported only when a destination is created; without an
endpoint the sandbox never talks to AWS. AWS credentials come from boto3's usual
places, and a dummy pair is used when there are none (a local server takes any).

Every notification is recorded (``GET /_sandbox/notifications``) with its body and
whether it was ``delivered``, ``failed`` (the error) or ``dropped`` by a fault.
The faults of operation ``notification`` act on them: ``drop`` loses the next
notification, ``duplicate`` delivers it twice (as SQS may).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .orders import AMAZON, Order
from .util import iso_ms, iso_ms_always, now_ms

if TYPE_CHECKING:
    from .state import SandboxState

log = logging.getLogger("flask_amazon_orders.sandbox.notifications")

ORDER_CHANGE = "ORDER_CHANGE"
PAYLOAD_VERSION = "1.0"
ORDER_CHANGE_TYPES = ("BuyerRequestedChange", "DeliveryTipChange", "OrderStatusChange")
AGGREGATION_PERIODS = ("FiveMinutes", "TenMinutes")
#: The scope of the grantless operations.
SCOPE = "sellingpartnerapi::notifications"

#: Orders v2026-01-01 ``fulfillmentStatus`` -> the notification's ``OrderStatus``.
ORDER_STATUS = {
    "PENDING_AVAILABILITY": "PendingAvailability",
    "PENDING": "Pending",
    "UNSHIPPED": "Unshipped",
    "PARTIALLY_SHIPPED": "PartiallyShipped",
    "SHIPPED": "Shipped",
    "CANCELLED": "Canceled",
    "UNFULFILLABLE": "Unfulfillable",
}
_ADDRESS_SHARED = frozenset({"UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED"})


class NotificationSpecError(ValueError):
    """A Notifications API request is invalid (HTTP 400)."""


class Conflict(ValueError):
    """The resource exists already (HTTP 409)."""


@dataclass
class Destination:
    """An SQS queue notifications are sent to."""

    destination_id: str
    name: str
    arn: str
    #: The queue's URL at the sandbox's SQS endpoint.
    queue_url: str
    region: str

    def to_dict(self) -> dict[str, Any]:
        """The Notifications API ``Destination``."""
        return {
            "name": self.name,
            "destinationId": self.destination_id,
            "resource": {"sqs": {"arn": self.arn}},
        }


@dataclass
class Subscription:
    """A seller's ``ORDER_CHANGE`` subscription."""

    subscription_id: str
    seller_id: str
    destination_id: str
    processing_directive: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Notifications API ``Subscription``."""
        body: dict[str, Any] = {
            "subscriptionId": self.subscription_id,
            "payloadVersion": PAYLOAD_VERSION,
            "destinationId": self.destination_id,
        }
        if self.processing_directive is not None:
            body["processingDirective"] = self.processing_directive
        return body

    def wants(self, marketplace_id: str, change_type: str) -> bool:
        """Whether the subscription's event filter lets this change through."""
        event_filter = (self.processing_directive or {}).get("eventFilter") or {}
        marketplaces = event_filter.get("marketplaceIds")
        if marketplaces and marketplace_id not in marketplaces:
            return False
        change_types = event_filter.get("orderChangeTypes")
        return not change_types or change_type in change_types


@dataclass
class Sent:
    """One notification: its body, where it went, and what became of it."""

    notification_id: str
    seller_id: str
    order_id: str
    change_type: str
    order_status: str
    destination_id: str
    body: dict[str, Any]
    created: int
    #: ``pending``, ``delivered``, ``failed`` or ``dropped``.
    status: str = "pending"
    copies: int = 1
    error: str | None = None
    message_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The record the control API lists."""
        return {
            "notificationId": self.notification_id,
            "sellerId": self.seller_id,
            "orderId": self.order_id,
            "changeType": self.change_type,
            "orderStatus": self.order_status,
            "destinationId": self.destination_id,
            "createdTime": iso_ms_always(self.created),
            "status": self.status,
            "copies": self.copies,
            "error": self.error,
            "messageIds": list(self.message_ids),
            "body": self.body,
        }


def parse_sqs_arn(arn: Any) -> tuple[str, str, str]:
    """``(region, account, queue name)`` of an SQS ARN. :raises NotificationSpecError:"""
    parts = arn.split(":") if isinstance(arn, str) else []
    if (
        len(parts) != 6
        or parts[:3] != ["arn", "aws", "sqs"]
        or not all(part and not part.isspace() for part in parts[3:])
        or len(arn) > 1000
    ):
        raise NotificationSpecError(
            "resourceSpecification.sqs.arn must be an SQS queue ARN "
            "(arn:aws:sqs:<region>:<account>:<queue name>)."
        )
    return parts[3], parts[4], parts[5]


def _summary(order: Order) -> dict[str, Any]:
    """The notification's ``Summary`` of ``order``."""
    merchant = order.fulfilled_by != AMAZON
    summary: dict[str, Any] = {
        "MarketplaceId": order.marketplace.marketplace_id,
        "OrderStatus": ORDER_STATUS[order.status],
        "PurchaseDate": iso_ms(order.created),
        "DestinationPostalCode": order.address.get("postalCode")
        if order.status in _ADDRESS_SHARED
        else None,
        "FulfillmentType": "MFN" if merchant else "AFN",
        "OrderType": "StandardOrder",
        "NumberOfItemsShipped": sum(item.quantity_shipped for item in order.items),
        "NumberOfItemsUnshipped": sum(item.quantity_open for item in order.items),
    }
    fulfillment = order._fulfillment_dict()
    summary["EarliestShipDate"] = fulfillment["shipByWindow"]["earliestDateTime"]
    summary["LatestShipDate"] = fulfillment["shipByWindow"]["latestDateTime"]
    if merchant:
        summary["EarliestDeliveryDate"] = fulfillment["deliverByWindow"]["earliestDateTime"]
        if order.status not in ("PENDING_AVAILABILITY", "PENDING", "CANCELLED"):
            summary["LatestDeliveryDate"] = fulfillment["deliverByWindow"]["latestDateTime"]
    programs = (["Prime"] if order.is_prime else []) + (["Business"] if order.is_business else [])
    if programs:
        summary["OrderPrograms"] = programs
    summary["OrderItems"] = [
        {
            "OrderItemId": item.order_item_id,
            "SellerSKU": item.sku,
            "SupplySourceId": None,
            "OrderItemStatus": "Shipped"
            if item.quantity_shipped and not item.quantity_open
            else "Unshipped",
            "Quantity": item.quantity,
            "QuantityShipped": item.quantity_shipped,
            "IsBuyerRequestedCancel": item.cancel_request_reason is not None,
        }
        for item in order.items
    ]
    return summary


def _cancel_requested(order: Order) -> bool:
    return any(item.cancel_request_reason is not None for item in order.items)


class NotificationCenter:
    """Destinations, subscriptions and the notifications of one sandbox.

    Its methods other than :meth:`flush` and :meth:`resolve_queue` run under the
    state's lock.
    """

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.application_id = "amzn1.sellerapps.app." + str(
            uuid.uuid5(uuid.NAMESPACE_URL, "sandbox:" + state.config.client_id)
        )
        self.destinations: dict[str, Destination] = {}
        #: seller id -> its ORDER_CHANGE subscription.
        self.subscriptions: dict[str, Subscription] = {}
        #: order id -> (status, buyer asked to cancel) last notified (subscribed sellers).
        self._seen: dict[str, tuple[str, bool]] = {}
        self.sent: list[Sent] = []
        self._outbox: list[Sent] = []
        self._clients: dict[str, Any] = {}
        self._send_lock = threading.Lock()

    # -- destinations ----------------------------------------------------------------------

    def resolve_queue(self, arn: Any) -> tuple[str, str]:
        """The URL and region of the queue ``arn`` at the SQS endpoint (outside the lock).

        :raises NotificationSpecError: without an endpoint, without boto3, or for a
            queue the endpoint does not know.
        """
        region, account, name = parse_sqs_arn(arn)
        if self.state.config.sqs_endpoint_url is None:
            raise NotificationSpecError(
                "This sandbox has no SQS endpoint to deliver to: start it with "
                "sqs_endpoint_url (a local SQS-compatible server)."
            )
        client = self._client(region)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
        except (BotoCoreError, ClientError) as exc:
            raise NotificationSpecError(f"The SQS queue {arn} cannot be reached: {exc}") from None
        return str(answer["QueueUrl"]), region

    def create_destination(self, name: str, arn: str, queue_url: str, region: str) -> Destination:
        """Register a destination (its queue resolved). :raises Conflict:"""
        if any(d.arn == arn for d in self.destinations.values()):
            raise Conflict(f"A destination for {arn} exists already.")
        destination = Destination(str(uuid.uuid4()), name, arn, queue_url, region)
        self.destinations[destination.destination_id] = destination
        return destination

    def delete_destination(self, destination_id: str) -> None:
        """Remove a destination. :raises KeyError: :raises Conflict:"""
        if destination_id not in self.destinations:
            raise KeyError(destination_id)
        if any(s.destination_id == destination_id for s in self.subscriptions.values()):
            raise Conflict("The destination has subscriptions; delete them first.")
        del self.destinations[destination_id]

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self, seller_id: str, destination_id: str, directive: dict[str, Any] | None
    ) -> Subscription:
        """Subscribe a seller to ``ORDER_CHANGE``.

        :raises NotificationSpecError: for an unknown destination.
        :raises Conflict: when the seller has a subscription already.
        """
        if destination_id not in self.destinations:
            raise NotificationSpecError(f"No destination {destination_id!r}.")
        if seller_id in self.subscriptions:
            raise Conflict(
                f"The seller has an {ORDER_CHANGE} subscription already "
                f"({self.subscriptions[seller_id].subscription_id})."
            )
        subscription = Subscription(str(uuid.uuid4()), seller_id, destination_id, directive)
        self.subscriptions[seller_id] = subscription
        for order in self.state.orders.values():
            if order.seller_id == seller_id:
                self._seen[order.order_id] = (order.status, _cancel_requested(order))
        return subscription

    def subscription_by_id(self, subscription_id: str) -> Subscription | None:
        """The subscription ``subscription_id``, if any."""
        return next(
            (s for s in self.subscriptions.values() if s.subscription_id == subscription_id), None
        )

    def unsubscribe(self, subscription: Subscription) -> None:
        """End a subscription."""
        del self.subscriptions[subscription.seller_id]
        for order in self.state.orders.values():
            if order.seller_id == subscription.seller_id:
                self._seen.pop(order.order_id, None)

    # -- changes ---------------------------------------------------------------------------

    def order_created(self, order: Order) -> None:
        """A new order: notify its subscribed seller."""
        if order.seller_id in self.subscriptions:
            self._seen[order.order_id] = (order.status, _cancel_requested(order))
            self._notify(order, "OrderStatusChange", "Order created")

    def order_changed(self, order: Order) -> None:
        """``order`` changed: notify a new status or a new cancellation request."""
        if order.seller_id not in self.subscriptions:
            return
        now = (order.status, _cancel_requested(order))
        before = self._seen.get(order.order_id)
        self._seen[order.order_id] = now
        if before is None or before[0] != now[0]:
            self._notify(order, "OrderStatusChange", "Order status changed")
        elif now[1] and not before[1]:
            self._notify(order, "BuyerRequestedChange", "Buyer Requested Cancel")

    def _notify(self, order: Order, change_type: str, reason: str) -> None:
        subscription = self.subscriptions[order.seller_id]
        if not subscription.wants(order.marketplace.marketplace_id, change_type):
            return
        now = now_ms()
        notification_id = str(uuid.uuid4())
        summary = _summary(order)
        body: dict[str, Any] = {
            "NotificationVersion": "1.0",
            "NotificationType": ORDER_CHANGE,
            "PayloadVersion": PAYLOAD_VERSION,
            "EventTime": iso_ms_always(now),
            "Payload": {
                "OrderChangeNotification": {
                    "NotificationLevel": "OrderLevel",
                    "SellerId": order.seller_id,
                    "AmazonOrderId": order.order_id,
                    "OrderChangeType": change_type,
                    "OrderChangeTrigger": {
                        "TimeOfOrderChange": iso_ms_always(order.last_updated),
                        "ChangeReason": reason,
                    },
                    "Summary": summary,
                }
            },
            "NotificationMetadata": {
                "ApplicationId": self.application_id,
                "SubscriptionId": subscription.subscription_id,
                "PublishTime": iso_ms_always(now),
                "NotificationId": notification_id,
            },
        }
        sent = Sent(
            notification_id=notification_id,
            seller_id=order.seller_id,
            order_id=order.order_id,
            change_type=change_type,
            order_status=summary["OrderStatus"],
            destination_id=subscription.destination_id,
            body=body,
            created=now,
        )
        fault = self.state.faults.take("notification")
        if fault is not None and fault.kind == "drop":
            sent.status = "dropped"
        else:
            if fault is not None:  # duplicate
                sent.copies = 2
            self._outbox.append(sent)
        self.sent.append(sent)

    # -- sending ---------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Whether notifications wait to be sent (a cheap check without the lock)."""
        return bool(self._outbox)

    def _client(self, region: str) -> Any:
        client = self._clients.get(region)
        if client is None:
            try:
                import boto3
            except ImportError:
                raise NotificationSpecError(
                    "Sending notifications to SQS needs boto3 (pip install boto3)."
                ) from None
            session = boto3.session.Session()
            credentials: dict[str, str] = {}
            if session.get_credentials() is None:  # a local server takes any
                credentials = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
            from botocore.config import Config

            client = session.client(
                "sqs",
                region_name=region,
                endpoint_url=self.state.config.sqs_endpoint_url,
                # A local server answers at once; one that is down must not hold
                # the sandbox's answers for long.
                config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2}),
                **credentials,
            )
            self._clients[region] = client
        return client

    def flush(self) -> int:
        """Send the waiting notifications (outside the state's lock); how many were sent."""
        with self.state.lock:
            outbox, self._outbox = self._outbox, []
            targets = [self.destinations.get(sent.destination_id) for sent in outbox]
        if not outbox:
            return 0
        sent_count = 0
        with self._send_lock:
            for sent, destination in zip(outbox, targets, strict=True):
                if destination is None:
                    self._record(sent, "failed", "the destination was deleted", [])
                    continue
                text = _dumps(sent.body)
                ids: list[str] = []
                try:
                    client = self._client(destination.region)
                    for _ in range(sent.copies):
                        answer = client.send_message(
                            QueueUrl=destination.queue_url, MessageBody=text
                        )
                        ids.append(str(answer.get("MessageId", "")))
                except Exception as exc:  # recorded, never raised into a request
                    log.warning("sandbox: notification %s not sent: %s", sent.notification_id, exc)
                    self._record(sent, "failed", f"{type(exc).__name__}: {exc}", ids)
                    continue
                self._record(sent, "delivered", None, ids)
                sent_count += 1
        return sent_count

    def _record(self, sent: Sent, status: str, error: str | None, ids: list[str]) -> None:
        with self.state.lock:
            sent.status = status
            sent.error = error
            sent.message_ids = ids

    def listing(self, seller_id: str | None, order_id: str | None) -> list[dict[str, Any]]:
        """The notifications made, oldest first (filtered by seller or order)."""
        return [
            sent.to_dict()
            for sent in self.sent
            if seller_id in (None, sent.seller_id) and order_id in (None, sent.order_id)
        ]


def _dumps(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))
