"""The German catalog stays complete and compiled, and the pages follow the locale.

The catalog is checked against a fresh extraction of the package's messages
(the same method map as babel.cfg, with ``N_`` and ``Nn_``, as ``make
translations`` does), and the committed ``.mo`` against a fresh compile of the
committed ``.po``.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import Babel
from flask_sqlalchemy import SQLAlchemy
from helpers import connect_store

from flask_amazon_orders import AmazonOrders, get_extension, i18n
from flask_amazon_orders.errors import ConfigurationError
from flask_amazon_orders.models import AmazonOrder
from flask_amazon_orders.services import stores

ROOT = Path(__file__).resolve().parent.parent
BABEL_CFG = ROOT / "babel.cfg"
#: The committed catalogs (the ones the package loads when installed from this checkout).
TRANSLATIONS = ROOT / "flask_amazon_orders" / "translations"
DE_PO = TRANSLATIONS / "de" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
DE_MO = DE_PO.with_suffix(".mo")
PREFIX = "/amazon-orders"
HINT = (
    "Run `make translations` (extract, update the catalogs, compile), then translate "
    f"these in {DE_PO.relative_to(ROOT)} (a non-empty msgstr, no fuzzy flag) and run "
    "`make translations` again to compile the .mo."
)

#: A %-format placeholder with a name, as in ``%(num)s`` or ``%(value)r``.
PLACEHOLDER = re.compile(r"%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _ids(message: Message) -> tuple[str, ...]:
    ids = message.id
    return tuple(ids) if isinstance(ids, (list, tuple)) else (str(ids),)


def _strings(message: Message) -> tuple[str, ...]:
    strings = message.string
    return tuple(strings) if isinstance(strings, (list, tuple)) else (strings or "",)


def _show(message: Message) -> str:
    return " | ".join(repr(text) for text in _ids(message))


def _extract() -> Catalog:
    """The package's messages, extracted afresh as babel.cfg and ``make translations`` say."""
    with BABEL_CFG.open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg, filename=str(BABEL_CFG))
    keywords = {**DEFAULT_KEYWORDS, "N_": None, "Nn_": (1, 2)}
    catalog = Catalog(domain=i18n.DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def _read_po(path: Path = DE_PO) -> Catalog:
    with path.open("rb") as po:
        return read_po(po)


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    catalog = _extract()
    assert len(catalog) > 100, "the extraction found (almost) no messages; is babel.cfg right?"
    return catalog


@pytest.fixture(scope="module")
def german() -> Catalog:
    assert DE_PO.is_file(), f"{DE_PO} is missing. {HINT}"
    return _read_po()


def _de(german: Catalog, msgid: str) -> str:
    """The German text of ``msgid`` from the committed catalog."""
    message = german.get(msgid)
    assert message is not None and message.string and message.string != msgid, msgid
    return str(message.string)


# -- the catalog ---------------------------------------------------------------------


def test_every_extracted_message_has_a_german_translation(extracted, german):
    problems = []
    for message in extracted:
        if not message.id:
            continue
        translated = german.get(message.id, message.context)
        if translated is None:
            problems.append(f"{_show(message)}: missing")
            continue
        strings = _strings(translated)
        if isinstance(message.id, tuple) != isinstance(translated.id, tuple):
            problems.append(f"{_show(message)}: singular/plural differs from the catalog's")
        elif translated.fuzzy:
            problems.append(f"{_show(message)}: fuzzy")
        elif not all(strings):
            problems.append(f"{_show(message)}: not translated")
        elif isinstance(message.id, tuple) and len(strings) != german.num_plurals:
            problems.append(
                f"{_show(message)}: {len(strings)} plural forms, not {german.num_plurals}"
            )
        else:
            wanted = {p for text in _ids(message) for p in PLACEHOLDER.findall(text)}
            for text in strings:
                found = set(PLACEHOLDER.findall(text))
                if found != wanted:
                    problems.append(
                        f"{_show(message)}: placeholders {sorted(found)} in {text!r}, "
                        f"not {sorted(wanted)}"
                    )
    assert not problems, (
        f"{len(problems)} message(s) of the package lack a German translation:\n  "
        + "\n  ".join(problems)
        + f"\n{HINT}"
    )


def test_the_german_catalog_passes_babels_checks(german):
    """Python-format placeholders and the number of plural forms (German: 2)."""
    assert german.num_plurals == 2
    assert german.plural_expr == "(n != 1)"
    errors = [
        f"{_show(message)}: {'; '.join(str(error) for error in found)}"
        for message, found in german.check()
    ]
    assert not errors, "\n".join(errors)
    assert not german.fuzzy, f"the header of {DE_PO.name} is marked fuzzy"


def test_the_committed_mo_is_the_committed_po_compiled(german):
    assert DE_MO.is_file(), f"{DE_MO} is missing: run `make translations`."
    fresh = io.BytesIO()
    write_mo(fresh, german)  # as pybabel compile does (fuzzy entries left out)
    fresh.seek(0)
    with DE_MO.open("rb") as committed:
        # _catalog: what gettext (and so Flask-Babel) looks messages up in.
        committed_messages = gettext.GNUTranslations(committed)._catalog  # type: ignore[attr-defined]
    fresh_messages = gettext.GNUTranslations(fresh)._catalog  # type: ignore[attr-defined]
    stale = sorted(
        repr(key)
        for key in committed_messages.keys() | fresh_messages.keys()
        if committed_messages.get(key) != fresh_messages.get(key)
    )
    assert not stale, (
        f"{DE_MO.name} does not match {DE_PO.name} ({len(stale)} message(s) differ, e.g. "
        f"{', '.join(stale[:5])}): run `make translations` to compile it."
    )


# -- the pages follow the locale -----------------------------------------------------


@pytest.fixture
def admin_app(app_factory: Any) -> Flask:
    """An app whose admin pages everyone may use (no app context pushed: each
    request gets its own, so no locale is left over from the one before)."""
    app = app_factory()
    get_extension(app).access_handler(lambda permission, store: True)
    return app


def _text(response: Any) -> str:
    return " ".join(response.data.decode().split())


def _token(client: Any, url: str, headers: dict[str, str]) -> str:
    page = client.get(url, headers=headers).data.decode()
    page = page[page.index('class="ao"') :]
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


@pytest.mark.parametrize(
    ("accept_language", "language"),
    [
        ("de", "de"),
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en", "en"),
        ("en-GB,en;q=0.9,de;q=0.5", "en"),
        ("fr-FR,fr;q=0.9", "en"),  # not translated: the pages stay English
    ],
)
def test_the_pages_follow_accept_language(admin_app, german, accept_language, language):
    response = admin_app.test_client().get(
        f"{PREFIX}/", headers={"Accept-Language": accept_language}
    )
    assert response.status_code == 200
    text = _text(response)
    assert f'<html lang="{language}">' in text
    english = ("Amazon stores", "No Amazon store is connected yet.")
    translated = tuple(_de(german, msgid) for msgid in english)
    shown, hidden = (translated, english) if language == "de" else (english, translated)
    for phrase in shown:
        assert phrase in text
    for phrase in hidden:
        assert phrase not in text


@pytest.mark.parametrize(("host_locale", "accept_language"), [("de", "en"), ("en", "de")])
def test_the_hosts_locale_selector_wins(tmp_path, german, host_locale, accept_language):
    app = Flask("host_with_babel")
    app.config.update(
        TESTING=True,
        SECRET_KEY="test-secret",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'host.sqlite'}",
    )
    db = SQLAlchemy()
    db.init_app(app)
    Babel(app, locale_selector=lambda: host_locale)  # the host's, before the extension
    AmazonOrders(app, db=db).access_handler(lambda permission, store: True)
    with app.app_context():
        db.create_all()
    try:
        response = app.test_client().get(f"{PREFIX}/", headers={"Accept-Language": accept_language})
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    assert response.status_code == 200
    text = _text(response)
    assert f'<html lang="{host_locale}">' in text
    heading = _de(german, "Amazon stores") if host_locale == "de" else "Amazon stores"
    assert f"<h1>{heading}</h1>" in text


