"""Access to the official Amazon models bundled in ``sandbox/models/``.

The models (Apache-2.0, see the LICENSE and NOTICE files beside them) give the
sandbox its static examples (``x-amzn-api-sandbox.static``) and give tests the
schemas to validate responses against.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Directory of the bundled model files.
MODELS_DIR = Path(__file__).with_name("models")
ORDERS_MODEL = "orders_2026-01-01.json"
ORDERS_V0_MODEL = "ordersV0.json"
FEEDS_MODEL = "feeds_2021-06-30.json"
NOTIFICATIONS_MODEL = "notifications.json"
#: Amazon's JSON Schema (draft-07) of the ORDER_CHANGE notification the sandbox sends.
ORDER_CHANGE_SCHEMA = "OrderChangeNotification.json"


@functools.cache
def load_model(name: str) -> dict[str, Any]:
    """The parsed model file ``name`` (cached)."""
    with (MODELS_DIR / name).open(encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class StaticCase:
    """One static sandbox case: parameters to match and the canned response."""

    status: int
    parameters: dict[str, Any]
    response: Any


def _operations(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for methods in model["paths"].values():
        for method, operation in methods.items():
            if isinstance(operation, dict) and "operationId" in operation:
                found[operation["operationId"]] = {"method": method, **operation}
    return found


@functools.cache
def array_parameters(model_name: str, operation_id: str) -> frozenset[str]:
    """Names of the array-typed query parameters of an operation."""
    operation = _operations(load_model(model_name))[operation_id]
    return frozenset(p["name"] for p in operation.get("parameters", []) if p.get("type") == "array")


@functools.cache
def static_cases(model_name: str, operation_id: str) -> tuple[StaticCase, ...]:
    """The ``x-amzn-api-sandbox.static`` cases of an operation."""
    operation = _operations(load_model(model_name))[operation_id]
    cases = []
    for status, response in operation["responses"].items():
        for case in response.get("x-amzn-api-sandbox", {}).get("static", []):
            parameters = {
                name: spec.get("value")
                for name, spec in case.get("request", {}).get("parameters", {}).items()
            }
            cases.append(StaticCase(int(status), parameters, case.get("response")))
    return tuple(cases)


def _normal(value: Any) -> Any:
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    if isinstance(value, dict):  # a JSON body: compare it whatever the order of its keys
        return json.dumps(value, sort_keys=True)
    return str(value)


def match_static(
    model_name: str, operation_id: str, parameters: dict[str, Any]
) -> StaticCase | None:
    """The static case whose parameters equal ``parameters`` exactly, if any.

    Array values are compared without regard to order, JSON bodies (``body``)
    without regard to the order of their keys.
    """
    wanted = {k: _normal(v) for k, v in parameters.items()}
    for case in static_cases(model_name, operation_id):
        if wanted == {k: _normal(v) for k, v in case.parameters.items()}:
            return case
    return None
