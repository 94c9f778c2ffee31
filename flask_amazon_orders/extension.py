"""The :class:`AmazonOrders` extension object."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

from . import config as config_module
from .client import ENDPOINTS, LWACredentials, RateLimiter, RetryPolicy, SPAPIClient
from .crypto import Encryptor, buyer_data_context, refresh_token_context
from .errors import ConfigurationError
from .models import metadata

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import scoped_session

    from .host import HostAdapter
    from .models import AmazonOrder, Store, SyncRun
    from .runners.embedded import EmbeddedWorker

EXTENSION_KEY = "amazon_orders"

log = logging.getLogger("flask_amazon_orders")

#: ``access(permission, store) -> bool``: see :meth:`AmazonOrders.access_handler`.
AccessHandler = Callable[[str, "Store | None"], bool]
#: ``actor() -> str | None``: see :meth:`AmazonOrders.actor_loader`.
ActorLoader = Callable[[], "str | None"]
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclasses.dataclass
class _State:
    """What the extension keeps per app, in ``app.extensions["amazon_orders"]``."""

    extension: AmazonOrders
    settings: config_module.Settings
    secret_key: str | None = dataclasses.field(repr=False)
    worker: EmbeddedWorker | None = None
    #: The app's rate limiter (the extension's, or one from configuration).
    rate_limiter: RateLimiter | None = None
    #: Queues a job for a store on a task queue (``(job, store_id)``), if one is set up.
    dispatch: Callable[[str, int | None], None] | None = None
    _encryptor: Encryptor | None = dataclasses.field(default=None, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @property
    def encryptor(self) -> Encryptor:
        with self._lock:
            if self._encryptor is None:
                keys: tuple[str, ...] | list[str] = self.settings.encryption_keys
                if not keys and self.secret_key:
                    keys = [self.secret_key]
                self._encryptor = Encryptor(keys)
            return self._encryptor


class AmazonOrders:
    """Connects a Flask shop to Amazon Seller Central.

    ::

        db = SQLAlchemy(app)
        amazon_orders = AmazonOrders(app, db=db)

    or, with an app factory, ``amazon_orders = AmazonOrders(db=db)`` and later
    ``amazon_orders.init_app(app)``. The extension's tables are added to
    ``db.metadata``; create them with ``db.create_all()`` or the shipped
    migrations. Configuration is read from ``AMAZON_ORDERS_*`` keys at
    :meth:`init_app`; see the configuration page of the docs.

    :param app: the Flask app, or ``None`` to call :meth:`init_app` later.
    :param db: the host's Flask-SQLAlchemy instance.
    :param host: the host contract, a :class:`~flask_amazon_orders.host.HostAdapter`
        through which the extension creates and updates the shop's own orders
        when a store's order import is enabled. It can also be set later as
        :attr:`host`.
    :param rate_limiter: where the SP-API rate-limit buckets live. The default
        is ``AMAZON_ORDERS_RATE_LIMIT_STORAGE`` (a Redis URL shared by every
        process), or without it one in-process limiter shared by every client of
        the process; several processes need a shared one.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy,
        host: HostAdapter | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if db is None:
            raise TypeError("AmazonOrders needs the host's Flask-SQLAlchemy instance: db=...")
        self.db = db
        #: The registered :class:`~flask_amazon_orders.host.HostAdapter`, or ``None``.
        self.host = host
        self.rate_limiter = rate_limiter
        #: Who may use the admin pages; see :meth:`access_handler`. ``None``: nobody.
        self.access: AccessHandler | None = None
        #: Names the acting user for the records; see :meth:`actor_loader`.
        self.actor: ActorLoader | None = None
        for table in metadata.sorted_tables:
            if table.name not in db.metadata.tables:
                table.to_metadata(db.metadata)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set up the extension for ``app``: configuration, CLI, admin pages, worker."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "Flask-Amazon-Orders is already set up on this app; call init_app once per app."
            )
        config_module.set_defaults(app.config)
        settings = config_module.load_settings(app.config)
        state = _State(
            extension=self,
            settings=settings,
            secret_key=app.config.get("SECRET_KEY"),
            rate_limiter=self.rate_limiter or _configured_limiter(settings),
        )
        app.extensions[EXTENSION_KEY] = state

        from .cli import amazon_orders_cli

        app.cli.add_command(amazon_orders_cli)

        from .i18n import init_babel

        init_babel(app)
        from . import signals
        from .services.shipping import on_host_order_shipped

        # The host tells of a shipment by sending host-order-shipped (sender: its
        # app, or current_app); the receiver serves the current app only.
        signals.host_order_shipped.connect(on_host_order_shipped, weak=False)
        if settings.admin_url_prefix is not None:
            from .admin import init_admin

            init_admin(app, settings.admin_url_prefix)

        if settings.embedded_worker:
            from .runners.embedded import EmbeddedWorker

            state.worker = EmbeddedWorker(app, interval=settings.sync_interval_seconds)
            app.before_request(state.worker.ensure_started)

    # -- the admin pages' hooks ------------------------------------------------------

    def access_handler(self, handler: _F) -> _F:
        """Register who may use the admin pages (a decorator).

        The function is called as ``handler(permission, store)`` in the request
        and returns whether the current user has ``permission``: ``"view"`` (see
        every page) or ``"manage"`` (change data: connect a store, settings, sync
        now, retry an import, cancel). ``store`` is the store the page is about,
        or ``None`` for the pages about every store. Without a handler every page
        answers 403 Forbidden. ::

            @amazon_orders.access_handler
            def can_use_amazon_orders(permission, store):
                return current_user.is_authenticated and (
                    permission == "view" or current_user.is_admin
                )
        """
        self.access = handler
        return handler

    def actor_loader(self, handler: _F) -> _F:
        """Register how the acting user is named in the records (a decorator).

        The function returns the current user's name (e.g. an e-mail address) or
        ``None``; every admin action is recorded as ``admin:<name>``.
        """
        self.actor = handler
        return handler

    # -- per-app state -------------------------------------------------------------

    def _state(self, app: Flask | None = None) -> _State:
        state = _app_state(app)
        if state.extension is not self:
            raise RuntimeError("This app was set up with a different AmazonOrders instance.")
        return state

    @property
    def settings(self) -> config_module.Settings:
        """The validated configuration of the current app."""
        return self._state().settings

    @property
    def session(self) -> scoped_session[Any]:
        """The host's database session."""
        return self.db.session

    @property
    def encryptor(self) -> Encryptor:
        """Encrypts refresh tokens and buyer data with the configured keys."""
        return self._state().encryptor

    def buyer_data(self, order: AmazonOrder) -> dict[str, Any] | None:
        """The buyer and shipping address of ``order``, decrypted, for the host order.

        Returns ``{"buyer": {...} | None, "shipping_address": {...} | None}`` with
        Amazon's field names, or ``None`` when none is kept (Amazon sent none, or
        the retention period passed and it was purged). Raises
        :class:`~flask_amazon_orders.errors.ConfigurationError` when the stored
        value cannot be decrypted with the configured keys or was copied from
        another order. Never log what it returns.
        """
        if not order.buyer_data_encrypted:
            return None
        text = self.encryptor.decrypt(
            order.buyer_data_encrypted,
            context=buyer_data_context(order.store_id, order.amazon_order_id),
        )
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"The buyer data of order {order.amazon_order_id} is not in a format "
                "this version reads."
            )
        return data

    @property
    def worker(self) -> EmbeddedWorker | None:
        """The embedded background worker, if ``AMAZON_ORDERS_EMBEDDED_WORKER`` is on."""
        return self._state().worker

    def wake_worker(self, job: str = "sync", store_id: int | None = None) -> bool:
        """Hand new work on at once: a sync asked for (``job="sync"``), or a
        cancellation, adjustment or shipment stored (``job="feeds"``) for a store.

        With Celery (:func:`flask_amazon_orders.runners.celery.init_celery`) the
        store's task is queued; otherwise this process's embedded worker, if it
        runs, is woken. Returns whether someone was told; if not, the next
        scheduled run does the work.
        """
        dispatch = self._state().dispatch
        if dispatch is not None:
            try:
                dispatch(job, store_id)
            except Exception:  # the broker is down: the scheduled run does it
                log.warning("could not queue the %s job of store %s", job, store_id, exc_info=True)
                return False
            return True
        worker = self.worker
        if worker is None or not worker.running:
            return False
        worker.wake()
        return True

    # -- Amazon --------------------------------------------------------------------

    def client_for(self, store: Store) -> SPAPIClient:
        """An SP-API client for ``store``. Missing credentials fail at its first call."""
        settings = self.settings
        refresh_token = (
            self.encryptor.decrypt(
                store.refresh_token_encrypted,
                context=refresh_token_context(store.seller_id, store.marketplace_id),
            )
            if store.refresh_token_encrypted
            else ""
        )
        endpoint = settings.endpoint or ENDPOINTS.get(store.region)
        if endpoint is None:
            raise ConfigurationError(
                f"Store {store.name!r} has unknown region {store.region!r}; "
                "expected na, eu or fe, or set AMAZON_ORDERS_ENDPOINT."
            )
        return SPAPIClient(
            credentials=LWACredentials(
                settings.lwa_client_id or "", settings.lwa_client_secret or "", refresh_token
            ),
            endpoint=endpoint,
            lwa_url=settings.lwa_url,
            seller_key=store.seller_id,
            rate_limiter=self._state().rate_limiter,
            retry=RetryPolicy(
                max_attempts=settings.retry_max_attempts,
                backoff_base=settings.retry_backoff_seconds,
                backoff_cap=settings.retry_backoff_cap_seconds,
            ),
            timeout=settings.http_timeout,
            rate_scale=settings.rate_limit_scale,
        )

    # -- the Python API (the CLI and the jobs call these too) ----------------------

    def add_store(self, **fields: Any) -> Store:
        """Connect an Amazon seller account; see :func:`.services.stores.add_store`."""
        from .services.stores import add_store

        return add_store(**fields)

    def sync(self, store: Store | int, *, trigger: str = "api", progress: Any = None) -> SyncRun:
        """Sync one store's orders now; see :func:`.jobs.sync.sync_store`."""
        from .jobs.sync import sync_store

        return sync_store(store, trigger=trigger, progress=progress)


def _app_state(app: Flask | None) -> _State:
    """The extension's state on ``app`` (default: the current app), or a helpful error."""
    if app is None:
        try:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        except RuntimeError:
            raise RuntimeError(
                "Flask-Amazon-Orders was used outside an application context. "
                "Use 'with app.app_context():' around the call."
            ) from None
    try:
        return app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(
            "Flask-Amazon-Orders is not set up on this app; call AmazonOrders.init_app(app)."
        ) from None


def get_extension(app: Flask | None = None) -> AmazonOrders:
    """The :class:`AmazonOrders` set up on ``app`` (default: the current app)."""
    return _app_state(app).extension


def _configured_limiter(settings: config_module.Settings) -> RateLimiter | None:
    if settings.rate_limit_storage is None:
        return None
    from .client.redis_ratelimit import RedisRateLimiter

    return RedisRateLimiter.from_url(settings.rate_limit_storage)
