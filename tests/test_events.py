"""The timeline's and the activity log's text: every kind the package writes has a
heading, every sentence it writes gets exactly the values it names, and an event is
shown from its sentence in the reader's language, or from its stored English
``message`` when it has no sentence this version knows (rows from before ``params``)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from babel.support import NullTranslations
from flask import Flask

from flask_amazon_orders import events, get_extension, i18n

PACKAGE = Path(events.__file__).resolve().parent
#: Where the package writes events (the sandbox is Amazon's side and writes none).
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "sandbox" not in p.relative_to(PACKAGE).parts)


def _trees() -> list[tuple[Path, ast.AST]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in SOURCES]


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _strings(node: ast.AST) -> set[str]:
    """The strings an expression gives: a literal, or either of ``"a" if x else "b"``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    return set()


def _kinds_written() -> dict[str, list[str]]:
    """Every event kind the package writes, with where: ``OrderEvent(kind=…)`` and
    ``StoreEvent(kind=…)``, the rows of Core inserts (dicts with ``order_id`` and
    ``kind``) and the activity log's ``record(store, kind, …)``."""
    found: dict[str, list[str]] = {}

    def add(values: set[str], path: Path, node: ast.AST) -> None:
        assert values, f"{path.name}:{node.lineno}: a kind that is not a literal"  # type: ignore[attr-defined]
        for value in values:
            found.setdefault(value, []).append(f"{path.name}:{node.lineno}")  # type: ignore[attr-defined]

    for path, tree in _trees():
        # record() itself passes its callers' kinds on: those are found at the callers.
        passed_on = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name == "record"
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in passed_on:
                continue
            if isinstance(node, ast.Call) and _name(node.func) in ("OrderEvent", "StoreEvent"):
                for keyword in node.keywords:
                    if keyword.arg == "kind":
                        add(_strings(keyword.value), path, node)
            elif isinstance(node, ast.Call) and _name(node.func) == "record" and len(node.args) > 1:
                add(_strings(node.args[1]), path, node)
            elif isinstance(node, ast.Dict):
                keys = {
                    k.value: v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant)
                }
                if "kind" in keys and "order_id" in keys:
                    add(_strings(keys["kind"]), path, node)
    return found


def _sentences_written() -> list[tuple[str, str, set[str]]]:
    """Every ``events.Text(key, name=value …)`` of the package: (where, key, names)."""
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("events"):
                assert "Text" not in {alias.name for alias in node.names}, (
                    f"{path.name}: write events.Text (so that this test sees it)"
                )
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "Text"
                and _name(node.func.value) == "events"
            ):
                continue
            where = f"{path.name}:{node.lineno}"
            keys = _strings(node.args[0]) if node.args else set()
            assert keys, (
                f"{where}: the sentence's key must be a literal (so that this test sees it)"
            )
            assert all(k.arg is not None for k in node.keywords), f"{where}: no **values, please"
            names = {str(k.arg) for k in node.keywords}
            found += [(where, key, names) for key in keys]
    return found


def test_every_kind_written_has_a_heading_and_every_heading_is_written():
    written = _kinds_written()
    assert len(written) >= 20, sorted(written)  # the scan finds them (sanity)
    missing = {kind: where for kind, where in written.items() if kind not in events.TITLES}
    assert not missing, f"kinds without a heading in events.TITLES: {missing}"
    unused = set(events.TITLES) - set(written)
    assert not unused, f"headings of kinds nothing writes: {sorted(unused)}"


def test_every_sentence_written_takes_exactly_the_values_given():
    written = _sentences_written()
    assert len(written) >= 40
    problems = [
        f"{where}: {key!r} is not a sentence"
        if key not in events.SENTENCES
        else f"{where}: {key!r} takes {sorted(events.placeholders(key))}, given {sorted(names)}"
        for where, key, names in written
        if key not in events.SENTENCES or events.placeholders(key) != names
    ]
    assert not problems, "\n".join(problems)
    unused = set(events.SENTENCES) - {key for _where, key, _names in written}
    assert not unused, f"sentences nothing writes: {sorted(unused)}"


def test_sentences_with_a_count_name_it_num():
    for key, sentence in events.SENTENCES.items():
        if isinstance(sentence, tuple):
            assert "num" in events.placeholders(key), key
            singular, plural = sentence
            assert set(events.PLACEHOLDER.findall(singular)) == set(
                events.PLACEHOLDER.findall(plural)
            ), key


# -- Text ------------------------------------------------------------------------------


def test_a_text_refuses_an_unknown_sentence_or_other_values():
    with pytest.raises(KeyError):
        events.Text("no_such_sentence")
    with pytest.raises(TypeError, match="takes"):
        events.Text("imported")
    with pytest.raises(TypeError, match="takes"):
        events.Text("imported", status="Unshipped", extra="x")


def test_a_text_is_stored_as_json_and_reads_as_english():
    text = events.Text(
        "store_buyer_data_purged", num=1, period=events.Text("retention_period", num=30)
    )
    assert text.params == {
        "text": "store_buyer_data_purged",
        "num": 1,
        "period": {"text": "retention_period", "num": 30},
    }
    assert str(text) == "Buyer data of 1 order deleted (retention period 30 days)."
    assert events.columns(text) == {"message": str(text), "params": text.params}
    assert events.columns(None) == {"message": None, "params": None}


def _event(kind: str = "imported", params: Any = None, message: str | None = None) -> Any:
    return SimpleNamespace(kind=kind, params=params, message=message)


# -- render --------------------------------------------------------------------------


def test_a_row_from_before_params_shows_its_message():
    old = _event("imported", None, "Imported from Amazon as Unshipped.")
    assert events.render(old) == "Imported from Amazon as Unshipped."
    assert events.render(_event("sync_requested")) == ""


