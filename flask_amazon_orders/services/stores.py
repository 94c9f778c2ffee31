"""Connecting, listing and configuring stores: the one code path for the CLI, the
admin pages and the API. Every change is recorded in the store's activity log
(:class:`~flask_amazon_orders.models.StoreEvent`) with who made it."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from .. import events
from ..config import MARKETPLACES, resolve_marketplace
from ..crypto import refresh_token_context
from ..errors import ConfigurationError
from ..extension import get_extension
from ..i18n import _
from ..models import Store, StoreEvent, utcnow

_SELLER_ID = re.compile(r"^[A-Z0-9]{6,40}$")


class StoreExistsError(ConfigurationError):
    """A store for this seller and marketplace is already connected."""


def add_store(
    *,
    name: str,
    seller_id: str,
    marketplace: str,
    refresh_token: str,
    region: str | None = None,
    order_import_enabled: bool = False,
    actor: str = "api",
) -> Store:
    """Connect one Amazon seller account in one marketplace.

    :param name: what admins call the store, e.g. ``"Amazon DE"``.
    :param seller_id: Amazon's seller id (merchant token), e.g. ``A2EXAMPLE1SELLER``.
    :param marketplace: a marketplace id or a country code (``DE``).
    :param refresh_token: the LWA refresh token of the seller's authorization;
        stored encrypted.
    :param region: ``na``, ``eu`` or ``fe``; derived from the marketplace when omitted.
    :param order_import_enabled: the order import toggle.
    :param actor: who connects it, for the activity log (``cli``, ``admin:<name>`` …).
    :raises ConfigurationError: a value is invalid or the store exists already.
    """
    ext = get_extension()
    name = name.strip()
    if not name or len(name) > 120:
        raise ConfigurationError(_("The store name must be 1 to 120 characters."))
    seller_id = seller_id.strip().upper()
    if not _SELLER_ID.match(seller_id):
        raise ConfigurationError(
            _(
                "%(value)r is not an Amazon seller id (6 to 40 letters and digits).",
                value=seller_id,
            )
        )
    marketplace_id = resolve_marketplace(marketplace)
    expected_region = MARKETPLACES[marketplace_id][1]
    if region is None:
        region = expected_region
    elif region.lower() != expected_region:
        raise ConfigurationError(
            _(
                "Marketplace %(marketplace)s belongs to region %(expected)r, not %(region)r.",
                marketplace=marketplace_id,
                expected=expected_region,
                region=region,
            )
        )
    refresh_token = _refresh_token(refresh_token)
    session = ext.session
    _refuse_if_connected(session, seller_id, marketplace_id)
    store = Store(
        name=name,
        seller_id=seller_id,
        region=region.lower(),
        marketplace_id=marketplace_id,
        refresh_token_encrypted=ext.encryptor.encrypt(
            refresh_token, context=refresh_token_context(seller_id, marketplace_id)
        ),
        order_import_enabled=order_import_enabled,
    )
    session.add(store)
    try:
        session.flush()
    except sa.exc.IntegrityError:
        # Connected by someone else at the same moment (the unique key decides).
        session.rollback()
        _refuse_if_connected(session, seller_id, marketplace_id)
        raise
    record(
        store,
        "store_connected",
        actor,
        events.Text("store_connected", name=name, seller=seller_id, marketplace=marketplace_id),
    )
    session.commit()
    return store


def _refuse_if_connected(session: Any, seller_id: str, marketplace_id: str) -> None:
    """:class:`StoreExistsError` if the seller is connected in the marketplace already."""
    exists = session.scalar(
        sa.select(Store.id).where(
            Store.seller_id == seller_id, Store.marketplace_id == marketplace_id
        )
    )
    if exists is not None:
        raise StoreExistsError(
            _(
                "Seller %(seller)s in marketplace %(marketplace)s is already connected "
                "(store %(store)s).",
                seller=seller_id,
                marketplace=marketplace_id,
                store=exists,
            )
        )


def record(store: Store | int, kind: str, actor: str, text: events.Text | None = None) -> None:
    """Add an entry to the store's activity log (in the session; the caller commits)."""
    store_id = store if isinstance(store, int) else store.id
    get_extension().session.add(
        StoreEvent(store_id=store_id, kind=kind, actor=actor[:120], **events.columns(text))
    )


def _refresh_token(value: str) -> str:
    token = value.strip()
    if not token:
        raise ConfigurationError(_("Enter the refresh token."))
    if len(token) > 2048 or any(c.isspace() for c in token):
        # Never echo it: a mistyped token may still be a secret.
        raise ConfigurationError(
            _("That is not a refresh token (one line, no spaces, at most 2,048 characters).")
        )
    return token


