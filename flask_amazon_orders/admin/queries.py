"""The database reads behind the admin pages.

Each page makes a fixed number of queries, whatever the number of orders or of
rows on the page: counts are ``GROUP BY`` queries over indexes, lists load their
rows in one query (items and events only where a page shows them), and deep
pages fetch their ids from an index before loading the rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import raiseload

from ..extension import get_extension
from ..i18n import N_
from ..models import (
    Adjustment,
    AmazonOrder,
    AmazonOrderItem,
    Cancellation,
    FeedSubmission,
    OrderEvent,
    Store,
    StoreEvent,
    SyncRun,
    UnreadableOrder,
    utcnow,
)

CHART_DAYS = 30


def _session() -> Any:
    return get_extension().session


def status_counts(store_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Orders per status, per store."""
    counts: dict[int, dict[str, int]] = {store_id: {} for store_id in store_ids}
    if not store_ids:
        return counts
    rows = _session().execute(
        sa.select(AmazonOrder.store_id, AmazonOrder.status, sa.func.count())
        .where(AmazonOrder.store_id.in_(store_ids))
        .group_by(AmazonOrder.store_id, AmazonOrder.status)
    )
    for store_id, status, count in rows:
        counts[store_id][status] = count
    return counts


def blocked_counts(store_ids: Sequence[int]) -> dict[int, int]:
    """Orders whose host order could not be created, per store."""
    if not store_ids:
        return {}
    rows = _session().execute(
        sa.select(AmazonOrder.store_id, sa.func.count())
        .where(AmazonOrder.store_id.in_(store_ids), AmazonOrder.host_import_state == "blocked")
        .group_by(AmazonOrder.store_id)
    )
    return {store_id: count for store_id, count in rows}


@dataclasses.dataclass(frozen=True)
class Bar:
    day: dt.date
    count: int
    x: float
    y: float
    height: float


@dataclasses.dataclass(frozen=True)
class Chart:
    """Orders per day over the last :data:`CHART_DAYS` days, laid out for an SVG."""

    bars: list[Bar]
    total: int
    peak: int
    width: int = 300
    height: int = 60


