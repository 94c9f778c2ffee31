import uuid

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_amazon_orders import AmazonOrders, get_extension
from flask_amazon_orders.sandbox import SandboxServer

#: Amazon's rate limits, 1000 times faster. The sandbox enforces them and
#: the extension's client keeps to them, so the tests never wait long.
TIME_SCALE = 1000


@pytest.fixture
def sandbox():
    """A fresh Amazon sandbox on a free loopback port."""
    with SandboxServer(time_scale=TIME_SCALE) as server:
        yield server


@pytest.fixture
def app(sandbox, tmp_path):
    """The shop, talking to the sandbox instead of Amazon."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="test",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'shop.sqlite'}",
        AMAZON_ORDERS_ENDPOINT=sandbox.url,
        AMAZON_ORDERS_LWA_URL=sandbox.url + "/auth/o2/token",
        AMAZON_ORDERS_LWA_CLIENT_ID="sandbox-client-id",
        AMAZON_ORDERS_LWA_CLIENT_SECRET="sandbox-client-secret",
        AMAZON_ORDERS_RATE_LIMIT_SCALE=TIME_SCALE,
        AMAZON_ORDERS_HTTP_TIMEOUT=(2.0, 2.0),
        AMAZON_ORDERS_RETRY_BACKOFF_SECONDS=0.01,
        AMAZON_ORDERS_RETRY_BACKOFF_CAP_SECONDS=0.1,
    )
    db = SQLAlchemy(app)
    AmazonOrders(app, db=db)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def seller(sandbox):
    """A seller account in the sandbox (Amazon.de), with its refresh token."""
    return sandbox.control.create_seller("A" + uuid.uuid4().hex[:12].upper())


@pytest.fixture
def store(app, seller):
    """The sandbox seller, connected to the shop as a store."""
    return get_extension().add_store(
        name="Amazon DE",
        seller_id=seller["seller_id"],
        marketplace="DE",
        refresh_token=seller["refresh_token"],
    )
