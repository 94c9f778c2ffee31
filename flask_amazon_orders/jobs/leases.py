"""Per-store leases: one sync and one feed job per store at a time, across processes.

A lease is two columns of the store (until when, and who holds it), taken with a
compare-and-set ``UPDATE`` that succeeds only when the lease is free or has
expired, so a crashed worker's store is picked up again once its lease runs out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ..errors import AmazonOrdersError
from ..models import Store, utcnow


class LeaseLost(AmazonOrdersError):
    """Another worker took the store's lease (this run outlived it): the run stops."""


_COLUMNS = {
    "sync": (Store.sync_lease_until, Store.sync_lease_owner),
    "feeds": (Store.feed_lease_until, Store.feed_lease_owner),
}


def acquire(session: Any, store_id: int, owner: str, kind: str, duration: dt.timedelta) -> bool:
    """Take the store's ``kind`` lease for ``duration`` unless someone else holds it."""
    until, holder = _COLUMNS[kind]
    now = utcnow()
    result = session.execute(
        sa.update(Store)
        .where(Store.id == store_id, sa.or_(until.is_(None), until < now))
        .values({until: now + duration, holder: owner})
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount)


def release(session: Any, store_id: int, owner: str, kind: str) -> None:
    """Give the lease back (only if ``owner`` still holds it)."""
    until, holder = _COLUMNS[kind]
    session.execute(
        sa.update(Store)
        .where(Store.id == store_id, holder == owner)
        .values({until: None, holder: None})
        .execution_options(synchronize_session=False)
    )
    session.commit()


def renew(session: Any, store_id: int, owner: str, kind: str, duration: dt.timedelta) -> bool:
    """Extend the lease ``owner`` holds; ``False`` if it was lost (expired and taken)."""
    until, holder = _COLUMNS[kind]
    result = session.execute(
        sa.update(Store)
        .where(Store.id == store_id, holder == owner)
        .values({until: utcnow() + duration})
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def lock_orders(session: Any, store_id: int) -> None:
    """Hold the store's orders for the rest of the current transaction.

    Two writers store Amazon's copies of one store's orders: the sync (a page at
    a time, under its lease) and the targeted refresh of one order after a
    notification (:func:`~flask_amazon_orders.jobs.sync.refresh_order`), which
    does not wait for a sync that may take hours. Each takes this lock before it
    reads what is stored, so the second one sees what the first one committed and
    the guards against older copies hold. The lock is held for milliseconds, until
    the commit or rollback, never across a call to Amazon.

    On PostgreSQL it is a transaction-scoped advisory lock of its own, not a row
    lock: every writer takes order rows before the store's row (see
    :mod:`~flask_amazon_orders.jobs.sync`), so a lock on the store's row taken
    before the orders could deadlock with the feed job. Elsewhere an ``UPDATE`` of
    the store row that changes nothing takes the database's write lock (SQLite
    has one writer at a time).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_NAMESPACE, store_id)))
        return
    session.execute(
        sa.update(Store)
        .where(Store.id == store_id)
        .values({Store.sync_lease_until: Store.sync_lease_until})
        .execution_options(synchronize_session=False)
    )


#: The first key of the advisory lock of :func:`lock_orders` (the second is the store id).
_ADVISORY_NAMESPACE = 0x414F  # "AO"