def _chart(per_day: dict[dt.date, int], today: dt.date) -> Chart:
    days = [today - dt.timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    peak = max((per_day.get(day, 0) for day in days), default=0)
    width, height, gap = 300, 60, 2
    step = width / CHART_DAYS
    bars = []
    for index, day in enumerate(days):
        count = per_day.get(day, 0)
        bar_height = 0.0 if not peak else max(1.0, round(count / peak * (height - 2), 1))
        if not count:
            bar_height = 0.0
        bars.append(
            Bar(
                day=day,
                count=count,
                x=round(index * step + gap / 2, 2),
                y=round(height - bar_height, 1),
                height=bar_height,
            )
        )
    return Chart(bars=bars, total=sum(b.count for b in bars), peak=peak)


def order_charts(store_ids: Sequence[int], *, now: dt.datetime | None = None) -> dict[int, Chart]:
    """Per store, the orders placed on each of the last 30 days (UTC)."""
    now = now or utcnow()
    today = now.astimezone(dt.timezone.utc).date()
    start = dt.datetime.combine(
        today - dt.timedelta(days=CHART_DAYS - 1), dt.time(), tzinfo=dt.timezone.utc
    )
    per_store: dict[int, dict[dt.date, int]] = {store_id: {} for store_id in store_ids}
    if store_ids:
        day = sa.func.date(AmazonOrder.purchased_at)
        rows = _session().execute(
            sa.select(AmazonOrder.store_id, day, sa.func.count())
            .where(AmazonOrder.store_id.in_(store_ids), AmazonOrder.purchased_at >= start)
            .group_by(AmazonOrder.store_id, day)
        )
        for store_id, value, count in rows:
            date = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            per_store[store_id][date] = count
    return {store_id: _chart(per_day, today) for store_id, per_day in per_store.items()}


def last_runs(store_ids: Sequence[int]) -> dict[int, SyncRun]:
    """The newest sync run of each store."""
    if not store_ids:
        return {}
    newest = (
        sa.select(sa.func.max(SyncRun.id))
        .where(SyncRun.store_id.in_(store_ids))
        .group_by(SyncRun.store_id)
        .scalar_subquery()
    )
    runs = _session().scalars(sa.select(SyncRun).where(SyncRun.id.in_(newest)))
    return {run.store_id: run for run in runs}


def recent_runs(store_id: int, limit: int = 5) -> list[SyncRun]:
    return list(
        _session().scalars(
            sa.select(SyncRun)
            .where(SyncRun.store_id == store_id)
            .order_by(SyncRun.id.desc())
            .limit(limit)
        )
    )


def store_events(store_id: int, limit: int = 10) -> list[StoreEvent]:
    return list(
        _session().scalars(
            sa.select(StoreEvent)
            .where(StoreEvent.store_id == store_id)
            .order_by(StoreEvent.id.desc())
            .limit(limit)
        )
    )


def _list_query() -> sa.Select[Any]:
    # Lists never load items or events: the row has its item count.
    return sa.select(AmazonOrder).options(
        raiseload(AmazonOrder.items), raiseload(AmazonOrder.events), raiseload(AmazonOrder.store)
    )


def recent_orders(store_id: int, limit: int = 20) -> list[AmazonOrder]:
    return list(
        _session().scalars(
            _list_query()
            .where(AmazonOrder.store_id == store_id)
            .order_by(AmazonOrder.purchased_at.desc(), AmazonOrder.id.desc())
            .limit(limit)
        )
    )


def blocked_orders(store_id: int, limit: int = 20) -> list[AmazonOrder]:
    return list(
        _session().scalars(
            _list_query()
            .where(AmazonOrder.store_id == store_id, AmazonOrder.host_import_state == "blocked")
            .order_by(AmazonOrder.purchased_at.desc(), AmazonOrder.id.desc())
            .limit(limit)
        )
    )


def unreadable_orders(store_id: int, limit: int = 20) -> tuple[list[UnreadableOrder], int]:
    """The store's orders Amazon lists but the sync cannot read (the longest-known
    first), at most ``limit``, and how many there are."""
    rows = list(
        _session().scalars(
            sa.select(UnreadableOrder)
            .where(UnreadableOrder.store_id == store_id)
            .order_by(UnreadableOrder.first_seen_at, UnreadableOrder.id)
            .limit(limit + 1)
        )
    )
    if len(rows) <= limit:
        return rows, len(rows)
    total = _session().scalar(
        sa.select(sa.func.count())
        .select_from(UnreadableOrder)
        .where(UnreadableOrder.store_id == store_id)
    )
    return rows[:limit], total or 0


# -- all orders: filter, search, sort, pagination ----------------------------------

#: The sort orders of the order list: key -> (label, columns).
SORTS = {
    "newest": (N_("Newest first"), (AmazonOrder.purchased_at.desc(), AmazonOrder.id.desc())),
    "oldest": (N_("Oldest first"), (AmazonOrder.purchased_at.asc(), AmazonOrder.id.asc())),
    "order_id": (N_("Order number"), (AmazonOrder.amazon_order_id.asc(),)),
}
IMPORT_STATES = ("imported", "blocked", "not_imported")
CHANNELS = ("MFN", "AFN")
_ORDER_ID_PREFIX = re.compile(r"^[0-9][0-9-]*$")


@dataclasses.dataclass(frozen=True)
class OrderFilter:
    """The validated filters of the order list (see :mod:`.forms`)."""

    status: str | None = None
    channel: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    imported: str | None = None
    q: str | None = None
    sort: str = "newest"
    page: int = 1

    def args(self, **changes: Any) -> dict[str, Any]:
        """The filter as URL query arguments (for links to other pages or sorts)."""
        values = dataclasses.replace(self, **changes)
        args: dict[str, Any] = {
            "status": values.status,
            "channel": values.channel,
            "from": values.date_from.isoformat() if values.date_from else None,
            "to": values.date_to.isoformat() if values.date_to else None,
            "imported": values.imported,
            "q": values.q,
            "sort": None if values.sort == "newest" else values.sort,
            "page": None if values.page == 1 else values.page,
        }
        return {key: value for key, value in args.items() if value is not None}

    @property
    def active(self) -> bool:
        return bool(
            self.status or self.channel or self.date_from or self.date_to or self.imported or self.q
        )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def _conditions(store_id: int, where: OrderFilter) -> list[sa.ColumnElement[bool]]:
    store = AmazonOrder.store_id == store_id
    if where.q:
        store = (AmazonOrder.store_id + 0) == store_id  # see _search
    conditions: list[sa.ColumnElement[bool]] = [store]
    if where.status:
        conditions.append(AmazonOrder.status == where.status)
    if where.channel:
        conditions.append(AmazonOrder.fulfillment_channel == where.channel)
    if where.date_from:
        conditions.append(AmazonOrder.purchased_at >= _day_start(where.date_from))
    if where.date_to:
        conditions.append(
            AmazonOrder.purchased_at < _day_start(where.date_to + dt.timedelta(days=1))
        )
    if where.imported == "imported":
        conditions.append(AmazonOrder.host_import_state == "created")
    elif where.imported == "blocked":
        conditions.append(AmazonOrder.host_import_state == "blocked")
    elif where.imported == "not_imported":
        conditions.append(AmazonOrder.host_import_state.is_(None))
    if where.q:
        conditions.append(_search(store_id, where.q))
    return conditions


def _search(store_id: int, text: str) -> sa.ColumnElement[bool]:
    """An Amazon order id (or its beginning), a seller SKU, or a host order number.

    The matches come from the three indexes (a ``UNION`` of ids), and the outer
    query must not prefer a scan of the store's orders: without statistics
    (``ANALYZE``) SQLite would, so the store condition there is made unindexable.
    """
    if _ORDER_ID_PREFIX.match(text):
        # A range, not LIKE, so the (store, order id) index serves it on every database.
        by_id: sa.ColumnElement[bool] = sa.and_(
            AmazonOrder.amazon_order_id >= text, AmazonOrder.amazon_order_id < text + "~"
        )
    else:
        by_id = AmazonOrder.amazon_order_id == text
    matches = sa.union(
        sa.select(AmazonOrder.id).where(AmazonOrder.store_id == store_id, by_id),
        sa.select(AmazonOrderItem.order_id).where(AmazonOrderItem.seller_sku == text),
        sa.select(AmazonOrder.id).where(
            AmazonOrder.store_id == store_id, AmazonOrder.host_order_number == text
        ),
    )
    return AmazonOrder.id.in_(matches.scalar_subquery())


#: A search counts its matches up to here ("1,000+").
SEARCH_COUNT_LIMIT = 1000


@dataclasses.dataclass
class OrderPage:
    orders: list[AmazonOrder]
    total: int
    page: int
    page_size: int
    #: The total is a lower bound (a search counts up to :data:`SEARCH_COUNT_LIMIT`).
    more: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def first_row(self) -> int:
        return 0 if not self.total else (self.page - 1) * self.page_size + 1

    @property
    def last_row(self) -> int:
        return min(self.total, self.page * self.page_size)


def order_page(store_id: int, where: OrderFilter, *, page_size: int) -> OrderPage:
    """One page of a store's orders: two queries for the ids and the total, one for the rows."""
    session = _session()
    conditions = _conditions(store_id, where)
    if where.q:
        capped = sa.select(AmazonOrder.id).where(*conditions).limit(SEARCH_COUNT_LIMIT + 1)
        total = session.scalar(sa.select(sa.func.count()).select_from(capped.subquery())) or 0
        more = total > SEARCH_COUNT_LIMIT
        total = min(total, SEARCH_COUNT_LIMIT)
    else:
        more = False
        total = session.scalar(sa.select(sa.func.count()).where(*conditions)) or 0
    pages = max(1, -(-total // page_size))
    page = min(where.page, pages)
    order_by = SORTS.get(where.sort, SORTS["newest"])[1]
    # The ids of the page come from the index alone; then only those rows are read.
    ids = list(
        session.scalars(
            sa.select(AmazonOrder.id)
            .where(*conditions)
            .order_by(*order_by)
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
    )
    orders = (
        list(session.scalars(_list_query().where(AmazonOrder.id.in_(ids)).order_by(*order_by)))
        if ids
        else []
    )
    return OrderPage(orders=orders, total=total, page=page, page_size=page_size, more=more)


def order_events(order_id: int) -> list[OrderEvent]:
    return list(
        _session().scalars(
            sa.select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        )
    )


def find_order(store: Store, amazon_order_id: str) -> AmazonOrder | None:
    """The store's order with this Amazon order id, items loaded; ``None`` if the
    store has none (another store's order is not found either)."""
    return _session().scalar(
        sa.select(AmazonOrder)
        .options(raiseload(AmazonOrder.events))
        .where(AmazonOrder.store_id == store.id, AmazonOrder.amazon_order_id == amazon_order_id)
    )


# -- cancellations ---------------------------------------------------------------------

#: How long a rejected cancellation is shown as needing attention.
REJECTED_RECENT = dt.timedelta(days=30)


def order_cancellations(order_id: int) -> list[tuple[Cancellation, FeedSubmission | None]]:
    """Every cancellation of an order, newest first, with the feed that carried it."""
    rows = _session().execute(
        sa.select(Cancellation, FeedSubmission)
        .outerjoin(FeedSubmission, FeedSubmission.id == Cancellation.submission_id)
        .where(Cancellation.order_id == order_id)
        .order_by(Cancellation.id.desc())
    )
    return [(cancellation, submission) for cancellation, submission in rows]


def cancellation_counts(store_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per store: cancellations on their way (``pending``) and recently ``rejected``."""
    counts: dict[int, dict[str, int]] = {
        store_id: {"pending": 0, "rejected": 0} for store_id in store_ids
    }
    if not store_ids:
        return counts
    since = utcnow() - REJECTED_RECENT
    kind = sa.case((Cancellation.state == "rejected", "rejected"), else_="pending")
    rows = _session().execute(
        sa.select(Cancellation.store_id, kind, sa.func.count())
        .where(
            Cancellation.store_id.in_(store_ids),
            sa.or_(
                Cancellation.state.in_(("queued", "sent")),
                sa.and_(Cancellation.state == "rejected", Cancellation.updated_at >= since),
            ),
        )
        .group_by(Cancellation.store_id, kind)
    )
    for store_id, name, count in rows:
        counts[store_id][name] = count
    return counts


def rejected_cancellations(store_id: int, limit: int = 10) -> list[tuple[Cancellation, str]]:
    """The store's recently rejected cancellations with their Amazon order ids."""
    rows = _session().execute(
        sa.select(Cancellation, AmazonOrder.amazon_order_id)
        .join(AmazonOrder, AmazonOrder.id == Cancellation.order_id)
        .where(
            Cancellation.store_id == store_id,
            Cancellation.state == "rejected",
            Cancellation.updated_at >= utcnow() - REJECTED_RECENT,
        )
        .order_by(Cancellation.id.desc())
        .limit(limit)
    )
    return [(cancellation, amazon_order_id) for cancellation, amazon_order_id in rows]


def orders_by_ids(store_id: int, ids: Sequence[int]) -> list[AmazonOrder]:
    """The store's orders among ``ids`` (others' are left out), in the given order."""
    if not ids:
        return []
    found = {
        order.id: order
        for order in _session().scalars(
            _list_query().where(AmazonOrder.store_id == store_id, AmazonOrder.id.in_(ids))
        )
    }
    return [found[order_id] for order_id in ids if order_id in found]


def order_adjustments(order_id: int) -> list[Adjustment]:
    """Every item adjustment of an order, newest first."""
    return list(
        _session().scalars(
            sa.select(Adjustment)
            .where(Adjustment.order_id == order_id)
            .order_by(Adjustment.id.desc())
        )
    )
