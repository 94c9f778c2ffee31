from flask_amazon_orders import get_extension, signals


def test_new_amazon_order_reaches_the_shop(app, sandbox, seller, store):
    imported = []

    @signals.order_imported.connect_via(app)
    def on_import(app, *, order, **extra):
        imported.append(order.amazon_order_id)

    order = sandbox.control.create_order(
        seller["seller_id"], items=[{"sku": "TEA-GREEN-100", "quantity": 2}]
    )
    run = get_extension().sync(store)

    assert run.status == "succeeded"
    assert imported == [order["orderId"]]


def test_sync_rides_out_throttling(app, sandbox, seller, store):
    sandbox.control.generate_orders(seller["seller_id"], 250)
    sandbox.control.inject_fault("searchOrders", "429", count=2)

    run = get_extension().sync(store)

    assert run.status == "succeeded"
    assert run.orders_created == 250
    assert sandbox.control.counters()["operations"]["searchOrders"]["faulted"] == 2


def test_revoked_authorization_needs_action(app, sandbox, seller, store):
    sandbox.control.revoke_seller(seller["seller_id"])

    run = get_extension().sync(store)

    assert run.status == "failed"
    assert store.last_sync_error_needs_action
