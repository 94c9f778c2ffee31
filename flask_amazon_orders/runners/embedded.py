"""The embedded runner: a background thread that syncs every store on an interval,
sends the stores' feeds to Amazon and purges expired buyer data.

With an SQS queue configured (``AMAZON_ORDERS_SQS_QUEUE_URL``) it also reads
Amazon's order notifications: at the start of every round, and while it waits
for the next round it long-polls the queue (up to :data:`NOTIFICATION_WAIT`
seconds at a time, so a wake-up or a stop waits no longer than that), refreshing
each notified order within seconds; the rounds' sync stays the backstop.

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
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("flask_amazon_orders.worker")

#: The longest the worker waits on the notification queue in one receive.
NOTIFICATION_WAIT = 5.0
#: Seconds before the worker reads the queue again after it failed to.
RETRY_QUEUE_AFTER = 30.0


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

    def run_once(self) -> list[tuple[int, str, str | None]]:
        """One round (in this thread): handle the waiting notifications (if a queue
        is configured), sync every active store, send and poll the stores' feeds,
        then purge buyer data past its retention period.

        :returns: each synced store's last run of the round: ``(store id, status,
            error)``.
        """
        from ..extension import get_extension
        from ..jobs.feeds import process_all_feeds
        from ..jobs.purge import purge_all
        from ..jobs.sync import sync_all

        with self._app.app_context():
            try:
                self._poll_notifications(0)
                # A store that waits for Amazon's rate limit gives way to the
                # others, and is taken up again within this round's interval. A
                # wake-up ("Sync now", a cancellation) ends the round early: the
                # next one starts at once, with what was asked for first.
                runs = sync_all(
                    trigger="worker",
                    should_stop=lambda: self._stop.is_set() or self._wake.is_set(),
                    max_rate_wait=get_extension().settings.sync_max_rate_wait_seconds,
                    until=time.monotonic() + self.interval,
                )
                last = {run.store_id: (run.status, run.error) for run in runs}
            finally:
                try:
                    process_all_feeds(should_stop=self._stop.is_set)
                finally:
                    purge_all()
        self.rounds += 1
        return [(store_id, status, error) for store_id, (status, error) in last.items()]

    def _poll_notifications(self, wait: float) -> bool | None:
        """Handle the queue's notifications (in an app context); ``None`` when no
        queue is configured, else whether the queue could be read."""
        from ..errors import AmazonOrdersError
        from ..extension import get_extension
        from ..jobs.notifications import notifications_configured, poll_notifications

        if not notifications_configured():
            return None
        try:
            run = poll_notifications(wait_seconds=wait, should_stop=self._stop.is_set)
        except AmazonOrdersError as exc:  # the queue is unreachable, boto3 missing …
            log.warning("embedded worker: cannot read the notification queue: %s", exc)
            return False
        except Exception:
            log.exception("embedded worker: reading the notification queue failed")
            return False
        finally:
            get_extension().session.remove()
        if run.received:
            log.info(
                "notifications: %d received, %d orders refreshed, %d dropped, %d left",
                run.received,
                len(run.refreshed),
                run.dropped,
                run.retried,
            )
        return True

    def _wait(self, seconds: float) -> None:
        """Until the next round (or a wake-up); long-polls the notification queue
        meanwhile, if one is configured."""
        from ..extension import get_extension

        deadline = time.monotonic() + seconds
        while not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with self._app.app_context():
                wait = min(left, NOTIFICATION_WAIT, get_extension().settings.sqs_wait_seconds)
                polled = self._poll_notifications(wait)
            if polled is None:  # no queue: just sleep
                self._wake.wait(left)
            elif not polled:  # failing: try again a little later
                self._wake.wait(min(left, RETRY_QUEUE_AFTER))
            elif wait < 1:  # not long-polling: do not spin
                self._wake.wait(min(left, 1.0))

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
            try:
                self._wait(wait)
            except Exception:
                log.exception("embedded worker: waiting for the next round failed")
                self._wake.wait(wait)
            self._wake.clear()
