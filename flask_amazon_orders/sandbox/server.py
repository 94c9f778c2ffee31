"""Run the sandbox on a loopback port in a background thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_app
from .control_client import SandboxControl
from .plumbing import EXTENSION_KEY
from .state import SandboxState


class _QuietHandler(WSGIRequestHandler):
    """A request handler that writes no access log lines."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SandboxServer:
    """The sandbox served over real HTTP, for tests and demos.

    ::

        with SandboxServer(time_scale=100) as sandbox:
            seller = sandbox.control.create_seller()
            sandbox.control.generate_orders(seller["seller_id"], 500)
            client = SPAPIClient(
                credentials=LWACredentials(
                    "sandbox-client-id", "sandbox-client-secret", seller["refresh_token"]
                ),
                endpoint=sandbox.url,
                lwa_url=sandbox.url + "/auth/o2/token",
                seller_key=seller["seller_id"],
            )

    :param host: the address to bind (default ``127.0.0.1``).
    :param port: the port; ``0`` or ``None`` picks a free one.
    :param config: the settings of :func:`~flask_amazon_orders.sandbox.create_app`, as
        keyword arguments.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = 0, **config: Any) -> None:
        self.app = create_app(config)
        self.host = host
        self.port = port or 0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._control: SandboxControl | None = None

    @property
    def state(self) -> SandboxState:
        """The in-process state (for white-box tests)."""
        return self.app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]

    @property
    def control(self) -> SandboxControl:
        """A :class:`SandboxControl` for this server (available once started)."""
        if self._control is None:
            raise RuntimeError("the sandbox server is not running; call start() first")
        return self._control

    def start(self) -> SandboxServer:
        """Bind the port and serve in a daemon thread. Returns ``self``."""
        if self._server is not None:
            return self
        try:
            server = make_server(
                self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler
            )
        except SystemExit:  # werkzeug exits when the port is taken; raise instead
            raise OSError(f"Cannot serve the sandbox on {self.host}:{self.port}: in use?") from None
        self._server = server
        self.port = server.server_port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"amazon-orders-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._control = SandboxControl(self.url)
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._control is not None:
            self._control.close()
            self._control = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SandboxServer {self.url or 'stopped'}>"
