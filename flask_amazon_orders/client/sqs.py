"""A thin wrapper of one Amazon SQS queue: receive, delete, make visible again (no Flask).

Amazon delivers ``ORDER_CHANGE`` notifications to an SQS queue of the
application; :mod:`flask_amazon_orders.jobs.notifications` reads them through
:class:`SQSQueue`. It needs ``boto3`` (``pip install flask-amazon-orders[sqs]``),
imported only when a queue is used. AWS credentials come from boto3's usual
places (environment, shared files, an instance role); they are never part of a
message, a repr or a log line here.

Every failure of the queue service (an error answer, no connection, missing
credentials) raises :class:`~flask_amazon_orders.errors.QueueError`.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from typing import Any

from ..errors import ConfigurationError, QueueError

#: ``https://sqs.<region>.amazonaws.com/<account>/<name>`` (and the legacy
#: ``<region>.queue.amazonaws.com`` host).
_REGION_IN_URL = re.compile(
    r"^https://(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com/"
)

#: SQS's limits of one ``ReceiveMessage`` call.
MAX_MESSAGES = 10
MAX_WAIT_SECONDS = 20


@dataclasses.dataclass(frozen=True)
class Message:
    """One received SQS message."""

    message_id: str
    #: What :meth:`SQSQueue.delete` needs; new with every receipt.
    receipt_handle: str = dataclasses.field(repr=False)
    body: str = dataclasses.field(repr=False)
    #: How often the queue has handed the message out, this time included.
    receive_count: int


def region_of(queue_url: str) -> str | None:
    """The AWS region in an SQS queue URL, if it names one."""
    match = _REGION_IN_URL.match(queue_url)
    return match.group(1) if match else None


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "Reading notifications from SQS needs boto3: pip install flask-amazon-orders[sqs]"
        ) from None
    return boto3


class SQSQueue:
    """One SQS queue.

    :param queue_url: the queue's URL.
    :param region: the AWS region; default: the one in ``queue_url``.
    :param endpoint_url: another SQS endpoint (a local SQS-compatible server in tests).
    :param timeout: seconds to connect and to read, besides a receive's long-poll wait.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        region = region or region_of(queue_url)
        if region is None:
            raise ConfigurationError(
                f"Cannot tell the AWS region of the SQS queue {queue_url!r}; "
                "set AMAZON_ORDERS_SQS_REGION."
            )
        self.queue_url = queue_url
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SQSQueue {self.queue_url}>"

    def _sqs(self) -> Any:
        with self._lock:
            if self._client is None:
                boto3 = _boto3()
                from botocore.config import Config

                self._client = boto3.session.Session().client(
                    "sqs",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        connect_timeout=self.timeout,
                        # A long poll holds the answer back for up to 20 s.
                        read_timeout=self.timeout + MAX_WAIT_SECONDS,
                        retries={"max_attempts": 3, "mode": "standard"},
                    ),
                )
            return self._client

    def _call(self, operation: str, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._sqs(), operation)(QueueUrl=self.queue_url, **arguments)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code")
            raise QueueError(
                f"SQS {operation} on {self.queue_url} failed: {code}: {error.get('Message', '')}",
                code=code,
            ) from None
        except BotoCoreError as exc:
            raise QueueError(f"SQS {operation} on {self.queue_url} failed: {exc}") from None

    def receive(
        self, *, max_messages: int = MAX_MESSAGES, wait_seconds: float = 0, visibility_timeout: int
    ) -> list[Message]:
        """Up to ``max_messages`` messages, waiting up to ``wait_seconds`` for the first
        (long polling); each stays hidden from other receivers for ``visibility_timeout``
        seconds, and comes again after that unless deleted."""
        answer = self._call(
            "receive_message",
            MaxNumberOfMessages=max(1, min(MAX_MESSAGES, max_messages)),
            WaitTimeSeconds=int(max(0, min(MAX_WAIT_SECONDS, wait_seconds))),
            VisibilityTimeout=visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = []
        for raw in answer.get("Messages", []):
            attributes = raw.get("Attributes") or {}
            messages.append(
                Message(
                    message_id=raw["MessageId"],
                    receipt_handle=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
                )
            )
        return messages

    def delete(self, message: Message) -> None:
        """Remove a handled message from the queue."""
        self._call("delete_message", ReceiptHandle=message.receipt_handle)

    def delete_batch(self, messages: list[Message]) -> dict[str, str]:
        """Remove handled messages, ten to a call; returns the ones that could not
        be removed (message id -> the queue's reason); those come again."""
        failed: dict[str, str] = {}
        for start in range(0, len(messages), MAX_MESSAGES):
            chunk = messages[start : start + MAX_MESSAGES]
            answer = self._call(
                "delete_message_batch",
                Entries=[
                    {"Id": str(n), "ReceiptHandle": message.receipt_handle}
                    for n, message in enumerate(chunk)
                ],
            )
            for entry in answer.get("Failed", []):
                message = chunk[int(entry["Id"])]
                failed[message.message_id] = f"{entry.get('Code')}: {entry.get('Message', '')}"
        return failed

    def close(self) -> None:
        """Close the connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
