"""The admin pages: store cards → store dashboard → orders → Amazon Order Details.

The click path and labels follow the Adobe Commerce help page on cancelling an
unshipped Amazon order: a card per store with **View Store**, the store dashboard
with **Recent Orders**, an order number leading to **Amazon Order Details**, whose
header bar holds the actions that :func:`~flask_amazon_orders.services.routing.route`
allows. Every view checks the permission first (:mod:`.access`), every ``POST``
its CSRF token (:mod:`.csrf`), and every change goes through a service with the
acting user.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ..client.records import STATUS_LABELS
from ..config import MARKETPLACES
from ..errors import AmazonOrdersError
from ..extension import get_extension
from ..i18n import _, ngettext
from ..models import AmazonOrder, Store
from ..services import adjusting, cancelling, importing, routing, stores
from . import csrf, queries
from .access import MANAGE, VIEW, current_actor, require
from .blueprint import bp
from .forms import SettingsForm, checkbox, order_filter

log = logging.getLogger("flask_amazon_orders.admin")

SUCCESS = "amazon_orders-success"
ERROR = "amazon_orders-error"


def _store_or_404(store_id: int) -> Store:
    store = get_extension().session.get(Store, store_id)
    if store is None:
        abort(404)
    return store


def _host_urls(orders: list[AmazonOrder]) -> dict[int, str]:
    """The host's admin URL of each imported order (the host contract's order_url)."""
    host = get_extension().host
    urls: dict[int, str] = {}
    if host is None:
        return urls
    for order in orders:
        if order.host_order_ref:
            try:
                url = host.order_url(order.host_order_ref)
            except Exception:  # the page still shows, without the link
                log.exception("order_url failed for %s", order.amazon_order_id)
                url = None
            if url:
                urls[order.id] = url
    return urls


def _store_status(store: Store) -> str:
    """``inactive``, ``error``, ``syncing`` or ``active`` (shown as text and colour)."""
    if not store.active:
        return "inactive"
    if store.last_sync_error or store.last_feed_error:
        return "error"
    if store.sync_lease_until is not None and store.sync_lease_until > queries.utcnow():
        return "syncing"
    if store.sync_page_token is not None:  # a window read in part (a paused sync)
        return "syncing"
    return "active"


# -- store cards ---------------------------------------------------------------------


@bp.route("/")
def index() -> str:
    require(VIEW)
    all_stores = stores.list_stores()
    ids = [store.id for store in all_stores]
    return render_template(
        "amazon_orders/index.html",
        stores=all_stores,
        counts=queries.status_counts(ids),
        blocked=queries.blocked_counts(ids),
        charts=queries.order_charts(ids),
        cancellations=queries.cancellation_counts(ids),
        statuses={store.id: _store_status(store) for store in all_stores},
        host_problem=importing.host_problem(),
    )


@bp.route("/stores/new", methods=["GET", "POST"])
def store_new() -> Any:
    require(MANAGE)
    form = request.form
    values = {key: form.get(key, "") for key in ("name", "seller_id", "marketplace")}
    order_import = checkbox(form, "order_import")
    error = None
    if request.method == "POST":
        csrf.check()
        try:
            store = stores.add_store(
                name=values["name"],
                seller_id=values["seller_id"],
                marketplace=values["marketplace"] or "-",
                refresh_token=form.get("refresh_token", ""),
                order_import_enabled=order_import,
                actor=current_actor(),
            )
        except AmazonOrdersError as exc:
            get_extension().session.rollback()
            error = str(exc)
        else:
            flash(_("Store %(name)s connected.", name=store.name), SUCCESS)
            return redirect(url_for(".dashboard", store_id=store.id))
    marketplaces = sorted(MARKETPLACES.items(), key=lambda item: item[1][2])
    return (
        render_template(
            "amazon_orders/store_new.html",
            values=values,
            order_import=order_import,
            error=error,
            marketplaces=marketplaces,
        ),
        400 if error else 200,
    )


# -- store dashboard -----------------------------------------------------------------


@bp.route("/stores/<int:store_id>")
def dashboard(store_id: int) -> str:
    store = _store_or_404(store_id)
    require(VIEW, store)
    recent = queries.recent_orders(store.id)
    blocked = queries.blocked_orders(store.id)
    unreadable, unreadable_total = queries.unreadable_orders(store.id)
    worker = get_extension().worker
    return render_template(
        "amazon_orders/dashboard.html",
        store=store,
        status=_store_status(store),
        counts=queries.status_counts([store.id])[store.id],
        blocked=blocked,
        blocked_total=queries.blocked_counts([store.id]).get(store.id, 0),
        unreadable=[
            (row, routing.seller_central_order_url(row.amazon_order_id, store.marketplace_id))
            for row in unreadable
        ],
        unreadable_total=unreadable_total,
        recent=recent,
        host_urls=_host_urls(recent + blocked),
        runs=queries.recent_runs(store.id),
        cancellations=queries.cancellation_counts([store.id])[store.id],
        rejected=queries.rejected_cancellations(store.id),
        reasons=cancelling.REASON_VALUES,
        activity=queries.store_events(store.id),
        host_problem=importing.host_problem() if store.order_import_enabled else None,
        worker_running=worker is not None and worker.running,
    )


@bp.post("/stores/<int:store_id>/sync")
def sync_now(store_id: int) -> Response:
    store = _store_or_404(store_id)
    require(MANAGE, store)
    csrf.check()
    if stores.request_sync(store, actor=current_actor()):
        flash(_("Sync started. The dashboard shows its result when it is done."), SUCCESS)
    else:
        flash(
            _(
                "Sync requested. No background worker runs in this process: the store is "
                "synced at the next run of the scheduled sync (flask amazon-orders sync)."
            ),
            SUCCESS,
        )
    return redirect(url_for(".dashboard", store_id=store.id))


# -- all orders ----------------------------------------------------------------------


@bp.route("/stores/<int:store_id>/orders")
def orders(store_id: int) -> tuple[str, int]:
    store = _store_or_404(store_id)
    require(VIEW, store)
    where, errors = order_filter(request.args)
    page = queries.order_page(store.id, where, page_size=get_extension().settings.admin_page_size)
    return (
        render_template(
            "amazon_orders/orders.html",
            store=store,
            where=where,
            errors=errors,
            page=page,
            host_urls=_host_urls(page.orders),
            statuses=STATUS_LABELS,
            sorts=queries.SORTS,
        ),
        400 if errors else 200,
    )


# -- Amazon Order Details ------------------------------------------------------------


def _order_or_404(store: Store, amazon_order_id: str) -> AmazonOrder:
    order = queries.find_order(store, amazon_order_id)
    if order is None:
        abort(404)
    return order


@dataclasses.dataclass(frozen=True)
class Totals:
    """The order's amounts by kind, summed over its items (Amazon's figures)."""

    items: Decimal
    shipping: Decimal
    tax: Decimal
    discount: Decimal

    @classmethod
    def of(cls, order: AmazonOrder) -> Totals:
        def total(*names: str) -> Decimal:
            return sum(
                (abs(getattr(item, name) or Decimal(0)) for item in order.items for name in names),
                Decimal(0),
            )

        return cls(
            items=total("item_price"),
            shipping=total("shipping_price"),
            tax=total("item_tax", "shipping_tax"),
            discount=total("discount"),
        )


def _buyer_data(order: AmazonOrder) -> dict[str, Any]:
    try:
        return get_extension().buyer_data(order) or {}
    except AmazonOrdersError:
        log.warning("buyer data of %s cannot be read", order.amazon_order_id)
        return {"unreadable": True}


@bp.route("/stores/<int:store_id>/orders/<amazon_order_id>")
def order(store_id: int, amazon_order_id: str) -> str:
    store = _store_or_404(store_id)
    require(VIEW, store)
    found = _order_or_404(store, amazon_order_id)
    host_url = _host_urls([found]).get(found.id)
    routes = {
        action.value: routing.route(found, action, store=store, host_url=host_url)
        for action in routing.Action
    }
    buyer = _buyer_data(found)
    # The full address only while the admin may have to ship the order.
    ship_here = found.fulfillment_channel == "MFN" and found.status in (
        "Unshipped",
        "PartiallyShipped",
    )
    return render_template(
        "amazon_orders/order.html",
        store=store,
        order=found,
        items=found.items,
        totals=Totals.of(found),
        events=queries.order_events(found.id),
        cancellations=queries.order_cancellations(found.id),
        adjustments=queries.order_adjustments(found.id),
        can_adjust=adjusting.can_adjust(found) is None,
        reasons=cancelling.REASON_VALUES,
        routes=routes,
        host_url=host_url,
        seller_central_url=routing.seller_central_url(found, store),
        buyer=buyer.get("buyer") or {},
        address=buyer.get("shipping_address") or {},
        buyer_unreadable=buyer.get("unreadable", False),
        full_address=ship_here,
        host_problem=importing.host_problem() if store.order_import_enabled else None,
    )


@bp.post("/stores/<int:store_id>/orders/<amazon_order_id>/retry-import")
def retry_import(store_id: int, amazon_order_id: str) -> Response:
    store = _store_or_404(store_id)
    require(MANAGE, store)
    csrf.check()
    found = _order_or_404(store, amazon_order_id)
    if not store.order_import_enabled:
        flash(_("Order import is disabled for this store."), ERROR)
    elif found.host_order_ref:
        flash(_("This order has a shop order already."), ERROR)
    else:
        result = importing.retry_host_order(found, actor=current_actor())
        session = get_extension().session
        session.refresh(found)
        if result.problem:
            flash(_(result.problem), ERROR)
        elif found.host_order_ref:
            flash(_("Shop order %(number)s created.", number=found.host_order_number), SUCCESS)
        elif found.host_import_state == "blocked":
            flash(
                _(
                    "The shop order still cannot be created: %(reason)s",
                    reason=found.host_import_error,
                ),
                ERROR,
            )
        else:
            flash(
                _("The order cannot be imported yet (status %(status)s).", status=found.status),
                ERROR,
            )
    return redirect(url_for(".order", store_id=store.id, amazon_order_id=found.amazon_order_id))


# -- Cancel Order (one, or several at once) -------------------------------------------

#: The most orders one bulk cancellation takes.
MAX_BULK = 1000


def _cancel_form() -> tuple[str, str]:
    return request.form.get("reason", ""), request.form.get("memo", "")


def _cancel_feedback(result: cancelling.CancelResult) -> None:
    if result.cancelled:
        flash(
            ngettext(
                "%(num)s order cancelled. The cancellation is being sent to Amazon, "
                "which tells the buyer.",
                "%(num)s orders cancelled. The cancellations are being sent to Amazon, "
                "which tells the buyers.",
                len(result.cancelled),
            ),
            SUCCESS,
        )
    for amazon_order_id, why in result.refused.items():
        flash(_("%(order)s was not cancelled: %(why)s", order=amazon_order_id, why=why), ERROR)


@bp.route("/stores/<int:store_id>/orders/<amazon_order_id>/cancel", methods=["GET", "POST"])
def cancel_order(store_id: int, amazon_order_id: str) -> Any:
    store = _store_or_404(store_id)
    require(MANAGE, store)
    found = _order_or_404(store, amazon_order_id)
    error = None
    reason = "BuyerCanceled" if found.buyer_cancel_requested else ""
    memo = ""
    if request.method == "POST":
        csrf.check()
        reason, memo = _cancel_form()
        try:
            result = cancelling.cancel_orders(
                store, [found.id], reason=reason, memo=memo, actor=current_actor()
            )
        except cancelling.CancelError as exc:
            error = str(exc)
        else:
            if result.cancelled:
                _cancel_feedback(result)
                return redirect(
                    url_for(".order", store_id=store.id, amazon_order_id=found.amazon_order_id)
                )
            error = next(iter(result.refused.values()))
        get_extension().session.rollback()
        found = _order_or_404(store, amazon_order_id)
    why_not = cancelling.why_not_cancellable(found)
    return (
        render_template(
            "amazon_orders/cancel.html",
            store=store,
            orders=[found],
            order=found,
            refusals={found.amazon_order_id: why_not} if why_not else {},
            reasons=cancelling.REASONS,
            reason=reason,
            memo=memo,
            error=error,
            memo_max=cancelling.MEMO_MAX,
        ),
        400 if error else (409 if why_not else 200),
    )


def _selected_ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        if not value.isdigit() or len(value) > 18:
            abort(400)
        if int(value) not in ids:
            ids.append(int(value))
    if len(ids) > MAX_BULK:
        abort(400)
    return ids


@bp.route("/stores/<int:store_id>/cancel", methods=["GET", "POST"])
def cancel_orders(store_id: int) -> Any:
    """Cancel several orders: a summary of what will happen, one reason and memo, Confirm."""
    store = _store_or_404(store_id)
    require(MANAGE, store)
    source = request.form if request.method == "POST" else request.args
    ids = _selected_ids(source.getlist("order"))
    selected = queries.orders_by_ids(store.id, ids)
    error = None
    reason, memo = "", ""
    if not selected:
        error = _("Select the orders to cancel first.")
    elif request.method == "POST":
        csrf.check()
        reason, memo = _cancel_form()
        try:
            result = cancelling.cancel_orders(
                store, selected, reason=reason, memo=memo, actor=current_actor()
            )
        except cancelling.CancelError as exc:
            get_extension().session.rollback()
            error = str(exc)
        else:
            if result.cancelled:
                _cancel_feedback(result)
                return redirect(url_for(".dashboard", store_id=store.id))
            # Nothing could be cancelled: the summary again, with why, and a 400.
            get_extension().session.rollback()
            selected = queries.orders_by_ids(store.id, ids)
    shipping = cancelling.shipping_orders([order.id for order in selected])
    refusals = {
        order.amazon_order_id: why
        for order in selected
        if (why := cancelling.why_not_cancellable(order, shipping))
    }
    if selected and len(refusals) == len(selected) and not error:
        error = _("None of the selected orders can be cancelled.")
    return (
        render_template(
            "amazon_orders/cancel.html",
            store=store,
            orders=selected,
            order=None,
            refusals=refusals,
            reasons=cancelling.REASONS,
            reason=reason,
            memo=memo,
            error=error,
            memo_max=cancelling.MEMO_MAX,
        ),
        400 if error else 200,
    )


# -- Cancel items (item adjustments) -------------------------------------------------


@bp.route("/stores/<int:store_id>/orders/<amazon_order_id>/cancel-items", methods=["GET", "POST"])
def cancel_items(store_id: int, amazon_order_id: str) -> Any:
    """Cancel and refund units of an order's items (an Order Adjustment)."""
    store = _store_or_404(store_id)
    require(MANAGE, store)
    found = _order_or_404(store, amazon_order_id)
    error = None
    reason = "NoInventory"
    memo = ""
    quantities: dict[str, int] = {}
    if request.method == "POST":
        csrf.check()
        reason, memo = _cancel_form()
        for item in found.items:
            raw = request.form.get(f"quantity-{item.order_item_id}", "0").strip() or "0"
            if not raw.isdigit() or len(raw) > 4:
                error = _("Quantities are whole numbers of units.")
                break
            quantities[item.order_item_id] = int(raw)
        if error is None:
            try:
                rows = adjusting.adjust_items(
                    found,
                    quantities,
                    reason=reason,
                    memo=memo,
                    store=store,
                    actor=current_actor(),
                )
            except adjusting.AdjustmentError as exc:
                get_extension().session.rollback()
                error = str(exc)
            else:
                flash(
                    ngettext(
                        "%(num)s item line cancelled; the refund is being sent to Amazon.",
                        "%(num)s item lines cancelled; the refunds are being sent to Amazon.",
                        len(rows),
                    ),
                    SUCCESS,
                )
                return redirect(
                    url_for(".order", store_id=store.id, amazon_order_id=found.amazon_order_id)
                )
        found = _order_or_404(store, amazon_order_id)
    why_not = adjusting.can_adjust(found)
    already = adjusting.taken(found)
    lines = [
        {
            "item": item,
            "open": adjusting.open_quantity(item, already.get(item.order_item_id)),
            "per_unit": adjusting.refund_for(
                item, 1, already.get(item.order_item_id), found.currency
            ),
            "quantity": quantities.get(item.order_item_id, 0),
        }
        for item in found.items
    ]
    return (
        render_template(
            "amazon_orders/cancel_items.html",
            store=store,
            order=found,
            lines=lines,
            reasons=adjusting.REASONS,
            reason=reason,
            memo=memo,
            error=error,
            why_not=why_not,
            memo_max=cancelling.MEMO_MAX,
        ),
        400 if error else (409 if why_not else 200),
    )


