"""Reading HTTP responses: the one place that maps a response to an exception.

:func:`error_for_response` turns any non-2xx response into the matching class of
:mod:`flask_amazon_orders.errors`, with Amazon's error code, message and details
and the ``x-amzn-RequestId``. A body that is not Amazon's JSON error list (an HTML
error page, an empty body, S3's XML) still gives a clear message.

:func:`parse_body` reads a 2xx body exactly once and checks the top-level fields
the model requires for the operation (and the optional ones the client reads),
so that a truncated or foreign body is a
:class:`~flask_amazon_orders.errors.MalformedResponseError`, never "no orders", and
no value the client passes on (into a URL, a header, a database column) can fail
there instead.

Response bodies are never copied into messages except Amazon's own error texts,
so no buyer data ends up in an exception or a log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from ..errors import (
    AccessDeniedError,
    InvalidInputError,
    MalformedResponseError,
    NotFoundError,
    QuotaExceededError,
    ServerError,
    SPAPIError,
)

#: Operation -> the top-level fields a success body must have, with their types.
REQUIRED_FIELDS: Final[Mapping[str, tuple[tuple[str, type], ...]]] = {
    "searchOrders": (("orders", list),),
    "getOrder": (("order", dict),),
    "createFeedDocument": (("feedDocumentId", str), ("url", str)),
    "createFeed": (("feedId", str),),
    "getFeed": (("feedId", str), ("processingStatus", str)),
    "getFeeds": (("feeds", list),),
    "getFeedDocument": (("feedDocumentId", str), ("url", str)),
}
#: Operation -> the optional top-level fields the client reads: ``null`` or this type.
OPTIONAL_FIELDS: Final[Mapping[str, tuple[tuple[str, type], ...]]] = {
    "searchOrders": (("pagination", dict), ("lastUpdatedBefore", str)),
    "getFeed": (("resultFeedDocumentId", str),),
    "getFeeds": (("nextToken", str),),
    "getFeedDocument": (("compressionAlgorithm", str),),
}
#: Fields that take only the model's values.
FIELD_VALUES: Final[Mapping[str, tuple[str, ...]]] = {
    "processingStatus": ("CANCELLED", "DONE", "FATAL", "IN_PROGRESS", "IN_QUEUE"),
    "compressionAlgorithm": ("GZIP",),
}
#: Ids the client puts into paths and the feed job stores: at most this long (the
#: columns that keep them), without NUL or unpaired surrogates.
ID_LENGTHS: Final[Mapping[str, int]] = {
    "feedId": 40,
    "feedDocumentId": 200,
    "resultFeedDocumentId": 200,
}
#: What no database text column, URL or header takes: NUL and unpaired surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: A presigned URL: http(s), visible ASCII only.
_URL = re.compile(r"https?://[!-~]+")

_STATUS_CLASSES: Final[Mapping[int, type[SPAPIError]]] = {
    400: InvalidInputError,
    401: AccessDeniedError,
    403: AccessDeniedError,
    404: NotFoundError,
    429: QuotaExceededError,
}

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_XML_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(rb"<Message>([^<]{1,300})</Message>")


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The request id Amazon (or S3, for presigned URLs) put on a response."""
    return headers.get("x-amzn-RequestId") or headers.get("x-amz-request-id") or None


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text or None


def _describe_body(headers: Mapping[str, str], body: bytes) -> str:
    """A short description of a body that is not the expected JSON; no body data."""
    content_type = headers.get("Content-Type") or "no content type"
    if not body.strip():
        return "the response body is empty"
    if "html" in content_type.lower() or body.lstrip()[:5].lower() in (b"<!doc", b"<html"):
        found = _TITLE.search(body[:8192])
        title = " ".join(found.group(1).decode("utf-8", "replace").split())[:100] if found else ""
        suffix = f" titled {title!r}" if title else ""
        return f"the server answered with an HTML page{suffix} ({len(body)} bytes) instead of JSON"
    return f"the response body is not JSON ({content_type}, {len(body)} bytes)"


