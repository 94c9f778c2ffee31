"""Shipments from the host's workflow, confirmed to Amazon (Orders v0 confirmShipment)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store

from flask_amazon_orders import get_extension, signals
from flask_amazon_orders.jobs.feeds import process_feeds
from flask_amazon_orders.models import AmazonOrder, Shipment
from flask_amazon_orders.services.shipping import ShipmentError, confirm_shipment


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _order(sandbox, seller, *, status="UNSHIPPED", fulfilled_by="MERCHANT") -> str:
    moment = (_now() - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return sandbox.control.create_order(
        seller["seller_id"],
        status=status,
        fulfilled_by=fulfilled_by,
        created_time=moment,
        last_updated_time=moment,
        items=[
            {"sku": "TEA-GREEN-100", "quantity": 2, "unit_price": "8.90"},
            {"sku": "TEA-BLACK-250", "quantity": 1, "unit_price": "12.50"},
            {"sku": "MUG-STONE-350", "quantity": 1, "unit_price": "14.00"},
        ],
    )["orderId"]


def _stored(db, amazon_order_id: str) -> AmazonOrder:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(AmazonOrder).where(AmazonOrder.amazon_order_id == amazon_order_id)
    )


@pytest.fixture
def synced(app, sandbox, seller) -> dict[str, Any]:
    ids = {
        "unshipped": _order(sandbox, seller),
        "fba": _order(sandbox, seller, status="SHIPPED", fulfilled_by="AMAZON"),
        "pending": _order(sandbox, seller, status="PENDING"),
    }
    store = connect_store(seller)
    assert get_extension().sync(store).status == "succeeded"
    ids["store_id"] = store.id
    return ids


def _items(db, amazon_order_id: str) -> list[str]:
    return [item.order_item_id for item in _stored(db, amazon_order_id).items]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"carrier_code": " "}, "The carrier is required."),
        ({"tracking_number": ""}, "The tracking number is required."),
        ({"tracking_number": "x" * 61}, "longer than 60 characters"),
        ({"carrier_code": "Other"}, "The carrier name is required."),
        ({"items": {"00000000000000": 1}}, "is not an item of this order"),
        ({"items": "first:0"}, "Ship at least one unit"),
        ({"items": "first:3"}, "Only 2 unit(s)"),
        ({"items": {}}, "Choose the items that were shipped."),
        ({"ship_date": dt.datetime(2026, 1, 1)}, "needs a time zone"),
    ],
)
def test_bad_shipments_are_refused_and_change_nothing(app, db, synced, change, message):
    items = _items(db, synced["unshipped"])
    if isinstance(change.get("items"), str):
        _which, quantity = change["items"].split(":")
        change = {"items": {items[0]: int(quantity)}}
    values = {"carrier_code": "DHL", "tracking_number": "JJD000390007", **change}
    with pytest.raises(ShipmentError, match=re.escape(message)):
        confirm_shipment(synced["unshipped"], **values)
    assert db.session.scalar(sa.select(sa.func.count(Shipment.id))) == 0


def test_orders_that_cannot_be_shipped_here(app, db, sandbox, seller, synced):
    with pytest.raises(ShipmentError, match="fulfilled by Amazon"):
        confirm_shipment(synced["fba"], carrier_code="DHL", tracking_number="1")
    with pytest.raises(ShipmentError, match="only unshipped orders can be shipped"):
        confirm_shipment(synced["pending"], carrier_code="DHL", tracking_number="1")
    other = sandbox.control.create_seller(seller_id="AOTHERSHIP01", marketplace_id="A13V1IB3VIYZZH")
    other_store = get_extension().add_store(
        name="FR",
        seller_id=other["seller_id"],
        marketplace="FR",
        refresh_token=other["refresh_token"],
    )
    with pytest.raises(ShipmentError, match="no such order in this store"):
        confirm_shipment(
            synced["unshipped"], store=other_store, carrier_code="DHL", tracking_number="1"
        )


def test_the_same_host_reference_is_one_shipment(app, db, synced):
    first = confirm_shipment(
        synced["unshipped"], carrier_code="DHL", tracking_number="1", host_reference="parcel-7"
    )
    again = confirm_shipment(
        synced["unshipped"], carrier_code="DHL", tracking_number="1", host_reference="parcel-7"
    )
    assert first.id == again.id
    # Queued units count: nothing is left to ship twice.
    with pytest.raises(ShipmentError, match="shipped already"):
        confirm_shipment(synced["unshipped"], carrier_code="DHL", tracking_number="2")


def test_partial_then_full_shipment_is_confirmed_to_amazon(app, db, sandbox, synced):
    order_id = synced["unshipped"]
    items = _items(db, order_id)
    heard = []
    signals.shipment_confirmed.connect(
        lambda sender, *, order, shipment, **extra: heard.append(shipment.id), app, weak=False
    )
    first = confirm_shipment(
        order_id, items={items[0]: 2, items[1]: 1}, carrier_code="DHL", tracking_number="A1"
    )
    run = process_feeds(synced["store_id"])
    assert not run.errors, run.errors
    order = _stored(db, order_id)
    assert order.status == "PartiallyShipped"
    assert [i.quantity_shipped for i in order.items] == [2, 1, 0]
    amazon = sandbox.control.get_order(order_id)
    assert amazon["fulfillment"]["fulfillmentStatus"] == "PARTIALLY_SHIPPED"
    second = signals.host_order_shipped.send(
        app, order=order_id, carrier_code="UPS", tracking_number="1Z999"
    )
    assert second and second[0][1].state == "queued"
    process_feeds(synced["store_id"])
    order = _stored(db, order_id)
    assert order.status == "Shipped"
    assert [i.quantity_shipped for i in order.items] == [2, 1, 1]
    assert sandbox.control.get_order(order_id)["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert len(heard) == 2 and heard[0] == first.id
    # The sync afterwards agrees with what we stored.
    assert get_extension().sync(synced["store_id"]).status == "succeeded"
    assert _stored(db, order_id).status == "Shipped"
    lines = json.loads(db.session.get(Shipment, first.id).items)
    assert lines == [
        {"order_item_id": items[0], "quantity": 2},
        {"order_item_id": items[1], "quantity": 1},
    ]


def test_amazon_refusing_a_shipment_is_shown_and_signalled(app, db, sandbox, synced):
    order_id = synced["unshipped"]
    items = _items(db, order_id)
    shipment = confirm_shipment(
        order_id, items={items[2]: 1}, carrier_code="DHL", tracking_number="A1"
    )
    sandbox.control.set_status(order_id, "CANCELLED")  # Amazon cancelled it meanwhile
    heard = []
    signals.shipment_rejected.connect(
        lambda sender, *, shipment, **extra: heard.append(shipment.result), app, weak=False
    )
    process_feeds(synced["store_id"])
    db.session.expire_all()
    stored = db.session.get(Shipment, shipment.id)
    assert stored.state == "rejected" and "Amazon refused" in stored.result
    assert heard == [stored.result]


def test_a_failed_call_is_retried_with_the_same_package(app, db, sandbox, synced):
    order_id = synced["unshipped"]
    shipment = confirm_shipment(order_id, carrier_code="DHL", tracking_number="A1")
    sandbox.control.inject_fault("confirmShipment", "503_html", count=20)
    run = process_feeds(synced["store_id"])
    assert run.errors
    db.session.expire_all()
    assert db.session.get(Shipment, shipment.id).state == "queued"
    sandbox.control.clear_faults()
    process_feeds(synced["store_id"])
    db.session.expire_all()
    stored = db.session.get(Shipment, shipment.id)
    assert (stored.state, stored.attempts) == ("confirmed", 2)
    assert _stored(db, order_id).status == "Shipped"


# -- shipments and item cancellations never overlap (regressions from a review) ---------


def test_units_being_cancelled_are_not_shipped_and_shipped_units_not_cancelled(app, db, synced):
    from flask_amazon_orders.services.adjusting import AdjustmentError, adjust_items

    order_id = synced["unshipped"]
    items = _items(db, order_id)
    adjust_items(_stored(db, order_id), {items[2]: 1}, reason="NoInventory")
    shipment = confirm_shipment(order_id, carrier_code="DHL", tracking_number="A1")
    shipped = {line["order_item_id"] for line in json.loads(shipment.items)}
    assert items[2] not in shipped  # the cancelled mug is not in the parcel
    with pytest.raises(AdjustmentError, match="Only 0 unit"):
        adjust_items(_stored(db, order_id), {items[0]: 1}, reason="NoInventory")


def test_a_whole_order_cancel_waits_for_a_queued_shipment(app, db, synced):
    from flask_amazon_orders.services.cancelling import cancel_orders

    order_id = synced["unshipped"]
    items = _items(db, order_id)
    confirm_shipment(order_id, items={items[0]: 1}, carrier_code="DHL", tracking_number="A1")
    result = cancel_orders(synced["store_id"], [order_id], reason="NoInventory")
    assert result.cancelled == [] and "shipment is being confirmed" in result.refused[order_id]


def test_a_sync_between_lost_answer_and_retry_does_not_count_twice(
    app, db, sandbox, synced, monkeypatch
):
    from flask_amazon_orders.client.http import SPAPIClient
    from flask_amazon_orders.errors import TransportError

    order_id = synced["unshipped"]
    items = _items(db, order_id)
    confirm_shipment(order_id, items={items[0]: 2}, carrier_code="DHL", tracking_number="A1")
    real = SPAPIClient.confirm_shipment

    def lost(self, *args, **kwargs):
        real(self, *args, **kwargs)  # Amazon shipped it …
        raise TransportError("read timed out", operation="confirmShipment")  # … we never heard

    monkeypatch.setattr(SPAPIClient, "confirm_shipment", lost)
    process_feeds(synced["store_id"])
    monkeypatch.setattr(SPAPIClient, "confirm_shipment", real)
    assert get_extension().sync(synced["store_id"]).status == "succeeded"
    process_feeds(synced["store_id"])  # the retry: Amazon answers 204 (a replay)
    assert [i.quantity_shipped for i in _stored(db, order_id).items] == [2, 0, 0]


def test_the_signal_works_with_current_app_as_sender(app, db, synced):
    from flask import current_app

    (_receiver, shipment), *_ = signals.host_order_shipped.send(
        current_app, order=synced["unshipped"], carrier_code="DHL", tracking_number="A1"
    )
    assert shipment is not None and shipment.state == "queued"
