"""What the order timeline and the store activity log say, in the reader's language.

An event (:class:`~flask_amazon_orders.models.OrderEvent`,
:class:`~flask_amazon_orders.models.StoreEvent`) stores its ``kind`` and, in
``params``, which of our sentences tells what happened and the values that go
into it: ``{"text": "imported", "status": "Unshipped"}``. The sentence is
translated when the event is shown (:func:`render`); text that is not ours,
such as Amazon's error messages, the shop's, or an admin's memo, is a value and
is shown as it was given. A value may be a sentence itself (``{"text": …}``) or
a list of sentences.

``message`` keeps the English sentence, for logs and for readers that know
nothing of ``params``. Rows written before ``params`` existed, and rows whose
sentence this version does not know, are shown with their ``message``.

Most values are shown as stored; those named ``status`` (an Amazon status: its
Seller Central name), ``cancel_reason`` and ``adjustment_reason`` (a reason
code: its label), ``refund`` (``{"amount": "4.50", "currency": "EUR"}``) and
``num`` (a count) are written as the reader's language writes them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from babel import numbers
from babel.support import NullTranslations

from . import i18n
from .client.records import STATUS_LABELS
from .i18n import N_, Nn_

log = logging.getLogger("flask_amazon_orders.events")

#: Each kind of event as the timeline and the activity log head it.
TITLES: dict[str, str] = {
    # The order timeline (OrderEvent).
    "imported": N_("Imported from Amazon"),
    "status_changed": N_("Status changed"),
    "buyer_cancel_requested": N_("Buyer asked to cancel"),
    "host_order_created": N_("Shop order created"),
    "host_order_blocked": N_("Shop order blocked"),
    "host_order_completed": N_("Shop order completed"),
    "host_order_status_changed": N_("Shop order status changed"),
    "host_order_failed": N_("Shop order not updated"),
    "cancel_requested": N_("Cancelled here"),
    "cancel_sent": N_("Cancellation sent to Amazon"),
    "cancel_confirmed": N_("Amazon confirmed the cancellation"),
    "cancel_rejected": N_("Amazon rejected the cancellation"),
    "adjustment_queued": N_("Items cancelled here"),
    "adjustment_sent": N_("Adjustment sent to Amazon"),
    "adjustment_confirmed": N_("Amazon confirmed the adjustment"),
    "adjustment_rejected": N_("Amazon rejected the adjustment"),
    "shipment_queued": N_("Shipped by the shop"),
    "shipment_confirmed": N_("Amazon confirmed the shipment"),
    "shipment_rejected": N_("Amazon refused the shipment"),
    # Both (an order's and a store's).
    "buyer_data_purged": N_("Buyer data deleted"),
    # The store activity log (StoreEvent).
    "store_connected": N_("Store connected"),
    "settings_changed": N_("Settings changed"),
    "sync_requested": N_("Sync requested"),
    "refresh_token_updated": N_("Authorization updated"),
}

#: Our sentences, by key: a message, or (singular, plural) for one with a count
#: (its value ``num``). Placeholders name the values the sentence takes.
SENTENCES: dict[str, str | tuple[str, str]] = {
    # -- Amazon's copy of the order (the sync) --
    "imported": N_("Imported from Amazon as %(status)s."),
    "status_changed": N_("Amazon changed the status to %(status)s."),
    "buyer_cancel_requested": N_("The buyer asked Amazon to cancel this order."),
    "buyer_cancel_requested_reason": N_(
        "The buyer asked Amazon to cancel this order: %(buyer_reason)s"
    ),
    # -- the shop order --
    "host_order_created": N_("Shop order %(number)s created (%(host_status)s)."),
    "host_order_blocked": N_("The shop order could not be created: %(reason)s"),
    "shop_raised": N_("The shop raised %(error_type)s: %(error)s"),
    "host_order_completed": N_(
        "Shop order %(number)s set to %(host_status)s (Amazon: %(status)s)."
    ),
    "host_order_status_changed": N_("Shop order %(number)s set to %(host_status)s."),
    "host_order_status_failed": N_(
        "The shop order %(number)s could not be set to %(host_status)s: %(error)s"
    ),
    "host_order_not_adjusted": N_("The shop order could not be adjusted: %(error)s"),
    # -- cancellations --
    "cancel_requested": N_("Cancelled (%(cancel_reason)s); queued to be sent to Amazon."),
    "cancel_requested_memo": N_(
        "Cancelled (%(cancel_reason)s); queued to be sent to Amazon. Memo: %(memo)s"
    ),
    "cancel_sent": N_("Cancellation sent to Amazon in feed %(feed)s (message %(message_id)s)."),
    "cancel_confirmed": N_(
        "Amazon confirmed the cancellation (feed %(feed)s); Amazon tells the buyer."
    ),
    "cancelled_already": N_("Amazon had cancelled the order already."),
    "cancelled_on_amazon": N_("Amazon has cancelled the order (%(why)s)."),
    "cancel_rejected": N_("Amazon rejected the cancellation: %(error)s"),
    "not_cancelled": N_("The order was not cancelled (%(why)s)."),
    "cancel_status_moved": N_("The order is %(status)s on Amazon now; it was not cancelled."),
    "cancel_attempts": Nn_(
        "Amazon did not take the cancellation in %(num)s attempt (%(last)s); "
        "the order is still Unshipped there.",
        "Amazon did not take the cancellation in %(num)s attempts (%(last)s); "
        "the order is still Unshipped there.",
    ),
    "cancel_unsendable": N_("The cancellation cannot be sent to Amazon: %(error)s"),
    "unknown_to_amazon": N_("Amazon does not know this order: %(error)s"),
    "not_processed": Nn_(
        "Amazon could not process it after %(num)s attempt",
        "Amazon could not process it after %(num)s attempts",
    ),
    "no_answer": N_("no answer"),
    # -- item adjustments --
    "adjustment_queued": Nn_(
        "%(num)s unit of item %(item)s cancelled (%(adjustment_reason)s), "
        "refund %(refund)s; queued for Amazon.",
        "%(num)s units of item %(item)s cancelled (%(adjustment_reason)s), "
        "refund %(refund)s; queued for Amazon.",
    ),
    "adjustment_queued_memo": Nn_(
        "%(num)s unit of item %(item)s cancelled (%(adjustment_reason)s), "
        "refund %(refund)s; queued for Amazon. Memo: %(memo)s",
        "%(num)s units of item %(item)s cancelled (%(adjustment_reason)s), "
        "refund %(refund)s; queued for Amazon. Memo: %(memo)s",
    ),
    "adjustment_sent": N_("Adjustment sent to Amazon in feed %(feed)s (message %(message_id)s)."),
    "adjustment_settled": N_("Item %(item)s: %(result)s"),
    "adjustment_confirmed": N_("Amazon confirmed the adjustment (feed %(feed)s)."),
    "adjustment_rejected": N_("Amazon rejected the adjustment: %(error)s"),
    "adjustment_not_applied": N_("Not applied (%(why)s)."),
    "adjustment_status_moved": N_(
        "The order is %(status)s on Amazon now; the items were not cancelled."
    ),
    "adjustment_units_gone": Nn_(
        "Only %(num)s unit is unshipped on Amazon now; nothing was cancelled.",
        "Only %(num)s units are unshipped on Amazon now; nothing was cancelled.",
    ),
    "adjustment_attempts": Nn_(
        "Amazon did not take the adjustment in %(num)s attempt (%(last)s).",
        "Amazon did not take the adjustment in %(num)s attempts (%(last)s).",
    ),
    "adjustment_unsendable": N_("The adjustment cannot be sent to Amazon: %(error)s"),
    # -- shipments --
    "shipment_queued": Nn_(
        "Shipped %(num)s unit with %(carrier)s, tracking %(tracking)s; to be confirmed to Amazon.",
        "Shipped %(num)s units with %(carrier)s, tracking %(tracking)s; to be confirmed to Amazon.",
    ),
    "shipment_confirmed": N_("Amazon confirmed the shipment (%(carrier)s, tracking %(tracking)s)."),
    "shipment_rejected": N_("Amazon refused the shipment confirmation: %(error)s"),
    # -- buyer data --
    "order_buyer_data_purged": Nn_(
        "Buyer data deleted: the order closed more than %(num)s day ago (the retention period).",
        "Buyer data deleted: the order closed more than %(num)s days ago (the retention period).",
    ),
    "store_buyer_data_purged": Nn_(
        "Buyer data of %(num)s order deleted (%(period)s).",
        "Buyer data of %(num)s orders deleted (%(period)s).",
    ),
    "retention_period": Nn_("retention period %(num)s day", "retention period %(num)s days"),
    # -- the store --
    "store_connected": N_("%(name)s: seller %(seller)s in %(marketplace)s."),
    "settings_changed": N_("Changed: %(changes)s."),
    "initial_status_changed": N_("initial status %(old)s → %(new)s"),
    "number_source_changed": N_("order numbers %(old)s → %(new)s"),
    "number_source_host": N_("the shop's own numbering"),
    "number_source_amazon": N_("the Amazon order number"),
    "order_import_on": N_("order import on"),
    "order_import_off": N_("order import off"),
}

#: A named placeholder: ``%(name)s``.
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def placeholders(key: str) -> set[str]:
    """The values sentence ``key`` takes."""
    sentence = SENTENCES[key]
    texts = sentence if isinstance(sentence, tuple) else (sentence,)
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


class Text:
    """One of our sentences (a key of :data:`SENTENCES`) with its values.

    ``str()`` gives the English sentence; :attr:`params` what an event stores.
    The values must be the ones the sentence takes (a :class:`TypeError`
    otherwise): text, numbers, other :class:`Text` or lists of them.
    """

    __slots__ = ("key", "values")

    def __init__(self, key: str, /, **values: Any) -> None:
        if key not in SENTENCES:
            raise KeyError(f"no sentence {key!r} in flask_amazon_orders.events.SENTENCES")
        wanted = placeholders(key)
        if set(values) != wanted:
            raise TypeError(f"sentence {key!r} takes {sorted(wanted)}, not {sorted(values)}")
        self.key = key
        self.values = values

    @property
    def params(self) -> dict[str, Any]:
        """The sentence as JSON: ``{"text": key, name: value …}``."""
        return {"text": self.key, **{name: _json(value) for name, value in self.values.items()}}

    def __str__(self) -> str:
        return _render(self.params, _ENGLISH, "en")

    def __repr__(self) -> str:
        return f"<Text {self.key} {self.values!r}>"


def _json(value: Any) -> Any:
    if isinstance(value, Text):
        return value.params
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {name: _json(item) for name, item in value.items()}
    if value is None or isinstance(value, str | int):
        return value
    return str(value)  # a Decimal, an exception …


def columns(text: Text | None) -> dict[str, Any]:
    """An event's ``message`` (English) and ``params`` for ``text``."""
    if text is None:
        return {"message": None, "params": None}
    return {"message": str(text), "params": text.params}


