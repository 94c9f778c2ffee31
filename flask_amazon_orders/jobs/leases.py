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
