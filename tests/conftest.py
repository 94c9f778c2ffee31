"""Test fixtures: a small app per test, on SQLite or PostgreSQL, against the sandbox.

Tests use an in-memory-like SQLite file by default. Set
``AMAZON_ORDERS_TEST_DATABASE_URL`` (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) to run them on PostgreSQL.

The property tests (hypothesis) run the ``ci`` profile: few examples, the same
ones at every run (derandomized, no example database), so CI is quick and a
failure reproduces. ``HYPOTHESIS_PROFILE=long`` runs many more, randomly drawn.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from helpers import connect_store
from hypothesis import settings

from flask_amazon_orders import AmazonOrders
from flask_amazon_orders.client import InMemoryRateLimiter
from flask_amazon_orders.sandbox import SandboxServer

DATABASE_URL_VAR = "AMAZON_ORDERS_TEST_DATABASE_URL"

settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True
)
settings.register_profile("long", max_examples=2000, deadline=None, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _postgres_up(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get(DATABASE_URL_VAR)
    if not url:
        return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite")
    if url.startswith("postgresql") and not _postgres_up(url):
        # The machine's PostgreSQL may simply be stopped: try to start it once.
        try:
            versions = os.listdir("/etc/postgresql")
            for version in versions:
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                    check=False,
                    capture_output=True,
                    timeout=60,
                )
        except (OSError, subprocess.SubprocessError):
            pass
        if not _postgres_up(url):
            pytest.exit(
                f"{DATABASE_URL_VAR} is set to a PostgreSQL URL, but no server answers there "
                "and starting the local cluster failed. Start PostgreSQL or unset the variable.",
                returncode=3,
            )
    return url


REDIS_URL_VAR = "AMAZON_ORDERS_TEST_REDIS_URL"


def _redis_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis for the tests that need one (``AMAZON_ORDERS_TEST_REDIS_URL``, by
    default database 15 of the local server, started here if it is not running)."""
    url = os.environ.get(REDIS_URL_VAR, "redis://127.0.0.1:6379/15")
    if not _redis_up(url):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["redis-server", "--daemonize", "yes", "--save", "", "--appendonly", "no"],
                check=False,
                capture_output=True,
                timeout=30,
            )
        for _ in range(50):
            if _redis_up(url):
                break
            time.sleep(0.1)
        else:
            pytest.fail(
                f"No Redis answers at {url} and starting redis-server failed: start Redis "
                f"or point {REDIS_URL_VAR} at one.",
                pytrace=False,
            )
    return url


