"""The quickstart, followed literally: docs/quickstart/app.py in a new folder, the
sandbox command, then the ``flask`` commands the page gives, each in its own
process, and the admin page of the running shop."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "quickstart.rst"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _commands() -> list[str]:
    """The shell commands of the page's "Try it without Amazon" section, in order."""
    section = PAGE.read_text().split("Try it without Amazon", 1)[1]
    blocks = re.findall(r"\.\. code-block:: sh\n\n((?:    .*\n|\n)+)", section)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _start(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:  # the child has its own copy of the file
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(log: Path, pattern: str, process: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        match = re.search(pattern, text)
        if match:
            return match.group(1) if match.groups() else match.group(0)
        if process.poll() is not None:
            raise AssertionError(f"{process.args} ended:\n{text}")
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {log}:\n{log.read_text()}")


def test_the_quickstart_followed_literally_shows_imported_orders(tmp_path: Path):
    commands = _commands()
    assert [c.split()[:3] for c in commands] == [
        ["python", "-m", "flask_amazon_orders.sandbox"],
        ["flask", "--app", "app"],
        ["flask", "--app", "app"],
        ["flask", "--app", "app"],
    ]
    shutil.copy(ROOT / "docs" / "quickstart" / "app.py", tmp_path / "app.py")
    sandbox_port, shop_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "AMAZON_ORDERS_"))
    }
    env["SANDBOX_URL"] = f"http://127.0.0.1:{sandbox_port}"
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    processes: list[subprocess.Popen] = []
    try:
        # 1. The sandbox, on a free port instead of 8765.
        sandbox_command = shlex.split(commands[0].replace("8765", str(sandbox_port)))
        sandbox_command[0] = sys.executable
        log = tmp_path / "sandbox.log"
        processes.append(_start(sandbox_command, tmp_path, env, log))
        token = _wait_for(log, r"refresh_token: (\S+)", processes[-1])
        _wait_for(log, r"generated 200 orders", processes[-1])
        # 2. store add with the printed token; 3. sync.
        for command in commands[1:3]:
            argv = shlex.split(command.replace("Atzr|…", token))
            argv[0] = str(Path(bin_dir) / "flask")
            done = subprocess.run(
                argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert token not in done.stdout + done.stderr
        # 4. The shop, on a free port; its admin page lists the store and its orders.
        argv = [*shlex.split(commands[3]), "--port", str(shop_port)]
        argv[0] = str(Path(bin_dir) / "flask")
        log = tmp_path / "shop.log"
        processes.append(_start(argv, tmp_path, env, log))
        _wait_for(log, r"Running on", processes[-1])
        base = f"http://127.0.0.1:{shop_port}/amazon-orders"
        cards = requests.get(base + "/", timeout=10)
        assert cards.status_code == 200
        assert "Amazon DE" in cards.text
        orders = requests.get(base + "/stores/1/orders", timeout=10)
        assert orders.status_code == 200
        assert "of 200" in " ".join(orders.text.split())
        assert len(set(re.findall(r"\d{3}-\d{7}-\d{7}", orders.text))) >= 20
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
