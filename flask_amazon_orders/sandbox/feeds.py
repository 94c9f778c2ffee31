"""Feeds 2021-06-30 on the sandbox side: documents, feeds and pluggable processing.

A feed moves ``IN_QUEUE -> IN_PROGRESS -> DONE`` over ``feed_processing_seconds /
time_scale``. Nothing runs in the background: the status is brought up to date
whenever a feed is read (getFeed, getFeeds, the control API). When a feed reaches
its end the processor registered for its ``feedType`` in :data:`FEED_PROCESSORS`
runs and its processing report becomes the feed's result document (stored
gzipped, as Amazon serves it).

Writing a processor
-------------------
A processor is ``processor(state, seller, document_bytes) -> bytes``: it gets the
:class:`~.state.SandboxState` (its lock is held; ``state.feeds.processing`` is the
:class:`Feed` being processed), the :class:`~.state.Seller` that submitted the
feed and the uploaded bytes, and returns the processing report. It may change
orders through the state's methods (``state.set_status(...)``, ...). To end the
feed ``FATAL`` it raises :class:`FeedProcessingFatal` (optionally with a report);
any other exception also ends the feed ``FATAL``, without a report.

:func:`xml_feed_processor` builds processors for XML feeds: it parses the
``AmazonEnvelope``, checks the envelope and every ``Message``, calls an optional
per-message check, and writes the ``ProcessingReport`` envelope with a
``ProcessingSummary`` and one ``Result`` per error or warning (matched to the
feed's ``MessageID``). Register a processor with::

    FEED_PROCESSORS["POST_ORDER_ACKNOWLEDGEMENT_DATA"] = xml_feed_processor(
        "OrderAcknowledgement", check_message=my_check
    )
"""

from __future__ import annotations

import gzip
import itertools
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from .util import iso_ms_always, now_ms

if TYPE_CHECKING:
    from .state import SandboxState, Seller

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
DONE = "DONE"
FATAL = "FATAL"
CANCELLED = "CANCELLED"
#: The ``processingStatus`` enumeration of the Feeds model.
PROCESSING_STATUSES = (CANCELLED, DONE, FATAL, IN_PROGRESS, IN_QUEUE)
TERMINAL = frozenset({DONE, FATAL, CANCELLED})

XML_CONTENT_TYPE = "text/xml; charset=UTF-8"
TSV_CONTENT_TYPE = "text/tab-separated-values; charset=UTF-8"

#: A feed processor: ``(state, seller, document_bytes) -> report bytes``.
FeedProcessor = Callable[["SandboxState", "Seller", bytes], bytes]
#: A per-message check for :func:`xml_feed_processor`.
MessageCheck = Callable[["SandboxState", "Seller", str, ET.Element], list["ProcessingResult"]]


class FeedProcessingFatal(Exception):
    """Raised by a processor to end the feed ``FATAL``; ``report`` becomes its result."""

    def __init__(self, message: str, report: bytes | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ProcessingResult:
    """One ``Result`` of a processing report."""

    message_id: str
    result_code: str
    message_code: int
    description: str
    #: ``AdditionalInfo`` children, such as ``{"AmazonOrderID": "..."}``.
    additional_info: dict[str, str] = field(default_factory=dict)


def processing_report(
    merchant_id: str,
    transaction_id: str,
    processed: int,
    results: list[ProcessingResult],
    status_code: str = "Complete",
) -> bytes:
    """Write a ``ProcessingReport`` envelope (SP-API-NOTES §3.6) as UTF-8 XML.

    ``MessagesSuccessful`` counts the processed messages without an ``Error``
    result; a result with ``message_id`` ``"0"`` concerns the whole document.
    """
    errors = {r.message_id for r in results if r.result_code == "Error" and r.message_id != "0"}
    warnings = {r.message_id for r in results if r.result_code == "Warning" and r.message_id != "0"}
    document_errors = any(r.result_code == "Error" and r.message_id == "0" for r in results)
    with_error = len(errors) + (1 if document_errors and not processed else 0)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<AmazonEnvelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="amzn-envelope.xsd">',
        "  <Header>",
        "    <DocumentVersion>1.02</DocumentVersion>",
        f"    <MerchantIdentifier>{escape(merchant_id)}</MerchantIdentifier>",
        "  </Header>",
        "  <MessageType>ProcessingReport</MessageType>",
        "  <Message>",
        "    <MessageID>1</MessageID>",
        "    <ProcessingReport>",
        f"      <DocumentTransactionID>{escape(transaction_id)}</DocumentTransactionID>",
        f"      <StatusCode>{escape(status_code)}</StatusCode>",
        "      <ProcessingSummary>",
        f"        <MessagesProcessed>{processed}</MessagesProcessed>",
        f"        <MessagesSuccessful>{max(processed - len(errors), 0)}</MessagesSuccessful>",
        f"        <MessagesWithError>{with_error}</MessagesWithError>",
        f"        <MessagesWithWarning>{len(warnings)}</MessagesWithWarning>",
        "      </ProcessingSummary>",
    ]
    for result in results:
        lines += [
            "      <Result>",
            f"        <MessageID>{escape(result.message_id)}</MessageID>",
            f"        <ResultCode>{escape(result.result_code)}</ResultCode>",
            f"        <ResultMessageCode>{result.message_code}</ResultMessageCode>",
            f"        <ResultDescription>{escape(result.description)}</ResultDescription>",
        ]
        if result.additional_info:
            lines.append("        <AdditionalInfo>")
            lines += [
                f"          <{key}>{escape(value)}</{key}>"
                for key, value in result.additional_info.items()
            ]
            lines.append("        </AdditionalInfo>")
        lines.append("      </Result>")
    lines += ["    </ProcessingReport>", "  </Message>", "</AmazonEnvelope>", ""]
    return "\n".join(lines).encode("utf-8")


