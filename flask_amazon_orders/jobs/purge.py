"""The purge job: delete buyer data once its retention period has passed.

Amazon's Data Protection Policy allows keeping buyer and recipient data (names,
addresses, phone numbers, e-mail, tax ids) only as long as the order needs it.
An order needs it until it ships or is cancelled; after that it is kept for
``AMAZON_ORDERS_BUYER_DATA_RETENTION_DAYS`` (default 30) and then deleted here.
The order itself, its items, amounts and timeline stay. Each purged order gets a
``buyer_data_purged`` timeline entry, each store one activity-log entry per run,
and the purged order is marked so that a later sync never stores its buyer data
again.

The embedded worker runs it every round, ``flask amazon-orders purge`` from cron,
and a task queue may run :func:`purge_all` on a schedule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import sqlalchemy as sa

from .. import events
from ..extension import get_extension
from ..models import AmazonOrder, OrderEvent, Store, metadata, utcnow
from ..services.stores import record

log = logging.getLogger("flask_amazon_orders.purge")

#: Orders purged per transaction.
BATCH_SIZE = 500

_ORDERS = metadata.tables[AmazonOrder.__tablename__]
_EVENTS = metadata.tables[OrderEvent.__tablename__]


@dataclasses.dataclass
class PurgeRun:
    """What one purge of one store did."""

    store_id: int
    #: Orders whose buyer data was deleted.
    purged: int = 0
    #: Orders past their retention period that had no buyer data (marked only).
    marked: int = 0


def purge_store(store: Store | int, *, now: dt.datetime | None = None) -> PurgeRun:
    """Delete the buyer data of ``store``'s orders closed longer than the retention period.

    Commits every :data:`BATCH_SIZE` orders, so an interrupted purge keeps what it did.
    """
    ext = get_extension()
    session = ext.session
    store_id = store if isinstance(store, int) else store.id
    days = ext.settings.buyer_data_retention_days
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=days)
    run = PurgeRun(store_id=store_id)
    while True:
        rows = session.execute(
            sa.select(_ORDERS.c.id, _ORDERS.c.buyer_data_encrypted.is_not(None))
            .where(
                _ORDERS.c.buyer_data_purged_at.is_(None),
                _ORDERS.c.closed_at <= cutoff,
                _ORDERS.c.store_id == store_id,
            )
            .order_by(_ORDERS.c.closed_at)
            .limit(BATCH_SIZE)
        ).all()
        if not rows:
            break
        # Compare-and-set: an order that was reopened meanwhile keeps its data.
        done = set(
            session.scalars(
                sa.update(_ORDERS)
                .where(
                    _ORDERS.c.id.in_([row.id for row in rows]),
                    _ORDERS.c.buyer_data_purged_at.is_(None),
                    _ORDERS.c.closed_at <= cutoff,
                )
                .values(buyer_data_encrypted=None, buyer_data_purged_at=now)
                .returning(_ORDERS.c.id)
            )
        )
        purged = [row.id for row in rows if row.id in done and row[1]]
        if purged:
            said = events.columns(events.Text("order_buyer_data_purged", num=days))
            session.execute(
                sa.insert(_EVENTS),
                [
                    {
                        "order_id": order_id,
                        "created_at": now,
                        "kind": "buyer_data_purged",
                        "actor": "purge",
                        "from_status": None,
                        "to_status": None,
                        **said,
                    }
                    for order_id in purged
                ],
            )
        run.purged += len(purged)
        run.marked += len(done) - len(purged)
        session.commit()
        if len(rows) < BATCH_SIZE:
            break
    if run.purged:
        record(
            store_id,
            "buyer_data_purged",
            "purge",
            events.Text(
                "store_buyer_data_purged",
                num=run.purged,
                period=events.Text("retention_period", num=days),
            ),
        )
        session.commit()
        log.info(
            "store %s: buyer data of %d orders purged (retention %d days)",
            store_id,
            run.purged,
            days,
        )
    return run


def purge_all(*, now: dt.datetime | None = None) -> list[PurgeRun]:
    """Purge every store (active or not: a paused store's buyer data expires too)."""
    session = get_extension().session
    store_ids = list(session.scalars(sa.select(Store.id).order_by(Store.id)))
    return [purge_store(store_id, now=now) for store_id in store_ids]
