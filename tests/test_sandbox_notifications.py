"""The sandbox's Notifications API and the ORDER_CHANGE notifications it sends to SQS.

Responses are validated against Amazon's ``notifications.json``, notifications
against ``OrderChangeNotification.json`` (both bundled with the sandbox's models).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import sandbox_token, subscribe_order_change
from jsonschema import Draft4Validator, Draft7Validator

from flask_amazon_orders.sandbox import SandboxControlError
from flask_amazon_orders.sandbox.reference import (
    MODELS_DIR,
    NOTIFICATIONS_MODEL,
    ORDER_CHANGE_SCHEMA,
)

SCALE = 1000.0
DE = "A1PA6795UKMFR9"
FR = "A13V1IB3VIYZZH"
BASE = "/notifications/v1"
REFERENCE_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
MODEL = json.loads((MODELS_DIR / NOTIFICATIONS_MODEL).read_text(encoding="utf-8"))
NOTIFICATION = Draft7Validator(
    json.loads((MODELS_DIR / ORDER_CHANGE_SCHEMA).read_text(encoding="utf-8"))
)


def _valid(definition: str, body: Any) -> None:
    """``body`` validates against the model's ``definition``."""
    Draft4Validator(
        {"$ref": f"#/definitions/{definition}", "definitions": MODEL["definitions"]}
    ).validate(body)


@pytest.mark.parametrize("name", [NOTIFICATIONS_MODEL, ORDER_CHANGE_SCHEMA])
def test_bundled_models_match_the_reference_copy(name: str) -> None:
    if not REFERENCE_DIR.is_dir():
        pytest.skip("the shared reference directory is not available")
    assert (MODELS_DIR / name).read_bytes() == (REFERENCE_DIR / name).read_bytes()


@pytest.fixture
def world(make_sandbox, sqs_endpoint, sqs_queue):
    sandbox = make_sandbox(time_scale=SCALE, sqs_endpoint_url=sqs_endpoint)
    seller = sandbox.control.create_seller(
        seller_id="A" + uuid.uuid4().hex[:12].upper(), marketplace_id=DE
    )
    return {"sandbox": sandbox, "seller": seller, "queue": sqs_queue}