#: Tests run Amazon's rate limits this many times faster (the client follows the
#: sandbox's x-amzn-RateLimit-Limit header), so a drained bucket refills quickly.
TEST_TIME_SCALE = 1000.0


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A plain HTTP session (for talking to a sandbox as Amazon's clients do)."""
    session = requests.Session()
    yield session
    session.close()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with any configuration; all are stopped after the test."""
    servers: list[SandboxServer] = []

    def make(**config: Any) -> SandboxServer:
        server = SandboxServer(**config).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh Amazon sandbox on a free loopback port, with Amazon's limits time-scaled."""
    with SandboxServer(time_scale=TEST_TIME_SCALE) as server:
        yield server


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[SandboxServer]:
    """A time-scaled sandbox shared by a module's tests (each with its own seller)."""
    with SandboxServer(time_scale=TEST_TIME_SCALE) as server:
        yield server


def make_app(database_url: str, sandbox_url: str, **config: Any) -> tuple[Flask, SQLAlchemy]:
    app = Flask("test_app")
    app.config.update(
        TESTING=True,
        SECRET_KEY="test-secret",
        SQLALCHEMY_DATABASE_URI=database_url,
        AMAZON_ORDERS_ENDPOINT=sandbox_url,
        AMAZON_ORDERS_LWA_URL=sandbox_url + "/auth/o2/token",
        AMAZON_ORDERS_LWA_CLIENT_ID="sandbox-client-id",
        AMAZON_ORDERS_LWA_CLIENT_SECRET="sandbox-client-secret",
        AMAZON_ORDERS_RETRY_BACKOFF_SECONDS=0.01,
        AMAZON_ORDERS_RETRY_BACKOFF_CAP_SECONDS=0.05,
        AMAZON_ORDERS_HTTP_TIMEOUT=(2.0, 2.0),
        AMAZON_ORDERS_RATE_LIMIT_SCALE=TEST_TIME_SCALE,
    )
    app.config.update(config)
    db = SQLAlchemy()
    db.init_app(app)
    AmazonOrders(app, db=db, rate_limiter=InMemoryRateLimiter())
    return app, db


@pytest.fixture(name="make_app", scope="session")
def make_app_fixture() -> Any:
    """:func:`make_app` itself, for tests that run their own sandbox."""
    return make_app


@pytest.fixture
def app_factory(database_url: str, sandbox: SandboxServer) -> Iterator[Any]:
    """Builds apps on the test database; drops their tables afterwards."""
    made: list[tuple[Flask, SQLAlchemy]] = []

    def factory(**config: Any) -> Flask:
        app, db = make_app(database_url, sandbox.url, **config)
        with app.app_context():
            db.drop_all()
            db.create_all()
        made.append((app, db))
        return app

    yield factory
    for app, db in made:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture
def app(app_factory: Any) -> Iterator[Flask]:
    app = app_factory()
    with app.app_context():
        yield app


@pytest.fixture
def db(app: Flask) -> SQLAlchemy:
    return app.extensions["sqlalchemy"]  # type: ignore[no-any-return]


@pytest.fixture
def ext(app: Flask) -> AmazonOrders:
    return app.extensions["amazon_orders"].extension  # type: ignore[no-any-return]


@pytest.fixture
def seller(sandbox: SandboxServer) -> dict[str, Any]:
    """A seller account in the sandbox, with a unique id per test."""
    seller_id = "A" + uuid.uuid4().hex[:12].upper()
    return sandbox.control.create_seller(seller_id=seller_id, marketplace_id="A1PA6795UKMFR9")


@pytest.fixture
def store(ext: AmazonOrders, seller: dict[str, Any]) -> Any:
    """The sandbox seller connected as a store."""
    return connect_store(seller)


@pytest.fixture
def shop(database_url: str, sandbox: SandboxServer) -> Iterator[Flask]:
    """The example shop (a real host with its own orders) on the test database."""
    from example_app import create_app, init_db
    from example_app.models import db as shop_db

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "AMAZON_ORDERS_ENDPOINT": sandbox.url,
            "AMAZON_ORDERS_LWA_URL": sandbox.url + "/auth/o2/token",
            "AMAZON_ORDERS_LWA_CLIENT_ID": "sandbox-client-id",
            "AMAZON_ORDERS_LWA_CLIENT_SECRET": "sandbox-client-secret",
            "AMAZON_ORDERS_RETRY_BACKOFF_SECONDS": 0.01,
            "AMAZON_ORDERS_RATE_LIMIT_SCALE": TEST_TIME_SCALE,
        }
    )
    with app.app_context():
        shop_db.drop_all()
        init_db()
    yield app
    with app.app_context():
        shop_db.session.remove()
        shop_db.drop_all()
        shop_db.engine.dispose()


@pytest.fixture(scope="session")
def sqs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local SQS-compatible server (moto's server mode) on a free loopback port,
    with fake AWS credentials in the environment; its URL."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        empty = tmp_path_factory.mktemp("aws") / "none"
        env.setenv("AWS_CONFIG_FILE", str(empty))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def sqs_queue(sqs_endpoint: str) -> Iterator[dict[str, Any]]:
    """A new queue on the local SQS server: ``{"url", "arn", "client"}`` (a boto3 client)."""
    import boto3

    client = boto3.session.Session().client(
        "sqs", region_name="us-east-1", endpoint_url=sqs_endpoint
    )
    url = client.create_queue(QueueName=f"orders-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    yield {"url": url, "arn": arn, "client": client}
    client.delete_queue(QueueUrl=url)
    client.close()
