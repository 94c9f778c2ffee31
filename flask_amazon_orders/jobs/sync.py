"""Incremental order sync: Amazon's ``searchOrders`` into the ``amazon_*`` tables.

One function, :func:`sync_store`, is the sync; the CLI, the embedded worker and
task queues all call it. For one store it asks Amazon for every order changed
since the store's cursor (minus a small overlap, so late-indexed changes are not
missed), page by page, 100 orders a page with their items inline, and upserts
each page in one transaction: new orders and items are inserted, changed ones
updated, unchanged ones (same ``lastUpdatedTime``) not touched. Every new order
and every status change gets an :class:`~flask_amazon_orders.models.OrderEvent`.

An order that cannot be read (:func:`~..client.records.parse_order` finds a
field missing, of the wrong type or out of range) does not hold up the others:
the rest of its page is stored, and the order is kept in
:class:`~flask_amazon_orders.models.UnreadableOrder` (in the page's commit) with
the reason, named on every run's record, and read again with ``getOrder`` at the
end of every run until it can be stored.

The cursor moves only when the whole window is stored, in the same commit as the
last page. While a window is open, the next page's token is committed with each
page, so a sync that fails (throttling storm, 503, timeout, a crash) resumes at
the page it had reached; if Amazon no longer accepts that token, the window is
read again from its start, which is safe because the upsert is idempotent.
Signals are sent after each commit.

:func:`refresh_order` reads one order again (one ``getOrder``), after Amazon
notified a change of it (:mod:`~flask_amazon_orders.jobs.notifications`), and
stores it through the same upsert as a page, with the same events, signals and
host import; it never moves the cursor, so the sync stays the backstop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from flask import current_app

from .. import events, signals
from ..client.records import (
    INCLUDED_BUYER_DATA,
    INCLUDED_DATA,
    OrderRecord,
    order_id_of,
    parse_order,
)
from ..crypto import buyer_data_context
from ..errors import (
    AmazonOrdersError,
    ConfigurationError,
    InvalidInputError,
    MalformedResponseError,
    NotFoundError,
    RateLimitWait,
)
from ..extension import AmazonOrders, get_extension
from ..models import (
    FINAL_STATUSES,
    AmazonOrder,
    AmazonOrderItem,
    OrderEvent,
    Store,
    SyncRun,
    UnreadableOrder,
    bulk_insert,
    metadata,
    select_store_orders,
    utcnow,
)
from ..services.stores import get_store
from . import leases
from .problems import describe, needs_action

log = logging.getLogger("flask_amazon_orders.sync")

_ORDERS_TABLE = metadata.tables["amazon_orders"]
_ITEMS_TABLE = metadata.tables["amazon_order_items"]
_EVENTS_TABLE = metadata.tables["amazon_order_events"]
#: Statuses a confirmed shipment sets, and the ones an older copy may still show.
_SHIPPED_HERE = ("PartiallyShipped", "Shipped")
_NOT_YET_SHIPPED = ("Unshipped", "Pending", "PendingAvailability")
#: A cancellation from the admin pages is on its way or done in these states …
_CANCELLED_HERE = ("queued", "sent", "confirmed")
#: … and an older copy of Amazon's may still show the order in one of these.
_NOT_YET_CANCELLED = ("Unshipped", "Pending", "PendingAvailability")

#: What a run whose worker died (killed, crashed) says on the dashboard.
INTERRUPTED = (
    "The worker running this sync stopped before it finished (stopped or crashed); "
    "the next run went on from the page it had reached."
)
#: Amazon keeps a pagination token for 24 hours; resume only well within that.
PAGE_TOKEN_MAX_AGE = dt.timedelta(hours=23)
#: How long a sync holds its store; renewed with every page, so only a crashed
#: sync's lease runs out.
SYNC_LEASE = dt.timedelta(minutes=30)
#: Unreadable orders read again (``getOrder``) per run at most, the longest untried first.
RETRY_UNREADABLE = 20

_ORDER_FIELDS = (
    "seller_order_id",
    "status",
    "amazon_status",
    "fulfillment_channel",
    "service_level",
    "marketplace_id",
    "sales_channel",
    "purchased_at",
    "amazon_updated_at",
    "earliest_ship_at",
    "latest_ship_at",
    "earliest_delivery_at",
    "latest_delivery_at",
    "currency",
    "order_total",
    "ship_country",
    "buyer_cancel_requested",
    "buyer_cancel_reason",
)
_ITEM_FIELDS = (
    "asin",
    "seller_sku",
    "title",
    "condition",
    "quantity_ordered",
    "quantity_shipped",
    "unit_price",
    "item_price",
    "shipping_price",
    "item_tax",
    "shipping_tax",
    "discount",
    "total",
    "buyer_cancel_requested",
    "buyer_cancel_reason",
    "cancelled_by",
)


@dataclasses.dataclass
class PageProgress:
    """What one stored page changed; passed to the ``progress`` callback."""

    store: Store
    #: The sync run; ``None`` for the refresh of one order (:func:`refresh_order`).
    run: SyncRun | None
    page: int
    orders: int
    #: Ids of the orders stored for the first time.
    created: list[int] = dataclasses.field(default_factory=list)
    updated: list[AmazonOrder] = dataclasses.field(default_factory=list)
    status_changes: list[tuple[AmazonOrder, str, str]] = dataclasses.field(default_factory=list)
    last_page: bool = False


ProgressCallback = Callable[[PageProgress], None]


@dataclasses.dataclass
class _Page:
    """One fetched and parsed ``searchOrders`` page."""

    before: dt.datetime | None
    raw_orders: list[Any]
    next_token: str | None


def _order_values(record: OrderRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in _ORDER_FIELDS}
    values["programs"] = ",".join(record.programs) or None
    values["items_count"] = sum(item.quantity_ordered for item in record.items)
    return values


def _buyer_payload(record: OrderRecord) -> str | None:
    if not record.buyer and not record.shipping_address:
        return None
    return json.dumps(
        {"buyer": record.buyer, "shipping_address": record.shipping_address},
        separators=(",", ":"),
        sort_keys=True,
    )


def _buyer_data(ext: AmazonOrders, store_id: int, record: OrderRecord) -> str | None:
    payload = _buyer_payload(record)
    if payload is None:
        return None
    context = buyer_data_context(store_id, record.amazon_order_id)
    return ext.encryptor.encrypt(payload, context=context)


def _differs(ext: AmazonOrders, order: AmazonOrder, record: OrderRecord) -> bool:
    """Whether Amazon's copy differs from the stored order (for equal timestamps)."""
    if any(getattr(order, k) != v for k, v in _order_values(record).items()):
        return True
    items = {item.order_item_id: item for item in order.items}
    for item_record in record.items:
        item = items.get(item_record.order_item_id)
        if item is None or any(
            getattr(item, name) != getattr(item_record, name) for name in _ITEM_FIELDS
        ):
            return True
    return _buyer_changed(ext, order, record)


