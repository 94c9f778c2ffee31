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
from .demo import DEMO_SELLER, SANDBOX_CATALOG, connect_stores, create_sellers, sandbox_config

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
                catalog=SANDBOX_CATALOG,
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
    seller, seller_fr = create_sellers(control, args.orders)
    app = create_app(
        {
            "DATABASE_FILE": "demo.sqlite",
            **sandbox_config(sandbox.url, time_scale=TIME_SCALE),
            "AMAZON_ORDERS_EMBEDDED_WORKER": True,
            "AMAZON_ORDERS_SYNC_INTERVAL_SECONDS": 30,
        }
    )
    with app.app_context():
        from .models import db

        db.drop_all()
        init_db()
        connect_stores(seller, seller_fr)
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
