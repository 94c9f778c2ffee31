"""The release: ``python -m build`` makes an sdist and a wheel, and the wheel,
installed into a new virtual environment, has everything and runs the example
shop's commands outside the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import DATABASE_URL_VAR

ROOT = Path(__file__).resolve().parent.parent

#: What the wheel must carry besides the Python modules.
DATA = (
    "flask_amazon_orders/py.typed",
    "flask_amazon_orders/templates/amazon_orders/order.html",
    "flask_amazon_orders/templates/amazon_orders/dashboard.html",
    "flask_amazon_orders/static/amazon_orders/admin.css",
    "flask_amazon_orders/translations/de/LC_MESSAGES/flask_amazon_orders.mo",
    "flask_amazon_orders/sandbox/models/orders_2026-01-01.json",
    "flask_amazon_orders/sandbox/models/LICENSE-amzn-selling-partner-api-models.txt",
    "flask_amazon_orders/migrations/script.py.mako",
    "flask_amazon_orders/migrations/versions/ao0002_data_protection.py",
)


@pytest.mark.skipif(
    bool(os.environ.get(DATABASE_URL_VAR)),
    reason="does not depend on the database: runs in the SQLite pass only",
)
def test_the_wheel_installs_and_runs_the_example_shop(tmp_path: Path):
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next(dist.glob("*.whl"))
    sdist = next(dist.glob("*.tar.gz"))
    assert version("flask-amazon-orders") in wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in DATA if name not in names]
    assert missing == []
    assert not any(name.startswith(("tests/", "example_app/", "docs/")) for name in names)
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"CHANGES.rst", "README.md", "pyproject.toml"} <= members

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    # The example shop, copied out of the source tree, against the installed wheel.
    shop = tmp_path / "shop"
    shutil.copytree(
        ROOT / "example_app", shop / "example_app", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(env_dir / "bin" / "flask"), "--app", "example_app", *args],
            cwd=shop,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    where = subprocess.run(
        [str(python), "-c", "import flask_amazon_orders; print(flask_amazon_orders.__file__)"],
        cwd=shop,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in where.stdout and str(ROOT) not in where.stdout
    listed = run("amazon-orders", "--help")
    assert listed.returncode == 0, listed.stderr
    for command in ("sync", "cancel", "feeds", "purge", "rotate-keys", "db", "store"):
        assert command in listed.stdout
    key = run("amazon-orders", "generate-key")
    assert key.returncode == 0 and len(key.stdout.strip()) == 44
    empty = run("amazon-orders", "store", "list")
    assert empty.returncode == 1 and "db upgrade" in empty.stderr, empty.stderr
    no_alembic = run("amazon-orders", "db", "upgrade")
    assert no_alembic.returncode == 1, no_alembic.stderr
    assert "pip install flask-amazon-orders[migrations]" in no_alembic.stderr
    extra = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[migrations]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert extra.returncode == 0, extra.stderr[-3000:]
    upgraded = run("amazon-orders", "db", "upgrade")
    assert upgraded.returncode == 0 and "ao0002" in upgraded.stdout, upgraded.stderr
    stores = run("amazon-orders", "store", "list")
    assert stores.returncode == 0 and "No stores yet" in stores.stdout, stores.stderr