def _buyer_changed(ext: AmazonOrders, order: AmazonOrder, record: OrderRecord) -> bool:
    """Whether Amazon sent buyer data that differs from the stored (or absent) copy.

    When Amazon sends none (no role, or the order is pending), the stored copy
    stays; once purged (see :mod:`~flask_amazon_orders.jobs.purge`), none is kept again.
    """
    payload = _buyer_payload(record)
    if payload is None or order.buyer_data_purged_at is not None:
        return False
    if order.buyer_data_encrypted is None:
        return True
    context = buyer_data_context(order.store_id, order.amazon_order_id)
    try:
        return ext.encryptor.decrypt(order.buyer_data_encrypted, context=context) != payload
    except ConfigurationError:
        return True  # unreadable (a removed key): Amazon's copy replaces it


def _cancel_request_text(record: OrderRecord) -> events.Text:
    reason = record.buyer_cancel_reason
    if reason:
        return events.Text("buyer_cancel_requested_reason", buyer_reason=reason)
    return events.Text("buyer_cancel_requested")


def _apply_items(order: AmazonOrder, record: OrderRecord) -> None:
    current = {item.order_item_id: item for item in order.items}
    for item_record in record.items:
        values = {name: getattr(item_record, name) for name in _ITEM_FIELDS}
        item = current.get(item_record.order_item_id)
        if item is None:
            order.items.append(AmazonOrderItem(order_item_id=item_record.order_item_id, **values))
            continue
        # Amazon never un-ships: a copy read before a shipment we confirmed
        # must not take the shipped units back.
        values["quantity_shipped"] = max(values["quantity_shipped"], item.quantity_shipped)
        for name, value in values.items():
            if getattr(item, name) != value:
                setattr(item, name, value)


