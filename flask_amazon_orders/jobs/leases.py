"""Per-store leases: one sync and one feed job per store at a time, across processes.

A lease is two columns of the store (until when, and who holds it), taken with a
compare-and-set ``UPDATE`` that succeeds only when the lease is free or has
expired, so a crashed worker's store is picked up again once its lease runs out.

The holder's name (:func:`new_owner`) tells which machine and process hold it.
A worker that finds the lease held by a process of its own machine that no
longer exists (killed, crashed, its container restarted in the same PID
namespace) takes it over at once, instead of waiting until it runs out: a
restarted worker goes on at once. A lease held on another machine is left alone
until it runs out, since only that machine can tell whether its holder lives.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import os
import socket
import sys
import uuid
from typing import Any

import sqlalchemy as sa

from ..errors import AmazonOrdersError
from ..models import Store, utcnow

log = logging.getLogger("flask_amazon_orders.leases")


class LeaseLost(AmazonOrdersError):
    """Another worker took the store's lease (this run outlived it): the run stops."""


_COLUMNS = {
    "sync": (Store.sync_lease_until, Store.sync_lease_owner),
    "feeds": (Store.feed_lease_until, Store.feed_lease_owner),
}
#: Owner names are ``<machine>.<pid>.<random>``, at most 32 characters.
_MACHINE_CHARS = 10
_OWNER_CHARS = 32


@functools.cache
def _machine() -> str:
    """This machine's name for leases: the host name and, on Linux, the boot and
    the PID namespace, so that process ids compare only where they mean the same."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            parts.append(boot.read().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:_MACHINE_CHARS]


def new_owner() -> str:
    """A new lease holder's name for one run of this process."""
    head = f"{_machine()}.{os.getpid()}."
    return head + uuid.uuid4().hex[: _OWNER_CHARS - len(head)]


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this machine (a zombie counts as gone)."""
    if pid <= 0 or pid == os.getpid() or os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by someone else
        return False
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return False
    return False


def holder_gone(owner: str | None) -> bool:
    """Whether ``owner`` names a process of this machine that no longer exists."""
    if not owner:
        return False
    machine, _, rest = owner.partition(".")
    pid, _, _ = rest.partition(".")
    if machine != _machine() or not pid.isdigit():
        return False
    return _process_gone(int(pid))


def acquire(session: Any, store_id: int, owner: str, kind: str, duration: dt.timedelta) -> bool:
    """Take the store's ``kind`` lease for ``duration`` unless someone else holds it.

    A lease whose holder is a process of this machine that is gone is taken over.
    """
    until, holder = _COLUMNS[kind]
    now = utcnow()
    result = session.execute(
        sa.update(Store)
        .where(Store.id == store_id, sa.or_(until.is_(None), until < now))
        .values({until: now + duration, holder: owner})
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount:
        return True
    held_by = session.scalar(sa.select(holder).where(Store.id == store_id))
    session.commit()
    if not holder_gone(held_by):
        return False
    # Compare-and-set on the dead holder: of two workers restarted at once, one wins.
    result = session.execute(
        sa.update(Store)
        .where(Store.id == store_id, holder == held_by)
        .values({until: now + duration, holder: owner})
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount:
        log.warning(
            "store %s: took over the %s lease of a worker process that is gone (%s)",
            store_id,
            kind,
            held_by,
        )
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
