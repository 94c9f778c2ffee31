"""Translations and locale-aware formatting (the admin pages and the messages they show).

The pages are in English with a German translation, in the gettext domain
``flask_amazon_orders`` (``flask_amazon_orders/translations``). The locale is the
host's: the pages use Flask-Babel's ``get_locale()``, so a host that set up
Flask-Babel with its own locale selector decides. A host without Flask-Babel
gets one set up by :func:`init_babel`, choosing from the browser's
``Accept-Language`` among the languages shipped here.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any

from babel import numbers
from flask import Flask, has_request_context, request
from flask_babel import Babel, Domain

TRANSLATIONS = os.path.join(os.path.dirname(__file__), "translations")
DOMAIN = "flask_amazon_orders"
#: The languages the admin pages are translated into.
LANGUAGES = ("en", "de")

domain = Domain(translation_directories=[TRANSLATIONS], domain=DOMAIN)


def gettext(string: str, **variables: Any) -> str:
    """Translate ``string`` into the request's language (``_`` in templates).

    Outside a request (CLI, jobs) the text stays English."""
    return str(domain.gettext(string, **variables))


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    return str(domain.ngettext(singular, plural, num, **variables))


_ = gettext

#: What the pages show for "no value" (an en dash).
NONE = "\u2013"


def N_(string: str) -> str:
    """Mark ``string`` for translation where it is defined; translate it where shown."""
    return string


def Nn_(singular: str, plural: str) -> tuple[str, str]:
    """:func:`N_` for a message with a plural form (translated with ``ngettext``)."""
    return singular, plural


def money(amount: Decimal, currency: str | None, locale: Any) -> str:
    """An amount as ``locale`` writes it, in ``currency`` if there is one (``59,00 €``)."""
    if not currency:
        return str(numbers.format_decimal(amount, format="#,##0.00", locale=locale))
    return str(numbers.format_currency(amount, currency, locale=locale))


def _select_locale() -> str | None:
    if not has_request_context():
        return None
    return request.accept_languages.best_match(LANGUAGES)


def init_babel(app: Flask) -> None:
    """Set up Flask-Babel on ``app`` unless the host did already (the host's wins)."""
    if "babel" not in app.extensions:
        Babel(app, locale_selector=_select_locale)


def when(value: dt.datetime | None, *, zone: bool = True) -> str:
    """A UTC time, written the same for every locale: ``2026-11-30 14:05 UTC``.

    The numeric ISO form sorts and reads alike in English and German, and says
    plainly which time zone it is in (tables say it once, in the column head:
    ``zone=False``)."""
    if value is None:
        return NONE
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M UTC" if zone else "%Y-%m-%d %H:%M")
