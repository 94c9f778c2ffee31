"""Login with Amazon: the ``POST /auth/o2/token`` endpoint.

Supports the ``refresh_token`` grant (seller-authorized calls) and the
``client_credentials`` grant (grantless calls). Parameters may come
form-encoded, as Amazon documents, or as JSON. Errors follow OAuth 2.0:
``invalid_request``, ``invalid_client`` (401), ``invalid_grant``,
``unsupported_grant_type`` and ``invalid_scope``.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, request

from .plumbing import LWA, json_response, lwa_error, plain_operation
from .state import GRANTLESS_SCOPES, SandboxState
from .util import dumps

bp = Blueprint("amazon_orders_sandbox_lwa", __name__)


def _params() -> dict[str, str]:
    if request.is_json:
        data = request.get_json(silent=True)
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items() if v is not None}
        return {}
    return {k: v for k, v in request.form.items()}


def _seller_of_request(state: SandboxState, _: dict[str, Any]) -> str | None:
    token = _params().get("refresh_token")
    return state.refresh_tokens.get(token) if token else None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@bp.post("/auth/o2/token")
@plain_operation("token", LWA, _seller_of_request)
def token(state: SandboxState) -> Response:
    """Exchange a refresh token (or the client credentials) for an access token."""
    params = _params()
    grant_type = params.get("grant_type")
    if not grant_type:
        return lwa_error(
            400, "invalid_request", "The request is missing a required parameter : grant_type"
        )
    for name in ("client_id", "client_secret"):
        if not params.get(name):
            return lwa_error(
                400, "invalid_request", f"The request is missing a required parameter : {name}"
            )
    config = state.config
    if not (
        _same(params["client_id"], config.client_id)
        and _same(params["client_secret"], config.client_secret)
    ):
        return lwa_error(401, "invalid_client", "Client authentication failed")
    ttl = int(config.access_token_ttl)

    if grant_type == "refresh_token":
        refresh_token = params.get("refresh_token")
        if not refresh_token:
            return lwa_error(
                400,
                "invalid_request",
                "The request is missing a required parameter : refresh_token",
            )
        with state.lock:
            seller_id = state.refresh_tokens.get(refresh_token)
            seller = state.sellers.get(seller_id) if seller_id else None
            if seller is None:
                return lwa_error(
                    400,
                    "invalid_grant",
                    "The request has an invalid grant parameter : refresh_token",
                )
            if seller.revoked:
                return lwa_error(
                    400,
                    "invalid_grant",
                    "The request has an invalid grant parameter : refresh_token. "
                    "User may have revoked or didn't grant the permission.",
                )
            access_token = state.issue_access_token(seller.seller_id)
        body = {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": ttl,
        }
        return json_response(200, dumps(body), extra={"Cache-Control": "no-store"})

    if grant_type == "client_credentials":
        scope = params.get("scope")
        if not scope:
            return lwa_error(
                400, "invalid_request", "The request is missing a required parameter : scope"
            )
        if scope not in GRANTLESS_SCOPES:
            return lwa_error(400, "invalid_scope", f"An unknown scope was requested: {scope}")
        access_token = state.issue_access_token(None, scope)
        body = {
            "access_token": access_token,
            "scope": scope,
            "token_type": "bearer",
            "expires_in": ttl,
        }
        return json_response(200, dumps(body), extra={"Cache-Control": "no-store"})

    return lwa_error(
        400, "unsupported_grant_type", f"The grant type {grant_type} is not supported."
    )