# -- settings ------------------------------------------------------------------------


@bp.route("/stores/<int:store_id>/settings", methods=["GET", "POST"])
def settings(store_id: int) -> Any:
    store = _store_or_404(store_id)
    require(VIEW, store)
    error = None
    form = SettingsForm(
        order_import=store.order_import_enabled,
        initial_status=store.import_initial_status,
        number_source=store.order_number_source,
    )
    if request.method == "POST":
        require(MANAGE, store)
        csrf.check()
        form = SettingsForm.from_request(request.form)
        actor = current_actor()
        try:
            stores.update_order_settings(
                store,
                initial_status=form.initial_status,
                number_source=form.number_source,
                actor=actor,
            )
        except AmazonOrdersError as exc:
            get_extension().session.rollback()
            error = str(exc)
        else:
            result = importing.set_order_import(store, form.order_import, actor=actor)
            flash(_("Settings saved."), SUCCESS)
            if result.problem:
                flash(_(result.problem), ERROR)
            elif result.created or result.blocked:
                flash(
                    _(
                        "%(created)s shop orders created, %(blocked)s blocked.",
                        created=len(result.created),
                        blocked=len(result.blocked),
                    ),
                    SUCCESS,
                )
            return redirect(url_for(".settings", store_id=store.id))
    return (
        render_template(
            "amazon_orders/settings.html",
            store=store,
            form=form,
            error=error,
            number_sources=stores.NUMBER_SOURCES,
        ),
        400 if error else 200,
    )


@bp.post("/stores/<int:store_id>/authorization")
def store_token(store_id: int) -> Response:
    """A new refresh token for the store (after the seller authorized the app again)."""
    store = _store_or_404(store_id)
    require(MANAGE, store)
    csrf.check()
    try:
        stores.set_refresh_token(
            store, request.form.get("refresh_token", ""), actor=current_actor()
        )
    except AmazonOrdersError as exc:
        get_extension().session.rollback()
        flash(_("%(error)s Nothing was changed.", error=str(exc)), ERROR)
        return redirect(url_for(".settings", store_id=store.id) + "#authorization")
    flash(_("Authorization updated. The store is synced with it next."), SUCCESS)
    return redirect(url_for(".dashboard", store_id=store.id))
