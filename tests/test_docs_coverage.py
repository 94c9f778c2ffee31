"""The docs name everything a shop can use: a new config key, signal, signal
argument, CLI command or option, host-contract method, admin page, sandbox fault
kind, control endpoint or sandbox option fails here until docs/ describes it.

Pure and fast: the .rst files are read as text, the code is imported or parsed.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
from pathlib import Path
from typing import Any

import click
import pytest
from blinker import NamedSignal
from flask import Flask
from helpers import documented_signals

from flask_amazon_orders import signals
from flask_amazon_orders.cli import amazon_orders_cli
from flask_amazon_orders.config import DEFAULTS
from flask_amazon_orders.host import HostAdapter
from flask_amazon_orders.sandbox import SandboxControl, faults
from flask_amazon_orders.sandbox.__main__ import main as sandbox_main
from flask_amazon_orders.sandbox.config import SandboxConfig
from flask_amazon_orders.services.shipping import confirm_shipment

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "flask_amazon_orders"

#: ``AMAZON_ORDERS_*`` names in the docs that are environment variables (of the CLI
#: and of the extension's own tests), not config keys.
NOT_CONFIG = {
    "AMAZON_ORDERS_REFRESH_TOKEN",
    "AMAZON_ORDERS_CRASH_SEED",
    "AMAZON_ORDERS_RACE_ROUNDS",
}


def _page(name: str) -> str:
    return (DOCS / name).read_text()


def _all_pages() -> str:
    return "\n".join(path.read_text() for path in sorted(DOCS.glob("*.rst")))


# -- configuration ---------------------------------------------------------------------


def _config_entries() -> dict[str, str]:
    """``.. data:: KEY`` entries of config.rst: key -> its text."""
    parts = re.split(r"^\.\. data:: (\w+)\n", _page("config.rst"), flags=re.M)
    return {
        key: re.split(r"^\S", text, maxsplit=1, flags=re.M)[0]
        for key, text in zip(parts[1::2], parts[2::2], strict=True)
    }


def test_config_page_has_every_key_and_no_other():
    documented = _config_entries()
    assert sorted(set(DEFAULTS) - set(documented)) == [], "keys missing in docs/config.rst"
    assert sorted(set(documented) - set(DEFAULTS)) == [], "docs/config.rst names unknown keys"


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_config_page_gives_the_true_default(key: str):
    text = _config_entries().get(key, "")
    found = re.search(r"Default\s+``([^`]+)``", text)
    assert found, f"docs/config.rst gives no 'Default ``…``' for {key}"
    try:
        value: Any = ast.literal_eval(found.group(1))
    except (ValueError, SyntaxError):
        value = found.group(1)
    assert value == DEFAULTS[key], (
        f"{key}: the docs say {found.group(1)}, the code {DEFAULTS[key]!r}"
    )


def test_docs_mention_no_config_key_that_does_not_exist():
    named = set(re.findall(r"\bAMAZON_ORDERS_[A-Z0-9_]*[A-Z0-9]\b", _all_pages()))
    assert sorted(named - set(DEFAULTS) - NOT_CONFIG) == []


# -- signals ---------------------------------------------------------------------------


def _signal_objects() -> dict[str, NamedSignal]:
    return {name: value for name, value in vars(signals).items() if isinstance(value, NamedSignal)}


def test_every_signal_is_in_the_signal_reference_with_its_string_name():
    declared = _signal_objects()
    documented = documented_signals()
    assert sorted(declared) == sorted(documented)
    for name, signal in declared.items():
        assert documented[name][0] == signal.name == name.replace("_", "-")
        assert name in signals.__all__


def test_every_signal_is_in_the_api_reference():
    api = _page("api.rst")
    for name in _signal_objects():
        assert f".. autodata:: flask_amazon_orders.signals.{name}\n" in api


def _signal_name(node: ast.AST) -> str | None:
    """``X`` for an expression ``signals.X`` (or ``signals.X.receivers_for``)."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "signals"
        and node.attr in _signal_objects()
    ):
        return node.attr
    return None


