"""Feeds API 2021-06-30 endpoints and the presigned "S3" URLs they hand out.

createFeedDocument returns a presigned upload URL on the sandbox itself
(``/_sandbox/s3/upload/<documentId>?expires=...&signature=...``). Like S3, the
upload must use the same ``Content-Type`` as the document was created with,
else it is refused with ``SignatureDoesNotMatch``; a bad signature or an expired
URL gets ``AccessDenied``. Result documents are served gzipped with
``compressionAlgorithm: GZIP``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, g, request

from .feeds import PROCESSING_STATUSES, Document, Feed
from .marketplaces import MARKETPLACES
from .plumbing import S3, ApiError, plain_operation, s3_error, sp_api_operation
from .state import SandboxState, Seller
from .util import dumps, now_ms, parse_iso

bp = Blueprint("amazon_orders_sandbox_feeds", __name__)

_BASE = "/feeds/2021-06-30"
_INVALID = "InvalidInput"
_DAY_MS = 86_400_000


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise ApiError(400, _INVALID, "The request body must be a JSON object.")
    return data


# -- presigned URLs ----------------------------------------------------------------------------


def _presign(state: SandboxState, method: str, document: Document, extra: str = "") -> str:
    expires = int(now_ms() / 1000 + state.config.presigned_url_ttl)
    kind = "upload" if method == "PUT" else "download"
    signature = state.signer.sign(f"{method}\n{document.document_id}\n{expires}\n{extra}")
    url = (
        f"{request.host_url.rstrip('/')}/_sandbox/s3/{kind}/{document.document_id}"
        f"?expires={expires}&signature={signature}"
    )
    return url + (f"&encoding={extra}" if extra else "")


def _check_presigned(state: SandboxState, method: str, document_id: str) -> Response | None:
    expires = request.args.get("expires", "")
    signature = request.args.get("signature", "")
    extra = request.args.get("encoding", "")
    message = f"{method}\n{document_id}\n{expires}\n{extra}"
    if not expires.isdigit() or not state.signer.verify(message, signature):
        return s3_error(403, "AccessDenied", "Access Denied")
    if int(expires) * 1000 < now_ms():
        return s3_error(403, "AccessDenied", "Request has expired")
    return None


def _document_seller(state: SandboxState, kwargs: dict[str, Any]) -> str | None:
    document = state.feeds.documents.get(kwargs.get("document_id", ""))
    return document.seller_id if document else None


@bp.put("/_sandbox/s3/upload/<document_id>")
@plain_operation("upload", S3, _document_seller)
def upload(state: SandboxState, document_id: str) -> Response:
    """The presigned PUT of a feed document's content."""
    refused = _check_presigned(state, "PUT", document_id)
    if refused is not None:
        return refused
    data = request.get_data()
    with state.lock:
        document = state.feeds.documents.get(document_id)
        if document is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        sent = (request.headers.get("Content-Type") or "").strip()
        if sent != document.content_type:
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
            )
        document.data = data
    response = Response(b"", status=200)
    del response.headers["Content-Type"]
    response.headers["ETag"] = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    return response


@bp.get("/_sandbox/s3/download/<document_id>")
@plain_operation("download", S3, _document_seller)
def download(state: SandboxState, document_id: str) -> Response:
    """The presigned GET of a document (result documents come gzipped)."""
    refused = _check_presigned(state, "GET", document_id)
    if refused is not None:
        return refused
    with state.lock:
        document = state.feeds.documents.get(document_id)
        data = document.data if document else None
    if document is None or data is None:
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")
    response = Response(data, status=200, content_type=document.content_type)
    if document.compressed and request.args.get("encoding") == "gzip":
        response.headers["Content-Encoding"] = "gzip"
    response.headers["ETag"] = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    return response


# -- Feeds API ---------------------------------------------------------------------------------