def set_refresh_token(store: Store | int, refresh_token: str, *, actor: str = "api") -> Store:
    """Give ``store`` a new refresh token, after the seller authorized the app again.

    Clears a sync error that asked for it; the next sync uses the new token.
    """
    ext = get_extension()
    loaded = get_store(store)
    token = _refresh_token(refresh_token)
    loaded.refresh_token_encrypted = ext.encryptor.encrypt(
        token, context=refresh_token_context(loaded.seller_id, loaded.marketplace_id)
    )
    # The errors that asked for it are answered; a run that still fails says so again.
    if loaded.last_sync_error_needs_action:
        loaded.last_sync_error = None
        loaded.last_sync_error_needs_action = False
    if loaded.last_feed_error_needs_action:
        loaded.last_feed_error = None
        loaded.last_feed_error_needs_action = False
    loaded.sync_requested_at = utcnow()
    record(loaded, "refresh_token_updated", actor)
    ext.session.commit()
    ext.wake_worker("sync", loaded.id)
    return loaded


def request_sync(store: Store | int, *, actor: str = "admin") -> bool:
    """Ask for a sync of ``store`` now ("Sync now"), without running it here.

    The request is stored on the store and the embedded worker, if this process
    runs one, is woken; a worker elsewhere (cron's ``flask amazon-orders sync``,
    Celery) syncs every store at its next run. Returns whether a worker of this
    process was woken.
    """
    ext = get_extension()
    loaded = get_store(store)
    loaded.sync_requested_at = utcnow()
    record(loaded, "sync_requested", actor)
    ext.session.commit()
    return ext.wake_worker("sync", loaded.id)


def list_stores(*, active_only: bool = False) -> list[Store]:
    """Every connected store, by id."""
    query = sa.select(Store).order_by(Store.id)
    if active_only:
        query = query.where(Store.active.is_(True))
    return list(get_extension().session.scalars(query))


def get_store(store: Store | int) -> Store:
    """The store (freshly loaded in the session) for a store or its id; :class:`LookupError`
    if there is none."""
    store_id = store if isinstance(store, int) else store.id
    loaded = get_extension().session.get(Store, store_id)
    if loaded is None:
        raise LookupError(f"No store with id {store_id}.")
    return loaded


def find_store(ref: str | int) -> Store:
    """A store by id or by exact name; :class:`LookupError` if there is none."""
    session = get_extension().session
    store = None
    if isinstance(ref, int) or str(ref).isdigit():
        store = session.get(Store, int(ref))
    if store is None:
        store = session.scalar(sa.select(Store).where(Store.name == str(ref)))
    if store is None:
        raise LookupError(f"No store {ref!r}; 'flask amazon-orders store list' shows them.")
    return store


NUMBER_SOURCES = ("host", "amazon")
#: How the activity log names them.
_NUMBER_SOURCE_TEXTS = {
    "host": events.Text("number_source_host"),
    "amazon": events.Text("number_source_amazon"),
}


def update_order_settings(
    store: Store | int,
    *,
    initial_status: str | None = None,
    number_source: str | None = None,
    actor: str = "api",
) -> Store:
    """Change how a store's Amazon orders become host orders.

    :param initial_status: the host status a new imported order starts in.
    :param number_source: ``host`` (the shop numbers its orders) or ``amazon``
        (the Amazon order id is the order number).
    :param actor: who changes them, for the activity log.
    :raises ConfigurationError: a value is invalid; nothing is changed.

    The order import toggle itself is
    :func:`flask_amazon_orders.services.importing.set_order_import`.
    """
    session = get_extension().session
    loaded = get_store(store)
    if initial_status is not None:
        initial_status = initial_status.strip()
        if not initial_status or len(initial_status) > 40:
            raise ConfigurationError(_("The initial status must be 1 to 40 characters."))
    if number_source is not None and number_source not in NUMBER_SOURCES:
        raise ConfigurationError(
            _(
                "The order number source must be one of %(choices)s, not %(value)r.",
                choices=", ".join(NUMBER_SOURCES),
                value=number_source,
            )
        )
    changes = []
    if initial_status is not None and initial_status != loaded.import_initial_status:
        changes.append(
            events.Text(
                "initial_status_changed", old=loaded.import_initial_status, new=initial_status
            )
        )
        loaded.import_initial_status = initial_status
    if number_source is not None and number_source != loaded.order_number_source:
        old = loaded.order_number_source
        changes.append(
            events.Text(
                "number_source_changed",
                old=_NUMBER_SOURCE_TEXTS.get(old, old),
                new=_NUMBER_SOURCE_TEXTS[number_source],
            )
        )
        loaded.order_number_source = number_source
    if changes:
        record(loaded, "settings_changed", actor, events.Text("settings_changed", changes=changes))
    session.commit()
    return loaded