def _sent_keyword_arguments() -> dict[str, set[str]]:
    """Every keyword argument the package passes to each signal's receivers, read
    from the code: ``signals.send(signals.X, app, k=…)``; ``(signals.X, {"k": …})``
    queued for a generic ``signals.send(signal, app, k=…, **kwargs)`` in the same
    module; and ``receiver(app, k=…)`` in ``for receiver in
    signals.X.receivers_for(…)``."""
    sent: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "signals.py" or "sandbox" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        common: set[str] | None = None
        queued: list[tuple[str, set[str]]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "send"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "signals"
            ):
                keywords = {k.arg for k in node.keywords if k.arg is not None}
                name = _signal_name(node.args[0])
                if name is None:
                    assert common is None, f"{path}: two generic signals.send() calls"
                    common = keywords
                else:
                    sent.setdefault(name, set()).update(keywords)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = _signal_name(node.func.value)
                if name is not None and node.func.attr == "send":
                    keywords = {k.arg for k in node.keywords if k.arg is not None}
                    sent.setdefault(name, set()).update(keywords)
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
                name = _signal_name(node.elts[0])
                if name is not None and isinstance(node.elts[1], ast.Dict):
                    queued.append(
                        (name, {k.value for k in node.elts[1].keys if isinstance(k, ast.Constant)})
                    )
            elif isinstance(node, ast.For) and isinstance(node.iter, ast.Call):
                func = node.iter.func
                if isinstance(func, ast.Attribute) and func.attr == "receivers_for":
                    name = _signal_name(func.value)
                    assert name is not None and isinstance(node.target, ast.Name)
                    for inner in ast.walk(node):
                        if (
                            isinstance(inner, ast.Call)
                            and isinstance(inner.func, ast.Name)
                            and inner.func.id == node.target.id
                        ):
                            sent.setdefault(name, set()).update(
                                k.arg for k in inner.keywords if k.arg is not None
                            )
        if queued:
            assert common is not None, f"{path} queues signals but sends none of them"
        for name, keywords in queued:
            sent.setdefault(name, set()).update(keywords | common)
    return sent


def test_every_signal_argument_the_code_sends_is_documented_and_no_other():
    sent = _sent_keyword_arguments()
    documented = documented_signals()
    by_the_shop = {"host_order_shipped"}
    assert sorted(set(sent)) == sorted(set(documented) - by_the_shop), (
        "a signal the extension sends is not found in the code (or the scan needs updating)"
    )
    for name, keywords in sent.items():
        assert sorted(keywords) == sorted(documented[name][1]), name


def test_host_order_shipped_lists_the_arguments_of_confirm_shipment():
    parameters = list(inspect.signature(confirm_shipment).parameters)
    assert documented_signals()["host_order_shipped"][1] == parameters


# -- the host contract and the admin pages ---------------------------------------------------


def test_every_host_adapter_method_is_in_the_host_contract_table():
    page = _page("host.rst")
    methods = [name for name in vars(HostAdapter) if not name.startswith("_")]
    assert methods
    for name in methods:
        assert f"   * - :meth:`~flask_amazon_orders.host.HostAdapter.{name}`" in page, name


#: Each admin endpoint: the page that describes it and its screenshots (POST-only
#: actions have none). A new endpoint fails until it is added here and to the docs.
ADMIN_ENDPOINTS = {
    "index": ("admin.rst", "**Store cards**", ["store-cards.png"]),
    "store_new": ("admin.rst", "**Connect a store**", ["connect-store.png"]),
    "dashboard": ("admin.rst", "**Store dashboard**", ["store-dashboard.png"]),
    "sync_now": ("admin.rst", "**Sync now**", []),
    "orders": ("admin.rst", "**All orders**", ["all-orders-filtered.png"]),
    "order": ("admin.rst", "**Amazon Order Details**", ["order-details-imported.png"]),
    "retry_import": ("admin.rst", "**Retry import**", []),
    "cancel_order": ("cancel.rst", "Cancel Order", ["cancel-order.png"]),
    "cancel_orders": ("cancel.rst", "Several orders at once", ["bulk-cancel.png"]),
    "cancel_items": ("cancel.rst", "**Cancel items**", ["cancel-items.png"]),
    "settings": ("admin.rst", "**Settings**", ["settings.png"]),
    "store_token": ("admin.rst", "**Update authorization**", []),
}


