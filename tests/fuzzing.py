"""Hypothesis strategies for the property tests of every parser of Amazon's answers.

Two kinds of input:

* **arbitrary** JSON values, XML and bytes: wrong types, huge and non-finite
  numbers, NaN-ish and odd unicode strings (NUL, unpaired surrogates), deep
  nesting, missing keys;
* **mutations of valid documents**: a valid order (the official model's examples
  and orders from the sandbox's generator), page or answer with one to three of
  its fields dropped, replaced by an odd value or retyped. These find the bugs:
  a parser that survives noise may still trip over a number where a string was.

The property each test checks is the same: a parser returns a valid value or
raises the package's typed error (:class:`~flask_amazon_orders.errors.AmazonOrdersError`),
never anything else.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

MODELS = Path(__file__).parents[1] / "flask_amazon_orders" / "sandbox" / "models"


def scaled(factor: float) -> settings:
    """Settings with the active profile's ``max_examples`` times ``factor``: a slow test
    runs fewer examples than a quick one, in the ``ci`` and the ``long`` profile alike."""
    return settings(max_examples=max(5, int(settings.default.max_examples * factor)))


#: Strings that have tripped parsers somewhere: numbers in words, numbers too big
#: for a float or an int column, lenient Decimal syntax, non-ASCII digits, NUL,
#: an unpaired surrogate (as ``json.loads`` gives it for ``"\ud800"``), times out
#: of range, and one too long for any column.
ODD_STRINGS = (
    "",
    " ",
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "-0",
    "0",
    "-1",
    "1e999",
    "1E-999",
    "1e+30",
    "99999999999999999.99",
    "0.00001",
    " 12.50 ",
    "1_000",
    "+5",
    ".5",
    "12,50",
    "\u0661\u0662",  # Arabic-Indic digits 12
    "\u00b2",  # superscript two: str.isdigit() is true, int() refuses it
    "\x00",
    "A\x00B",
    "\ud800",
    "\U0001f600",
    "\u202e",
    "null",
    "true",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-02-30T00:00:00Z",
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00+25:00",
    "x" * 300,
)

#: Numbers of every awkward kind (JSON's NaN and Infinity included: Python's json accepts them).
ODD_NUMBERS = (
    0,
    -1,
    1,
    2**31,
    2**63,
    10**30,
    -(10**30),
    10**400,
    0.5,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    True,
    False,
)

# (By index: a sampled_from() of these would print them all in every report.)
odd_strings = st.integers(0, len(ODD_STRINGS) - 1).map(ODD_STRINGS.__getitem__)
odd_numbers = st.integers(0, len(ODD_NUMBERS) - 1).map(ODD_NUMBERS.__getitem__)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    odd_numbers,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    odd_strings,
)

#: Any JSON value (what ``json.loads`` can give), small and nested a few levels.
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), odd_strings), children, max_size=4),
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: str = "1") -> str:
    """``[[[...1...]]]`` as JSON text, ``depth`` levels deep."""
    return "[" * depth + leaf + "]" * depth


#: JSON bodies that are syntactically awkward: deep nesting (past the recursion
#: limit of ``json.loads``), a number of 5000 digits, NaN, lone surrogates, BOMs.
ODD_BODIES = (
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b"0",
    b'"text"',
    nested(5_000).encode(),
    ('{"orders": ' + nested(5_000) + "}").encode(),
    b'{"orders": ' + b"9" * 5000 + b"}",
    b'{"orders": NaN}',
    b'{"orders": [], "pagination": {"nextToken": "\\ud800"}}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b'{"orders": [',
    b"<html><title>503</title></html>",
    b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>",
)


def bodies() -> st.SearchStrategy[bytes]:
    """Arbitrary response bodies: random bytes, JSON of any value, the odd bodies above."""
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.integers(0, len(ODD_BODIES) - 1).map(ODD_BODIES.__getitem__),
        st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


def headers() -> st.SearchStrategy[dict[str, str]]:
    """Response headers, with the ones the client reads set to anything."""
    value = st.one_of(st.text(max_size=40), odd_strings.filter(lambda s: "\x00" not in s))
    names = st.sampled_from(
        [
            "Content-Type",
            "x-amzn-RequestId",
            "x-amz-request-id",
            "x-amzn-RateLimit-Limit",
            "Retry-After",
            "Content-Encoding",
        ]
    )
    return st.dictionaries(names, value, max_size=4)


# -- valid documents --------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    return json.loads((MODELS / name).read_text())  # type: ignore[no-any-return]


def _static_responses(model: dict[str, Any], operation_id: str) -> list[dict[str, Any]]:
    found = []
    for methods in model["paths"].values():
        for operation in methods.values():
            if not isinstance(operation, dict) or operation.get("operationId") != operation_id:
                continue
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    for case in response.get("x-amzn-api-sandbox", {}).get("static", []):
                        found.append(case["response"])
    return found


@cache
def valid_orders() -> tuple[dict[str, Any], ...]:
    """Valid ``Order`` objects: the official model's examples and sandbox-generated ones
    (every status, Amazon- and merchant-fulfilled, buyer cancel requests, buyer data)."""
    from flask_amazon_orders.sandbox import SandboxServer

    model = _load("orders_2026-01-01.json")
    orders = [r["order"] for r in _static_responses(model, "getOrder")]
    for page in _static_responses(model, "searchOrders"):
        orders.extend(page["orders"])
    state = SandboxServer(seed=7).state
    state.create_seller(seller_id="AFUZZSELLER")
    generated = state.generate_orders(
        "AFUZZSELLER",
        24,
        {
            "seed": 11,
            "afn_share": 0.3,
            "buyer_cancel_share": 0.3,
            "statuses": [
                "PENDING_AVAILABILITY",
                "PENDING",
                "UNSHIPPED",
                "PARTIALLY_SHIPPED",
                "SHIPPED",
                "CANCELLED",
                "UNFULFILLABLE",
            ],
        },
    )
    orders.extend(order.to_dict() for order in generated)
    return tuple(orders)


#: Answers with the optional fields the model's examples lack.
_MORE_FEEDS_ANSWERS: dict[str, list[dict[str, Any]]] = {
    "getFeed": [
        {
            "feedId": "50001",
            "feedType": "POST_ORDER_ACKNOWLEDGEMENT_DATA",
            "createdTime": "2026-03-11T13:16:24.630Z",
            "processingStatus": "DONE",
            "resultFeedDocumentId": "amzn1.tortuga.4.eu.R1",
        }
    ],
    "getFeedDocument": [
        {
            "feedDocumentId": "amzn1.tortuga.4.eu.R1",
            "url": "https://tortuga-prod-eu.s3.amazonaws.com/R1?X-Amz-Signature=abc",
            "compressionAlgorithm": "GZIP",
        }
    ],
}


@cache
def valid_feeds_answers() -> dict[str, tuple[dict[str, Any], ...]]:
    """The Feeds model's example answers per operation, and a few with optional fields."""
    model = _load("feeds_2021-06-30.json")
    operations = ("createFeedDocument", "createFeed", "getFeed", "getFeeds", "getFeedDocument")
    return {
        op: (*_static_responses(model, op), *_MORE_FEEDS_ANSWERS.get(op, ())) for op in operations
    }