def _insert_new(
    ext: AmazonOrders, store_id: int, records: list[OrderRecord], progress: PageProgress
) -> None:
    """Insert new orders with their items and ``imported`` events, in bulk."""
    session = ext.session
    now = utcnow()
    rows = []
    for record in records:
        row = _order_values(record)
        row.update(
            store_id=store_id,
            amazon_order_id=record.amazon_order_id,
            buyer_data_encrypted=_buyer_data(ext, store_id, record),
            # Closed before we saw it: Amazon's last change is the latest it closed.
            closed_at=record.amazon_updated_at if record.status in FINAL_STATUSES else None,
            first_seen_at=now,
            updated_at=now,
        )
        rows.append(row)
    # A bulk insert, then one SELECT for the new ids: SQLite cannot return the ids
    # of a multi-row INSERT in order, and would insert row by row.
    bulk_insert(session, _ORDERS_TABLE, rows)
    id_of: dict[str, int] = dict(
        session.execute(
            select_store_orders(
                session,
                store_id,
                [r.amazon_order_id for r in records],
                AmazonOrder.amazon_order_id,
                AmazonOrder.id,
            )
        ).all()
    )
    ids = [id_of[record.amazon_order_id] for record in records]
    items = []
    timeline = []
    for order_id, record in zip(ids, records, strict=True):
        for item in record.items:
            values = {name: getattr(item, name) for name in _ITEM_FIELDS}
            values.update(order_id=order_id, order_item_id=item.order_item_id)
            items.append(values)
        timeline.append(
            {
                "order_id": order_id,
                "created_at": now,
                "kind": "imported",
                "actor": "sync",
                "from_status": None,
                "to_status": record.status,
                **events.columns(events.Text("imported", status=record.status)),
            }
        )
        if record.buyer_cancel_requested:
            timeline.append(
                {
                    "order_id": order_id,
                    "created_at": now,
                    "kind": "buyer_cancel_requested",
                    "actor": "buyer",
                    "from_status": None,
                    "to_status": None,
                    **events.columns(_cancel_request_text(record)),
                }
            )
    if items:
        bulk_insert(session, _ITEMS_TABLE, items)
    bulk_insert(session, _EVENTS_TABLE, timeline)
    progress.created.extend(ids)