def _admin_routes() -> dict[str, str]:
    """Endpoint -> URL rule of every view of the admin blueprint (from views.py)."""
    routes = {}
    tree = ast.parse((PACKAGE / "admin" / "views.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and isinstance(decorator.func.value, ast.Name)
                    and decorator.func.value.id == "bp"
                ):
                    routes[node.name] = decorator.args[0].value
    return routes


def test_every_admin_page_is_described_and_shown():
    routes = _admin_routes()
    assert sorted(routes) == sorted(ADMIN_ENDPOINTS), "a new admin page: document it"
    admin = _page("admin.rst")
    for endpoint, (page, title, pictures) in ADMIN_ENDPOINTS.items():
        text = _page(page)
        assert title in text, (endpoint, title)
        last = routes[endpoint].rstrip("/").rsplit("/", 1)[-1]
        if not last.startswith("<"):
            assert f"/{last}``" in admin, f"admin.rst does not give the path of {endpoint}"
        for picture in pictures:
            assert (DOCS / "_static" / "screenshots" / picture).is_file(), picture
            assert f".. figure:: _static/screenshots/{picture}" in text, picture


def test_every_screenshot_taken_is_shown():
    taken = re.findall(r'shoot\(page, "([\w.-]+\.png)"', (DOCS / "screenshots.py").read_text())
    shown = set(re.findall(r"\.\. figure:: _static/screenshots/([\w.-]+\.png)", _all_pages()))
    assert taken and sorted(set(taken) - shown) == []
    on_disk = {path.name for path in (DOCS / "_static" / "screenshots").glob("*.png")}
    assert sorted(on_disk - set(taken)) == [], (
        "a screenshot that docs/screenshots.py no longer takes"
    )


# -- the command line ------------------------------------------------------------------


def _commands(group: click.Group, prefix: str) -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, path))
        else:
            found[path] = command
    return found


def _cli_entries() -> dict[str, str]:
    """Entries of cli.rst: the command (without its arguments) -> its header and text."""
    parts = re.split(r"^(``flask amazon-orders [^`]+``)\n", _page("cli.rst"), flags=re.M)
    entries = {}
    for header, text in zip(parts[1::2], parts[2::2], strict=True):
        words = header.strip("`").split()
        command = " ".join(w for w in words if re.fullmatch(r"[a-z][a-z-]*", w))
        entries[command] = header + "\n" + re.split(r"^\S", text, maxsplit=1, flags=re.M)[0]
    return entries


def test_every_cli_command_argument_and_option_is_documented():
    commands = _commands(amazon_orders_cli, "flask amazon-orders")
    entries = _cli_entries()
    assert sorted(commands) == sorted(entries)
    for path, command in commands.items():
        text = entries[path]
        for param in command.params:
            if isinstance(param, click.Argument):
                name = (param.metavar or param.name or "").upper()
                assert re.search(rf"\b{name}\b", text.splitlines()[0]), (path, name)
            else:
                for opt in [*param.opts, *param.secondary_opts]:
                    assert f"``{opt}" in text, (path, opt)


# -- the sandbox -----------------------------------------------------------------------


def _sandbox_section(title: str) -> str:
    """One section of sandbox.rst, from its title to the next section's."""
    text = _page("sandbox.rst")
    start = text.index(f"\n{title}\n-")
    following = re.search(r"\n[^\n]+\n-{3,}\n", text[start + len(title) + 2 :])
    return text[start : start + len(title) + 2 + following.start()] if following else text[start:]


def test_every_fault_kind_and_operation_is_documented():
    section = _sandbox_section("Fault injection")
    rows = set(re.findall(r"^   \* - ``([\w*]+)``$", section, flags=re.M))
    assert sorted(faults.KINDS - rows) == [], "fault kinds missing in the table"
    assert sorted(rows - faults.KINDS) == [], "the table names kinds that do not exist"
    for operation in faults.OPERATIONS:
        assert f"``{operation}``" in section.split("``kind``")[0], operation


def _control_routes() -> list[tuple[str, str]]:
    from flask_amazon_orders.sandbox.control import bp

    app = Flask(__name__)
    app.register_blueprint(bp)
    return [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(f"{bp.name}.")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def test_every_control_endpoint_and_client_method_is_documented():
    section = _sandbox_section("The control API")
    routes = _control_routes()
    assert len(routes) > 20
    for method, rule in routes:
        assert re.search(rf"``{method} {re.escape(rule)}(``|\[|\?)", section), (method, rule)
    for name, member in vars(SandboxControl).items():
        if callable(member) and not name.startswith("_") and name != "close":
            assert f":meth:`~SandboxControl.{name}`" in section, name


def test_every_sandbox_option_and_command_line_flag_is_documented():
    section = _sandbox_section("Configuration")
    for field in SandboxConfig.__dataclass_fields__:
        assert f"   * - ``{field}``" in section, field
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        sandbox_main(["--help"])
    section = _sandbox_section("Running it from the command line")
    listed = {  # the definitions of the options: lines that start with one
        flag
        for line in section.splitlines()
        if line.startswith("``--")
        for flag in re.findall(r"``(--[a-z][a-z-]+)", line)
    }
    for flag in set(re.findall(r"(--[a-z][a-z-]+)", out.getvalue())) - {"--help"}:
        assert flag in listed, flag
