"""The host contract: how the extension acts on the host shop's own orders.

Everything Flask-Amazon-Orders does to a host order goes through one object the
host registers, a subclass of :class:`HostAdapter`::

    class ShopAdapter(HostAdapter):
        def create_order(self, amazon_order, *, store, status, number):
            order = ShopOrder(number=number or next_number(), status=status, ...)
            for item in amazon_order.items:
                product = Product.query.filter_by(sku=item.seller_sku).first()
                if product is None:
                    raise HostOrderError(f"Unknown SKU {item.seller_sku}")
                order.lines.append(...)
            db.session.add(order)
            db.session.flush()
            return str(order.id)

        def set_status(self, reference, status, *, amazon_order):
            db.session.get(ShopOrder, int(reference)).status = status

        def order_url(self, reference):
            return url_for("shop.order_detail", order_id=reference)

    amazon_orders = AmazonOrders(app, db=db, host=ShopAdapter())

The adapter works in the host's ``db.session`` and **never commits**: the
extension commits the host order together with its own record of it, so a crash
can never leave a host order the extension does not know about, and a retry or a
second worker can never create a second one. A host whose orders live outside
this database implements :meth:`HostAdapter.find_order` so that a retry finds the
order it created before.

Besides this adapter, the host hears of every event through the signals in
:mod:`flask_amazon_orders.signals`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import AmazonOrdersError

if TYPE_CHECKING:
    from .models import Adjustment, AmazonOrder, Store

#: The host status an imported order moves to when Amazon shipped or cancelled it.
COMPLETE = "Complete"


class HostOrderError(AmazonOrdersError):
    """The host cannot create (or update) its order, for a reason an admin can fix:
    an unknown SKU, a disabled product … The Amazon order is marked *blocked* with
    this message and is tried again at the next sync, or by hand."""


class HostAdapter:
    """The operations the extension needs on host orders. Subclass and register it."""

    def create_order(
        self, amazon_order: AmazonOrder, *, store: Store, status: str, number: str | None
    ) -> str:
        """Create the host order for ``amazon_order`` in the host's session, without
        committing, and return its reference (e.g. its id) as a string.

        :param amazon_order: the Amazon order with its items (money as ``Decimal`` in
            ``amazon_order.currency``).
        :param store: the order's store, with its order settings.
        :param status: the host status the new order starts in (the store's setting,
            or :data:`COMPLETE` for an order Amazon fulfilled or shipped already).
        :param number: the order number to use, or ``None`` for the host's own
            numbering (the store's *order number source* setting).
        :raises HostOrderError: the order cannot be created; the message is shown to
            the admin.
        """
        raise NotImplementedError

    def set_status(self, reference: str, status: str, *, amazon_order: AmazonOrder) -> None:
        """Move the host order ``reference`` to ``status`` (in the session, no commit)."""
        raise NotImplementedError

    def order_status(self, reference: str) -> str | None:
        """The host order's current status, or ``None`` if the host does not say.

        Read before a cancellation moves the order to :data:`COMPLETE`, so that the
        status can be restored if Amazon rejects the cancellation; without it the
        extension restores the status it last set itself.
        """
        return None

    def order_statuses(self, references: list[str]) -> dict[str, str | None]:
        """:meth:`order_status` of many host orders at once (a bulk cancellation).

        The default asks :meth:`order_status` for each; a host with many orders
        per cancellation answers with one query instead.
        """
        return {reference: self.order_status(reference) for reference in references}

    def items_adjusted(
        self, reference: str, adjustments: list[Adjustment], *, amazon_order: AmazonOrder
    ) -> None:
        """Amazon confirmed cancelled units / refunds of items of the host order
        ``reference`` (``adjustment.order_item_id``, ``quantity_cancelled`` and the
        refunded ``principal``, ``tax``, ``shipping``, ``shipping_tax``, Decimal in
        ``currency``): adjust the shop's order (in the session, no commit). The
        default does nothing; the ``adjustment-confirmed`` signal tells too."""
        return None

    def order_number(self, reference: str) -> str | None:
        """The number the shop shows for its order ``reference`` (admins search by
        it). Called right after :meth:`create_order`, in the same session; the
        default is the reference itself."""
        return reference

    def order_url(self, reference: str) -> str | None:
        """The URL of the host order's admin page, or ``None``."""
        return None

    def find_order(self, amazon_order: AmazonOrder) -> str | None:
        """The reference of a host order created earlier for ``amazon_order``, if any.

        Only needed when host orders live outside the extension's database; the
        default finds nothing.
        """
        return None