def test_a_service_message_is_german_in_a_german_request_and_english_outside(
    admin_app, german, seller
):
    message = "The initial status must be 1 to 40 characters."
    with admin_app.app_context():
        store_id = connect_store(seller).id
    client = admin_app.test_client()
    url = f"{PREFIX}/stores/{store_id}/settings"
    headers = {"Accept-Language": "de"}
    response = client.post(
        url,
        data={
            "csrf_token": _token(client, url, headers),
            "initial_status": "",
            "number_source": "host",
        },
        headers=headers,
    )
    assert response.status_code == 400
    text = _text(response)
    assert _de(german, message) in text
    assert _de(german, "Nothing was changed.") in text
    assert message not in text

    # Outside a request (CLI, jobs) the same service speaks English.
    with admin_app.app_context():
        with pytest.raises(ConfigurationError) as raised:
            stores.update_order_settings(store_id, initial_status="", actor="cli")
        assert str(raised.value) == message


def test_plural_forms_in_a_german_request(admin_app, german):
    singular = "%(num)s order could not become a shop order"
    plural = "%(num)s orders could not become shop orders"
    forms = german.get(singular).string
    with admin_app.test_request_context(headers={"Accept-Language": "de"}):
        assert i18n.ngettext(singular, plural, 1) == forms[0] % {"num": 1}
        assert i18n.ngettext(singular, plural, 3) == forms[1] % {"num": 3}
    with admin_app.test_request_context(headers={"Accept-Language": "en"}):
        assert i18n.ngettext(singular, plural, 3) == "3 orders could not become shop orders"


