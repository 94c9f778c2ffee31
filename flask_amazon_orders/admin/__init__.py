"""The admin pages for store admins (a Flask blueprint named ``amazon_orders``).

:func:`init_admin` registers the blueprint at ``AMAZON_ORDERS_ADMIN_URL_PREFIX``;
:mod:`.access` says who may use it, :mod:`.views` has the pages.
"""

from __future__ import annotations

from flask import Flask

from .access import MANAGE, VIEW

__all__ = ["MANAGE", "VIEW", "init_admin"]


def init_admin(app: Flask, url_prefix: str) -> None:
    """Register the admin blueprint on ``app`` at ``url_prefix``."""
    from . import views  # noqa: F401  (the routes)
    from .blueprint import bp

    app.register_blueprint(bp, url_prefix=url_prefix)
