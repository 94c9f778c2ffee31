"""Who may see and change what on the admin pages.

The pages are closed (403) until the host grants access with
:meth:`AmazonOrders.access_handler <flask_amazon_orders.AmazonOrders.access_handler>`::

    @amazon_orders.access_handler
    def can_use_amazon_orders(permission, store):
        if not current_user.is_authenticated:
            return False
        return permission == VIEW or current_user.is_admin

There are two permissions: :data:`VIEW` for looking (every page, buyer data
included) and :data:`MANAGE` for every action that changes data (connect a
store, settings, *Sync now*, retry an import, cancel). ``store`` is the store the
page is about, or ``None`` for the store cards and *Connect a store*, so a host
can grant an agency user some stores only. Every action is recorded with the
acting user that :meth:`AmazonOrders.actor_loader
<flask_amazon_orders.AmazonOrders.actor_loader>` names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import abort

from ..extension import get_extension

if TYPE_CHECKING:
    from ..models import Store

#: Look at the pages (store cards, dashboards, orders, order details, settings).
VIEW = "view"
#: Change data: connect a store, change settings, sync now, retry an import, cancel.
MANAGE = "manage"

PERMISSIONS = (VIEW, MANAGE)


def allowed(permission: str, store: Store | None = None) -> bool:
    """Whether the current user has ``permission`` (on ``store``); never raises
    for a missing hook: no hook means no access."""
    handler = get_extension().access
    if handler is None:
        return False
    return bool(handler(permission, store))


def require(permission: str, store: Store | None = None) -> None:
    """Abort with 403 unless the current user has ``permission``."""
    if not allowed(permission, store):
        abort(403)


def current_actor() -> str:
    """The name recorded for the acting user: ``admin:<name>``."""
    loader = get_extension().actor
    name = loader() if loader is not None else None
    return f"admin:{name}" if name else "admin"
