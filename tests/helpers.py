"""Small helpers shared by the test modules (import them as ``helpers``)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

TOKEN_PATH = "/auth/o2/token"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def documented_signals() -> dict[str, tuple[str, list[str]]]:
    """The signal reference of ``docs/signals.rst``: Python name -> (string name,
    keyword arguments), as the page lists them (a definition per signal, headed
    ````name`` (``"string-name"``)``, with a ``:kwarg:`` field per argument)."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in (DOCS / "signals.rst").read_text().splitlines():
        head = re.fullmatch(r'``(\w+)`` \(``"([\w-]+)"``\)', line)
        if head:
            current = []
            found[head.group(1)] = (head.group(2), current)
        elif current is not None and (field := re.match(r"    :(\w+): ", line)):
            current.append(field.group(1))
        elif line and not line.startswith(" "):
            current = None
    return found


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


# -- a scriptable fake Amazon on 127.0.0.1 ---------------------------------------------


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    args: dict[str, str]
    headers: dict[str, str]
    body: bytes


Responder = Response | Callable[[Request], Response]


def json_response(body: Any, status: int = 200, **headers: str) -> Response:
    headers.setdefault("x-amzn-RequestId", f"rid-{status}")
    return Response(json.dumps(body), status, headers, content_type="application/json")


def amazon_error(status: int, code: str, message: str, details: str | None = None) -> Response:
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return json_response({"errors": [error]}, status)


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class FakeAmazon:
    """A WSGI app with scripted responses per (method, path); the last one repeats."""

    def __init__(self, refresh_token: str = "Atzr|refresh") -> None:
        self.url = ""
        self.refresh_token = refresh_token
        self.routes: dict[tuple[str, str], list[Responder]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.tokens_issued = 0
        self.release = threading.Event()  # lets slow handlers finish at teardown
        self.on("POST", TOKEN_PATH, self.issue_token)

    def on(self, method: str, path: str, *responders: Responder) -> None:
        self.routes[(method, path)] = list(responders)

    def issue_token(self, request: Request) -> Response:
        with self.lock:
            self.tokens_issued += 1
            number = self.tokens_issued
        return json_response(
            {
                "access_token": f"Atza|SUPERSECRET-access-{number}",
                "token_type": "bearer",
                "expires_in": 3600,
                "refresh_token": self.refresh_token,
            }
        )

    def slow(self, seconds: float, then: Responder) -> Callable[[Request], Response]:
        def respond(request: Request) -> Response:
            self.release.wait(seconds)
            return then if isinstance(then, Response) else then(request)

        return respond

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        seen = Seen(
            request.method,
            request.path,
            request.args.to_dict(),
            dict(request.headers),
            request.get_data(),
        )
        with self.lock:
            self.seen.append(seen)
            queue = self.routes.get((request.method, request.path))
            responder: Responder | None = None
            if queue:
                responder = queue.pop(0) if len(queue) > 1 else queue[0]
        if responder is None:
            response = amazon_error(404, "NoRoute", f"no route for {request.path}")
        elif isinstance(responder, Response):
            response = responder
        else:
            response = responder(request)
        return response(environ, start_response)


@contextmanager
def serve_fake_amazon(**options: Any) -> Iterator[FakeAmazon]:
    """Serve a :class:`FakeAmazon` on a free loopback port until the block ends."""
    fake = FakeAmazon(**options)
    server = make_server("127.0.0.1", 0, fake, threaded=True, request_handler=_QuietHandler)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def settle_feeds(store_id: int, *, rounds: int = 100) -> list[Any]:
    """Run the feed job of a store (in the current app context) until nothing is due
    any more (Amazon answered everything); its runs."""
    import datetime as dt
    import time

    from flask_amazon_orders.jobs.feeds import next_poll_due, process_feeds

    runs = []
    for _ in range(rounds):
        runs.append(process_feeds(store_id))
        due = next_poll_due()
        if due is None:
            return runs
        time.sleep(max(0.0, min(0.5, (due - dt.datetime.now(dt.timezone.utc)).total_seconds())))
    raise AssertionError(f"feeds not settled: {runs}")
