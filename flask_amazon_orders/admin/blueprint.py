"""The ``amazon_orders`` blueprint: templates, static files, template helpers, error pages."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, render_template
from werkzeug.exceptions import HTTPException

from .. import i18n
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


class _Helpers:
    """``amazon_orders`` in the admin templates: the base template and helpers."""

    gettext = staticmethod(i18n.gettext)
    ngettext = staticmethod(i18n.ngettext)
    money = staticmethod(i18n.money)
    when = staticmethod(i18n.when)
    number = staticmethod(i18n.number)
    language = staticmethod(i18n.language)
    csrf_token = staticmethod(csrf.generate_token)
    can = staticmethod(allowed)

    @property
    def base_template(self) -> str:
        return get_extension().settings.base_template

    @staticmethod
    def status_label(status: str | None) -> str:
        return STATUS_LABELS.get(status or "", status or i18n.NONE)

    @staticmethod
    def marketplace(marketplace_id: str) -> str:
        entry = MARKETPLACES.get(marketplace_id)
        return entry[2] if entry else marketplace_id


_HELPERS = _Helpers()


@bp.context_processor
def _template_context() -> dict[str, Any]:
    # ``_`` here is the extension's own gettext domain, not the host's.
    return {"amazon_orders": _HELPERS, "_": i18n.gettext, "ngettext": i18n.ngettext}


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