# -- mutations --------------------------------------------------------------------------


def _nodes(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, depth first."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield value, key
            yield from _nodes(child)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield value, index
            yield from _nodes(child)


def _retyped(value: Any) -> list[Any]:
    """The same content in the wrong JSON type."""
    if isinstance(value, str):
        out: list[Any] = [[value], {"value": value}]
        try:
            out.append(int(value))
        except ValueError:
            out.append(len(value))
        return out
    if isinstance(value, bool):
        return [str(value).lower(), int(value)]
    if isinstance(value, int):  # (a float of a huge int overflows)
        return [str(value), [value], value + 0.5 if abs(value) < 2**53 else math.inf, -value]
    if isinstance(value, float):
        return [str(value), [value], -value]
    if isinstance(value, list):
        return [value[0] if value else None, {"items": value}, json.dumps(value)]
    if isinstance(value, dict):
        return [[value], list(value.values()), json.dumps(value)]
    return ["null", 0, []]


@st.composite
def mutated(draw: st.DrawFn, document: Any, max_mutations: int = 3) -> Any:
    """``document`` (copied) with 1 to ``max_mutations`` fields dropped, replaced or retyped."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_mutations), label="mutations")):
        nodes = list(_nodes(document))
        if not nodes:
            break
        parent, key = draw(st.sampled_from(nodes), label="field")
        action = draw(st.sampled_from(["drop", "odd", "retype", "any", "duplicate"]))
        if action == "drop":
            del parent[key]
        elif action == "odd":
            parent[key] = draw(st.one_of(odd_strings, odd_numbers, st.sampled_from([None, [], {}])))
        elif action == "retype":
            parent[key] = draw(st.sampled_from(_retyped(parent[key])))
        elif action == "any":
            parent[key] = draw(json_values)
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        else:
            parent[key] = [parent[key], copy.deepcopy(parent[key])]
    return document


def orders() -> st.SearchStrategy[Any]:
    """An order to parse: a valid one, a mutated valid one, or any JSON value at all."""
    valid = st.integers(0, len(valid_orders()) - 1).map(lambda i: valid_orders()[i])
    return st.one_of(
        valid,
        valid.flatmap(mutated),
        valid.flatmap(mutated),
        valid.flatmap(mutated),
        json_values,
    )


def valid_answer(operation: str) -> st.SearchStrategy[dict[str, Any]]:
    """One of the Feeds model's example answers of ``operation``."""
    answers = valid_feeds_answers()[operation]
    return st.integers(0, len(answers) - 1).map(lambda i: copy.deepcopy(answers[i]))


# -- processing reports (XML) -----------------------------------------------------------


@cache
def valid_report() -> bytes:
    """A processing report as Amazon writes it: two errors, one for the whole feed, a warning."""
    from flask_amazon_orders.sandbox.feeds import ProcessingResult, processing_report

    return processing_report(
        "A2SELLER",
        "50001",
        3,
        [
            ProcessingResult("0", "Error", 5000, "The feed is incomplete."),
            ProcessingResult("2", "Error", 18032, "It is SHIPPED.", {"AmazonOrderID": "1-2-3"}),
            ProcessingResult("3", "Warning", 1, "Fine & well."),
        ],
    )


#: Prologues that trip XML parsers: encodings expat cannot read, entity expansion,
#: an external entity, a BOM.
ODD_PROLOGUES = (
    b'<?xml version="1.0" encoding="shift_jis"?>',
    b'<?xml version="1.0" encoding="utf-32"?>',
    b'<?xml version="1.0" encoding="rot13"?>',
    b'<?xml version="1.0" encoding="idna"?>',
    b'<?xml version="1.0" encoding="no-such-codec"?>',
    b'<?xml version="1.0" encoding="UTF-16"?>',
    b"\xef\xbb\xbf",
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>',
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
)


@st.composite
def mutated_report(draw: st.DrawFn) -> bytes:
    """The valid report with an element's text replaced, an element dropped, copied or
    renamed, the prologue replaced, or the bytes cut short."""
    import xml.etree.ElementTree as ET

    document = valid_report()
    action = draw(st.sampled_from(["text", "drop", "copy", "rename", "prologue", "cut"]))
    if action == "cut":
        return document[: draw(st.integers(0, len(document) - 1))]
    if action == "prologue":
        body = document.split(b"?>", 1)[1]
        return draw(st.sampled_from(ODD_PROLOGUES)) + body
    root = ET.fromstring(document)
    elements = list(root.iter())
    element = draw(st.sampled_from(range(len(elements))).map(elements.__getitem__))
    if action == "text":
        element.text = draw(st.one_of(odd_strings, st.text(max_size=20))).replace("\x00", "")
    elif action == "rename":
        element.tag = draw(st.sampled_from(["Result", "MessageID", "StatusCode", "x"]))
    else:
        parent = next((p for p in elements if element in list(p)), None)
        if parent is not None:
            if action == "drop":
                parent.remove(element)
            else:
                parent.append(copy.deepcopy(element))
    text = ET.tostring(root, encoding="unicode")
    return text.encode("utf-8", "surrogatepass")


def reports() -> st.SearchStrategy[bytes]:
    """A processing report to parse: valid, mutated, deeply nested, or any bytes."""
    return st.one_of(
        st.just(valid_report()),
        mutated_report(),
        mutated_report(),
        st.integers(1, 20_000).map(lambda n: b"<a>" * n + b"</a>" * n),
        st.binary(max_size=200),
        st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


# -- what "storable" means ---------------------------------------------------------------


def problems_storing(record: Any, table: Any) -> list[str]:
    """Why the fields of a parsed ``record`` would not fit ``table``'s columns, if at all:
    a string too long or not storable as text, an amount outside ``NUMERIC(18, 4)``, an
    integer outside ``INTEGER``, a naive time."""
    import datetime as dt
    import re
    from decimal import Decimal

    import sqlalchemy as sa

    found = []
    for column in table.columns:
        if not hasattr(record, column.name):
            continue
        value = getattr(record, column.name)
        name = column.name
        if isinstance(value, str):
            length = getattr(column.type, "length", None)
            if isinstance(column.type, sa.String) and length and len(value) > length:
                found.append(f"{name} is longer than {length}")
            if re.search("[\x00\ud800-\udfff]", value):
                found.append(f"{name} holds NUL or a lone surrogate")
        elif isinstance(value, Decimal):
            if (
                not value.is_finite()
                or abs(value) >= 10**14
                or value != value.quantize(Decimal("0.0001"))
            ):
                found.append(f"{name} = {value} does not fit NUMERIC(18, 4)")
        elif isinstance(value, int) and not isinstance(value, bool):
            if not -(2**31) <= value < 2**31:
                found.append(f"{name} = {value} does not fit INTEGER")
        elif isinstance(value, dt.datetime) and value.utcoffset() != dt.timedelta(0):
            found.append(f"{name} is not in UTC")
    return found
