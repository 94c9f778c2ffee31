"""The German catalog stays complete and compiled, and the pages follow the locale.

The catalog is checked against a fresh extraction of the package's messages
(the same method map as babel.cfg, with ``N_`` and ``Nn_``, as ``make
translations`` does), and the committed ``.mo`` against a fresh compile of the
committed ``.po``.
"""

from __future__ import annotations

import gettext
import io
import re
from pathlib import Path
from typing import Any

import pytest
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
