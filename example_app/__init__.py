"""A small but real Flask shop that uses Flask-Amazon-Orders.

``create_app()`` builds the shop. ``python -m example_app`` runs it together
with the bundled Amazon sandbox (see ``__main__.py``), with no network needed.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from flask import Flask, has_request_context, request, session
from flask_babel import Babel

from flask_amazon_orders import AmazonOrders

from .host import ShopAdapter
from .models import CATALOG, Product, db

amazon_orders = AmazonOrders(db=db, host=ShopAdapter())

#: The shop's demo staff (no passwords: it is a demo). The Amazon pages are
#: closed to anyone else; a viewer may look, a manager may also change things.
STAFF = {
    "mia": ("Mia Berger", "manager"),
    "victor": ("Victor Lang", "viewer"),
}
LANGUAGES = ("en", "de")


@amazon_orders.access_handler
def _may_use_amazon_pages(permission: str, store: Any) -> bool:
    user = STAFF.get(session.get("user", ""))
    if user is None:
        return False
    return permission == "view" or user[1] == "manager"


@amazon_orders.actor_loader
def _acting_user() -> str | None:
    return session.get("user")


def _select_locale() -> str | None:
    if not has_request_context():
        return None  # the CLI and background jobs: the default language
    # The shop's own choice (its language switch), else the browser's.
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(LANGUAGES)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY="dev-only-secret-change-me",
        DATABASE_FILE="shop.sqlite",
        # The Amazon pages live inside the shop's own layout.
        AMAZON_ORDERS_BASE_TEMPLATE="shop/base.html",
        AMAZON_ORDERS_ADMIN_URL_PREFIX="/admin/amazon",
    )
    # SHOP_SECRET_KEY, SHOP_SQLALCHEMY_DATABASE_URI, SHOP_AMAZON_ORDERS_… override.
    app.config.from_prefixed_env("SHOP")
    if config:
        app.config.update(config)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI",
        "sqlite:///" + os.path.join(app.instance_path, app.config["DATABASE_FILE"]),
    )
    db.init_app(app)
    # The shop chooses the language; the Amazon pages follow it.
    Babel(app, locale_selector=_select_locale)
    amazon_orders.init_app(app)

    from .views import shop

    app.register_blueprint(shop)
    _listen_to_amazon(app)

    @app.cli.command("init-db")
    def init_db_command() -> None:
        """Create the tables and the shop's catalogue."""
        init_db()
        print("Database ready.")

    return app


def _listen_to_amazon(app: Flask) -> None:
    """The shop's signal receivers: here they write the shop's log."""
    from flask_amazon_orders import signals

    def new_order(sender: Flask, *, store: Any, order: Any, **extra: Any) -> None:
        sender.logger.info("Amazon order %s arrived (%s)", order.amazon_order_id, order.status)

    def blocked(sender: Flask, *, order: Any, reason: str, **extra: Any) -> None:
        sender.logger.warning("Amazon order %s not imported: %s", order.amazon_order_id, reason)

    def failed(sender: Flask, *, store: Any, error: Exception, **extra: Any) -> None:
        sender.logger.warning("Amazon sync of %s failed: %s", store.name, error)

    signals.order_imported.connect(new_order, app, weak=False)
    signals.host_order_blocked.connect(blocked, app, weak=False)
    signals.sync_failed.connect(failed, app, weak=False)


def init_db() -> None:
    """Create every table (the shop's and the extension's) and the catalogue."""
    db.create_all()
    if db.session.query(Product).count() == 0:
        for sku, name, price in CATALOG:
            db.session.add(Product(sku=sku, name=name, price=Decimal(price), stock=25))
        db.session.commit()