@bp.post(f"{_BASE}/documents")
@sp_api_operation("createFeedDocument")
def create_feed_document(state: SandboxState, seller: Seller) -> tuple[int, str]:
    """createFeedDocument: a document id and a presigned upload URL."""
    body = _json_body()
    content_type = body.get("contentType")
    if not isinstance(content_type, str) or not content_type.strip():
        raise ApiError(400, _INVALID, "contentType is required.")
    with state.lock:
        document = state.feeds.new_document(seller.seller_id, content_type.strip())
        url = _presign(state, "PUT", document)
    return 201, dumps({"feedDocumentId": document.document_id, "url": url})


@bp.post(f"{_BASE}/feeds")
@sp_api_operation("createFeed")
def create_feed(state: SandboxState, seller: Seller) -> tuple[int, str]:
    """createFeed: queue an uploaded document for processing."""
    body = _json_body()
    feed_type = body.get("feedType")
    if not isinstance(feed_type, str) or not feed_type.strip():
        raise ApiError(400, _INVALID, "feedType is required.")
    marketplace_ids = body.get("marketplaceIds")
    if (
        not isinstance(marketplace_ids, list)
        or not 1 <= len(marketplace_ids) <= 25
        or not all(isinstance(m, str) for m in marketplace_ids)
    ):
        raise ApiError(400, _INVALID, "marketplaceIds must be a list of 1 to 25 marketplace ids.")
    unknown = [m for m in marketplace_ids if m not in MARKETPLACES]
    if unknown:
        raise ApiError(400, _INVALID, f"Invalid marketplaceIds: {', '.join(unknown)}.")
    document_id = body.get("inputFeedDocumentId")
    if not isinstance(document_id, str) or not document_id:
        raise ApiError(400, _INVALID, "inputFeedDocumentId is required.")
    options = body.get("feedOptions") or {}
    if not isinstance(options, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in options.items()
    ):
        raise ApiError(400, _INVALID, "feedOptions must map strings to strings.")
    with state.lock:
        try:
            feed = state.feeds.create_feed(
                seller.seller_id,
                feed_type.strip(),
                marketplace_ids,
                document_id,
                options,
                force_fatal=g.get("sandbox_fault") == "fatal",
            )
        except ValueError as exc:
            raise ApiError(400, _INVALID, str(exc)) from None
    return 202, dumps({"feedId": feed.feed_id})


def _own_feed(state: SandboxState, seller: Seller, feed_id: str) -> Feed:
    feed = state.feeds.feeds.get(feed_id)
    if feed is None or feed.seller_id != seller.seller_id:
        raise ApiError(404, "NotFound", f"The feed {feed_id} was not found.")
    return feed


@bp.get(f"{_BASE}/feeds/<feed_id>")
@sp_api_operation("getFeed")
def get_feed(state: SandboxState, seller: Seller, feed_id: str) -> tuple[int, str]:
    """getFeed: the feed and its processing status."""
    with state.lock:
        feed = state.feeds.refresh(_own_feed(state, seller, feed_id))
        return 200, dumps(feed.to_dict())


@bp.delete(f"{_BASE}/feeds/<feed_id>")
@sp_api_operation("cancelFeed")
def cancel_feed(state: SandboxState, seller: Seller, feed_id: str) -> tuple[int, None]:
    """cancelFeed: cancel a feed that is still IN_QUEUE (200, no body)."""
    with state.lock:
        feed = _own_feed(state, seller, feed_id)
        try:
            state.feeds.cancel(feed)
        except ValueError as exc:
            raise ApiError(400, _INVALID, str(exc)) from None
    return 200, None


def _list_param(name: str, low: int, high: int | None) -> list[str] | None:
    raw = request.args.getlist(name)
    if not raw:
        return None
    values = [part.strip() for value in raw for part in value.split(",") if part.strip()]
    if len(values) < low or (high is not None and len(values) > high):
        limit = f"{low} to {high}" if high else f"at least {low}"
        raise ApiError(400, _INVALID, f"{name} must contain {limit} values.")
    return values


