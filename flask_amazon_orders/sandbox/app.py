"""The sandbox WSGI application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import control, feeds_api, lwa, notifications_api, orders_api, orders_v0_api
from .config import SandboxConfig
from .plumbing import EXTENSION_KEY, error_list, json_response
from .state import SandboxState
from .util import dumps


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the sandbox: a Flask app serving LWA, Orders, Feeds, Notifications and
    the control API.

    :param config: optional settings, see :class:`~.config.SandboxConfig` (for example
        ``{"time_scale": 100, "seed": 7}``).
    :raises ValueError: for an unknown key or a bad value in ``config``.
    """
    settings = SandboxConfig.from_mapping(config)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    state = app.extensions[EXTENSION_KEY] = SandboxState(settings)
    for blueprint in (
        lwa.bp,
        orders_api.bp,
        orders_v0_api.bp,
        feeds_api.bp,
        notifications_api.bp,
        control.bp,
    ):
        app.register_blueprint(blueprint)

    @app.after_request
    def send_notifications(response: Response) -> Response:
        # The notifications of the changes this request made are in their queues
        # before its answer goes out (see .notifications).
        if state.notifications.pending:
            state.notifications.flush()
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if request.path.startswith("/_sandbox/"):
            body = dumps({"error": exc.name.lower().replace(" ", "_"), "message": exc.description})
            return json_response(status, body)
        code = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}.get(
            status, "InvalidInput"
        )
        return json_response(status, error_list(code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        app.logger.exception("sandbox error on %s %s", request.method, request.path)
        return json_response(
            500, error_list("InternalFailure", "We encountered an internal error.", str(exc))
        )

    return app
