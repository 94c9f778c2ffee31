"""The shop's pages: catalogue, shop orders with their workflow, log-in and language.

The Amazon pages are the extension's own admin blueprint, inside this shop's
layout (``AMAZON_ORDERS_BASE_TEMPLATE = "shop/base.html"``)."""

from __future__ import annotations

import hmac
import secrets

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from flask_amazon_orders.models import AmazonOrder

from . import LANGUAGES, STAFF
from .models import CARRIERS, ORDER_STATUSES, Product, ShopOrder, db

shop = Blueprint("shop", __name__)


def csrf_token() -> str:
    """The form token of this browser session (the shop's own small CSRF guard)."""
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return str(token)


def shop_language() -> str:
    from flask_babel import get_locale

    locale = get_locale()
    return locale.language if locale is not None else "en"


@shop.app_context_processor
def _template_helpers() -> dict[str, object]:
    return {
        "csrf_token": csrf_token,
        "shop_language": shop_language,
        "current_staff": STAFF.get(session.get("user", "")),
    }


def _safe_next(target: str | None) -> str:
    # Only paths of this site, never another host.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("shop.index")


@shop.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    if request.method == "POST":
        _check_csrf()
        user = request.form.get("user", "")
        if user not in STAFF:
            abort(400, "Unknown user.")
        session["user"] = user
        return redirect(_safe_next(request.form.get("next")))
    return render_template("shop/login.html", staff=STAFF, next=request.args.get("next", ""))


@shop.post("/logout")
def logout() -> Response:
    _check_csrf()
    session.pop("user", None)
    return redirect(url_for("shop.index"))


@shop.post("/language")
def language() -> Response:
    _check_csrf()
    lang = request.form.get("lang", "")
    if lang not in LANGUAGES:
        abort(400, "Unknown language.")
    session["lang"] = lang
    return redirect(_safe_next(request.form.get("next")))


def _amazon_stores(amazon_order_ids: list[str]) -> dict[str, int]:
    """The store of each linked Amazon order (for links to Amazon Order Details)."""
    if not amazon_order_ids:
        return {}
    rows = db.session.execute(
        sa.select(AmazonOrder.amazon_order_id, AmazonOrder.store_id).where(
            AmazonOrder.amazon_order_id.in_(amazon_order_ids)
        )
    )
    return {amazon_order_id: store_id for amazon_order_id, store_id in rows}


def _check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf_token", "")):
        abort(400, "The form has expired; reload the page and try again.")


@shop.route("/")
def index() -> str:
    products = db.session.scalars(sa.select(Product).order_by(Product.name)).all()
    return render_template("shop/index.html", products=products)


@shop.route("/orders")
def orders() -> str:
    shop_orders = db.session.scalars(sa.select(ShopOrder).order_by(ShopOrder.id.desc())).all()
    stores = _amazon_stores([o.amazon_order_id for o in shop_orders if o.amazon_order_id])
    return render_template("shop/orders.html", orders=shop_orders, amazon_stores=stores)


@shop.route("/orders/<int:order_id>")
def order_detail(order_id: int) -> str:
    order = db.session.get(ShopOrder, order_id)
    if order is None:
        abort(404)
    products = {
        p.sku: p
        for p in db.session.scalars(
            sa.select(Product).where(Product.sku.in_([line.sku for line in order.lines]))
        )
    }
    return render_template(
        "shop/order_detail.html",
        order=order,
        products=products,
        statuses=ORDER_STATUSES,
        carriers=CARRIERS,
        amazon_stores=_amazon_stores([order.amazon_order_id] if order.amazon_order_id else []),
    )


@shop.post("/orders/<int:order_id>/status")
def order_status(order_id: int) -> Response:
    """The shop's own order workflow: move an order to another status."""
    _check_csrf()
    order = db.session.get(ShopOrder, order_id)
    if order is None:
        abort(404)
    status = request.form.get("status", "")
    if status not in ORDER_STATUSES:
        abort(400, f"Unknown status {status!r}.")
    if status != order.status:
        order.status = status
        db.session.commit()
        flash(f"Order {order.number} is now {status}.")
    return redirect(url_for("shop.order_detail", order_id=order.id))


@shop.post("/orders/<int:order_id>/ship")
def order_ship(order_id: int) -> Response:
    """The shop's workflow ships (some of) an Amazon order's lines; the extension
    confirms the shipment to Amazon (the host-order-shipped signal)."""
    from flask import current_app

    from flask_amazon_orders import signals
    from flask_amazon_orders.services.shipping import ShipmentError

    _check_csrf()
    order = db.session.get(ShopOrder, order_id)
    if order is None or not order.amazon_order_id:
        abort(404)
    items = {}
    for line in order.lines:
        raw = request.form.get(f"ship-{line.id}", "0").strip() or "0"
        if not raw.isdigit() or len(raw) > 4:
            abort(400, "Quantities are whole numbers.")
        if int(raw) and line.amazon_order_item_id:
            items[line.amazon_order_item_id] = int(raw)
    carrier = request.form.get("carrier", "")
    if carrier not in CARRIERS:
        abort(400, "Choose a carrier.")
    try:
        signals.host_order_shipped.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            order=order.amazon_order_id,
            items=items,
            carrier_code=carrier,
            tracking_number=request.form.get("tracking", ""),
        )
    except ShipmentError as exc:
        db.session.rollback()
        flash(f"Not shipped: {exc}")
    else:
        flash(f"Shipment of order {order.number} recorded; it is being confirmed to Amazon.")
    return redirect(url_for("shop.order_detail", order_id=order.id))
