"""Benchmark: the admin pages on 100,000 Amazon orders (300,000 items) in SQLite.

Fills a SQLite file fast with SQLAlchemy Core bulk inserts (two stores, the
orders and their items, order events for a sample, sync runs, store events),
runs ``ANALYZE``, then requests each admin page through the Flask test client
and times it server-side (around ``client.get``): ``--requests`` times after
``--warmup`` untimed requests. The order details page rotates over many orders.

It prints, per page, the median and 95th percentile in ms; the SQL time of one
request (its statements run again alone on the raw connection, rows fetched:
the rest of the time is Python, i.e. the ORM and the templates); the number of
SQL statements per request on a small database and on the big one, each with
two page sizes (``AMAZON_ORDERS_ADMIN_PAGE_SIZE`` 10 and 50); and whether the
page meets the target: a median under 30 ms and a 95th percentile under 60 ms,
with a number of queries that grows neither with the orders nor with the rows
on the page. For a page that misses it (or every page, ``--explain``), the
slowest statements are shown with SQLite's query plan; a page that fails shows
its traceback.

Times are figures for this machine, not assertions. Usage::

    python bench/bench_admin.py [--orders 100000] [--requests 60] [--reuse PATH]

``--reuse PATH`` keeps the filled database at PATH and uses it again in later
runs, as long as the orders, the seed and the tables' DDL are unchanged.
``--no-analyze`` leaves SQLite without table statistics, as a database that
never ran ``ANALYZE`` is: the query planner then guesses, and may choose
differently.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime as dt
import hashlib
import html
import json
import os
import random
import re
import statistics
import tempfile
import time
import traceback
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from flask_amazon_orders import AmazonOrders
from flask_amazon_orders.client.records import STATUS_FROM_AMAZON
from flask_amazon_orders.crypto import buyer_data_context
from flask_amazon_orders.events import Text, columns
from flask_amazon_orders.host import HostAdapter
from flask_amazon_orders.models import (
    AmazonOrder,
    AmazonOrderItem,
    OrderEvent,
    Store,
    StoreEvent,
    SyncRun,
    metadata,
)

TARGET_MEDIAN_MS = 30.0
TARGET_P95_MS = 60.0
PREFIX = "/amazon-orders"
DUMMY_URL = "http://127.0.0.1:9"  # nothing listens there; no Amazon call is made
SEED = 42
CHUNK = 10_000
#: Orders of the second store per 100 orders of the first.
STORE2_SHARE = 3
#: Every n-th order has a timeline (order events); the details page shows such orders.
EVENT_EVERY = 10
DETAIL_ORDERS = 200
SKUS = 2_000
#: The SKU searched for: a mid-popular one of the catalogue (in about 0.3 % of the
#: orders); the best-selling one, SKU-00000, is in about 15 % of the orders.
SEARCH_SKU = 150
BUYER_PAYLOADS = 64
#: Buyer data is purged from shipped or cancelled orders older than this.
BUYER_DATA_DAYS = 90

AMAZON_STATUS = {status: amazon for amazon, status in STATUS_FROM_AMAZON.items()}
#: Status mix of orders from the last three days, and of older ones.
RECENT_STATUSES = (
    ("Pending", 15),
    ("Unshipped", 45),
    ("PartiallyShipped", 5),
    ("Shipped", 30),
    ("Canceled", 5),
)
OLD_STATUSES = (("Shipped", 93), ("Canceled", 5), ("Unshipped", 1), ("PartiallyShipped", 1))
ORDER_ID_PREFIXES = ("302", "302", "302", "028", "304")
BLOCK_REASONS = (
    "Unknown SKU {sku}: no product in the shop has this SKU.",
    "Product {sku} is disabled in the shop.",
)
STORES = (
    # id, name, seller id, marketplace id, sales channel, country
    (1, "Bench Store DE", "A1BENCHSELLER1", "A1PA6795UKMFR9", "Amazon.de", "DE"),
    (2, "Bench Store FR", "A2BENCHSELLER2", "A13V1IB3VIYZZH", "Amazon.fr", "FR"),
)


class BenchHost(HostAdapter):
    """A host that links its orders (the pages show the links) and creates none."""

    def order_url(self, reference: str) -> str | None:
        return f"/shop/orders/{reference}"


def make_app(database_url: str, page_size: int = 50) -> tuple[Flask, SQLAlchemy]:
    """An app like the tests' ``make_app``, with every admin permission granted."""
    app = Flask("bench_admin")
    app.config.update(
        SECRET_KEY="bench-secret",
        SQLALCHEMY_DATABASE_URI=database_url,
        AMAZON_ORDERS_ENDPOINT=DUMMY_URL,
        AMAZON_ORDERS_LWA_URL=DUMMY_URL + "/auth/o2/token",
        AMAZON_ORDERS_LWA_CLIENT_ID="bench-client-id",
        AMAZON_ORDERS_LWA_CLIENT_SECRET="bench-client-secret",
        AMAZON_ORDERS_ADMIN_PAGE_SIZE=page_size,
        # A failing page raises in client.get, so its traceback can be shown.
        PROPAGATE_EXCEPTIONS=True,
    )
    db = SQLAlchemy()
    db.init_app(app)
    ext = AmazonOrders(app, db=db, host=BenchHost())
    ext.access_handler(lambda permission, store: True)
    return app, db


