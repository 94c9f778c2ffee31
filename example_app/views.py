"""The shop's pages: catalogue, shop orders, and an overview of the Amazon stores."""

from __future__ import annotations

import hmac
import secrets

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from flask_amazon_orders.client.records import STATUS_LABELS
from flask_amazon_orders.models import AmazonOrder, Store, SyncRun
from flask_amazon_orders.services.importing import host_problem
from flask_amazon_orders.services.routing import Action, route

from . import amazon_orders
from .models import ORDER_STATUSES, Product, ShopOrder, db

shop = Blueprint("shop", __name__)


def csrf_token() -> str:
    """The form token of this browser session (the shop's own small CSRF guard)."""
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return str(token)


@shop.app_context_processor
def _template_helpers() -> dict[str, object]:
    return {"csrf_token": csrf_token}


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
    return render_template("shop/orders.html", orders=shop_orders)


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
        "shop/order_detail.html", order=order, products=products, statuses=ORDER_STATUSES
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


@shop.route("/amazon")
def amazon() -> str:
    stores = db.session.scalars(sa.select(Store).order_by(Store.id)).all()
    overview = []
    for store in stores:
        counts = {
            STATUS_LABELS.get(status, status): count
            for status, count in db.session.execute(
                sa.select(AmazonOrder.status, sa.func.count())
                .where(AmazonOrder.store_id == store.id)
                .group_by(AmazonOrder.status)
            )
        }
        recent = db.session.scalars(
            sa.select(AmazonOrder)
            .where(AmazonOrder.store_id == store.id)
            .order_by(AmazonOrder.purchased_at.desc())
            .limit(15)
        ).all()
        last_run = db.session.scalar(
            sa.select(SyncRun).where(SyncRun.store_id == store.id).order_by(SyncRun.id.desc())
        )
        refs = [int(o.host_order_ref) for o in recent if o.host_order_ref]
        numbers = dict(
            db.session.execute(
                sa.select(ShopOrder.id, ShopOrder.number).where(ShopOrder.id.in_(refs))
            ).all()
        )
        # Every action link comes from the one routing function.
        host = amazon_orders.host
        actions = {}
        for order in recent:
            host_url = (
                host.order_url(order.host_order_ref) if host and order.host_order_ref else None
            )
            actions[order.id] = [
                answer
                for answer in (
                    route(order, action, store=store, host_url=host_url) for action in Action
                )
                if answer.url
            ]
        overview.append(
            {
                "store": store,
                "counts": counts,
                "recent": recent,
                "last_run": last_run,
                "numbers": numbers,
                "actions": actions,
            }
        )
    return render_template("shop/amazon.html", overview=overview, host_problem=host_problem())
