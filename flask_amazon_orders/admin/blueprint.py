"""The ``amazon_orders`` blueprint: templates, static files, template helpers, error pages."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from babel import numbers
from flask import Blueprint, render_template
from flask_babel import get_locale
from werkzeug.exceptions import HTTPException

from .. import events, i18n
from ..client.records import STATUS_LABELS
from ..config import MARKETPLACES
from ..extension import get_extension
from ..i18n import N_
from . import csrf
from .access import allowed

_PACKAGE = os.path.dirname(os.path.dirname(__file__))

bp = Blueprint(
    "amazon_orders",
    __name__,
    template_folder=os.path.join(_PACKAGE, "templates"),
    static_folder=os.path.join(_PACKAGE, "static"),
    static_url_path="/static",
)


_ACTORS = {
    "admin": N_("an admin"),
    "sync": N_("the sync"),
    "worker": N_("the background worker"),
    "cli": N_("the command line"),
    "api": N_("the shop's code"),
    "amazon": N_("Amazon"),
    "buyer": N_("the buyer"),
    "amazon-orders": N_("Flask-Amazon-Orders"),
    "purge": N_("the purge job"),
    "host": N_("the shop"),
}
_STATUS_RANK = {status: index for index, status in enumerate(STATUS_LABELS)}


class Helpers:
    """``amazon_orders`` in the admin templates: the base template and helpers.

    Made once per rendered page, with the request's translations and locale
    looked up once (a page of 50 orders formats hundreds of values).
    """

    when = staticmethod(i18n.when)
    csrf_token = staticmethod(csrf.generate_token)
    can = staticmethod(allowed)

    def __init__(self) -> None:
        self._translations = i18n.domain.get_translations()
        self._locale = get_locale() or "en"
        self.base_template = get_extension().settings.base_template

    def gettext(self, string: str, **variables: Any) -> str:
        text = self._translations.ugettext(string)
        return text % variables if variables else text

    def ngettext(self, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return self._translations.ungettext(singular, plural, num) % variables  # type: ignore[no-any-return]

    def language(self) -> str:
        return str(getattr(self._locale, "language", self._locale))

    def money(self, amount: Decimal | None, currency: str | None) -> str:
        if amount is None:
            return i18n.NONE
        return i18n.money(amount, currency, self._locale)

    def number(self, value: int) -> str:
        return str(numbers.format_decimal(value, locale=self._locale))

    @staticmethod
    def status_label(status: str | None) -> str:
        return STATUS_LABELS.get(status or "", status or i18n.NONE)

    def actor(self, actor: str | None) -> str:
        """Who did it, in words: ``admin:ann`` is ann, ``sync`` the sync …"""
        if not actor:
            return i18n.NONE
        if actor.startswith("admin:"):
            return actor[len("admin:") :]
        return self.gettext(_ACTORS[actor]) if actor in _ACTORS else actor

    def event_title(self, event: events.Event) -> str:
        """The heading of a timeline or activity entry (``Imported from Amazon`` …)."""
        return events.title(event.kind, self._translations)

    def event_text(self, event: events.Event) -> str:
        """What the entry says, in the page's language (see :mod:`flask_amazon_orders.events`)."""
        return events.render(event, translations=self._translations, locale=self._locale)

    @staticmethod
    def by_lifecycle(counts: dict[str, int]) -> list[tuple[str, int]]:
        """Counts per status in the order an order lives through them."""
        return sorted(counts.items(), key=lambda item: (_STATUS_RANK.get(item[0], 99), item[0]))

    @staticmethod
    def marketplace(marketplace_id: str) -> str:
        entry = MARKETPLACES.get(marketplace_id)
        return entry[2] if entry else marketplace_id


@bp.context_processor
def _template_context() -> dict[str, Any]:
    # ``_`` here is the extension's own gettext domain, not the host's.
    helpers = Helpers()
    return {"amazon_orders": helpers, "_": helpers.gettext, "ngettext": helpers.ngettext}


_ERRORS = {
    400: N_("The request could not be used."),
    403: N_("You are not allowed to use this page. Ask the shop's administrator for access."),
    404: N_("There is no such page, store or order."),
}


def _error_page(error: HTTPException) -> tuple[str, int]:
    code = error.code or 400
    if code == 400 and error.description == csrf.EXPIRED:
        message = i18n.gettext("The form has expired. Reload the page and try again.")
    else:
        message = i18n.gettext(_ERRORS[code])
    return render_template("amazon_orders/error.html", code=code, message=message), code


for _code in _ERRORS:
    bp.register_error_handler(_code, _error_page)
