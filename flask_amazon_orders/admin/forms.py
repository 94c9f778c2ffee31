"""Reading and validating the admin pages' form and query values.

A bad value gives a message for the admin and changes nothing; the services
validate again, as the last word, for every caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

from ..client.records import STATUS_LABELS
from ..i18n import _
from .queries import CHANNELS, IMPORT_STATES, SORTS, OrderFilter

MAX_SEARCH = 64


def _date(value: str, label: str, errors: list[str]) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.append(
            _("%(field)s is not a date (YYYY-MM-DD): %(value)s", field=label, value=value)
        )
        return None


def order_filter(args: Mapping[str, str]) -> tuple[OrderFilter, list[str]]:
    """The order list's filter from the query string, and what was wrong with it.

    A wrong value is dropped (the list shows without it) and named in the errors.
    """
    errors: list[str] = []
    status = args.get("status", "").strip() or None
    if status and status not in STATUS_LABELS:
        errors.append(_("Unknown status: %(value)s", value=status))
        status = None
    channel = args.get("channel", "").strip() or None
    if channel and channel not in CHANNELS:
        errors.append(_("Unknown fulfilment channel: %(value)s", value=channel))
        channel = None
    imported = args.get("imported", "").strip() or None
    if imported and imported not in IMPORT_STATES:
        errors.append(_("Unknown import state: %(value)s", value=imported))
        imported = None
    date_from = _date(args.get("from", "").strip(), _("From"), errors)
    date_to = _date(args.get("to", "").strip(), _("To"), errors)
    if date_from and date_to and date_from > date_to:
        errors.append(_("The start date is after the end date."))
        date_from = date_to = None
    q = args.get("q", "").strip() or None
    if q and len(q) > MAX_SEARCH:
        errors.append(_("The search text is longer than %(max)s characters.", max=MAX_SEARCH))
        q = None
    sort = args.get("sort", "newest")
    if sort not in SORTS:
        errors.append(_("Unknown sort order: %(value)s", value=sort))
        sort = "newest"
    page_text = args.get("page", "1")
    page = int(page_text) if page_text.isdigit() and 0 < len(page_text) < 9 else 0
    if page < 1:
        errors.append(_("Unknown page: %(value)s", value=page_text))
        page = 1
    return (
        OrderFilter(
            status=status,
            channel=channel,
            date_from=date_from,
            date_to=date_to,
            imported=imported,
            q=q,
            sort=sort,
            page=page,
        ),
        errors,
    )


def checkbox(form: Mapping[str, str], name: str) -> bool:
    return form.get(name) in ("on", "1", "true", "yes")


@dataclasses.dataclass
class SettingsForm:
    """The store settings form's values (as sent, for showing them again)."""

    order_import: bool
    initial_status: str
    number_source: str

    @classmethod
    def from_request(cls, form: Mapping[str, str]) -> SettingsForm:
        return cls(
            order_import=checkbox(form, "order_import"),
            initial_status=form.get("initial_status", ""),
            number_source=form.get("number_source", ""),
        )