# -- filling the database ------------------------------------------------------------


def schema_fingerprint() -> str:
    """A hash of the tables' and indexes' DDL: a cached database is rebuilt when it changes."""
    dialect = sqlite.dialect()  # type: ignore[no-untyped-call]
    ddl = []
    for table in metadata.sorted_tables:
        ddl.append(str(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda index: index.name or ""):
            ddl.append(str(CreateIndex(index).compile(dialect=dialect)))
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:16]


def insert_rows(conn: sa.Connection, name: str, rows: list[dict[str, Any]]) -> None:
    """One Core ``executemany`` of ``rows`` into the table ``name`` of the models."""
    conn.execute(metadata.tables[name].insert(), rows)


def _order_id(rng: random.Random) -> str:
    return f"{rng.choice(ORDER_ID_PREFIXES)}-{rng.randrange(10**7):07d}-{rng.randrange(10**7):07d}"


def _weighted(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    values = [value for value, _weight in pairs]
    cumulative, total = [], 0
    for _value, weight in pairs:
        total += weight
        cumulative.append(total)
    return values, cumulative


@dataclasses.dataclass
class Catalogue:
    skus: list[str]
    asins: list[str]
    titles: list[str]
    prices: list[Decimal]
    cumulative: list[float]

    @classmethod
    def make(cls, rng: random.Random) -> Catalogue:
        skus = [f"SKU-{n:05d}" for n in range(SKUS)]
        asins = [f"B0{rng.randrange(36**8):08X}"[:10] for _ in range(SKUS)]
        titles = [
            f"{rng.choice(('Organic', 'Classic', 'Premium', 'Travel'))} "
            f"{rng.choice(('Tea', 'Mug', 'Lamp', 'Notebook', 'Cable', 'Bag'))} no. {n}"
            for n in range(SKUS)
        ]
        prices = [Decimal(rng.randrange(399, 19999)) / 100 for _ in range(SKUS)]
        cumulative, total = [], 0.0
        for n in range(SKUS):  # a long tail: a few SKUs sell a lot
            total += 1 / (n + 1) ** 0.8
            cumulative.append(total)
        return cls(skus, asins, titles, prices, cumulative)


def _buyer_payloads(rng: random.Random, country: str) -> list[str]:
    payloads = []
    for n in range(BUYER_PAYLOADS):
        name = f"{rng.choice(('Anna', 'Jonas', 'Marie', 'Paul', 'Lea'))} Example{n}"
        data = {
            "buyer": {"buyerName": name, "buyerEmail": f"buyer{n}@marketplace.amazon.example"},
            "shipping_address": {
                "name": name,
                "addressLine1": f"Musterstrasse {n + 1}",
                "postalCode": f"{10000 + n * 37}",
                "city": "Berlin" if country == "DE" else "Paris",
                "countryCode": country,
                "phone": f"+49 30 {1000000 + n}",
            },
        }
        payloads.append(json.dumps(data, separators=(",", ":")))
    return payloads


def _fill_store(
    conn: sa.Connection,
    rng: random.Random,
    catalogue: Catalogue,
    store: tuple[Any, ...],
    count: int,
    *,
    first_id: int,
    first_item_id: int,
    now: dt.datetime,
    payloads: list[str],
    encryptor: Any,
) -> tuple[int, int]:
    """Insert ``count`` orders of one store; returns the next free order and item ids."""
    store_id, _name, _seller, marketplace_id, sales_channel, country = store
    recent, recent_cum = _weighted(RECENT_STATUSES)
    old, old_cum = _weighted(OLD_STATUSES)
    ages = sorted((rng.random() * 365 for _ in range(count)), reverse=True)
    seen: set[str] = set()
    orders: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    order_id, item_id = first_id, first_item_id

    def flush() -> None:
        for table, rows in (
            (AmazonOrder.__tablename__, orders),
            (AmazonOrderItem.__tablename__, items),
            (OrderEvent.__tablename__, events),
        ):
            if rows:
                insert_rows(conn, table, rows)
                rows.clear()

    for age in ages:
        purchased = (now - dt.timedelta(days=age)).replace(microsecond=0)
        if age < 3:
            status = rng.choices(recent, cum_weights=recent_cum)[0]
        else:
            status = rng.choices(old, cum_weights=old_cum)[0]
        amazon_order_id = _order_id(rng)
        while amazon_order_id in seen:
            amazon_order_id = _order_id(rng)
        seen.add(amazon_order_id)
        channel = "AFN" if rng.random() < 0.35 else "MFN"
        updated = min(now, purchased + dt.timedelta(hours=rng.uniform(0.1, 72)))

        order_total = Decimal(0)
        quantity_total = 0
        for line in range(rng.choice((2, 3, 4))):
            n = rng.choices(range(SKUS), cum_weights=catalogue.cumulative)[0]
            quantity = 1 if rng.random() < 0.85 else rng.randint(2, 4)
            unit = catalogue.prices[n]
            price = unit * quantity
            shipping = Decimal("3.99") if line == 0 and channel == "MFN" else Decimal(0)
            discount = Decimal("5.00") if rng.random() < 0.05 else Decimal(0)
            total = price + shipping - discount
            shipped = quantity if status == "Shipped" else 0
            if status == "PartiallyShipped" and line == 0:
                shipped = quantity
            items.append(
                {
                    "id": item_id,
                    "order_id": order_id,
                    "order_item_id": f"{rng.randrange(10**14):014d}",
                    "asin": catalogue.asins[n],
                    "seller_sku": catalogue.skus[n],
                    "title": catalogue.titles[n],
                    "condition": "New",
                    "quantity_ordered": quantity,
                    "quantity_shipped": shipped,
                    "unit_price": unit,
                    "item_price": price,
                    "shipping_price": shipping,
                    "item_tax": (price * 19 / 119).quantize(Decimal("0.01")),
                    "shipping_tax": (shipping * 19 / 119).quantize(Decimal("0.01")),
                    "discount": discount,
                    "total": total,
                    "buyer_cancel_requested": False,
                    "buyer_cancel_reason": None,
                    "cancelled_by": "buyer" if status == "Canceled" else None,
                }
            )
            item_id += 1
            order_total += total
            quantity_total += quantity

        state = ref = number = error = host_status = imported_at = None
        if channel == "MFN" and status != "Pending" and store_id == 1:
            draw = rng.random()
            if draw < 0.9:
                state, ref = "created", str(order_id)
                number = f"T{10001 + order_id}"
                host_status = "Complete" if status in ("Shipped", "Canceled") else "Processing"
                imported_at = purchased + dt.timedelta(minutes=5)
            elif draw < 0.93:
                state = "blocked"
                error = rng.choice(BLOCK_REASONS).format(sku=items[-1]["seller_sku"])
        cancel_requested = status == "Unshipped" and rng.random() < 0.02
        purged = age > BUYER_DATA_DAYS and status in ("Shipped", "Canceled")
        orders.append(
            {
                "id": order_id,
                "store_id": store_id,
                "amazon_order_id": amazon_order_id,
                "seller_order_id": None,
                "status": status,
                "amazon_status": AMAZON_STATUS[status],
                "fulfillment_channel": channel,
                "service_level": rng.choice(("Standard", "Standard", "Expedited")),
                "marketplace_id": marketplace_id,
                "sales_channel": sales_channel,
                "programs": "PRIME" if channel == "AFN" and rng.random() < 0.5 else None,
                "purchased_at": purchased,
                "amazon_updated_at": updated,
                "earliest_ship_at": purchased + dt.timedelta(days=1),
                "latest_ship_at": purchased + dt.timedelta(days=2),
                "earliest_delivery_at": purchased + dt.timedelta(days=3),
                "latest_delivery_at": purchased + dt.timedelta(days=5),
                "currency": "EUR",
                "order_total": order_total,
                "items_count": quantity_total,
                "ship_country": country if rng.random() < 0.9 else "AT",
                "buyer_cancel_requested": cancel_requested,
                "buyer_cancel_reason": "Ordered by mistake" if cancel_requested else None,
                "host_order_ref": ref,
                "host_order_number": number,
                "host_import_state": state,
                "host_import_error": error,
                "host_import_attempts": 1 if state else 0,
                "host_imported_at": imported_at,
                "host_status": host_status,
                "buyer_data_encrypted": None
                if purged
                else encryptor.encrypt(
                    payloads[order_id % len(payloads)],
                    context=buyer_data_context(store_id, amazon_order_id),
                ),
                "first_seen_at": purchased + dt.timedelta(minutes=2),
                "updated_at": updated,
            }
        )
        if order_id % EVENT_EVERY == 0:
            events.extend(_order_events(order_id, status, state, error, purchased, updated))
        order_id += 1
        if len(orders) >= CHUNK:
            flush()
    flush()
    return order_id, item_id


def _order_events(
    order_id: int,
    status: str,
    state: str | None,
    error: str | None,
    purchased: dt.datetime,
    updated: dt.datetime,
) -> Iterator[dict[str, Any]]:
    first = "Pending" if status == "Pending" else "Unshipped"
    base = {"order_id": order_id, "actor": "sync", "from_status": None, "to_status": None}
    yield {
        **base,
        "created_at": purchased + dt.timedelta(minutes=2),
        "kind": "imported",
        "to_status": first,
        **columns(Text("imported", status=first)),
    }
    if state == "created":
        yield {
            **base,
            "created_at": purchased + dt.timedelta(minutes=5),
            "kind": "host_order_created",
            **columns(Text("host_order_created", number=f"T{order_id}", host_status="Processing")),
        }
    elif state:
        yield {
            **base,
            "created_at": purchased + dt.timedelta(minutes=5),
            "kind": "host_order_blocked",
            **columns(Text("host_order_blocked", reason=error)),
        }
    if status != first:
        yield {
            **base,
            "created_at": updated,
            "kind": "status_changed",
            "from_status": first,
            "to_status": status,
            **columns(Text("status_changed", status=status)),
        }


def _fill_stores_and_logs(conn: sa.Connection, now: dt.datetime, rng: random.Random) -> None:
    insert_rows(
        conn,
        Store.__tablename__,
        [
            {
                "id": store_id,
                "name": name,
                "seller_id": seller_id,
                "region": "eu",
                "marketplace_id": marketplace_id,
                "refresh_token_encrypted": None,
                "order_import_enabled": store_id == 1,
                "import_initial_status": "Processing",
                "order_number_source": "host",
                "active": True,
                "connected_at": now - dt.timedelta(days=400),
                "sync_cursor": now - dt.timedelta(minutes=7),
                "last_sync_at": now - dt.timedelta(minutes=5),
                "last_sync_succeeded_at": now - dt.timedelta(minutes=5 if store_id == 1 else 65),
                "last_sync_error": None if store_id == 1 else "Amazon answered 503 (try again)",
                "last_sync_error_needs_action": False,
                "created_at": now - dt.timedelta(days=400),
                "updated_at": now - dt.timedelta(minutes=5),
            }
            for store_id, name, seller_id, marketplace_id, _channel, _country in STORES
        ],
    )
    runs, store_events = [], []
    for store_id, count in ((1, 500), (2, 100)):
        for n in range(count):
            started = now - dt.timedelta(minutes=5 + 15 * (count - n))
            failed = store_id == 2 and n % 10 == 9
            seen = rng.randrange(0, 40)
            runs.append(
                {
                    "store_id": store_id,
                    "trigger": rng.choice(("worker", "worker", "cli", "admin")),
                    "status": "failed" if failed else "succeeded",
                    "started_at": started,
                    "finished_at": started + dt.timedelta(seconds=rng.uniform(1, 20)),
                    "window_after": started - dt.timedelta(minutes=20),
                    "window_before": started - dt.timedelta(minutes=2),
                    "pages": 1,
                    "orders_seen": seen,
                    "orders_created": seen // 2,
                    "orders_updated": seen - seen // 2,
                    "api_calls": 2,
                    "throttled": 0,
                    "error": "Amazon answered 503 (try again)" if failed else None,
                    "error_code": "ServiceUnavailable" if failed else None,
                }
            )
        for n in range(40):
            store_events.append(
                {
                    "store_id": store_id,
                    "created_at": now - dt.timedelta(days=400 - n * 9),
                    "kind": ("store_connected", "settings_changed", "sync_requested")[min(n, 2)],
                    "actor": "admin:bench",
                    **columns(
                        None
                        if n % 3
                        else Text("settings_changed", changes=[Text("order_import_on")])
                    ),
                }
            )
    insert_rows(conn, SyncRun.__tablename__, runs)
    insert_rows(conn, StoreEvent.__tablename__, store_events)


def fill(path: str, orders: int, *, analyze: bool) -> float:
    """Create the tables in a new SQLite file at ``path`` and fill them; returns seconds."""
    started = time.perf_counter()
    app, db = make_app("sqlite:///" + path)
    rng = random.Random(SEED)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    catalogue = Catalogue.make(rng)
    with app.app_context():
        db.create_all()
        encryptor = app.extensions["amazon_orders"].extension.encryptor
        with db.engine.connect() as conn:
            # A page cache that holds the indexes being filled (the default is 2 MiB).
            conn.exec_driver_sql("PRAGMA cache_size = -262144")
            _fill_stores_and_logs(conn, now, rng)
            next_id, next_item = 1, 1
            for store in STORES:
                count = orders if store[0] == 1 else max(30, orders * STORE2_SHARE // 100)
                next_id, next_item = _fill_store(
                    conn,
                    rng,
                    catalogue,
                    store,
                    count,
                    first_id=next_id,
                    first_item_id=next_item,
                    now=now,
                    payloads=_buyer_payloads(rng, store[5]),
                    encryptor=encryptor,
                )
            conn.commit()
            if analyze:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        db.engine.dispose()
    return time.perf_counter() - started


def database(path: str | None, orders: int, *, analyze: bool, tmp: str) -> tuple[str, str]:
    """The SQLite file to measure: filled now (at ``path``, or in ``tmp``), or reused;
    returns it and what was done."""
    params = {"orders": orders, "seed": SEED, "analyze": analyze, "schema": schema_fingerprint()}
    keep = path is not None
    if path is None:
        path = os.path.join(tmp, f"orders-{orders}.sqlite")
    else:
        path = os.path.abspath(path)
        try:
            with open(path + ".json") as info:
                if json.load(info) == params and os.path.exists(path):
                    return path, f"reused {path}"
        except (OSError, ValueError):
            pass
        for stale in (path, path + ".json"):
            if os.path.exists(stale):
                os.remove(stale)
    seconds = fill(path, orders, analyze=analyze)
    if keep:
        with open(path + ".json", "w") as info:
            json.dump(params, info)
    return path, f"filled in {seconds:.1f} s"


# -- measuring -----------------------------------------------------------------------


class SQLRecorder:
    """Counts the SQL statements run on an engine, and keeps them on demand."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.keep = False
        self.statements: list[tuple[str, Any]] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)

    def reset(self, *, keep: bool = False) -> None:
        self.count, self.keep, self.statements = 0, keep, []

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        self.count += 1
        if self.keep:
            self.statements.append((statement, parameters))


#: Statements per request, by (database, page size); "ERR" when the page failed there.
Counts = dict[tuple[str, int], "set[int] | str"]


@dataclasses.dataclass
class Page:
    label: str
    urls: list[str]


@dataclasses.dataclass
class Result:
    times_ms: list[float] = dataclasses.field(default_factory=list)
    queries: set[int] = dataclasses.field(default_factory=set)
    shows: str = ""
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.times_ms, n=20, method="inclusive")[18]

    @property
    def fast(self) -> bool:
        return self.median < TARGET_MEDIAN_MS and self.p95 < TARGET_P95_MS


_SHOWS = re.compile(r'role="status">(.*?)</p>', re.S)


def _shows(body: str) -> str:
    """The order list's "Orders 1-50 of 100,000" line, as plain text."""
    found = _SHOWS.search(body)
    if not found:
        return ""
    text = html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))
    return " ".join(text.replace("\u2013", "-").split())