def _update_changed(
    ext: AmazonOrders, order_ids: list[int], latest: dict[str, OrderRecord], progress: PageProgress
) -> None:
    """Apply Amazon's newer copy to stored orders, with events for what changed."""
    session = ext.session
    # The rows are locked as they are read (PostgreSQL), in id order like every
    # writer of several orders, and read as committed now: a cancellation, a
    # shipment or a feed's answer committed meanwhile is seen, not overwritten.
    orders = session.scalars(
        sa.select(AmazonOrder)
        .where(AmazonOrder.id.in_(order_ids))
        .order_by(AmazonOrder.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    for order in orders:
        record = latest[order.amazon_order_id]
        if record.amazon_updated_at == order.amazon_updated_at and not _differs(ext, order, record):
            continue  # the same copy again (the sync's overlap)
        old_status = order.status
        old_updated = order.amazon_updated_at
        had_cancel_request = order.buyer_cancel_requested
        for name, value in _order_values(record).items():
            if getattr(order, name) != value:
                setattr(order, name, value)
        if _buyer_changed(ext, order, record):
            order.buyer_data_encrypted = _buyer_data(ext, order.store_id, record)
        _apply_items(order, record)
        new_status = record.status
        if (
            record.amazon_updated_at <= old_updated
            and old_status in _SHIPPED_HERE
            and new_status in _NOT_YET_SHIPPED
        ):
            # A copy no newer than ours, read before a shipment we confirmed.
            order.status = new_status = old_status
        if order.cancellation_state in _CANCELLED_HERE and new_status in _NOT_YET_CANCELLED:
            # Cancelled here (on its way, or confirmed): Amazon's copy is older news,
            # a cancelled order never goes back.
            order.status = new_status = old_status
        if new_status != old_status:
            session.add(
                OrderEvent(
                    order_id=order.id,
                    kind="status_changed",
                    actor="amazon",
                    from_status=old_status,
                    to_status=new_status,
                    **events.columns(events.Text("status_changed", status=new_status)),
                )
            )
            progress.status_changes.append((order, old_status, new_status))
        else:
            progress.updated.append(order)
        if record.buyer_cancel_requested and not had_cancel_request:
            session.add(
                OrderEvent(
                    order_id=order.id,
                    kind="buyer_cancel_requested",
                    actor="buyer",
                    **events.columns(_cancel_request_text(record)),
                )
            )


def _store_page(
    ext: AmazonOrders, store_id: int, records: Sequence[OrderRecord], progress: PageProgress
) -> None:
    """Upsert one page of orders into the session (the caller commits).

    New orders are inserted in bulk; orders whose ``lastUpdatedTime`` is newer
    than the stored one are updated; the rest (unchanged, or an older copy) are
    not touched at all. The store's orders are locked first (until the commit),
    so a sync page and a refresh of one order never write over each other.
    """
    leases.lock_orders(ext.session, store_id)
    latest: dict[str, OrderRecord] = {}
    for record in records:
        seen = latest.get(record.amazon_order_id)
        if seen is None or record.amazon_updated_at > seen.amazon_updated_at:
            latest[record.amazon_order_id] = record
    if not latest:
        return
    stored = {
        amazon_order_id: (order_id, updated_at)
        for order_id, amazon_order_id, updated_at in ext.session.execute(
            select_store_orders(
                ext.session,
                store_id,
                list(latest),
                AmazonOrder.id,
                AmazonOrder.amazon_order_id,
                AmazonOrder.amazon_updated_at,
            )
        )
    }
    new = [record for key, record in latest.items() if key not in stored]
    # Newer copies, and copies with the same lastUpdatedTime (Amazon stamps whole
    # seconds, so a change may keep it); the latter are compared field by field.
    changed = [
        stored[key][0]
        for key, record in latest.items()
        if key in stored and record.amazon_updated_at >= stored[key][1]
    ]
    if new:
        _insert_new(ext, store_id, new, progress)
    if changed:
        _update_changed(ext, changed, latest, progress)


def _parse_page(raw_orders: list[Any]) -> tuple[list[OrderRecord], list[tuple[str | None, str]]]:
    """The page's orders as records, and ``(orderId or None, why)`` of those that
    cannot be read."""
    records = []
    unreadable = []
    for raw in raw_orders:
        try:
            records.append(parse_order(raw, operation="searchOrders"))
        except MalformedResponseError as exc:
            unreadable.append((order_id_of(raw), exc.message))
    return records, unreadable


def _note_unreadable(
    session: Any,
    store_id: int,
    records: Sequence[OrderRecord],
    unreadable: Sequence[tuple[str | None, str]],
) -> list[str]:
    """Keep the unreadable orders (with the page, in its transaction) and forget the
    ones now read; return why the orders without a usable id could not be read."""
    read = {record.amazon_order_id for record in records}
    if read:
        session.execute(
            sa.delete(UnreadableOrder).where(
                UnreadableOrder.store_id == store_id,
                UnreadableOrder.amazon_order_id.in_(read),
            )
        )
    errors = {
        order_id: why if why.startswith(f"order {order_id}: ") else f"order {order_id}: {why}"
        for order_id, why in unreadable
        if order_id and order_id not in read
    }
    for why in errors.values():
        log.warning("store %s: an Amazon order could not be read: %s", store_id, why)
    if errors:
        now = utcnow()
        known = {
            row.amazon_order_id: row
            for row in session.scalars(
                sa.select(UnreadableOrder).where(
                    UnreadableOrder.store_id == store_id,
                    UnreadableOrder.amazon_order_id.in_(list(errors)),
                )
            )
        }
        for order_id, why in errors.items():
            row = known.get(order_id)
            if row is None:
                session.add(
                    UnreadableOrder(
                        store_id=store_id,
                        amazon_order_id=order_id,
                        error=why,
                        first_seen_at=now,
                        last_tried_at=now,
                    )
                )
            else:
                row.error = why
                row.attempts += 1
                row.last_tried_at = now
    nameless = [why for order_id, why in unreadable if not order_id]
    for why in nameless:
        log.warning("store %s: an Amazon order without a usable id was skipped: %s", store_id, why)
    return nameless


def _retry_unreadable(
    app: Any,
    client: Any,
    store: Store,
    run: SyncRun,
    included: list[str],
    counted: tuple[int, int],
) -> None:
    """Read the store's unreadable orders again (``getOrder``), the longest untried
    first, and store those that can be read now (and commit)."""
    ext = get_extension()
    session = ext.session
    rows = list(
        session.scalars(
            sa.select(UnreadableOrder)
            .where(UnreadableOrder.store_id == store.id)
            .order_by(UnreadableOrder.last_tried_at, UnreadableOrder.id)
            .limit(RETRY_UNREADABLE)
        )
    )
    if not rows:
        return
    records: list[OrderRecord] = []
    errors: list[tuple[str | None, str]] = []
    for row in rows:
        try:
            raw = client.get_order(row.amazon_order_id, included_data=included)
            record = parse_order(raw, operation="getOrder")
        except MalformedResponseError as exc:
            errors.append((row.amazon_order_id, exc.message))
            continue
        except NotFoundError as exc:  # the reason stays the one it was listed with
            log.warning("%s: getOrder does not find %s: %s", store.name, row.amazon_order_id, exc)
            errors.append((row.amazon_order_id, row.error))
            continue
        except AmazonOrdersError as exc:
            # Amazon cannot be asked now (throttled, down …): the next run asks again.
            log.warning("%s: reading unreadable orders again failed: %s", store.name, exc)
            break
        if record.amazon_order_id != row.amazon_order_id:
            errors.append((row.amazon_order_id, "getOrder answered with another order"))
            continue
        records.append(record)
    page = PageProgress(store=store, run=run, page=run.pages, orders=len(records), last_page=True)
    _store_page(ext, store.id, records, page)
    _note_unreadable(session, store.id, records, errors)
    run.orders_created += len(page.created)
    run.orders_updated += len(page.updated) + len(page.status_changes)
    _count_calls(run, client, counted)
    session.commit()
    _send_signals(app, session, page)


def _unreadable_summary(session: Any, store_id: int, nameless: list[str]) -> str | None:
    """The run's note on the orders that could not be read, or ``None``."""
    count = session.scalar(sa.select(sa.func.count()).where(UnreadableOrder.store_id == store_id))
    if not count and not nameless:
        return None
    shown = list(
        session.scalars(
            sa.select(UnreadableOrder.error)
            .where(UnreadableOrder.store_id == store_id)
            .order_by(UnreadableOrder.first_seen_at, UnreadableOrder.id)
            .limit(10)
        )
    )
    parts = []
    if count:
        parts.append(
            f"{count} Amazon order(s) could not be read; they are read again at every sync"
        )
    if nameless:
        parts.append(
            f"{len(nameless)} Amazon order(s) without a usable order id could not be read "
            "and were skipped"
        )
    reasons = "; ".join([*shown, *nameless[:10]])
    return f"{'; '.join(parts)}: {reasons}"[:4000]


def _send_signals(app: Any, session: Any, progress: PageProgress) -> None:
    store = progress.store
    if signals.order_imported.receivers and progress.created:
        orders = session.scalars(
            sa.select(AmazonOrder)
            .where(AmazonOrder.id.in_(progress.created))
            .order_by(AmazonOrder.id)
        )
        for order in orders:
            signals.send(signals.order_imported, app, store=store, order=order)
    for order, old, new in progress.status_changes:
        signals.send(
            signals.order_status_changed,
            app,
            store=store,
            order=order,
            old_status=old,
            new_status=new,
        )
    for order in progress.updated:
        signals.send(signals.order_updated, app, store=store, order=order)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: out of range in UTC
        return None


def sync_store(
    store: Store | int,
    *,
    trigger: str = "api",
    progress: ProgressCallback | None = None,
    max_rate_wait: float | None = None,
    max_pages: int | None = None,
) -> SyncRun:
    """Sync one store's orders from Amazon and return the finished :class:`SyncRun`.

    Errors from Amazon (throttling that outlasted the retries, server errors,
    timeouts, malformed answers, a revoked refresh token) do not raise: the run is
    marked ``failed`` with the error, the store shows it, :data:`.signals.sync_failed`
    is sent, and the next run picks up where this one stopped. Any other exception
    is recorded the same way and then raised.

    An order Amazon lists but that cannot be read does not fail the run: the other
    orders are stored, it is kept as an
    :class:`~flask_amazon_orders.models.UnreadableOrder`, the run succeeds with the
    reason in its ``error``, and every later run reads it again (``getOrder``).

    One store is synced by one sync at a time: a run that finds another one
    holding the store's lease ends at once with status ``skipped``. A run so
    slow that its lease ran out and another run took the store over stops at
    its next page, ``failed``, without storing it.

    With ``max_rate_wait``, a run whose next page would wait longer than that for
    Amazon's rate limit (seconds of Amazon's time) gives way instead: it ends
    ``paused`` after the pages it stored, with ``resume_at`` set to when the limit
    allows the next page, and the next run goes on from that page (the page
    token is saved with every page). Meanwhile the worker can sync other stores:
    :func:`sync_all` comes back to it. Without it, the run waits for each page as
    long as the limit says (the command line's ``sync``).

    :param store: the store or its id.
    :param trigger: who started the run (``cli``, ``worker``, ``admin``, ``api``).
    :param progress: called with a :class:`PageProgress` after each stored page.
    :param max_rate_wait: give way rather than wait longer than this for a page.
    :param max_pages: give way after this many pages (``resume_at`` is now), so
        that a worker takes its stores' pages in turns (see :func:`sync_all`).
    """
    ext = get_extension()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    session = ext.session
    settings = ext.settings
    store = loaded = get_store(store)
    store_id = store.id
    owner = leases.new_owner()
    if not leases.acquire(session, store_id, owner, "sync", SYNC_LEASE):
        run = SyncRun(
            store_id=store_id,
            trigger=trigger,
            status="skipped",
            finished_at=utcnow(),
            error="Another sync of this store is running.",
        )
        session.add(run)
        session.commit()
        log.info("%s: skipped, another sync of this store is running", loaded.name)
        return run
    # Holding the lease, no other sync of this store runs: a run still marked
    # running is one whose worker died (its lease ran out or was taken over).
    session.execute(
        sa.update(SyncRun)
        .where(SyncRun.store_id == store_id, SyncRun.status == "running")
        .values(status="failed", finished_at=utcnow(), error=INTERRUPTED)
        .execution_options(synchronize_session=False)
    )
    latest = session.scalar(
        sa.select(SyncRun)
        .where(SyncRun.store_id == store_id, SyncRun.status != "skipped")
        .order_by(SyncRun.id.desc())
        .limit(1)
    )
    if latest is not None and latest.status == "paused":
        # It gave way to other stores: this is the same sync going on, one run
        # from the first page to the last (its counts go on too).
        run = latest
        run.status = "running"
        run.finished_at = run.resume_at = None
        store.last_sync_at = utcnow()
    else:
        run = SyncRun(store_id=store.id, trigger=trigger, status="running")
        session.add(run)
        store.last_sync_at = run.started_at = utcnow()
    #: The run's calls before this call of sync_store (a paused run's).
    counted = (run.api_calls or 0, run.throttled or 0)
    # This run serves an admin's "Sync now" made before it started.
    session.execute(
        sa.update(Store)
        .where(Store.id == store.id, Store.sync_requested_at <= run.started_at)
        .values(sync_requested_at=None)
        .execution_options(synchronize_session="fetch")
    )
    session.commit()

    client = None
    try:
        client = ext.client_for(store)
        client.max_rate_wait = max_rate_wait
        included = _included_data(ext)
        now = utcnow()
        token = store.sync_page_token
        token_at = store.sync_page_token_at
        if (
            token
            and store.sync_window_after is not None
            and token_at is not None
            and now - token_at < PAGE_TOKEN_MAX_AGE
        ):
            after = store.sync_window_after
            bound = store.sync_window_before
            log.info("%s: resuming an unfinished sync window at its next page", store.name)
        else:
            token = None
            start = store.sync_cursor or (
                store.connected_at - dt.timedelta(days=settings.sync_lookback_days)
            )
            after = start - dt.timedelta(seconds=settings.sync_overlap_seconds)
            bound = None
        run.window_after = after
        store_name = store.name
        filters: dict[str, Any] = {
            "last_updated_after": after,
            "marketplace_ids": [store.marketplace_id],
            "included_data": list(included),
            "max_results_per_page": settings.sync_page_size,
        }

        def fetch(page_token: str | None) -> _Page:
            body = client.search_orders(**filters, pagination_token=page_token)
            raw_orders = body.get("orders")
            if not isinstance(raw_orders, list):
                raise MalformedResponseError("missing 'orders'", operation="searchOrders")
            pagination = body.get("pagination") or {}
            next_token = pagination.get("nextToken") if isinstance(pagination, dict) else None
            return _Page(
                before=_parse_time(body.get("lastUpdatedBefore")),
                raw_orders=raw_orders,
                next_token=next_token or None,
            )

        # Pages are fetched one after the other. (Prefetching the next page in a
        # thread was measured twice, on SQLite and on PostgreSQL: no steady gain,
        # the thread's JSON decoding holds the interpreter the other one needs.)
        restarted = False
        page_no = 0
        latest_seen: dt.datetime | None = None
        #: Why orders without a usable ``orderId`` could not be read (not kept).
        nameless: list[str] = []
        #: Seconds until Amazon's limit allows the next page, when the run gives way.
        paused_for: float | None = None
        while True:
            try:
                fetched = fetch(token)
            except RateLimitWait as wait:
                paused_for = wait.seconds
                break
            except InvalidInputError as exc:
                if token is None or restarted:
                    raise
                # Amazon no longer takes the saved page token (expired): read the
                # window again from its start; the upsert makes that harmless.
                log.warning(
                    "%s: the saved page token was refused (%s); reading the window again "
                    "from its start",
                    store_name,
                    exc,
                )
                restarted = True
                token = None
                bound = None
                continue
            if page_no == 0 and token is None:
                # Amazon's own upper bound of the window: its clock, not ours.
                bound = fetched.before
            next_token = fetched.next_token
            if next_token is not None and next_token == token:
                raise MalformedResponseError(
                    "the next page token repeats the current one", operation="searchOrders"
                )
            records, unreadable = _parse_page(fetched.raw_orders)
            for record in records:
                if latest_seen is None or record.amazon_updated_at > latest_seen:
                    latest_seen = record.amazon_updated_at
            page_no += 1
            page = PageProgress(
                store=store, run=run, page=page_no, orders=len(records), last_page=not next_token
            )
            _store_page(ext, store_id, records, page)
            nameless += _note_unreadable(session, store_id, records, unreadable)
            # Still ours? (A run that outlived its lease, taken over by another
            # worker, must not write on.) The renewal locks the store's row until
            # the page's commit, so the lease cannot be taken in between; it comes
            # after the orders' locks, as for every writer (see _update_changed).
            if not leases.renew(session, store_id, owner, "sync", SYNC_LEASE):
                raise leases.LeaseLost(
                    "Another worker took over this store's sync (this run outlived its "
                    "lease); this run stopped without storing more."
                )
            run.pages += 1
            run.orders_seen += len(fetched.raw_orders)
            run.orders_created += len(page.created)
            run.orders_updated += len(page.updated) + len(page.status_changes)
            run.window_before = bound
            if next_token:
                store.sync_page_token = next_token
                store.sync_page_token_at = utcnow()
                store.sync_window_after = after
                store.sync_window_before = bound
            else:
                # Without Amazon's bound, move only as far as the newest change
                # seen: never trust the local clock to skip ahead.
                cursor = bound if bound is not None else max(latest_seen or after, after)
                store.sync_cursor = max(cursor, after)
                store.sync_page_token = None
                store.sync_page_token_at = None
                store.sync_window_after = None
                store.sync_window_before = None
                store.last_sync_succeeded_at = utcnow()
                store.last_sync_error = None
                store.last_sync_error_needs_action = False
                run.status = "succeeded"
                run.finished_at = utcnow()
            _count_calls(run, client, counted)
            session.commit()
            _send_signals(app, session, page)
            if progress is not None:
                progress(page)
            if not next_token:
                break
            token = next_token
            if max_pages is not None and page_no >= max_pages:
                paused_for = 0.0
                break
        client.max_rate_wait = None
        if paused_for is None:
            _retry_unreadable(app, client, store, run, list(included), counted)
            run.error = _unreadable_summary(session, store_id, nameless)
        else:
            run.status = "paused"
            run.finished_at = utcnow()
            run.resume_at = run.finished_at + dt.timedelta(seconds=paused_for)
            _count_calls(run, client, counted)
        session.commit()
    except BaseException as exc:
        session.rollback()
        _record_failure(session, store_id, run.id, exc, client, counted)
        leases.release(session, store_id, owner, "sync")
        if client is not None:
            client.close()
        run = session.get(SyncRun, run.id) or run
        failed_store = session.get(Store, store_id) or store
        signals.send(signals.sync_failed, app, store=failed_store, run=run, error=exc)
        if isinstance(exc, AmazonOrdersError):
            log.warning("%s: sync failed: %s", failed_store.name, exc)
            return run
        log.exception("%s: sync failed with an unexpected error", failed_store.name)
        raise
    client.close()
    leases.release(session, store_id, owner, "sync")
    if run.status == "paused":
        log.info(
            "%s: sync paused after %d pages (%d orders seen): Amazon's rate limit allows "
            "the next page in %.1f s; other stores go first",
            store.name,
            run.pages,
            run.orders_seen,
            paused_for,
        )
    else:
        signals.send(signals.sync_finished, app, store=store, run=run)
        log.info(
            "%s: sync done, %d orders seen, %d new, %d changed, %d pages",
            store.name,
            run.orders_seen,
            run.orders_created,
            run.orders_updated,
            run.pages,
        )
    _import_host_orders(ext, store_id, store.name)
    return run


def _included_data(ext: AmazonOrders) -> tuple[str, ...]:
    """The ``includedData`` of every order read (sync and refresh alike)."""
    return INCLUDED_DATA + (INCLUDED_BUYER_DATA if ext.settings.fetch_buyer_data else ())


def _import_host_orders(ext: AmazonOrders, store_id: int, store_name: str) -> None:
    """Create shop orders for what was just stored, if the store imports orders."""
    session = ext.session
    if session.get(Store, store_id).order_import_enabled:  # type: ignore[union-attr]
        from ..services.importing import import_host_orders

        try:
            import_host_orders(store_id, actor="sync")
        except Exception:  # the orders are stored; the import is retried next time
            session.rollback()
            log.exception("%s: creating shop orders failed", store_name)


@dataclasses.dataclass
class RefreshResult:
    """What :func:`refresh_order` did."""

    store_id: int
    amazon_order_id: str
    #: ``created`` (stored for the first time), ``status_changed``, ``updated``
    #: (another change), or ``unchanged`` (the stored copy was current).
    outcome: str
    #: Amazon's status of the order (Seller Central's name).
    status: str


def refresh_order(store: Store | int, amazon_order_id: str) -> RefreshResult:
    """Read one order again from Amazon and store it as the sync stores a page.

    One ``getOrder`` with the sync's ``includedData``; then the sync's upsert with
    its guards (an older copy never replaces a newer one, a shipment or a
    cancellation made here is never undone), its events and, after the commit,
    its signals and the host import. Reading the same copy twice changes nothing,
    so a repeated notification is harmless. The sync's cursor and its lease are
    not touched: a running sync of the store goes on, and the next one still reads
    every change since the cursor (the backstop for a notification that never
    came).

    :param store: the store or its id.
    :param amazon_order_id: the order, e.g. ``303-1234567-1234567``.
    :raises AmazonOrdersError: when Amazon's answer did not come (see
        :attr:`.SPAPIError.retryable` for the errors worth trying again).
    """
    ext = get_extension()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    session = ext.session
    store = get_store(store)
    store_id = store.id
    with ext.client_for(store) as client:
        raw = client.get_order(amazon_order_id, included_data=list(_included_data(ext)))
    record = parse_order(raw, operation="getOrder")
    if record.amazon_order_id != amazon_order_id:
        raise MalformedResponseError(
            f"asked for order {amazon_order_id}, got {record.amazon_order_id}",
            operation="getOrder",
        )
    page = PageProgress(store=store, run=None, page=1, orders=1, last_page=True)
    try:
        _store_page(ext, store_id, [record], page)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    _send_signals(app, session, page)
    if page.created:
        outcome = "created"
    elif page.status_changes:
        outcome = "status_changed"
    elif page.updated:
        outcome = "updated"
    else:
        outcome = "unchanged"
    _import_host_orders(ext, store_id, store.name)
    log.info("%s: order %s refreshed (%s)", store.name, amazon_order_id, outcome)
    return RefreshResult(store_id, amazon_order_id, outcome, record.status)


def _count_calls(run: SyncRun, client: Any, counted: tuple[int, int]) -> None:
    """The run's calls: those ``counted`` before, and this client's."""
    stats = getattr(client, "stats", None) or {}
    run.api_calls = counted[0] + sum(s.calls for s in stats.values())
    run.throttled = counted[1] + sum(s.throttled for s in stats.values())


def _record_failure(
    session: Any,
    store_id: int,
    run_id: int,
    exc: BaseException,
    client: Any,
    counted: tuple[int, int],
) -> None:
    run = session.get(SyncRun, run_id)
    store = session.get(Store, store_id)
    message = describe(exc)
    if run is not None:
        run.status = "failed"
        run.finished_at = utcnow()
        run.error = message[:4000]
        run.error_code = (getattr(exc, "code", None) or type(exc).__name__)[:60]
        _count_calls(run, client, counted)
    if store is not None and not isinstance(exc, leases.LeaseLost):
        # (A lost lease is this run's problem, not the store's: another run syncs it.)
        store.last_sync_error = message[:4000]
        store.last_sync_error_needs_action = needs_action(exc)
    session.commit()


def stores_to_sync() -> list[int]:
    """The ids of the active stores, those an admin asked to sync ("Sync now") first."""
    return list(
        get_extension().session.scalars(
            sa.select(Store.id)
            .where(Store.active.is_(True))
            .order_by(Store.sync_requested_at.is_(None), Store.sync_requested_at, Store.id)
        )
    )


#: Pages a store reads before the next store's turn, when stores give way to
#: each other under the rate limit (:func:`sync_all`, the Celery task).
PAGES_PER_TURN = 5


def sync_all(
    *,
    trigger: str = "api",
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_rate_wait: float | None = None,
    until: float | None = None,
) -> list[SyncRun]:
    """Sync every active store, one after the other.

    With ``max_rate_wait``, a store whose next page would wait longer than that
    for Amazon's rate limit gives way (its run ends ``paused``, see
    :func:`sync_store`): the other stores go first, and it is taken up again,
    from its next page, when the limit allows — again and again until it is
    done, or until ``until`` (a :func:`time.monotonic` reading), after which the
    next round goes on with it. The stores also take their pages in turns,
    :data:`PAGES_PER_TURN` at a time, so that every seller's limit starts to
    refill at once, not the last store's only after the others' whole bursts.
    So one worker keeps every store's limit busy instead of sleeping on one
    store's.

    An unexpected error in one store does not keep the others from their sync;
    the first such error is raised once every store had its turn.

    :param should_stop: asked before each store and while waiting for one;
        ``True`` ends the round early.
    :returns: every run, paused ones included.
    """
    stopped = should_stop or (lambda: False)
    runs = []
    first_error: Exception | None = None
    #: Stores that gave way: (when the limit allows their next page, order, id).
    paused: list[tuple[float, int, int]] = []

    def run(store_id: int) -> None:
        nonlocal first_error
        try:
            result = sync_store(
                store_id,
                trigger=trigger,
                progress=progress,
                max_rate_wait=max_rate_wait,
                max_pages=None if max_rate_wait is None else PAGES_PER_TURN,
            )
        except Exception as exc:  # recorded on the run; the other stores go on
            first_error = first_error or exc
            return
        runs.append(result)
        if result.status == "paused" and result.resume_at is not None:
            due = time.monotonic() + (result.resume_at - utcnow()).total_seconds()
            heapq.heappush(paused, (due, len(runs), store_id))

    for store_id in stores_to_sync():
        if stopped():
            break
        run(store_id)
    while paused and not stopped():
        due, _, store_id = heapq.heappop(paused)
        if until is not None and due > until:
            break
        while not stopped() and (left := due - time.monotonic()) > 0:
            time.sleep(min(left, 0.5))
        if not stopped():
            run(store_id)
    if first_error is not None:
        raise first_error
    return runs