# -- the timeline and the activity log -------------------------------------------------


def _section(page: str, heading_id: str) -> str:
    """The text of the page's section headed by ``heading_id``."""
    start = page.index(f'id="{heading_id}"')
    return " ".join(page[start : page.index("</section>", start)].split())


def _sandbox_order(sandbox: Any, seller: dict[str, Any], ago: int) -> str:
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ago)
    stamp = moment.isoformat().replace("+00:00", "Z")
    return str(
        sandbox.control.create_order(
            seller["seller_id"],
            status="UNSHIPPED",
            created_time=stamp,
            last_updated_time=stamp,
            items=[{"sku": "TEA-GREEN-100", "quantity": 2, "unit_price": "4.50"}],
        )["orderId"]
    )


def test_the_timeline_and_the_activity_log_follow_the_locale(
    admin_app, german, sandbox, seller, monkeypatch
):
    """A German admin reads what happened in German, after a sync, a settings change,
    cancellations that Amazon confirms and rejects, a status change and a purge; what
    Amazon and the admin wrote stays as written, and entries from before the events
    had their sentences show their stored English text."""
    from flask_amazon_orders.jobs import feeds as feeds_job
    from flask_amazon_orders.jobs import purge
    from flask_amazon_orders.models import OrderEvent, StoreEvent
    from flask_amazon_orders.services import cancelling

    confirmed, rejected, moving = (_sandbox_order(sandbox, seller, 3600 + n) for n in range(3))
    real_send = feeds_job._Run.send

    def ship_then_send(self: Any, submission: Any) -> None:
        sandbox.control.set_status(rejected, "SHIPPED")  # before Amazon processes the feed
        real_send(self, submission)

    monkeypatch.setattr(feeds_job._Run, "send", ship_then_send)
    with admin_app.app_context():
        ext = get_extension()
        store_id = connect_store(seller).id
        assert ext.sync(store_id).status == "succeeded"
        stores.update_order_settings(store_id, initial_status="Neu", actor="admin:ann")
        cancelling.cancel_orders(
            store_id, [confirmed, rejected], reason="NoInventory", memo="Kunde rief an, 100%"
        )
        for _ in range(50):
            feeds_job.process_feeds(store_id)
            if feeds_job.next_poll_due() is None:
                break
            time.sleep(0.05)
        sandbox.control.set_status(moving, "SHIPPED")
        assert ext.sync(store_id).status == "succeeded"
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)
        assert purge.purge_store(store_id, now=later).purged == 3
        pk = {
            order.amazon_order_id: order.id for order in ext.session.scalars(sa.select(AmazonOrder))
        }
        rejection = ext.session.scalar(
            sa.select(OrderEvent).where(OrderEvent.kind == "cancel_rejected")
        )
        amazon_says = rejection.params["error"]  # Amazon's own words
        feed = ext.session.scalar(
            sa.select(OrderEvent).where(OrderEvent.kind == "cancel_sent")
        ).params["feed"]
        # Written before events had their sentences: only the English message.
        ext.session.add_all(
            [
                OrderEvent(
                    order_id=pk[confirmed],
                    kind="a_kind_from_before",
                    actor="sync",
                    message="Written before params existed.",
                ),
                StoreEvent(
                    store_id=store_id,
                    kind="settings_changed",
                    actor="cli",
                    message="order import on.",
                ),
            ]
        )
        ext.session.commit()
    assert "cannot be cancelled" in amazon_says

    client = admin_app.test_client()
    base = f"{PREFIX}/stores/{store_id}"

    def read(url: str, language: str, heading: str) -> str:
        response = client.get(url, headers={"Accept-Language": language})
        assert response.status_code == 200, url
        return _section(response.data.decode(), heading)

    activity = read(base, "de", "activity-heading")
    for shown in (
        _de(german, "Store connected"),
        f"Amazon DE: Verkäufer {seller['seller_id']} in A1PA6795UKMFR9.",
        "Geändert: Anfangsstatus Processing → Neu.",
        "Käuferdaten von 3 Bestellungen gelöscht (Aufbewahrungsfrist 30 Tage).",
        "von ann",
        "order import on.",  # the entry from before, as stored
    ):
        assert shown in activity, shown
    for english in ("Store connected", "seller ", "Changed:", "Buyer data of"):
        assert english not in activity, english

    timeline = read(f"{base}/orders/{confirmed}", "de", "timeline-heading")
    for shown in (
        "Von Amazon importiert mit dem Status Unshipped.",
        "Storniert (Kein Bestand); wartet auf die Übermittlung an Amazon. "
        "Notiz: Kunde rief an, 100%",
        f"Stornierung in Feed {feed} an Amazon gesendet (Nachricht 1).",
        f"Amazon hat die Stornierung bestätigt (Feed {feed}); Amazon informiert den Käufer.",
        "Käuferdaten gelöscht: Die Bestellung wurde vor mehr als 30 Tagen abgeschlossen "
        "(die Aufbewahrungsfrist).",
        "a_kind_from_before",
        "Written before params existed.",
    ):
        assert shown in timeline, shown
    for english in ("Imported from Amazon", "Cancelled (", "Amazon confirmed", "Buyer data"):
        assert english not in timeline, english

    timeline = read(f"{base}/orders/{rejected}", "de", "timeline-heading")
    assert f"Amazon hat die Stornierung abgelehnt: {amazon_says}" in timeline
    assert "Amazon rejected" not in timeline

    timeline = read(f"{base}/orders/{moving}", "de", "timeline-heading")
    assert "Amazon hat den Status auf Shipped geändert." in timeline

    # The same entries in English for an English reader.
    timeline = read(f"{base}/orders/{rejected}", "en", "timeline-heading")
    assert f"Amazon rejected the cancellation: {amazon_says}" in timeline
    assert "Imported from Amazon as Unshipped." in timeline
    activity = read(base, "en", "activity-heading")
    assert "Buyer data of 3 orders deleted (retention period 30 days)." in activity
    assert "Changed: initial status Processing → Neu." in activity
