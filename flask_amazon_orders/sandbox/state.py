"""Everything one sandbox instance knows, behind one lock.

:class:`SandboxState` holds the sellers and their LWA tokens, the orders with
sorted indexes for searchOrders, the feeds and documents (see :mod:`.feeds`),
the notification destinations and subscriptions (see :mod:`.notifications`),
the injected faults, the rate limiter and the call counters. Every read and write
happens under :attr:`SandboxState.lock` (a re-entrant lock, so feed processors
may call the state's methods).
"""

from __future__ import annotations

import random
import secrets
import string
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import adjustment_feeds, order_feeds  # noqa: F401  (register the order feed processors)
from .config import SandboxConfig
from .faults import FaultRegistry
from .feeds import FeedStore
from .generator import ConflictError, OrderFactory, SpecError
from .marketplaces import DEFAULT_MARKETPLACE_ID, MARKETPLACES, Marketplace
from .notifications import NotificationCenter
from .orders import (
    CANCEL_REASONS,
    CANCELLED,
    MERCHANT,
    PARTIALLY_SHIPPED,
    SHIPPED,
    STATUSES,
    TERMINAL_STATUSES,
    Adjustment,
    Order,
    Shipment,
    next_status,
)
from .ratelimit import RateLimiter
from .util import Signer, now_ms

#: Scopes the LWA ``client_credentials`` grant accepts (grantless operations).
GRANTLESS_SCOPES = frozenset(
    {"sellingpartnerapi::notifications", "sellingpartnerapi::client_credential:rotation"}
)

_SELLER_ID_ALPHABET = string.ascii_uppercase + string.digits


class NotFound(LookupError):
    """A seller, order, feed or document does not exist."""


@dataclass
class Seller:
    """A selling partner that authorized the application."""

    seller_id: str
    name: str
    marketplace: Marketplace
    refresh_token: str
    region: str
    ship_from: dict[str, str]
    revoked: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The seller as the control API shows it."""
        return {
            "seller_id": self.seller_id,
            "name": self.name,
            "marketplace_id": self.marketplace.marketplace_id,
            "region": self.region,
            "refresh_token": self.refresh_token,
            "revoked": self.revoked,
        }


@dataclass
class AccessToken:
    """An LWA access token; ``seller_id`` is ``None`` for a grantless token."""

    seller_id: str | None
    expires_at: int
    scope: str | None = None


@dataclass
class _Index:
    """Sorted ``(time, orderId)`` keys of one seller's orders."""

    by_updated: list[tuple[int, str]] = field(default_factory=list)
    by_created: list[tuple[int, str]] = field(default_factory=list)


class Counters:
    """Call counters per operation and per seller."""

    FIELDS = ("calls", "ok", "throttled", "faulted", "errors")

    def __init__(self) -> None:
        self.operations: dict[str, dict[str, int]] = {}
        self.sellers: dict[str, dict[str, dict[str, int]]] = {}

    def count(self, operation: str, seller_id: str | None, *names: str) -> None:
        """Add one to each of ``names`` for ``operation`` (and for the seller, if known)."""
        targets = [self.operations.setdefault(operation, dict.fromkeys(self.FIELDS, 0))]
        if seller_id is not None:
            per_seller = self.sellers.setdefault(seller_id, {})
            targets.append(per_seller.setdefault(operation, dict.fromkeys(self.FIELDS, 0)))
        for target in targets:
            for name in names:
                target[name] += 1

    def to_dict(self) -> dict[str, Any]:
        """A snapshot for ``GET /_sandbox/counters``."""
        return {
            "operations": {op: dict(v) for op, v in self.operations.items()},
            "sellers": {
                sid: {op: dict(v) for op, v in ops.items()} for sid, ops in self.sellers.items()
            },
        }

    def reset(self) -> None:
        """Set every counter back to zero."""
        self.operations.clear()
        self.sellers.clear()


