"""The exception hierarchy of the whole package.

Every exception raised on purpose by Flask-Amazon-Orders derives from
:class:`AmazonOrdersError`, so a host can catch everything of ours with one
``except``. This module imports nothing from Flask: the SP-API client uses it too.

Errors that come from Amazon carry what Amazon said: the HTTP status, Amazon's
error code, its message and the ``x-amzn-RequestId`` of the response, which is
what Amazon's support asks for. No secret (client secret, refresh token, access
token) is ever put into an exception message.
"""

from __future__ import annotations

import re

#: What no database text column takes (a log line neither): NUL and unpaired surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str | None) -> str | None:
    """``text`` with NUL and unpaired surrogates replaced, so that it can be stored."""
    if text is None or not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub("\ufffd", text)


class AmazonOrdersError(Exception):
    """Root of every error raised by Flask-Amazon-Orders."""


class ConfigurationError(AmazonOrdersError):
    """A configuration value is missing or invalid. The message names the key."""


class MissingCredentialsError(ConfigurationError):
    """An Amazon call was attempted without the credentials it needs."""


class NotUnshippedError(AmazonOrdersError):
    """An operation needs an order in ``Unshipped`` state and it is not."""


class SPAPIError(AmazonOrdersError):
    """Amazon (or the sandbox) answered with an error, or with a body we cannot use.

    :param status: the HTTP status code, or ``None`` when there was no response.
    :param code: Amazon's error code, such as ``QuotaExceeded`` or ``InvalidInput``.
    :param message: Amazon's error message, or our description of the problem.
    :param request_id: the ``x-amzn-RequestId`` response header, if any.
    :param operation: the SP-API operation name, such as ``searchOrders``.
    :param details: Amazon's ``details`` text, if any.

    Every text is kept without NUL characters and unpaired surrogates (replaced by
    U+FFFD), so an error can be stored and logged whatever the answer held.
    """

    #: Whether the same request may succeed when it is sent again later.
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        operation: str | None = None,
        details: str | None = None,
    ) -> None:
        self.message = _storable(message) or ""
        self.status = status
        self.code = _storable(code)
        self.request_id = _storable(request_id)
        self.operation = operation
        self.details = _storable(details)
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.operation:
            parts.append(self.operation)
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.details:
            text += f" ({self.details})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"operation={self.operation!r}, request_id={self.request_id!r})"
        )


class InvalidInputError(SPAPIError):
    """HTTP 400: Amazon rejected the request's parameters or body."""


class AccessDeniedError(SPAPIError):
    """HTTP 401 or 403: the access token is missing, wrong, expired or lacks a role."""


class NotFoundError(SPAPIError):
    """HTTP 404: the order, feed or document does not exist for this seller."""


class QuotaExceededError(SPAPIError):
    """HTTP 429: Amazon throttled the call (``QuotaExceeded``)."""

    retryable = True


class ServerError(SPAPIError):
    """HTTP 5xx, including an HTML error page or an empty body."""

    retryable = True


class MalformedResponseError(SPAPIError):
    """A success status with a body that is not the JSON the model promises
    (truncated, not JSON at all, or missing required fields)."""

    retryable = True


class TransportError(SPAPIError):
    """No usable HTTP response: the connection failed, was dropped, or timed out."""

    retryable = True


class LWAError(SPAPIError):
    """The Login with Amazon token endpoint refused to issue an access token."""


class RefreshTokenRevokedError(LWAError):
    """LWA answered ``invalid_grant``: the seller's refresh token is revoked,
    expired or wrong. A human must authorize the store again; retrying will not help."""


class RateLimitWait(AmazonOrdersError):
    """A call was not made: its rate-limit token is further away than the caller
    agreed to wait (:attr:`SPAPIClient.max_rate_wait
    <flask_amazon_orders.client.SPAPIClient.max_rate_wait>`). Nothing was sent to
    Amazon and no token was taken; ``seconds`` says when the token is due."""

    def __init__(self, operation: str, seconds: float) -> None:
        super().__init__(
            f"{operation}: Amazon's rate limit allows the next call in {seconds:.1f} s"
        )
        self.operation = operation
        #: Seconds (of this process's clock) until the bucket has the token.
        self.seconds = seconds


class NotificationError(AmazonOrdersError):
    """An SQS message is not an Amazon ``ORDER_CHANGE`` notification we can read
    (not JSON, another notification type, or a required field missing or of the
    wrong type). Sending it again cannot help.

    :param message: what is wrong, naming the field.
    :param notification_id: the notification's ``NotificationId``, if it could be read.
    """

    def __init__(self, message: str, *, notification_id: str | None = None) -> None:
        self.message = message
        self.notification_id = notification_id
        super().__init__(message)

    def __str__(self) -> str:
        if self.notification_id:
            return f"notification {self.notification_id}: {self.message}"
        return self.message


class QueueError(AmazonOrdersError):
    """The SQS queue could not be read or a message not deleted (the queue service
    answered with an error, or could not be reached). The messages stay in the
    queue and come again.

    :param message: what failed, with the queue service's error code if any.
    :param code: the queue service's error code, such as
        ``AWS.SimpleQueueService.NonExistentQueue``.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.message = message
        self.code = code
        super().__init__(message)
