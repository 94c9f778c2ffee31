"""CSRF protection of the admin pages' forms.

Every form carries a token tied to the browser session, and every ``POST`` is
checked before it changes anything. When the host uses Flask-WTF's
``CSRFProtect``, the admin pages use its tokens (so its global check passes and
one token serves the whole admin); otherwise they keep their own random token
in the host's session (which needs ``SECRET_KEY``, as any Flask session does).
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, current_app, request, session

SESSION_KEY = "_amazon_orders_csrf"
FIELD = "csrf_token"


def _flask_wtf_active() -> bool:
    return "csrf" in current_app.extensions


def generate_token() -> str:
    """The token to put in a form's ``csrf_token`` field."""
    if _flask_wtf_active():
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return str(token)


def check() -> None:
    """Abort with 400 unless the request carries this session's token."""
    sent = request.form.get(FIELD, "")
    if _flask_wtf_active():
        from flask_wtf.csrf import ValidationError, validate_csrf

        try:
            validate_csrf(sent)
        except ValidationError:
            abort(400, description=EXPIRED)
        return
    expected = session.get(SESSION_KEY, "")
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, description=EXPIRED)


EXPIRED = "amazon_orders: the CSRF token is missing or stale"
