"""The sync's bulk writes: ``bulk_insert`` (COPY on PostgreSQL) and ``select_store_orders``.

Both run on SQLite and on PostgreSQL; on PostgreSQL ``bulk_insert`` takes the
``COPY`` path, so these tests hold it to what an ``INSERT`` stores.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store

from flask_amazon_orders.jobs.sync import sync_store
from flask_amazon_orders.models import (
    AmazonOrder,
    AmazonOrderItem,
    OrderEvent,
    bulk_insert,
    metadata,
    select_store_orders,
)

ITEMS = metadata.tables["amazon_order_items"]
EVENTS = metadata.tables["amazon_order_events"]


def _item(order_id: int, n: int, **values: Any) -> dict[str, Any]:
    row = {
        "order_id": order_id,
        "order_item_id": f"bulk-{n}",
        "asin": "B000TEST01",
        "seller_sku": "SKU-ÄÖÜ\t\\tab",  # COPY's own escapes: tab and backslash
        "title": "Line one\nline two",
        "quantity_ordered": 3,
        "unit_price": Decimal("19.99"),
        "item_price": Decimal("59.97"),
        "total": None,
        "buyer_cancel_requested": True,
    }
    row.update(values)
    return row


def _stored_items(db: Any, order_id: int) -> list[tuple[Any, ...]]:
    items = db.session.scalars(
        sa.select(AmazonOrderItem)
        .where(AmazonOrderItem.order_id == order_id, AmazonOrderItem.order_item_id.like("bulk-%"))
        .order_by(AmazonOrderItem.order_item_id)
    )
    return [
        (
            item.asin,
            item.seller_sku,
            item.title,
            item.quantity_ordered,
            item.quantity_shipped,  # not given: its default
            item.unit_price,
            item.item_price,
            item.total,
            item.buyer_cancel_requested,
        )
        for item in items
    ]


@pytest.fixture
def orders(db, store, seller, sandbox) -> list[AmazonOrder]:
    sandbox.control.generate_orders(seller["seller_id"], 3, seed=7)
    assert sync_store(store).status == "succeeded"
    return list(db.session.scalars(sa.select(AmazonOrder).order_by(AmazonOrder.id)))


def test_bulk_insert_stores_what_an_insert_stores(db, orders):
    first, second = orders[0].id, orders[1].id
    db.session.execute(sa.insert(ITEMS), [_item(first, 1), _item(first, 2, total=Decimal("5"))])
    bulk_insert(db.session, ITEMS, [_item(second, 1), _item(second, 2, total=Decimal("5"))])
    db.session.commit()

    expected = _stored_items(db, first)
    assert len(expected) == 2
    assert _stored_items(db, second) == expected
    assert expected[0][1:3] == ("SKU-ÄÖÜ\t\\tab", "Line one\nline two")
    assert expected[0][4] == 0 and expected[1][7] == Decimal("5.00")


def test_bulk_insert_fills_python_defaults_and_keeps_aware_times(db, orders):
    when = dt.datetime(2026, 11, 30, 8, 15, 30, 123456, tzinfo=dt.timezone.utc)
    before = dt.datetime.now(dt.timezone.utc)
    bulk_insert(
        db.session,
        EVENTS,
        [
            {"order_id": orders[0].id, "kind": "bulk_test", "created_at": when, "message": None},
            {"order_id": orders[1].id, "kind": "bulk_test", "created_at": when, "message": "ok"},
        ],
    )
    # No created_at and no actor: their defaults (now, "sync"), as an INSERT fills them.
    bulk_insert(db.session, EVENTS, [{"order_id": orders[2].id, "kind": "bulk_default"}])
    db.session.commit()

    events = db.session.scalars(
        sa.select(OrderEvent).where(OrderEvent.kind.like("bulk_%")).order_by(OrderEvent.id)
    ).all()
    assert [(e.order_id, e.created_at, e.actor, e.message) for e in events[:2]] == [
        (orders[0].id, when, "sync", None),
        (orders[1].id, when, "sync", "ok"),
    ]
    assert events[2].actor == "sync"
    assert before <= events[2].created_at <= dt.datetime.now(dt.timezone.utc)


def test_bulk_insert_of_a_bad_value_raises_and_stores_nothing(db, orders):
    naive = dt.datetime(2026, 11, 30, 8, 0)
    rows = [
        {"order_id": orders[0].id, "kind": "bulk_bad", "created_at": naive.replace(tzinfo=dt.UTC)},
        {"order_id": orders[0].id, "kind": "bulk_bad", "created_at": naive},
    ]
    with pytest.raises((ValueError, sa.exc.StatementError)):
        bulk_insert(db.session, EVENTS, rows)
    db.session.rollback()
    assert not db.session.scalar(
        sa.select(sa.func.count()).select_from(OrderEvent).where(OrderEvent.kind == "bulk_bad")
    )


def test_bulk_insert_of_nothing_does_nothing(db, orders):
    bulk_insert(db.session, EVENTS, [])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OrderEvent)) == len(orders)


def test_select_store_orders_finds_exactly_that_stores_orders(db, ext, orders, sandbox):
    other_seller = sandbox.control.create_seller()
    other = connect_store(other_seller, name="Other")
    # The same Amazon order id in another store (a second marketplace account).
    twin = AmazonOrder(
        store_id=other.id,
        amazon_order_id=orders[0].amazon_order_id,
        status="Unshipped",
        amazon_status="UNSHIPPED",
        purchased_at=orders[0].purchased_at,
        amazon_updated_at=orders[0].amazon_updated_at,
    )
    db.session.add(twin)
    db.session.commit()
    wanted = [orders[0].amazon_order_id, orders[2].amazon_order_id, "999-0000000-0000000"]

    found = db.session.execute(
        select_store_orders(
            db.session, orders[0].store_id, wanted, AmazonOrder.id, AmazonOrder.amazon_order_id
        )
    ).all()
    assert sorted(found) == sorted(
        [(orders[0].id, orders[0].amazon_order_id), (orders[2].id, orders[2].amazon_order_id)]
    )
    assert db.session.execute(
        select_store_orders(db.session, other.id, wanted, AmazonOrder.id)
    ).all() == [(twin.id,)]
    assert (
        db.session.execute(select_store_orders(db.session, other.id, [], AmazonOrder.id)).all()
        == []
    )