class Event(Protocol):
    """What :func:`render` reads of an event (an :class:`~flask_amazon_orders.models.OrderEvent`
    or a :class:`~flask_amazon_orders.models.StoreEvent`)."""

    kind: str
    message: str | None
    params: Any


_ENGLISH = NullTranslations()


def title(kind: str, translations: Any = None) -> str:
    """The heading of an event of ``kind`` (the kind itself if it is unknown)."""
    label = TITLES.get(kind)
    if label is None:
        return kind
    return str((translations or _ENGLISH).gettext(label))


def render(event: Event, *, translations: Any = None, locale: Any = "en") -> str:
    """What ``event`` says, translated with ``translations`` (a gettext translations
    object; English without) and written as ``locale`` writes numbers and amounts.

    The stored ``message`` is the answer for a row without ``params`` (written
    before them) or with a sentence this version does not know; ``""`` if there
    is neither."""
    params = event.params
    if isinstance(params, Mapping):
        try:
            return _render(params, translations or _ENGLISH, locale)
        except (LookupError, TypeError, ValueError, ArithmeticError) as exc:
            if isinstance(params.get("text"), str) and params["text"] in SENTENCES:
                # Ours, and still not shown: worth a look (a sentence of another
                # version's is expected after a downgrade, and needs none).
                log.warning(
                    "event %s cannot be shown from its params (%r): %s", event.kind, params, exc
                )
    return event.message or ""


