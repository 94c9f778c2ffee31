"""Run the sandbox from the command line.

``python -m flask_amazon_orders.sandbox --port 8765 --seller-id A1SANDBOX --generate 200``
"""

from __future__ import annotations

import argparse
import sys
import threading

from .control_client import SandboxControlError
from .server import SandboxServer


def _wait_forever() -> None:
    """Block until the process is interrupted (Ctrl+C)."""
    threading.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, start the sandbox and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_amazon_orders.sandbox",
        description="Run the Flask-Amazon-Orders SP-API sandbox.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply every rate limit by this"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the order generator")
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="never answer 429 QuotaExceeded"
    )
    parser.add_argument("--client-id", default=None, help="LWA client id to accept")
    parser.add_argument("--client-secret", default=None, help="LWA client secret to accept")
    parser.add_argument(
        "--sqs-endpoint",
        default=None,
        metavar="URL",
        help="send ORDER_CHANGE notifications to SQS queues at this endpoint "
        "(a local SQS-compatible server; needs boto3)",
    )
    parser.add_argument("--seller-id", default=None, help="create a seller with this id")
    parser.add_argument(
        "--generate", type=int, default=None, metavar="N", help="create a seller with N orders"
    )
    args = parser.parse_args(argv)

    config: dict[str, object] = {
        "time_scale": args.time_scale,
        "seed": args.seed,
        "enforce_rate_limits": not args.no_rate_limits,
    }
    if args.client_id:
        config["client_id"] = args.client_id
    if args.client_secret:
        config["client_secret"] = args.client_secret
    if args.sqs_endpoint:
        config["sqs_endpoint_url"] = args.sqs_endpoint
    try:
        server = SandboxServer(host=args.host, port=args.port, **config).start()
    except (OSError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"Amazon SP-API sandbox running on {server.url}", flush=True)
    settings = server.state.config
    print(f"  LWA token endpoint: {server.url}/auth/o2/token")
    secret = settings.client_secret if not args.client_secret else "(as given)"
    print(f"  client_id: {settings.client_id}  client_secret: {secret}")
    if args.seller_id or args.generate is not None:
        try:
            seller = server.control.create_seller(args.seller_id)
        except SandboxControlError as exc:
            server.stop()
            parser.exit(2, f"error: {exc.message}\n")
        print(f"  seller_id: {seller['seller_id']}  marketplace: {seller['marketplace_id']}")
        print(f"  refresh_token: {seller['refresh_token']}")
        if args.generate:
            created = server.control.generate_orders(seller["seller_id"], args.generate)
            print(f"  generated {created['created']} orders")
    print("Press Ctrl+C to stop.", flush=True)
    try:
        _wait_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