@pytest.mark.parametrize(
    "params",
    [
        {"text": "a_sentence_of_a_later_version", "x": 1},
        {"text": "imported"},  # a value missing
        {"text": "adjustment_settled", "item": "1", "result": {"text": "unknown"}},
        {"text": "order_buyer_data_purged", "num": "many"},
        {"text": ["imported"], "status": "Shipped"},
        {
            "text": "adjustment_queued",
            "num": 1,
            "item": "1",
            "adjustment_reason": "x",
            "refund": {"amount": "?"},
        },
        ["not", "a", "sentence"],
        "text",
    ],
)
def test_params_this_version_cannot_show_fall_back_to_the_message(params):
    assert events.render(_event("imported", params, "As it was written.")) == "As it was written."


def test_unknown_kinds_are_headed_by_their_name():
    assert events.title("a_kind_of_a_later_version") == "a_kind_of_a_later_version"
    assert events.title("cancel_sent") == "Cancellation sent to Amazon"


def test_text_not_ours_is_shown_as_given():
    amazon = "Order 028-1 is 100% shipped; %(num)s and %s stay as they are"
    text = events.Text("cancel_rejected", error=amazon)
    assert str(text) == f"Amazon rejected the cancellation: {amazon}"
    assert events.render(_event("cancel_rejected", text.params)) == str(text)


@pytest.fixture
def german(app_factory: Any) -> Any:
    """The German translations, as a page in German gets them."""
    app: Flask = app_factory()
    with app.test_request_context(headers={"Accept-Language": "de"}):
        yield i18n.domain.get_translations()


def _german(text: events.Text, translations: Any) -> str:
    return events.render(_event(params=text.params), translations=translations, locale="de")


def test_sentences_are_translated_with_their_values_written_the_german_way(german):
    queued = events.Text(
        "adjustment_queued_memo",
        num=2,
        item="10001",
        adjustment_reason="NoInventory",
        refund={"amount": "1234.5", "currency": "EUR"},
        memo="Customer called",
    )
    assert _german(queued, german) == (
        "2 Einheiten von Artikel 10001 storniert (Kein Bestand), Erstattung 1.234,50\xa0€; "
        "wartet auf die Übermittlung an Amazon. Notiz: Customer called"
    )
    assert str(queued) == (
        "2 units of item 10001 cancelled (No Inventory), refund €1,234.50; queued for Amazon. "
        "Memo: Customer called"
    )
    # Plural forms, nested sentences, lists, status names and reason labels.
    purged = events.Text(
        "store_buyer_data_purged", num=1, period=events.Text("retention_period", num=1)
    )
    assert (
        _german(purged, german)
        == "Käuferdaten von 1 Bestellung gelöscht (Aufbewahrungsfrist 1 Tag)."
    )
    changed = events.Text(
        "settings_changed",
        changes=[
            events.Text("initial_status_changed", old="Processing", new="Neu"),
            events.Text(
                "number_source_changed",
                old=events.Text("number_source_host"),
                new=events.Text("number_source_amazon"),
            ),
        ],
    )
    assert _german(changed, german) == (
        "Geändert: Anfangsstatus Processing → Neu; Bestellnummern die eigene Nummerierung des "
        "Shops → die Amazon-Bestellnummer."
    )
    moved = events.Text("cancel_status_moved", status="PartiallyShipped")
    assert _german(moved, german) == (
        "Die Bestellung hat bei Amazon jetzt den Status Partially Shipped; sie wurde nicht "
        "storniert."
    )
    requested = events.Text("cancel_requested", cancel_reason="BuyerCanceled")
    assert _german(requested, german).startswith("Storniert (")
    assert "BuyerCanceled" not in _german(requested, german)
    assert events.title("cancel_sent", german) == "Stornierung an Amazon gesendet"
    # Outside a request the same sentence is English.
    assert events.render(_event(params=moved.params)) == (
        "The order is Partially Shipped on Amazon now; it was not cancelled."
    )


def test_every_sentence_renders_in_english_and_german(german):
    """Each sentence with made-up values: the catalog's placeholders fit (a broken
    translation would fall back to the English message, and fail here)."""
    values = {
        "status": "Unshipped",
        "cancel_reason": "NoInventory",
        "adjustment_reason": "CustomerCancel",
        "refund": {"amount": "4.50", "currency": "EUR"},
        "num": 3,
    }
    for key in events.SENTENCES:
        text = events.Text(
            key, **{name: values.get(name, f"<{name}>") for name in events.placeholders(key)}
        )
        english, german_text = str(text), _german(text, german)
        row = _event(params=text.params, message="FALLBACK")
        assert events.render(row) == english
        assert german_text != english, key
        assert "%(" not in german_text and "FALLBACK" not in german_text, key


def test_the_page_helpers_use_the_pages_language(app_factory):
    app = app_factory()
    get_extension(app).access_handler(lambda permission, store: True)
    from flask_amazon_orders.admin.blueprint import Helpers

    row = _event("status_changed", events.Text("status_changed", status="Shipped").params)
    with app.test_request_context(headers={"Accept-Language": "de"}):
        helpers = Helpers()
        assert helpers.event_title(row) == "Status geändert"
        assert helpers.event_text(row) == "Amazon hat den Status auf Shipped geändert."
    with app.test_request_context(headers={"Accept-Language": "en"}):
        helpers = Helpers()
        assert helpers.event_title(row) == "Status changed"
        assert helpers.event_text(row) == "Amazon changed the status to Shipped."


def test_english_needs_no_translations():
    text = events.Text("shipment_queued", num=1, carrier="DHL", tracking="00340434")
    assert events.render(_event(params=text.params), translations=NullTranslations()) == (
        "Shipped 1 unit with DHL, tracking 00340434; to be confirmed to Amazon."
    )
