"""Fault injection: make chosen calls fail the way Amazon sometimes does.

A fault names an ``operation`` (an SP-API operationId, ``token`` for the LWA
endpoint, ``upload``/``download`` for the presigned URLs, ``notification`` for
the ``ORDER_CHANGE`` notifications the sandbox sends, or ``*`` for any call —
not for notifications), a ``kind`` and how many calls it hits: after ``after``
matching calls have passed normally, the next ``count`` matching calls get the
fault.

Kinds:

``429``
    Throttled (``QuotaExceeded``).
``500``
    HTTP 500 with an empty body.
``500_json``
    HTTP 500 with Amazon's JSON error ``InternalFailure``.
``503_html``
    HTTP 503 with an HTML page (``text/html``), as a load balancer sends it.
``slow``
    Sleep ``delay`` seconds, then answer normally (for client read timeouts).
``drop``
    Send the status line, the headers with the full ``Content-Length`` and part
    of the body, then close the connection. An answer without a body (such as
    ``confirmShipment``'s 204) is lost whole: the connection closes before the
    status line, after the call was carried out.
``truncated_json``
    HTTP 200 with a correct ``Content-Length`` but the body cut in half.
``expired_pagination_token``
    searchOrders only: HTTP 400 ``InvalidInput`` saying the token expired.
``invalid_grant``
    Token endpoint only: HTTP 400 ``invalid_grant``.
``403``
    Access denied (an S3-style XML error for ``upload``/``download``).
``fatal``
    createFeed only: the call succeeds but the feed ends ``FATAL``.
``drop`` (``notification``)
    The notification is lost: never sent (the control API lists it as ``dropped``).
``duplicate``
    ``notification`` only: the notification is sent twice, as SQS may deliver it.

``status`` overrides the HTTP status of the error kinds (``429``, ``500``,
``500_json``, ``503_html``, ``403``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

#: Every operation name a fault can target (besides ``*``).
OPERATIONS = (
    "searchOrders",
    "getOrder",
    "createFeedDocument",
    "createFeed",
    "getFeed",
    "getFeeds",
    "cancelFeed",
    "getFeedDocument",
    "confirmShipment",
    "token",
    "upload",
    "download",
    "notification",
)

#: The kinds a fault of the ``notification`` operation may have.
NOTIFICATION_KINDS = frozenset({"drop", "duplicate"})

#: Kinds that are only meaningful for some operations.
RESTRICTED_KINDS = {
    "expired_pagination_token": frozenset({"searchOrders"}),
    "invalid_grant": frozenset({"token"}),
    "fatal": frozenset({"createFeed"}),
    "duplicate": frozenset({"notification"}),
}

#: Kinds whose HTTP status ``status`` may override.
ERROR_KINDS = frozenset({"429", "500", "500_json", "503_html", "403"})

#: Every fault kind.
KINDS = frozenset({"slow", "drop", "truncated_json", *ERROR_KINDS, *RESTRICTED_KINDS})


class FaultSpecError(ValueError):
    """A fault specification is invalid."""


@dataclass
class Fault:
    """One injected fault and how many calls it still hits."""

    fault_id: int
    operation: str
    kind: str
    count: int
    after: int
    delay: float | None = None
    status: int | None = None

    def matches(self, operation: str) -> bool:
        """Whether this fault applies to a call of ``operation``."""
        if self.operation != operation and (self.operation != "*" or operation == "notification"):
            return False
        allowed = RESTRICTED_KINDS.get(self.kind)
        return allowed is None or operation in allowed

    def to_dict(self) -> dict[str, Any]:
        """The fault as the control API lists it."""
        return {
            "fault_id": self.fault_id,
            "operation": self.operation,
            "kind": self.kind,
            "remaining": self.count,
            "after": self.after,
            "delay": self.delay,
            "status": self.status,
        }


class FaultRegistry:
    """The active faults. Not thread-safe alone; used under the state lock."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self,
        operation: Any,
        kind: Any,
        count: Any = 1,
        after: Any = 0,
        delay: Any = None,
        status: Any = None,
    ) -> Fault:
        """Validate and register a fault.

        :raises FaultSpecError: with a message naming the bad field.
        """
        if operation != "*" and operation not in OPERATIONS:
            raise FaultSpecError(
                f"operation must be '*' or one of {', '.join(OPERATIONS)}; got {operation!r}"
            )
        if kind not in KINDS:
            raise FaultSpecError(f"kind must be one of {', '.join(sorted(KINDS))}; got {kind!r}")
        allowed = RESTRICTED_KINDS.get(kind)
        if allowed is not None and operation != "*" and operation not in allowed:
            raise FaultSpecError(f"kind {kind!r} applies only to {', '.join(sorted(allowed))}")
        if operation == "notification" and kind not in NOTIFICATION_KINDS:
            raise FaultSpecError(
                f"a notification fault is one of {', '.join(sorted(NOTIFICATION_KINDS))}"
            )
        if not _is_int(count) or count < 1:
            raise FaultSpecError("count must be a positive integer")
        if not _is_int(after) or after < 0:
            raise FaultSpecError("after must be a non-negative integer")
        if kind == "slow":
            if delay is None:
                delay = 5.0
            if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
                raise FaultSpecError("delay must be a non-negative number of seconds")
            delay = float(delay)
        elif delay is not None:
            raise FaultSpecError("delay applies only to kind 'slow'")
        if status is not None:
            if kind not in ERROR_KINDS:
                raise FaultSpecError(
                    f"status applies only to kinds {', '.join(sorted(ERROR_KINDS))}"
                )
            if not _is_int(status) or not 400 <= status <= 599:
                raise FaultSpecError("status must be an HTTP error status (400-599)")
        fault = Fault(next(self._ids), str(operation), str(kind), count, after, delay, status)
        self._faults.append(fault)
        return fault

    def take(self, operation: str) -> Fault | None:
        """Account for one call of ``operation``; return the fault that hits it, if any.

        Every matching fault counts the call; the first one whose ``after`` calls
        have passed fires (and uses up one of its ``count``).
        """
        fired: Fault | None = None
        for fault in self._faults:
            if not fault.matches(operation):
                continue
            if fault.after > 0:
                fault.after -= 1
            elif fired is None:
                fired = fault
                fault.count -= 1
        if fired is not None and fired.count <= 0:
            self._faults.remove(fired)
        return fired

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def active(self) -> list[dict[str, Any]]:
        """The active faults as dictionaries."""
        return [fault.to_dict() for fault in self._faults]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