@bp.get(f"{_BASE}/feeds")
@sp_api_operation("getFeeds")
def get_feeds(state: SandboxState, seller: Seller) -> tuple[int, str]:
    """getFeeds: the seller's feeds, newest first, filtered and paged."""
    next_token = request.args.get("nextToken")
    if next_token is not None:
        if len(request.args) > 1:
            raise ApiError(
                400, _INVALID, "When nextToken is provided, no other parameter may be provided."
            )
        query = state.signer.unseal(next_token)
        if query is None or query.get("sid") != seller.seller_id:
            raise ApiError(400, _INVALID, "Invalid nextToken.")
    else:
        feed_types = _list_param("feedTypes", 1, 10)
        if feed_types is None:
            raise ApiError(400, _INVALID, "feedTypes or nextToken is required.")
        marketplace_ids = _list_param("marketplaceIds", 1, 10)
        statuses = _list_param("processingStatuses", 1, None)
        for status in statuses or ():
            if status not in PROCESSING_STATUSES:
                raise ApiError(
                    400,
                    _INVALID,
                    f"Invalid value '{status}' for processingStatuses. "
                    f"Valid values: {', '.join(PROCESSING_STATUSES)}.",
                )
        raw_size = request.args.get("pageSize", "10")
        page_size = int(raw_size) if raw_size.isdigit() else 0
        if not 1 <= page_size <= 100:
            raise ApiError(400, _INVALID, "pageSize must be an integer between 1 and 100.")
        now = now_ms()
        since = _optional_time("createdSince", now - 90 * _DAY_MS)
        until = _optional_time("createdUntil", now)
        if since > until:
            raise ApiError(400, _INVALID, "createdSince must be before createdUntil.")
        query = {
            "sid": seller.seller_id,
            "types": feed_types,
            "markets": marketplace_ids,
            "statuses": statuses,
            "size": page_size,
            "since": since,
            "until": until,
            "offset": 0,
        }
    with state.lock:
        matching = []
        for feed in state.feeds.feeds.values():
            if feed.seller_id != seller.seller_id:
                continue
            state.feeds.refresh(feed)
            if feed.feed_type not in query["types"]:
                continue
            if query["markets"] and not set(feed.marketplace_ids) & set(query["markets"]):
                continue
            if query["statuses"] and feed.status not in query["statuses"]:
                continue
            if not query["since"] <= feed.created <= query["until"]:
                continue
            matching.append(feed)
        matching.sort(key=lambda f: (f.created, f.feed_id), reverse=True)
        offset, size = query["offset"], query["size"]
        page = [feed.to_dict() for feed in matching[offset : offset + size]]
    body: dict[str, Any] = {"feeds": page}
    if offset + size < len(matching):
        body["nextToken"] = state.signer.seal(dict(query, offset=offset + size))
    return 200, dumps(body)


def _optional_time(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = parse_iso(raw)
    if value is None:
        raise ApiError(400, _INVALID, f"Invalid value '{raw}' for {name}: expected ISO 8601.")
    return value


@bp.get(f"{_BASE}/documents/<document_id>")
@sp_api_operation("getFeedDocument")
def get_feed_document(state: SandboxState, seller: Seller, document_id: str) -> tuple[int, str]:
    """getFeedDocument: a presigned download URL for a document."""
    encoding = request.args.get("enableContentEncodingUrlHeader", "").lower() == "true"
    with state.lock:
        document = state.feeds.documents.get(document_id)
        if document is None or document.seller_id != seller.seller_id:
            raise ApiError(404, "NotFound", f"The feed document {document_id} was not found.")
        if document.data is None:
            raise ApiError(400, _INVALID, f"The feed document {document_id} has no content.")
        extra = "gzip" if encoding and document.compressed else ""
        body: dict[str, Any] = {
            "feedDocumentId": document.document_id,
            "url": _presign(state, "GET", document, extra),
        }
        if document.compressed:
            body["compressionAlgorithm"] = "GZIP"
    return 200, dumps(body)