def measure(
    app: Flask, recorder: SQLRecorder, pages: list[Page], *, requests: int, warmup: int
) -> list[Result]:
    """Request every page ``warmup + requests`` times, timing the last ``requests``.

    The pages take turns (one request of each per round), so that a burst of load
    on this shared machine falls on all of them alike. A page that fails is not
    requested again; its result holds the error.
    """
    results = [Result() for _ in pages]
    client = app.test_client()
    for n in range(warmup + requests):
        for page, result in zip(pages, results, strict=True):
            if result.error:
                continue
            url = page.urls[n % len(page.urls)]
            recorder.reset()
            started = time.perf_counter()
            try:
                response = client.get(url)
            except Exception:
                result.error = f"GET {url} raised:\n{traceback.format_exc()}"
                continue
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                body = response.get_data(as_text=True)
                result.error = f"GET {url} answered {response.status_code}:\n{body[:2000]}"
                continue
            if n == 0:
                result.shows = _shows(response.get_data(as_text=True))
            if n >= warmup:
                result.queries.add(recorder.count)
                result.times_ms.append(elapsed * 1000)
    return results


def pages_for(app: Flask, db: SQLAlchemy) -> list[Page]:
    """The pages to measure, with search values taken from this database."""
    with app.app_context():
        session = db.session
        total = session.scalar(sa.select(sa.func.count()).where(AmazonOrder.store_id == 1)) or 0
        step = max(EVENT_EVERY, total // DETAIL_ORDERS // EVENT_EVERY * EVENT_EVERY)
        detail_ids = list(range(EVENT_EVERY, total + 1, step))[:DETAIL_ORDERS]
        details = list(
            session.scalars(
                sa.select(AmazonOrder.amazon_order_id)
                .where(AmazonOrder.store_id == 1, AmazonOrder.id.in_(detail_ids))
                .order_by(AmazonOrder.id)
            )
        )
        host_number = session.scalar(
            sa.select(AmazonOrder.host_order_number)
            .where(AmazonOrder.store_id == 1, AmazonOrder.host_order_number.is_not(None))
            .order_by(AmazonOrder.id)
            .offset(total // 2)
            .limit(1)
        )
        db.session.remove()
    today = dt.datetime.now(dt.timezone.utc).date()
    date_from = (today - dt.timedelta(days=200)).isoformat()
    date_to = (today - dt.timedelta(days=170)).isoformat()
    orders = f"{PREFIX}/stores/1/orders"
    rng = random.Random(SEED)
    rng.shuffle(details)
    return [
        Page("store cards", [f"{PREFIX}/"]),
        Page("store dashboard", [f"{PREFIX}/stores/1"]),
        Page("all orders, page 1", [orders]),
        Page("all orders, page 1500", [f"{orders}?page=1500"]),
        Page("Shipped, page 1000", [f"{orders}?status=Shipped&page=1000"]),
        Page("30 days range, page 1", [f"{orders}?from={date_from}&to={date_to}"]),
        Page("30 days range, page 100", [f"{orders}?from={date_from}&to={date_to}&page=100"]),
        Page("MFN blocked, page 1", [f"{orders}?channel=MFN&imported=blocked"]),
        Page("oldest first, page 1000", [f"{orders}?sort=oldest&page=1000"]),
        Page("search SKU", [f"{orders}?q=SKU-{SEARCH_SKU:05d}"]),
        Page("search best-selling SKU", [f"{orders}?q=SKU-00000"]),
        Page("search order id prefix", [f"{orders}?q={details[0][:6]}"]),
        Page("search shop order no.", [f"{orders}?q={host_number}"]),
        Page(f"order details (x{len(details)})", [f"{orders}/{order}" for order in details]),
    ]


def statement_times(
    app: Flask, db: SQLAlchemy, recorder: SQLRecorder, url: str, repeat: int = 5
) -> list[tuple[float, str, Any]]:
    """The SQL statements of one request of ``url``, each run again alone on the raw
    connection, rows fetched: (median ms, statement, parameters), slowest first.

    (Timing ``cursor.execute`` inside the request would miss the work SQLite does
    while the rows are fetched.)"""
    client = app.test_client()
    recorder.reset(keep=True)
    client.get(url)
    captured = recorder.statements
    recorder.reset()
    timed = []
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            for statement, parameters in captured:
                runs = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    raw.cursor().execute(statement, parameters).fetchall()
                    runs.append((time.perf_counter() - started) * 1000)
                timed.append((statistics.median(runs), statement, parameters))
        finally:
            raw.close()
    return sorted(timed, key=lambda entry: entry[0], reverse=True)


def _short(statement: str) -> str:
    """The statement on one line, a long column list shortened."""
    statement = " ".join(statement.split())
    found = re.match(r"SELECT (.*?) FROM ", statement)
    if found and len(found.group(1)) > 120:
        columns = found.group(1).count(",") + 1
        first = found.group(1).split(",")[0]
        statement = f"SELECT {first}, ... ({columns} columns) FROM " + statement[found.end() :]
    return statement


def explain(app: Flask, db: SQLAlchemy, timed: list[tuple[float, str, Any]], top: int) -> None:
    """The slowest statements with SQLite's query plan."""
    with app.app_context(), db.engine.connect() as conn:
        for ms, statement, parameters in timed[:top]:
            shown = repr(parameters)
            shown = shown if len(shown) < 100 else shown[:90] + f"... ({len(parameters)})"
            print(f"  -- {ms:.1f} ms alone, parameters {shown}")
            print("    " + _short(statement))
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            for row in plan:
                print(f"      plan: {row[3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders of store 1")
    parser.add_argument("--small", type=int, default=1_000, help="orders of the small database")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first")
    parser.add_argument("--reuse", metavar="PATH", help="keep the big database here, reuse it")
    parser.add_argument("--no-analyze", action="store_true", help="do not run ANALYZE")
    parser.add_argument("--explain", action="store_true", help="show query plans of every page")
    parser.add_argument("--top", type=int, default=3, help="statements explained per page")
    args = parser.parse_args()
    analyze = not args.no_analyze

    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="bench_admin_")
    atexit.register(tmp.cleanup)
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    big_path, how = database(args.reuse, args.orders, analyze=analyze, tmp=tmp.name)
    print(f"big database: {args.orders:,} orders for store 1 ({how})")
    small_path, how = database(None, args.small, analyze=analyze, tmp=tmp.name)
    print(f"small database: {args.small:,} orders for store 1 ({how})")
    engine = sa.create_engine("sqlite:///" + big_path)
    with engine.connect() as conn:
        counts = {
            table: conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))
            for table in ("amazon_orders", "amazon_order_items", "amazon_order_events")
        }
    engine.dispose()
    print(
        "big database rows: "
        + ", ".join(f"{table} {count:,}" for table, count in counts.items())
        + f"; {os.path.getsize(big_path) / 2**20:.0f} MiB"
    )

    apps: dict[tuple[str, int], tuple[Flask, SQLAlchemy, SQLRecorder]] = {}
    for name, path in (("small", small_path), ("big", big_path)):
        for size in (10, 50):
            app, db = make_app("sqlite:///" + path, page_size=size)
            with app.app_context():
                recorder = SQLRecorder(db.engine)
            apps[name, size] = (app, db, recorder)

    app, db, recorder = apps["big", 50]
    pages = pages_for(app, db)
    small_pages = pages_for(*apps["small", 50][:2])
    big_results = measure(app, recorder, pages, requests=args.requests, warmup=args.warmup)
    counts_by_page: list[Counts] = [{("big", 50): result.queries} for result in big_results]
    for key, (other_app, _db, other_recorder) in apps.items():
        if key == ("big", 50):
            continue
        other_pages = small_pages if key[0] == "small" else pages
        repeat = min(max(len(page.urls) for page in other_pages), 5) + 1
        others = measure(other_app, other_recorder, other_pages, requests=repeat, warmup=1)
        for counts_by, other in zip(counts_by_page, others, strict=True):
            counts_by[key] = "ERR" if other.error else other.queries
    results: list[tuple[Page, Result, Counts, list[tuple[float, str, Any]]]] = []
    for page, result, counts_by in zip(pages, big_results, counts_by_page, strict=True):
        timed = [] if result.error else statement_times(app, db, recorder, page.urls[0])
        results.append((page, result, counts_by, timed))

    def fmt(counts: set[int] | str) -> str:
        if isinstance(counts, str):
            return counts
        return "/".join(str(count) for count in sorted(counts)) if counts else "-"

    print(
        f"\n{args.requests} timed requests per page after {args.warmup} warm-up, server-side "
        f"(Flask test client, page size 50, {args.orders:,} orders); target: median < "
        f"{TARGET_MEDIAN_MS:.0f} ms, p95 < {TARGET_P95_MS:.0f} ms, queries constant"
    )
    print(
        "sql: the request's statements run again alone, rows fetched (the rest is Python: "
        "ORM, templates)\nqueries: SQL statements per request with page size 10 / 50, "
        f"on {args.small:,} and on {args.orders:,} orders"
    )
    header = (
        f"{'page':<28} {'median':>7} {'p95':>7} {'sql':>6}  "
        f"{'queries small':>13} {'queries big':>11}  {'target':<14} shows"
    )
    print(header)
    print(f"{'':<28} {'ms':>7} {'ms':>7} {'ms':>6}")
    print("-" * (len(header) + 24))
    to_explain = []
    for page, result, counts_by, timed in results:
        small = f"{fmt(counts_by['small', 10])} / {fmt(counts_by['small', 50])}"
        big = f"{fmt(counts_by['big', 10])} / {fmt(counts_by['big', 50])}"
        if result.error:
            print(f"{page.label:<28} {'ERROR':>7} {'':>7} {'':>6}  {small:>13} {big:>11}  ERROR")
            to_explain.append((page, result, timed))
            continue
        seen = [counts for counts in counts_by.values() if not isinstance(counts, str)]
        constant = len(seen) == len(counts_by) and len(set().union(*seen)) == 1
        misses = [what for what, ok in (("time", result.fast), ("queries", constant)) if not ok]
        verdict = f"MISS ({', '.join(misses)})" if misses else "ok"
        print(
            f"{page.label:<28} {result.median:7.1f} {result.p95:7.1f} "
            f"{sum(entry[0] for entry in timed):6.1f}  {small:>13} {big:>11}  "
            f"{verdict:<14} {result.shows}"
        )
        if misses or args.explain:
            to_explain.append((page, result, timed))
    print(
        f"\ntotal run time {time.perf_counter() - started:.0f} s; load average after: "
        + " ".join(f"{load:.2f}" for load in os.getloadavg())
    )

    for page, result, timed in to_explain:
        print(f"\n== {page.label}: GET {page.urls[0]}")
        if result.error:
            print(result.error)
            continue
        print(f"  {len(timed)} statements, {sum(entry[0] for entry in timed):.1f} ms alone")
        explain(app, db, timed, args.top)


if __name__ == "__main__":
    main()