def _messages(queue: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message in the queue, taken out of it."""
    found = []
    while True:
        answer = queue["client"].receive_message(QueueUrl=queue["url"], MaxNumberOfMessages=10)
        batch = answer.get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            queue["client"].delete_message(
                QueueUrl=queue["url"], ReceiptHandle=message["ReceiptHandle"]
            )


def _call(sandbox: Any, method: str, path: str, token: str, body: Any = None) -> Any:
    return requests.request(
        method,
        sandbox.url + BASE + path,
        json=body,
        headers={"x-amz-access-token": token},
        timeout=10,
    )


def test_the_notifications_api_follows_the_model(world):
    sandbox, seller, queue = world["sandbox"], world["seller"], world["queue"]
    grantless = sandbox_token(sandbox.url)
    seller_token = sandbox_token(sandbox.url, refresh_token=seller["refresh_token"])
    spec = {"name": "orders", "resourceSpecification": {"sqs": {"arn": queue["arn"]}}}

    # Destinations are grantless.
    assert _call(sandbox, "POST", "/destinations", seller_token, spec).status_code == 403
    created = _call(sandbox, "POST", "/destinations", grantless, spec)
    assert created.status_code == 200, created.text
    _valid("CreateDestinationResponse", created.json())
    destination = created.json()["payload"]
    assert destination["resource"] == {"sqs": {"arn": queue["arn"]}}
    assert _call(sandbox, "POST", "/destinations", grantless, spec).status_code == 409
    listed = _call(sandbox, "GET", "/destinations", grantless).json()
    _valid("GetDestinationsResponse", listed)
    assert listed["payload"] == [destination]
    one = _call(sandbox, "GET", f"/destinations/{destination['destinationId']}", grantless)
    _valid("GetDestinationResponse", one.json())
    for bad in (
        {"name": "x", "resourceSpecification": {"sqs": {"arn": "not-an-arn"}}},
        {"name": "x", "resourceSpecification": {"sqs": {"arn": queue["arn"] + "-missing"}}},
        {
            "name": "x",
            "resourceSpecification": {"eventBridge": {"region": "us-east-1", "accountId": "1"}},
        },
        {"resourceSpecification": {"sqs": {"arn": queue["arn"]}}},
    ):
        answer = _call(sandbox, "POST", "/destinations", grantless, bad)
        assert answer.status_code == 400, (bad, answer.text)
        _valid("CreateDestinationResponse", answer.json())

    # Subscriptions take the seller's token.
    path = "/subscriptions/ORDER_CHANGE"
    missing = _call(sandbox, "GET", path, seller_token)
    assert missing.status_code == 404
    _valid("GetSubscriptionResponse", missing.json())
    body = {"payloadVersion": "1.0", "destinationId": destination["destinationId"]}
    assert _call(sandbox, "POST", path, grantless, body).status_code == 403
    for bad in (
        {"payloadVersion": "2.0", "destinationId": destination["destinationId"]},
        {"payloadVersion": "1.0", "destinationId": "nope"},
        {**body, "processingDirective": {"filterExpression": "true"}},
        {**body, "processingDirective": {"eventFilter": {"eventFilterType": "ANY_OFFER_CHANGED"}}},
        {
            **body,
            "processingDirective": {
                "eventFilter": {"eventFilterType": "ORDER_CHANGE", "orderChangeTypes": ["Nope"]}
            },
        },
    ):
        answer = _call(sandbox, "POST", path, seller_token, bad)
        assert answer.status_code == 400, (bad, answer.text)
    other = _call(sandbox, "POST", "/subscriptions/ANY_OFFER_CHANGED", seller_token, body)
    assert other.status_code == 400
    subscribed = _call(sandbox, "POST", path, seller_token, body)
    assert subscribed.status_code == 200, subscribed.text
    _valid("CreateSubscriptionResponse", subscribed.json())
    subscription = subscribed.json()["payload"]
    assert _call(sandbox, "POST", path, seller_token, body).status_code == 409
    got = _call(sandbox, "GET", path, seller_token).json()
    _valid("GetSubscriptionResponse", got)
    assert got["payload"] == subscription
    by_id = f"{path}/{subscription['subscriptionId']}"
    assert _call(sandbox, "GET", by_id, seller_token).status_code == 403
    found = _call(sandbox, "GET", by_id, grantless).json()
    _valid("GetSubscriptionByIdResponse", found)
    assert found["payload"] == subscription
    in_use = _call(sandbox, "DELETE", f"/destinations/{destination['destinationId']}", grantless)
    assert in_use.status_code == 409
    deleted = _call(sandbox, "DELETE", by_id, grantless)
    assert deleted.status_code == 200
    _valid("DeleteSubscriptionByIdResponse", deleted.json())
    assert _call(sandbox, "GET", path, seller_token).status_code == 404
    gone = _call(sandbox, "DELETE", f"/destinations/{destination['destinationId']}", grantless)
    assert gone.status_code == 200
    _valid("DeleteDestinationResponse", gone.json())
    counters = sandbox.control.counters()["operations"]
    assert counters["createDestination"]["calls"] == 7
    assert counters["createSubscription"]["ok"] == 1


def test_without_an_sqs_endpoint_no_destination_is_accepted(make_sandbox, sqs_queue):
    sandbox = make_sandbox(time_scale=SCALE)
    answer = _call(
        sandbox,
        "POST",
        "/destinations",
        sandbox_token(sandbox.url),
        {"name": "orders", "resourceSpecification": {"sqs": {"arn": sqs_queue["arn"]}}},
    )
    assert answer.status_code == 400
    assert "sqs_endpoint_url" in answer.json()["errors"][0]["message"]


def test_every_kind_of_change_sends_one_schema_valid_notification(world):
    sandbox, seller, queue = world["sandbox"], world["seller"], world["queue"]
    seller_id = seller["seller_id"]
    before = sandbox.control.create_order(seller_id, status="UNSHIPPED")["orderId"]
    subscription = subscribe_order_change(sandbox.url, seller, queue["arn"])["subscription"]
    assert sandbox.control.notifications() == []  # orders before the subscription: none

    created = sandbox.control.create_order(
        seller_id,
        status="PENDING",
        items=[{"sku": "SKU-TWO", "quantity": 2}, {"sku": "SKU-ONE", "quantity": 1}],
    )["orderId"]
    sandbox.control.set_status(created, "UNSHIPPED")  # Pending -> Unshipped
    sandbox.control.request_buyer_cancel(before, "Found it cheaper")
    sandbox.control.request_buyer_cancel(before, "Found it cheaper")  # no news: nothing
    sandbox.control.set_status(before, "CANCELLED")
    # The only open order: one of its two items ships.
    assert sandbox.control.advance(seller_id, count=1)["order_ids"] == [created]
    generated = sandbox.control.generate_orders(seller_id, 2, seed=5)["order_ids"]

    made = sandbox.control.notifications(seller_id=seller_id)
    assert [(n["orderId"], n["changeType"]) for n in made] == [
        (created, "OrderStatusChange"),
        (created, "OrderStatusChange"),
        (before, "BuyerRequestedChange"),
        (before, "OrderStatusChange"),
        (created, "OrderStatusChange"),
        *((order_id, "OrderStatusChange") for order_id in generated),
    ]
    assert [n["orderStatus"] for n in made[:5]] == [
        "Pending",
        "Unshipped",
        "Unshipped",
        "Canceled",
        "PartiallyShipped",
    ]
    assert {n["status"] for n in made} == {"delivered"}
    bodies = _messages(queue)
    assert sorted(json.dumps(b, sort_keys=True) for b in bodies) == sorted(
        json.dumps(n["body"], sort_keys=True) for n in made
    )
    for body in bodies:
        NOTIFICATION.validate(body)
        meta = body["NotificationMetadata"]
        assert meta["SubscriptionId"] == subscription["subscriptionId"]
        change = body["Payload"]["OrderChangeNotification"]
        assert change["SellerId"] == seller_id
        assert change["Summary"]["MarketplaceId"] == DE
    assert len({b["NotificationMetadata"]["NotificationId"] for b in bodies}) == len(bodies)
    partly = next(
        b["Payload"]["OrderChangeNotification"]["Summary"]
        for b in bodies
        if b["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"] == "PartiallyShipped"
    )
    assert partly["NumberOfItemsShipped"] + partly["NumberOfItemsUnshipped"] == 3
    asked = next(
        b["Payload"]["OrderChangeNotification"]
        for b in bodies
        if b["Payload"]["OrderChangeNotification"]["OrderChangeType"] == "BuyerRequestedChange"
    )
    assert asked["OrderChangeTrigger"]["ChangeReason"] == "Buyer Requested Cancel"
    assert all(item["IsBuyerRequestedCancel"] for item in asked["Summary"]["OrderItems"])
    order = sandbox.control.get_order(before)
    cancelled = [
        b for b in bodies if b["Payload"]["OrderChangeNotification"]["AmazonOrderId"] == before
    ][-1]
    assert (
        cancelled["Payload"]["OrderChangeNotification"]["OrderChangeTrigger"]["TimeOfOrderChange"][
            :19
        ]
        == order["lastUpdatedTime"][:19]
    )


def test_event_filters_choose_what_is_sent(world):
    sandbox, seller, queue = world["sandbox"], world["seller"], world["queue"]
    order = sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]
    subscribe_order_change(
        sandbox.url, seller, queue["arn"], orderChangeTypes=["BuyerRequestedChange"]
    )
    sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")
    sandbox.control.request_buyer_cancel(order)
    sandbox.control.set_status(order, "CANCELLED")
    assert [n["changeType"] for n in sandbox.control.notifications()] == ["BuyerRequestedChange"]

    other = sandbox.control.create_seller(marketplace_id=DE)
    second_queue = queue["client"].create_queue(QueueName=f"fr-{uuid.uuid4().hex[:8]}")
    arn = queue["client"].get_queue_attributes(
        QueueUrl=second_queue["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    subscribe_order_change(sandbox.url, other, arn, marketplaceIds=[FR])
    sandbox.control.create_order(other["seller_id"], status="UNSHIPPED")  # in DE: filtered
    sandbox.control.create_order(other["seller_id"], status="UNSHIPPED", marketplace_id=FR)
    sent = sandbox.control.notifications(seller_id=other["seller_id"])
    assert [
        n["body"]["Payload"]["OrderChangeNotification"]["Summary"]["MarketplaceId"] for n in sent
    ] == [FR]
    queue["client"].delete_queue(QueueUrl=second_queue["QueueUrl"])


def test_notification_faults_lose_or_repeat_one_and_other_faults_leave_them_alone(world):
    sandbox, seller, queue = world["sandbox"], world["seller"], world["queue"]
    subscribe_order_change(sandbox.url, seller, queue["arn"])
    with pytest.raises(SandboxControlError, match="notification fault"):
        sandbox.control.inject_fault("notification", "503_html")
    with pytest.raises(SandboxControlError, match="duplicate"):
        sandbox.control.inject_fault("getOrder", "duplicate")
    sandbox.control.inject_fault("*", "500")  # hits the next SP-API call, not a notification
    sandbox.control.inject_fault("notification", "drop")
    lost = sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]
    sandbox.control.inject_fault("notification", "duplicate")
    twice = sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]
    once = sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]

    listed = {n["orderId"]: n for n in sandbox.control.notifications()}
    assert listed[lost]["status"] == "dropped" and listed[lost]["messageIds"] == []
    assert listed[twice]["status"] == "delivered" and len(listed[twice]["messageIds"]) == 2
    assert listed[once]["copies"] == 1
    received = [b["Payload"]["OrderChangeNotification"]["AmazonOrderId"] for b in _messages(queue)]
    assert sorted(received) == sorted([twice, twice, once])
    assert [f["operation"] for f in sandbox.control.faults()] == ["*"]


def test_a_queue_that_went_away_is_recorded_as_a_failed_delivery(world):
    sandbox, seller, queue = world["sandbox"], world["seller"], world["queue"]
    subscribe_order_change(sandbox.url, seller, queue["arn"])
    queue["client"].delete_queue(QueueUrl=queue["url"])
    order = sandbox.control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]
    (failed,) = sandbox.control.notifications(order)
    assert failed["status"] == "failed" and "NonExistentQueue" in failed["error"]
    queue["client"].create_queue(QueueName=queue["url"].rsplit("/", 1)[1])
