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


def sandbox_token(sandbox_url: str, *, refresh_token: str | None = None) -> str:
    """An LWA access token from the sandbox: the seller's (refresh-token grant), or
    without ``refresh_token`` a grantless one for the Notifications API."""
    import requests

    form = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}
    if refresh_token is None:
        form.update(grant_type="client_credentials", scope="sellingpartnerapi::notifications")
    else:
        form.update(grant_type="refresh_token", refresh_token=refresh_token)
    response = requests.post(sandbox_url + "/auth/o2/token", data=form, timeout=10)
    response.raise_for_status()
    return str(response.json()["access_token"])


def subscribe_order_change(
    sandbox_url: str, seller: dict[str, Any], queue_arn: str, **directive: Any
) -> dict[str, Any]:
    """Subscribe a sandbox seller's ORDER_CHANGE notifications to an SQS queue, as an
    application does: createDestination (grantless), then createSubscription (the
    seller's token). ``directive`` is an optional ``eventFilter``. Returns
    ``{"destination": ..., "subscription": ...}`` (the payloads)."""
    import requests

    grantless = {"x-amz-access-token": sandbox_token(sandbox_url)}
    destination = requests.post(
        sandbox_url + "/notifications/v1/destinations",
        json={"name": "orders", "resourceSpecification": {"sqs": {"arn": queue_arn}}},
        headers=grantless,
        timeout=10,
    )
    assert destination.status_code == 200, destination.text
    body: dict[str, Any] = {
        "payloadVersion": "1.0",
        "destinationId": destination.json()["payload"]["destinationId"],
    }
    if directive:
        body["processingDirective"] = {
            "eventFilter": {"eventFilterType": "ORDER_CHANGE", **directive}
        }
    token = sandbox_token(sandbox_url, refresh_token=seller["refresh_token"])
    subscription = requests.post(
        sandbox_url + "/notifications/v1/subscriptions/ORDER_CHANGE",
        json=body,
        headers={"x-amz-access-token": token},
        timeout=10,
    )
    assert subscription.status_code == 200, subscription.text
    return {
        "destination": destination.json()["payload"],
        "subscription": subscription.json()["payload"],
    }