def error_for_response(
    operation: str, status: int, headers: Mapping[str, str], body: bytes
) -> SPAPIError:
    """The exception for a non-2xx response of ``operation``.

    400 :class:`InvalidInputError`, 401/403 :class:`AccessDeniedError`, 404
    :class:`NotFoundError`, 429 :class:`QuotaExceededError`, 5xx
    :class:`ServerError`, anything else :class:`SPAPIError`.
    """
    cls = _STATUS_CLASSES.get(status) or (ServerError if 500 <= status < 600 else SPAPIError)
    code = message = details = None
    try:
        data: Any = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else None
        if isinstance(first, dict):
            code = _text(first.get("code"))
            message = _text(first.get("message"))
            details = _text(first.get("details"))
        else:
            message = _text(data.get("message") or data.get("Message"))
        if message is None:
            message = "the JSON error body has no error message"
    elif data is not None:
        message = "the JSON error body is not an object"
    else:
        xml_code = _XML_CODE.search(body[:8192])
        xml_message = _XML_MESSAGE.search(body[:8192])
        if xml_code:
            code = xml_code.group(1).decode("utf-8", "replace")
            message = xml_message.group(1).decode("utf-8", "replace") if xml_message else None
        message = message or _describe_body(headers, body)
    return cls(
        message,
        status=status,
        code=code,
        request_id=request_id_of(headers),
        operation=operation,
        details=details,
    )


def parse_body(
    operation: str, status: int, headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    """Parse a 2xx JSON body and check the fields the client and the jobs read.

    The fields :data:`REQUIRED_FIELDS` names must be there, those of
    :data:`OPTIONAL_FIELDS` may be absent or ``null``; each of its type, a string
    without NUL or unpaired surrogates, an id no longer than :data:`ID_LENGTHS`
    says, one of the :data:`FIELD_VALUES`, a URL an http(s) one. So are
    ``pagination.nextToken`` of ``searchOrders`` and the ``feedId`` of each feed of
    ``getFeeds``.

    :raises MalformedResponseError: the body is not a JSON object (or is nested too
        deeply to read), or a field is missing or wrong.
    """

    def malformed(message: str) -> MalformedResponseError:
        return MalformedResponseError(
            message, status=status, request_id=request_id_of(headers), operation=operation
        )

    try:
        data = json.loads(body)
    except RecursionError:
        raise malformed("the response body is JSON nested too deeply to read") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "undecodable text"
        if not body.strip():
            raise malformed(_describe_body(headers, body)) from None
        if body.lstrip()[:1] == b"<":
            raise malformed(_describe_body(headers, body)) from None
        raise malformed(
            f"the response body is not valid JSON ({reason}; {len(body)} bytes, possibly truncated)"
        ) from None
    if not isinstance(data, dict):
        raise malformed("the response body is not a JSON object")
    fields = [
        (name, data.get(name), kind, True) for name, kind in REQUIRED_FIELDS.get(operation, ())
    ]
    fields += [
        (name, data.get(name), kind, False) for name, kind in OPTIONAL_FIELDS.get(operation, ())
    ]
    if operation == "searchOrders" and isinstance(data.get("pagination"), dict):
        fields.append(("pagination.nextToken", data["pagination"].get("nextToken"), str, False))
    elif operation == "getFeeds" and isinstance(data.get("feeds"), list):
        fields += [
            ("feedId", feed.get("feedId") if isinstance(feed, dict) else None, str, True)
            for feed in data["feeds"]
        ]
    for name, value, kind, required in fields:
        if required and (not isinstance(value, kind) or value == ""):
            raise malformed(f"the response lacks the required field {name!r}")
        problem = _field_problem(name, value, kind)
        if problem:
            raise malformed(f"the field {name!r} {problem}")
    return data


_TYPE_NAMES: Final[Mapping[type, str]] = {str: "string", dict: "JSON object", list: "JSON array"}


def _field_problem(name: str, value: Any, kind: type) -> str | None:
    """What is wrong with a field the client passes on, if anything (absent is fine)."""
    if value is None or value == "":
        return None
    if not isinstance(value, kind):
        return f"is not a {_TYPE_NAMES[kind]}"
    if not isinstance(value, str):
        return None
    if _UNSTORABLE.search(value):
        return "contains a NUL character or an unpaired surrogate"
    if name in FIELD_VALUES and value not in FIELD_VALUES[name]:
        return f"has an unknown value {value[:40]!r}"
    if name == "url" and not _URL.fullmatch(value):
        return "is not an http(s) URL"
    if name in ID_LENGTHS and len(value) > ID_LENGTHS[name]:
        return f"is longer than {ID_LENGTHS[name]} characters"
    return None
