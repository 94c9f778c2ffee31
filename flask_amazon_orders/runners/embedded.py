"""The embedded runner: a background thread that syncs every store on an interval,
sends the stores' feeds to Amazon and purges expired buyer data.

For small shops and the example app. It calls the same job functions as the CLI
(:func:`flask_amazon_orders.jobs.sync.sync_all`). Turn it on with
``AMAZON_ORDERS_EMBEDDED_WORKER = True``; it starts with the app's first
request (so that ``flask`` CLI commands and the reloader's watcher process do not
start it) or when :meth:`EmbeddedWorker.start` is called. For many stores or
several processes, use a task queue instead (see the deployment docs).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("flask_amazon_orders.worker")


class EmbeddedWorker:
    """Syncs all active stores every ``interval`` seconds in a daemon thread."""

    def __init__(self, app: Flask, *, interval: float) -> None:
        self._app = app
        self.interval = interval
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        #: How many rounds over all stores have finished.
        self.rounds = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ensure_started(self) -> None:
        """Start the thread unless it runs already or was stopped on purpose
        (used as a ``before_request`` hook)."""
        if not self.running and not self._stopped:
            self.start()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stopped = False
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="amazon-orders-worker", daemon=True
            )
            self._thread.start()
            log.info("embedded worker started, syncing every %s s", self.interval)

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Ask the thread to stop after its current store and wait for it.

        The worker stays stopped (requests do not restart it) until :meth:`start`.
        Returns whether the thread ended within ``timeout``.
        """
        with self._lock:
            self._stopped = True
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning(
                    "embedded worker still busy after %s s; it stops after its store", timeout
                )
                return False
        self._thread = None
        return True

    def wake(self) -> None:
        """Run the next round now instead of at the end of the interval."""
        self._wake.set()

    def run_once(self) -> None:
        """One round (in this thread): sync every active store, send and poll the
        stores' feeds, then purge buyer data past its retention period."""
        from ..jobs.feeds import process_all_feeds
        from ..jobs.purge import purge_all
        from ..jobs.sync import sync_all

        with self._app.app_context():
            try:
                sync_all(trigger="worker", should_stop=self._stop.is_set)
            finally:
                try:
                    process_all_feeds(should_stop=self._stop.is_set)
                finally:
                    purge_all()
        self.rounds += 1

    def _sleep_seconds(self) -> float:
        """Until the next round: the interval, or less when a feed poll is due sooner."""
        from ..jobs.feeds import next_poll_due
        from ..models import utcnow

        with self._app.app_context():
            due = next_poll_due()
        if due is None:
            return self.interval
        return max(0.05, min(self.interval, (due - utcnow()).total_seconds()))

    def _loop(self) -> None:
        from ..services.importing import host_problem

        with self._app.app_context():
            problem = host_problem()
        if problem:
            log.warning("%s", problem)
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep the thread alive; the run is recorded as failed
                log.exception("embedded worker: a sync round failed")
            try:
                wait = self._sleep_seconds()
            except Exception:
                log.exception("embedded worker: could not read the next feed poll")
                wait = self.interval
            self._wake.wait(wait)
            self._wake.clear()
