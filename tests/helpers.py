"""Small helpers shared by the test modules (import them as ``helpers``)."""

from __future__ import annotations

from typing import Any


def connect_store(seller: dict[str, Any], *, name: str = "Amazon DE", **fields: Any) -> Any:
    """Connect a sandbox seller as a store of the current app (in its app context)."""
    from flask_amazon_orders import get_extension

    return get_extension().add_store(
        name=name,
        seller_id=seller["seller_id"],
        marketplace="DE",
        refresh_token=seller["refresh_token"],
        **fields,
    )


def admin_client(app: Any, user: str = "ann@example.com") -> Any:
    """A test client of ``app`` whose admin pages let ``user`` view and manage every store."""
    from flask_amazon_orders import get_extension

    ext = get_extension(app)
    ext.access_handler(lambda permission, store: True)
    ext.actor_loader(lambda: user)
    return app.test_client()
