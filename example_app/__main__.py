"""Run the example shop on the bundled Amazon sandbox: ``python -m example_app``.

One process, no network: it starts the sandbox on a free loopback port, creates
a demo seller with generated orders for the shop's own SKUs, connects it as a
store, and runs the shop with the embedded sync worker. New Amazon orders arrive
and orders move through their lifecycle while it runs. The demo database is
created anew at each start (the sandbox keeps its state in memory only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import threading

from flask_amazon_orders.sandbox import SandboxServer

from . import amazon_orders, create_app, init_db
from .models import CATALOG

DEMO_SELLER = "A2DEMOTEAHOUSE"
#: A second seller account, in France, whose store keeps order import off.
DEMO_SELLER_FR = "A2DEMOTEAHOUSEFR"
#: The demo runs Amazon's published rate limits this many times faster, so that
#: a sync every 30 s never waits for Amazon's one-call-per-three-minutes pace.
TIME_SCALE = 6.0


def _amazon_life(control, seller_id: str, stop: threading.Event, every: float) -> None:
    """Keep the sandbox alive: a new order now and then, and orders moving on."""
    while not stop.wait(every):
        now = dt.datetime.now(dt.timezone.utc)
        try:
            control.generate_orders(
                seller_id,
                1,
                start=(now - dt.timedelta(seconds=30)).isoformat(),
                end=now.isoformat(),
                catalog=[{"sku": s, "title": t, "price": p} for s, t, p in CATALOG],
                statuses={"PENDING": 1, "UNSHIPPED": 3},
            )
            control.advance(seller_id=seller_id, count=2)
        except Exception:  # the demo goes on even if one step fails
            logging.getLogger(__name__).exception("sandbox life step failed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=250, help="Amazon orders to generate.")
    parser.add_argument("--every", type=float, default=45.0, help="Seconds between new orders.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    sandbox = SandboxServer(time_scale=TIME_SCALE, seed=7)
    sandbox.start()
    control = sandbox.control
    seller = control.create_seller(
        seller_id=DEMO_SELLER, name="Teahouse", marketplace_id="A1PA6795UKMFR9"
    )
    catalog = [{"sku": sku, "title": title, "price": price} for sku, title, price in CATALOG]
    control.generate_orders(DEMO_SELLER, args.orders, catalog=catalog)
    seller_fr = control.create_seller(
        seller_id=DEMO_SELLER_FR, name="Teahouse FR", marketplace_id="A13V1IB3VIYZZH"
    )
    control.generate_orders(DEMO_SELLER_FR, max(args.orders // 3, 1), catalog=catalog, seed=8)

    app = create_app(
        {
            "DATABASE_FILE": "demo.sqlite",
            "AMAZON_ORDERS_ENDPOINT": sandbox.url,
            "AMAZON_ORDERS_LWA_URL": sandbox.url + "/auth/o2/token",
            "AMAZON_ORDERS_LWA_CLIENT_ID": "sandbox-client-id",
            "AMAZON_ORDERS_LWA_CLIENT_SECRET": "sandbox-client-secret",
            "AMAZON_ORDERS_RATE_LIMIT_SCALE": TIME_SCALE,
            "AMAZON_ORDERS_EMBEDDED_WORKER": True,
            "AMAZON_ORDERS_SYNC_INTERVAL_SECONDS": 30,
        }
    )
    with app.app_context():
        from .models import db

        db.drop_all()
        init_db()
        # Import on: Amazon orders become shop orders, managed in the shop's workflow.
        store = amazon_orders.add_store(
            name="Teahouse Amazon.de",
            seller_id=DEMO_SELLER,
            marketplace="DE",
            refresh_token=seller["refresh_token"],
            order_import_enabled=True,
        )
        # Only orders placed after connecting become shop orders: the demo store
        # was "connected" a day ago, so its recent orders are imported.
        store.connected_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
        # Import off: orders are shown only and managed in Seller Central.
        amazon_orders.add_store(
            name="Teahouse Amazon.fr",
            seller_id=DEMO_SELLER_FR,
            marketplace="FR",
            refresh_token=seller_fr["refresh_token"],
        )
        db.session.commit()
    worker = amazon_orders._state(app).worker
    assert worker is not None
    worker.start()
    stop = threading.Event()
    threading.Thread(
        target=_amazon_life, args=(control, DEMO_SELLER, stop, args.every), daemon=True
    ).start()
    print(f"\n  Amazon sandbox:  {sandbox.url}")
    print(f"  Example shop:    http://{args.host}:{args.port}/   (Ctrl-C stops)\n")
    try:
        app.run(host=args.host, port=args.port, use_reloader=False, threaded=True)
    finally:
        stop.set()
        worker.stop()
        sandbox.stop()


if __name__ == "__main__":
    main()
