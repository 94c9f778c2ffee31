"""The sandbox in a process of its own, as Amazon would be, for the benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import requests


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(time_scale: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m flask_amazon_orders.sandbox`` with Amazon's limits scaled by
    ``time_scale``; return the process and its URL once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "flask_amazon_orders.sandbox", "--host", "127.0.0.1"),
            *("--port", str(port), "--time-scale", str(time_scale)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(url + "/_sandbox/counters", timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the sandbox did not start")