def _transaction_id(state: SandboxState) -> str:
    feed = state.feeds.processing
    return feed.feed_id if feed is not None else "0"


_MESSAGE_ID_RE = re.compile(r"^\d{1,20}$")


def xml_feed_processor(
    message_type: str | None = None, check_message: MessageCheck | None = None
) -> FeedProcessor:
    """A processor for XML feeds of ``message_type`` (``None``: any type).

    ``check_message(state, seller, message_id, payload_element)`` may return
    results (errors or warnings) for one message; it may also act on the message,
    for example cancel an order.
    """

    def process(state: SandboxState, seller: Seller, document: bytes) -> bytes:
        transaction_id = _transaction_id(state)
        try:
            root = ET.fromstring(document)
        except ET.ParseError as exc:
            line, column = exc.position
            report = processing_report(
                seller.seller_id,
                transaction_id,
                0,
                [
                    ProcessingResult(
                        "0",
                        "Error",
                        5000,
                        f"XML Parsing Error at Line {line}, Column {column}: {exc}",
                    )
                ],
            )
            raise FeedProcessingFatal("the feed document is not well-formed XML", report) from None
        envelope_error = _check_envelope(root, message_type)
        if envelope_error:
            report = processing_report(
                seller.seller_id,
                transaction_id,
                0,
                [ProcessingResult("0", "Error", 5001, envelope_error)],
            )
            raise FeedProcessingFatal(envelope_error, report)
        results: list[ProcessingResult] = []
        messages = root.findall("Message")
        seen: set[str] = set()
        for position, message in enumerate(messages, start=1):
            message_id = (message.findtext("MessageID") or "").strip()
            if not _MESSAGE_ID_RE.match(message_id):
                results.append(
                    ProcessingResult(
                        message_id or str(position),
                        "Error",
                        5001,
                        f"Message {position} has no valid MessageID (1 to 20 digits).",
                    )
                )
                continue
            if message_id in seen:
                results.append(
                    ProcessingResult(
                        message_id,
                        "Error",
                        5001,
                        f"MessageID {message_id} is used by more than one message.",
                    )
                )
                continue
            seen.add(message_id)
            payload = [c for c in message if c.tag not in ("MessageID", "OperationType")]
            expected = message_type or root.findtext("MessageType", "").strip()
            if len(payload) != 1 or payload[0].tag != expected:
                results.append(
                    ProcessingResult(
                        message_id,
                        "Error",
                        5001,
                        f"Message {message_id} must contain exactly one {expected} element.",
                    )
                )
                continue
            if check_message is not None:
                results.extend(check_message(state, seller, message_id, payload[0]))
        return processing_report(seller.seller_id, transaction_id, len(messages), results)

    return process


