"""Where an action on an Amazon order lives: here, in the host's workflow, or in Seller Central.

Every page, command or job that offers an action on an Amazon order asks
:func:`route` and shows what it answers. The rules are those of the order
import toggle (DESIGN.md §5, and the Adobe Commerce help page on cancelling an
unshipped Amazon order):

* **Cancel** an ``Unshipped`` order here. ``Pending`` and ``PartiallyShipped``
  orders can be cancelled only in Seller Central. Shipped orders cannot be
  cancelled; their returns and exchanges happen in Seller Central.
* **Every other task** (shipping, invoicing, editing …) lives in the host's own
  order workflow when order import is enabled and the host order exists, and in
  Seller Central when import is disabled.
"""

from __future__ import annotations

import dataclasses
import enum

from ..i18n import N_
from ..models import AmazonOrder, Store

#: Seller Central's site per marketplace id (for deep links to an order).
SELLER_CENTRAL_HOSTS: dict[str, str] = {
    "A2EUQ1WTGCTBG2": "sellercentral.amazon.ca",
    "ATVPDKIKX0DER": "sellercentral.amazon.com",
    "A1AM78C64UM0Y8": "sellercentral.amazon.com.mx",
    "A2Q3Y263D00KWC": "sellercentral.amazon.com.br",
    "A28R8C7NBKEWEA": "sellercentral.amazon.ie",
    "A1RKKUPIHCS9HS": "sellercentral.amazon.es",
    "A1F83G8C2ARO7P": "sellercentral.amazon.co.uk",
    "A13V1IB3VIYZZH": "sellercentral.amazon.fr",
    "AMEN7PMS3EDWL": "sellercentral.amazon.com.be",
    "A1805IZSGTT6HS": "sellercentral.amazon.nl",
    "A1PA6795UKMFR9": "sellercentral.amazon.de",
    "APJ6JRA9NG5V4": "sellercentral.amazon.it",
    "A2NODRKZP88ZB9": "sellercentral.amazon.se",
    "AE08WJ6YKNBMC": "sellercentral.amazon.co.za",
    "A1C3SOZRARQ6R3": "sellercentral.amazon.pl",
    "ARBP9OOSHTCHU": "sellercentral.amazon.eg",
    "A33AVAJ2PDY3EV": "sellercentral.amazon.com.tr",
    "A17E79C6D8DWNP": "sellercentral.amazon.sa",
    "A2VIGQ35RCS4UG": "sellercentral.amazon.ae",
    "A21TJRUUN4KGV": "sellercentral.amazon.in",
    "A19VAU5U5O7RUS": "sellercentral.amazon.sg",
    "A39IBJ37TRP1C6": "sellercentral.amazon.com.au",
    "A1VC38T7YXB528": "sellercentral.amazon.co.jp",
}


class Action(str, enum.Enum):
    """What an admin may want to do with an Amazon order."""

    #: Cancel the whole order.
    CANCEL = "cancel"
    #: Any other order task: ship, invoice, edit, print … (the "order workflow").
    MANAGE = "manage"
    #: Returns and exchanges of a shipped order.
    RETURN = "return"


class Place(str, enum.Enum):
    """Where an action is done."""

    #: On the extension's own pages (cancel of an ``Unshipped`` order).
    HERE = "here"
    #: In the host shop's order workflow, on the linked host order.
    HOST = "host"
    #: In Amazon Seller Central.
    SELLER_CENTRAL = "seller_central"
    #: Nowhere: the action does not apply to the order (e.g. cancel a shipped order).
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class Route:
    """The answer of :func:`route`."""

    action: Action
    place: Place
    #: Where to send the admin: the host order's admin page or the order in
    #: Seller Central; ``None`` for :attr:`Place.HERE` and :attr:`Place.NONE`, or
    #: when the host gave no URL.
    url: str | None
    #: One sentence for the admin, e.g. why the action is not here (English; the
    #: admin pages translate it).
    reason: str

    @property
    def here(self) -> bool:
        return self.place is Place.HERE


def seller_central_url(order: AmazonOrder, store: Store | None = None) -> str:
    """The deep link to ``order`` in the Seller Central site of its marketplace."""
    marketplace = order.marketplace_id or (store.marketplace_id if store else None)
    return seller_central_order_url(order.amazon_order_id, marketplace)


def seller_central_order_url(amazon_order_id: str, marketplace_id: str | None) -> str:
    """The deep link to an Amazon order id in the Seller Central site of a marketplace
    (also for an order that is not stored, such as one that cannot be read)."""
    host = SELLER_CENTRAL_HOSTS.get(marketplace_id or "", "sellercentral.amazon.com")
    return f"https://{host}/orders-v3/order/{amazon_order_id}"


def route(
    order: AmazonOrder,
    action: Action | str,
    *,
    store: Store | None = None,
    host_url: str | None = None,
) -> Route:
    """Where ``action`` on ``order`` is done, with the link to follow.

    :param order: the Amazon order.
    :param action: an :class:`Action` or its value (``"cancel"``, ``"manage"``,
        ``"return"``).
    :param store: the order's store (default: ``order.store``).
    :param host_url: the admin URL of the linked host order, if the caller has
        it already (the host contract gives it).
    """
    action = Action(action)
    store = store or order.store
    status = order.status
    seller_central = seller_central_url(order, store)
    if action is Action.CANCEL:
        if status == "Unshipped":
            return Route(action, Place.HERE, None, N_("Unshipped orders are cancelled here."))
        if status in ("Pending", "PendingAvailability", "PartiallyShipped"):
            return Route(
                action,
                Place.SELLER_CENTRAL,
                seller_central,
                N_("Pending and partially shipped orders can be cancelled only in Seller Central."),
            )
        if status in ("Shipped", "Unfulfillable"):
            return Route(
                action,
                Place.NONE,
                None,
                N_(
                    "A shipped order cannot be cancelled; returns and exchanges happen in "
                    "Seller Central."
                ),
            )
        return Route(action, Place.NONE, None, N_("The order is cancelled already."))
    if action is Action.RETURN:
        if status in ("Shipped", "PartiallyShipped"):
            return Route(
                action,
                Place.SELLER_CENTRAL,
                seller_central,
                N_("Returns and exchanges of shipped orders happen in Seller Central."),
            )
        return Route(action, Place.NONE, None, N_("Only shipped orders can be returned."))
    # Action.MANAGE: everything but cancellation.
    if store.order_import_enabled:
        if order.host_order_ref:
            return Route(
                action,
                Place.HOST,
                host_url,
                N_("This order is managed in the shop's order workflow."),
            )
        return Route(
            action,
            Place.HOST,
            None,
            N_(
                "Order import is enabled: this order is managed in the shop's order workflow "
                "once it is imported."
            ),
        )
    return Route(
        action,
        Place.SELLER_CENTRAL,
        seller_central,
        N_("Order import is disabled: manage this order in Seller Central."),
    )
