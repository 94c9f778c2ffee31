"""Benchmark: ORDER_CHANGE notifications through SQS, and the sync as their backstop.

The bundled sandbox sends its notifications to a queue of a local SQS-compatible
server (moto's server mode, on loopback); an app on a fresh SQLite database (or
``--database``) reads them with :func:`poll_notifications`. Amazon's rate limits
are enforced and time-scaled. A store of ``--orders`` orders is synced once and
subscribed; then ``--changes`` of its orders ship. With the sandbox's
``notification`` faults, every ``--duplicate-every``-th notification is sent twice
(as SQS may) and every ``--lose-every``-th is lost. Printed:

* notifications made, delivered, duplicated and lost;
* the drain: messages received, orders refreshed, repeats, getOrder and
  searchOrders calls, 429s, wall time and refreshes per second;
* the backstop: one sync afterwards, the orders it still changed (the lost
  ones) and whether every changed order is stored as Shipped.

Usage::

    python bench/bench_push.py [--orders 300] [--changes 200] [--duplicate-every 10]
        [--lose-every 20] [--database URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
)

TIME_SCALE = 1000.0
DE = "A1PA6795UKMFR9"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--duplicate-every", type=int, default=10)
    parser.add_argument("--lose-every", type=int, default=20)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a new SQLite file)")
    args = parser.parse_args(argv)

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    import boto3
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from helpers import connect_store, subscribe_order_change
    from moto.server import ThreadedMotoServer

    from flask_amazon_orders import AmazonOrders
    from flask_amazon_orders.jobs.notifications import poll_notifications
    from flask_amazon_orders.jobs.sync import sync_store
    from flask_amazon_orders.models import AmazonOrder
    from flask_amazon_orders.sandbox import SandboxServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    sqs = boto3.session.Session().client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    queue_url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    database = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='bench-push-')}/push.sqlite"

    with SandboxServer(time_scale=TIME_SCALE, sqs_endpoint_url=endpoint) as sandbox:
        control = sandbox.control
        app = Flask("bench_push")
        app.config.update(
            SECRET_KEY="bench",
            SQLALCHEMY_DATABASE_URI=database,
            AMAZON_ORDERS_ENDPOINT=sandbox.url,
            AMAZON_ORDERS_LWA_URL=sandbox.url + "/auth/o2/token",
            AMAZON_ORDERS_LWA_CLIENT_ID="sandbox-client-id",
            AMAZON_ORDERS_LWA_CLIENT_SECRET="sandbox-client-secret",
            AMAZON_ORDERS_RATE_LIMIT_SCALE=TIME_SCALE,
            AMAZON_ORDERS_RETRY_BACKOFF_SECONDS=0.01,
            AMAZON_ORDERS_SQS_QUEUE_URL=queue_url,
            AMAZON_ORDERS_SQS_REGION="us-east-1",
            AMAZON_ORDERS_SQS_ENDPOINT_URL=endpoint,
            AMAZON_ORDERS_SQS_WAIT_SECONDS=1,
        )
        db = SQLAlchemy(app)
        AmazonOrders(app, db=db)
        with app.app_context():
            db.drop_all()
            db.create_all()
            seller = control.create_seller(marketplace_id=DE)
            ids = [
                control.create_order(seller["seller_id"], status="UNSHIPPED")["orderId"]
                for _ in range(args.orders)
            ]
            store = connect_store(seller)
            assert sync_store(store).status == "succeeded"
            subscribe_order_change(sandbox.url, seller, arn)

            changed = ids[: args.changes]
            for n, order_id in enumerate(changed, start=1):
                if args.lose_every and n % args.lose_every == 0:
                    control.inject_fault("notification", "drop")
                elif args.duplicate_every and n % args.duplicate_every == 0:
                    control.inject_fault("notification", "duplicate")
                control.set_status(order_id, "SHIPPED")
            made = control.notifications(seller_id=seller["seller_id"])
            delivered = [n for n in made if n["status"] == "delivered"]
            print(
                f"notifications: {len(made)} made, {len(delivered)} delivered "
                f"({sum(n['copies'] for n in delivered)} messages, "
                f"{sum(n['copies'] > 1 for n in delivered)} twice), "
                f"{sum(n['status'] == 'dropped' for n in made)} lost"
            )

            control.reset_counters()
            received = refreshed = repeated = dropped = retried = 0
            started = time.perf_counter()
            while True:
                run = poll_notifications(max_batches=100)
                received += run.received
                refreshed += len(run.refreshed)
                repeated += run.repeated
                dropped += run.dropped
                retried += run.retried
                if not run.received:
                    break
            took = time.perf_counter() - started
            ops = control.counters()["operations"]
            get_order = ops.get("getOrder", {})
            print(
                f"drain: {received} messages, {refreshed} refreshes, {repeated} repeats in a "
                f"batch, {dropped} dropped, {retried} left; getOrder {get_order.get('calls', 0)} "
                f"calls ({get_order.get('throttled', 0)} throttled), searchOrders "
                f"{ops.get('searchOrders', {}).get('calls', 0)} calls; {took:.2f} s, "
                f"{refreshed / took:.0f} refreshes/s"
            )

            sync = sync_store(store.id)
            db.session.expire_all()
            shipped = db.session.scalar(
                sa.select(sa.func.count())
                .select_from(AmazonOrder)
                .where(AmazonOrder.amazon_order_id.in_(changed), AmazonOrder.status == "Shipped")
            )
            print(
                f"backstop sync: {sync.status}, {sync.orders_updated} orders still changed; "
                f"{shipped} of {len(changed)} changed orders stored as Shipped"
            )
            db.session.remove()
            db.drop_all()
    moto.stop()


if __name__ == "__main__":
    main()