def _check_envelope(root: ET.Element, message_type: str | None) -> str | None:
    if root.tag != "AmazonEnvelope":
        return f"The root element must be AmazonEnvelope, not {root.tag}."
    header = root.find("Header")
    if header is None or not (header.findtext("MerchantIdentifier") or "").strip():
        return "The envelope needs a Header with a MerchantIdentifier."
    actual = (root.findtext("MessageType") or "").strip()
    if not actual:
        return "The envelope has no MessageType."
    if message_type and actual != message_type:
        return f"MessageType {actual} does not match this feed type; expected {message_type}."
    if root.find("Message") is None:
        return "The envelope contains no Message."
    return None


def flat_file_processor(state: SandboxState, seller: Seller, document: bytes) -> bytes:
    """Process a tab-separated flat-file feed: count its records, report a summary."""
    try:
        text = document.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = document.decode("latin-1")
    rows = [line for line in text.splitlines() if line.strip()]
    records = max(len(rows) - 1, 0)
    report = (
        "Feed Processing Summary:\n"
        f"\tNumber of records processed\t\t{records}\n"
        f"\tNumber of records successful\t\t{records}\n\n"
        "original-record-number\torder-id\terror-code\terror-type\terror-message\n"
    )
    return report.encode("utf-8")


#: The processor for a feed type without its own entry.
DEFAULT_FEED_PROCESSOR: FeedProcessor = xml_feed_processor()

#: Feed processors by ``feedType``. Hosts and later versions replace entries here;
#: :mod:`.order_feeds` registers the real processing of order acknowledgements,
#: :mod:`.adjustment_feeds` that of payment adjustments.
FEED_PROCESSORS: dict[str, FeedProcessor] = {
    "POST_ORDER_ACKNOWLEDGEMENT_DATA": xml_feed_processor("OrderAcknowledgement"),
    "POST_PAYMENT_ADJUSTMENT_DATA": xml_feed_processor("OrderAdjustment"),
    "POST_ORDER_FULFILLMENT_DATA": xml_feed_processor("OrderFulfillment"),
    "POST_INVOICE_CONFIRMATION_DATA": xml_feed_processor("InvoiceConfirmation"),
    "POST_FLAT_FILE_ORDER_ACKNOWLEDGEMENT_DATA": flat_file_processor,
    "POST_FLAT_FILE_PAYMENT_ADJUSTMENT_DATA": flat_file_processor,
}


def processor_for(feed_type: str) -> FeedProcessor:
    """The processor registered for ``feed_type`` (or :data:`DEFAULT_FEED_PROCESSOR`)."""
    return FEED_PROCESSORS.get(feed_type, DEFAULT_FEED_PROCESSOR)


# -- stored objects ---------------------------------------------------------------------------


@dataclass
class Document:
    """A feed document: uploaded input or a processing report."""

    document_id: str
    seller_id: str
    content_type: str
    created: int
    data: bytes | None = None
    #: Processing reports are stored gzipped.
    compressed: bool = False

    def text(self) -> str | None:
        """The document's content as text (decompressed), if uploaded."""
        if self.data is None:
            return None
        raw = gzip.decompress(self.data) if self.compressed else self.data
        return raw.decode("utf-8", errors="replace")