class SandboxState:
    """The complete state of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.signer = Signer(secrets.token_bytes(32))
        self.limiter = RateLimiter(config.time_scale, enabled=config.enforce_rate_limits)
        self.faults = FaultRegistry()
        self.counters = Counters()
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: sellers, tokens, orders, feeds, notification destinations
        and subscriptions, faults, counters, quotas."""
        with self.lock:
            self.rng = random.Random(self.config.seed)
            self.sellers: dict[str, Seller] = {}
            self.refresh_tokens: dict[str, str] = {}
            self.access_tokens: dict[str, AccessToken] = {}
            self.orders: dict[str, Order] = {}
            self._indexes: dict[str, _Index] = {}
            self._item_ids: set[str] = set()
            self.factory = OrderFactory(self.rng, set(), self._item_ids)
            #: The latest upper bound a search window was given (ms). Changes are
            #: stamped after it, so a paginated window never changes under a client.
            self.max_issued_bound = 0
            self.feeds = FeedStore(self)
            self.notifications = NotificationCenter(self)
            self.faults.clear()
            self.counters.reset()
            self.limiter.reset()

    # -- sellers and tokens ----------------------------------------------------------------

    def create_seller(
        self,
        seller_id: str | None = None,
        name: str | None = None,
        marketplace_id: str | None = None,
        region: str | None = None,
        refresh_token: str | None = None,
    ) -> Seller:
        """Register a seller that authorized the application.

        :raises SpecError: for a bad value or a seller id that exists.
        """
        with self.lock:
            marketplace = MARKETPLACES.get(marketplace_id or DEFAULT_MARKETPLACE_ID)
            if marketplace is None:
                raise SpecError(f"unknown marketplace_id {marketplace_id!r}")
            if region is not None and region not in ("na", "eu", "fe"):
                raise SpecError("region must be na, eu or fe")
            if seller_id is None:
                seller_id = "A" + "".join(self.rng.choices(_SELLER_ID_ALPHABET, k=13))
            elif not isinstance(seller_id, str) or not seller_id.isalnum():
                raise SpecError("seller_id must be letters and digits, e.g. A1B2C3D4E5F6G7")
            if seller_id in self.sellers:
                raise ConflictError(f"seller {seller_id} already exists")
            if refresh_token is None:
                refresh_token = "Atzr|" + secrets.token_urlsafe(96)
            elif not isinstance(refresh_token, str) or refresh_token in self.refresh_tokens:
                raise SpecError("refresh_token must be a string not used by another seller")
            name = name or f"Sandbox Seller {seller_id[-4:]}"
            seller = Seller(
                seller_id=seller_id,
                name=name,
                marketplace=marketplace,
                refresh_token=refresh_token,
                region=region or marketplace.region,
                ship_from=self.factory.ship_from(name, marketplace),
            )
            self.sellers[seller_id] = seller
            self.refresh_tokens[refresh_token] = seller_id
            self._indexes[seller_id] = _Index()
            return seller

    def seller(self, seller_id: str) -> Seller:
        """The seller ``seller_id``. :raises NotFound:"""
        seller = self.sellers.get(seller_id)
        if seller is None:
            raise NotFound(f"no seller {seller_id!r}")
        return seller

    def revoke_seller(self, seller_id: str) -> Seller:
        """The seller withdrew the authorization: its tokens stop working."""
        with self.lock:
            seller = self.seller(seller_id)
            seller.revoked = True
            for token in [t for t, a in self.access_tokens.items() if a.seller_id == seller_id]:
                del self.access_tokens[token]
            return seller

    def reauthorize_seller(self, seller_id: str) -> Seller:
        """The seller authorized the application again: a new refresh token
        replaces the old one, which stops working."""
        with self.lock:
            seller = self.seller(seller_id)
            self.refresh_tokens.pop(seller.refresh_token, None)
            seller.refresh_token = "Atzr|" + secrets.token_urlsafe(96)
            seller.revoked = False
            self.refresh_tokens[seller.refresh_token] = seller_id
            return seller

    def issue_access_token(self, seller_id: str | None, scope: str | None = None) -> str:
        """A new LWA access token for ``seller_id`` (``None``: grantless)."""
        token = "Atza|" + secrets.token_urlsafe(128)
        expires_at = now_ms() + int(self.config.access_token_ttl * 1000)
        with self.lock:
            self.access_tokens[token] = AccessToken(seller_id, expires_at, scope)
            if len(self.access_tokens) > 10_000:
                self._drop_expired_tokens()
        return token

    def _drop_expired_tokens(self) -> None:
        now = now_ms()
        for token in [t for t, a in self.access_tokens.items() if a.expires_at <= now]:
            del self.access_tokens[token]

    # -- orders ----------------------------------------------------------------------------

    def order(self, order_id: str) -> Order:
        """The order ``order_id``. :raises NotFound:"""
        order = self.orders.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id!r}")
        return order

    def add_orders(self, orders: Iterable[Order]) -> list[Order]:
        """Store new orders and index them."""
        with self.lock:
            added = list(orders)
            touched: set[str] = set()
            for order in added:
                self.orders[order.order_id] = order
                index = self._indexes[order.seller_id]
                index.by_updated.append((order.last_updated, order.order_id))
                index.by_created.append((order.created, order.order_id))
                touched.add(order.seller_id)
            for seller_id in touched:
                self._indexes[seller_id].by_updated.sort()
                self._indexes[seller_id].by_created.sort()
            for order in added:
                self.notifications.order_created(order)
            return added

    def create_order(self, spec: Mapping[str, Any]) -> Order:
        """Create one order from a control-API spec. :raises SpecError: :raises NotFound:"""
        with self.lock:
            seller = self.seller(str(spec.get("seller_id")))
            order = self.factory.from_spec(seller, spec, now_ms())
            if "created_time" not in spec and "last_updated_time" not in spec:
                stamp = self._change_time(order.last_updated)
                order.created = order.last_updated = stamp
            self.add_orders([order])
            return order

    def generate_orders(
        self, seller_id: str, count: int, options: Mapping[str, Any]
    ) -> list[Order]:
        """Generate ``count`` realistic orders for a seller."""
        with self.lock:
            seller = self.seller(seller_id)
            return self.add_orders(self.factory.generate(seller, count, options, now_ms()))

    def _change_time(self, previous: int) -> int:
        return max(now_ms(), previous + 1, self.max_issued_bound + 1)

    def touch(self, order: Order) -> None:
        """Record a change of ``order``: new ``lastUpdatedTime``, re-index, drop caches."""
        with self.lock:
            index = self._indexes[order.seller_id].by_updated
            old_key = (order.last_updated, order.order_id)
            position = bisect_left(index, old_key)
            if position < len(index) and index[position] == old_key:
                del index[position]
            order.last_updated = self._change_time(order.last_updated)
            insort(index, (order.last_updated, order.order_id))
            order.invalidate()
            self.notifications.order_changed(order)

    def set_status(
        self,
        order_id: str,
        status: str,
        *,
        cancelled_by: str | None = None,
        cancel_reason: str | None = None,
    ) -> Order:
        """Move an order to ``status`` (any status; the control API is all-powerful)."""
        if status not in STATUSES:
            raise SpecError(f"status must be one of {', '.join(STATUSES)}")
        if cancelled_by is not None and cancelled_by not in ("BUYER", "MERCHANT", "AMAZON"):
            raise SpecError("cancelled_by must be BUYER, MERCHANT or AMAZON")
        if cancel_reason is not None and cancel_reason not in CANCEL_REASONS:
            raise SpecError(f"cancel_reason must be one of {', '.join(CANCEL_REASONS)}")
        with self.lock:
            order = self.order(order_id)
            self._apply(order, status, cancelled_by=cancelled_by, cancel_reason=cancel_reason)
            return order

    def _apply(self, order: Order, status: str, **cancel: Any) -> None:
        now = now_ms()
        package = order.package
        if (
            status in (SHIPPED, PARTIALLY_SHIPPED)
            and order.fulfilled_by == MERCHANT
            and package is None
        ):
            package = self.factory.package(order.marketplace, now, now)
        order.apply_status(status, at=now, package=package, **cancel)
        self.touch(order)

    def record_shipment(self, order: Order, shipment: Shipment) -> None:
        """A package confirmed through ``confirmShipment``: ship its units, settle, touch.

        The caller has checked the confirmation (see :mod:`.orders_v0_api`).
        """
        with self.lock:
            for item_id, quantity, _codes in shipment.items:
                item = order.item(item_id)
                assert item is not None and quantity <= item.quantity_open
                item.quantity_shipped += quantity
            order.shipments.append(shipment)
            self._settle(order)

    def record_adjustments(
        self, order: Order, adjustments: Iterable[Adjustment], cancel_reasons: Mapping[str, str]
    ) -> None:
        """Apply payment adjustments to ``order``: refunds and cancelled units; settle, touch.

        ``cancel_reasons`` maps an ``AdjustmentReason`` that cancels units to the
        Orders API ``cancelReason`` an item cancelled in full shows. The caller has
        checked the adjustments (see :mod:`.adjustment_feeds`).
        """
        with self.lock:
            for adjustment in adjustments:
                item = order.item(adjustment.order_item_id)
                assert item is not None
                for kind, amount in adjustment.components:
                    item.refunded[kind] = item.refunded.get(kind, 0) + amount
                if adjustment.quantity_cancelled:
                    assert adjustment.quantity_cancelled <= item.quantity_open
                    item.quantity_cancelled += adjustment.quantity_cancelled
                    item.adjustment_cancel_reason = cancel_reasons[adjustment.reason]
                    if item.fully_cancelled_by_adjustment:
                        item.cancelled_by = "MERCHANT"
                        item.cancel_reason = item.adjustment_cancel_reason
                order.adjustments.append(adjustment)
            self._settle(order)

    def _settle(self, order: Order) -> None:
        """Give ``order`` the status its quantities call for and record the change."""
        status = order.settled_status()
        if status != order.status:
            order.status = status
            if status == CANCELLED:
                order.ship_time = None
                order.package = None
        self.touch(order)

    def buyer_cancel_request(self, order_id: str, reason: str | None = None) -> Order:
        """The buyer asks to cancel: every open item gets a ``cancellationRequest``."""
        with self.lock:
            order = self.order(order_id)
            for item in order.items:
                if not item.cancelled_by:
                    item.cancel_request_reason = reason or "Order placed by mistake"
            self.touch(order)
            return order

    def advance(self, seller_id: str | None = None, count: int | None = None) -> list[Order]:
        """Move open orders one lifecycle step, oldest first; at most ``count`` of them."""
        with self.lock:
            if seller_id is not None:
                self.seller(seller_id)
            candidates = sorted(
                (
                    o
                    for o in self.orders.values()
                    if o.status not in TERMINAL_STATUSES
                    and (seller_id is None or o.seller_id == seller_id)
                ),
                key=lambda o: (o.created, o.order_id),
            )
            if count is not None:
                candidates = candidates[:count]
            for order in candidates:
                # Items whose every unit an adjustment cancelled have nothing to ship.
                shippable = sum(1 for item in order.items if item.quantity_shippable)
                target = next_status(order.status, order.fulfilled_by, shippable)
                if target is not None:
                    self._apply(order, target)
            return candidates

    def search(
        self,
        seller_id: str,
        *,
        by_created: bool,
        after: int,
        bound: int,
        position: tuple[int, str] | None,
        statuses: frozenset[str],
        marketplaces: frozenset[str],
        fulfilled_by: frozenset[str],
        limit: int,
    ) -> tuple[list[Order], tuple[int, str] | None]:
        """One page of a seller's orders in a time window, in (time, orderId) order.

        :returns: the orders and, if more follow, the key to continue after.
        """
        with self.lock:
            index = self._indexes.get(seller_id)
            if index is None:
                return [], None
            keys = index.by_created if by_created else index.by_updated
            start = bisect_right(keys, position) if position else bisect_left(keys, (after, ""))
            orders = self.orders
            page: list[Order] = []
            last_key: tuple[int, str] | None = None
            for i in range(start, len(keys)):
                key = keys[i]
                if key[0] > bound:
                    break
                order = orders[key[1]]
                if statuses and order.status not in statuses:
                    continue
                if marketplaces and order.marketplace.marketplace_id not in marketplaces:
                    continue
                if fulfilled_by and order.fulfilled_by not in fulfilled_by:
                    continue
                if len(page) == limit:
                    return page, last_key
                page.append(order)
                last_key = key
            return page, None

    def issue_bound(self, bound: int) -> None:
        """Remember that a search window ends at ``bound`` (see :attr:`max_issued_bound`)."""
        if bound > self.max_issued_bound:
            self.max_issued_bound = bound