def _render(params: Mapping[str, Any], translations: Any, locale: Any) -> str:
    sentence = SENTENCES[params["text"]]
    values = {
        name: _show(name, value, translations, locale)
        for name, value in params.items()
        if name != "text"
    }
    if isinstance(sentence, tuple):
        template = translations.ngettext(sentence[0], sentence[1], int(params["num"]))
    else:
        template = translations.gettext(sentence)
    return str(template % values)


def _show(name: str, value: Any, translations: Any, locale: Any) -> str:
    if isinstance(value, Mapping) and "text" in value:
        return _render(value, translations, locale)
    if isinstance(value, list):
        return "; ".join(_show(name, item, translations, locale) for item in value)
    if name == "status":
        return STATUS_LABELS.get(value, str(value))
    if name == "cancel_reason":
        from .services.cancelling import REASON_VALUES

        reason = REASON_VALUES.get(value)
        return str(translations.gettext(reason.label)) if reason else str(value)
    if name == "adjustment_reason":
        from .services.adjusting import REASONS

        label = REASONS.get(value)
        return str(translations.gettext(label)) if label else str(value)
    if name == "refund":
        return i18n.money(Decimal(value["amount"]), value.get("currency"), locale)
    if name == "num":
        return str(numbers.format_decimal(int(value), locale=locale))
    return str(value)