@dataclass
class Feed:
    """A submitted feed."""

    feed_id: str
    seller_id: str
    feed_type: str
    marketplace_ids: list[str]
    input_document_id: str
    created: int
    options: dict[str, str] = field(default_factory=dict)
    status: str = IN_QUEUE
    started: int | None = None
    ended: int | None = None
    result_document_id: str | None = None
    force_fatal: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The feed as the ``Feed`` definition of the model."""
        data: dict[str, Any] = {
            "feedId": self.feed_id,
            "feedType": self.feed_type,
            "marketplaceIds": list(self.marketplace_ids),
            "createdTime": iso_ms_always(self.created),
            "processingStatus": self.status,
        }
        if self.started is not None:
            data["processingStartTime"] = iso_ms_always(self.started)
        if self.ended is not None:
            data["processingEndTime"] = iso_ms_always(self.ended)
        if self.result_document_id is not None:
            data["resultFeedDocumentId"] = self.result_document_id
        return data


class FeedStore:
    """The feeds and documents of a sandbox. Used under the state lock."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self.documents: dict[str, Document] = {}
        self.feeds: dict[str, Feed] = {}
        self._ids = itertools.count(50_000_000_000 + state.rng.randrange(10**9))
        #: The feed whose processor is running (for processors; see module docs).
        self.processing: Feed | None = None

    def new_document(self, seller_id: str, content_type: str) -> Document:
        """Create an empty document (createFeedDocument)."""
        region = self._state.sellers[seller_id].region
        document_id = f"amzn1.tortuga.4.{region}.{uuid.uuid4()}.T{uuid.uuid4().hex[:13].upper()}"
        document = Document(document_id, seller_id, content_type, now_ms())
        self.documents[document_id] = document
        return document

    def create_feed(
        self,
        seller_id: str,
        feed_type: str,
        marketplace_ids: list[str],
        document_id: str,
        options: dict[str, str],
        *,
        force_fatal: bool = False,
    ) -> Feed:
        """Queue a feed (createFeed). The document must exist and be uploaded.

        :raises ValueError: if the document is unknown, not the seller's or empty.
        """
        document = self.documents.get(document_id)
        if document is None or document.seller_id != seller_id:
            raise ValueError(f"inputFeedDocumentId {document_id} does not exist.")
        if document.data is None:
            raise ValueError(f"The feed document {document_id} has not been uploaded.")
        feed = Feed(
            feed_id=str(next(self._ids)),
            seller_id=seller_id,
            feed_type=feed_type,
            marketplace_ids=list(marketplace_ids),
            input_document_id=document_id,
            created=now_ms(),
            options=dict(options),
            force_fatal=force_fatal,
        )
        self.feeds[feed.feed_id] = feed
        return feed

    def refresh(self, feed: Feed, now: int | None = None) -> Feed:
        """Bring a feed's status up to date with the clock."""
        if feed.status in TERMINAL:
            return feed
        now = now_ms() if now is None else now
        duration = int(
            self._state.config.feed_processing_seconds / self._state.config.time_scale * 1000
        )
        start_at = feed.created + duration // 4
        if feed.status == IN_QUEUE and now >= start_at:
            feed.status = IN_PROGRESS
            feed.started = start_at
        if now >= feed.created + duration:
            self.finish(feed, at=feed.created + duration)
        return feed

    def finish(self, feed: Feed, at: int | None = None) -> Feed:
        """Process a feed now: run its processor and store the report."""
        if feed.status in TERMINAL:
            return feed
        at = now_ms() if at is None else at
        if feed.started is None:
            feed.started = min(at, now_ms())
        feed.ended = at
        if feed.force_fatal:
            feed.status = FATAL
            feed.error = "fault injected: fatal"
            return feed
        state = self._state
        seller = state.sellers[feed.seller_id]
        document = self.documents[feed.input_document_id]
        processor = processor_for(feed.feed_type)
        self.processing = feed
        report: bytes | None
        try:
            report = processor(state, seller, document.data or b"")
            feed.status = DONE
        except FeedProcessingFatal as exc:
            report = exc.report
            feed.status = FATAL
            feed.error = str(exc)
        except Exception as exc:  # a broken processor must not break the API
            report = None
            feed.status = FATAL
            feed.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.processing = None
        if report is not None:
            content_type = (
                TSV_CONTENT_TYPE if not report.lstrip().startswith(b"<") else (XML_CONTENT_TYPE)
            )
            result = self.new_document(feed.seller_id, content_type)
            result.data = gzip.compress(report, mtime=0)
            result.compressed = True
            feed.result_document_id = result.document_id
        return feed

    def cancel(self, feed: Feed) -> None:
        """Cancel a feed that is still ``IN_QUEUE``. :raises ValueError: otherwise."""
        self.refresh(feed)
        if feed.status != IN_QUEUE:
            raise ValueError(
                f"The feed {feed.feed_id} cannot be cancelled: it is {feed.status}, "
                "and only feeds IN_QUEUE can be cancelled."
            )
        feed.status = CANCELLED
        feed.ended = now_ms()

    def control_view(self, feed: Feed) -> dict[str, Any]:
        """Everything about a feed, for ``GET /_sandbox/feeds``."""
        self.refresh(feed)
        document = self.documents.get(feed.input_document_id)
        result = self.documents.get(feed.result_document_id or "")
        data = feed.to_dict()
        data.update(
            {
                "sellerId": feed.seller_id,
                "feedOptions": dict(feed.options),
                "inputFeedDocumentId": feed.input_document_id,
                "contentType": document.content_type if document else None,
                "document": document.text() if document else None,
                "report": result.text() if result else None,
                "error": feed.error,
            }
        )
        return data
