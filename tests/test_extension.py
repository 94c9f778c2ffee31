"""The extension object and its configuration."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_amazon_orders import AmazonOrders, ConfigurationError
from flask_amazon_orders.config import DEFAULTS, resolve_marketplace


def _app(**config):
    app = Flask("cfg")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY="k", **config)
    return app


def test_init_app_declares_every_default_and_registers_state():
    app = _app()
    db = SQLAlchemy(app)
    ext = AmazonOrders(app, db=db)
    for key, value in DEFAULTS.items():
        assert app.config[key] == value
    assert app.extensions["amazon_orders"].extension is ext
    assert "amazon-orders" in app.cli.commands
    with app.app_context():
        assert ext.settings.sync_page_size == 100
        assert "amazon_orders" in db.metadata.tables


def test_app_factory_pattern_and_two_apps():
    db = SQLAlchemy()
    ext = AmazonOrders(db=db)
    first, second = _app(AMAZON_ORDERS_SYNC_PAGE_SIZE=50), _app()
    for app in (first, second):
        db.init_app(app)
        ext.init_app(app)
    with first.app_context():
        assert ext.settings.sync_page_size == 50
    with second.app_context():
        assert ext.settings.sync_page_size == 100


def test_second_init_app_is_an_error():
    app = _app()
    ext = AmazonOrders(app, db=SQLAlchemy(app))
    with pytest.raises(RuntimeError, match="already set up"):
        ext.init_app(app)


def test_use_outside_an_app_context_says_what_to_do():
    ext = AmazonOrders(db=SQLAlchemy())
    with pytest.raises(RuntimeError, match="app_context"):
        ext.settings  # noqa: B018


def test_misspelt_key_warns_with_a_suggestion():
    app = _app(AMAZON_ORDERS_SYNC_INTERVAL_SECOND=10)
    with pytest.warns(UserWarning, match="AMAZON_ORDERS_SYNC_INTERVAL_SECONDS"):
        AmazonOrders(app, db=SQLAlchemy(app))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("AMAZON_ORDERS_SYNC_PAGE_SIZE", 500),
        ("AMAZON_ORDERS_SYNC_PAGE_SIZE", "many"),
        ("AMAZON_ORDERS_SYNC_OVERLAP_SECONDS", -1),
        ("AMAZON_ORDERS_HTTP_TIMEOUT", "soon"),
        ("AMAZON_ORDERS_ENDPOINT", "sandbox.local"),
        ("AMAZON_ORDERS_EMBEDDED_WORKER", "perhaps"),
        ("AMAZON_ORDERS_ENCRYPTION_KEYS", 42),
    ],
)
def test_bad_value_names_the_key(key, value):
    app = _app(**{key: value})
    with pytest.raises(ConfigurationError, match=key):
        AmazonOrders(app, db=SQLAlchemy(app))


def test_settings_repr_hides_secrets():
    app = _app(AMAZON_ORDERS_LWA_CLIENT_SECRET="very-secret", AMAZON_ORDERS_ENCRYPTION_KEYS="k1")
    ext = AmazonOrders(app, db=SQLAlchemy(app))
    with app.app_context():
        text = repr(ext.settings)
    assert "very-secret" not in text and "k1" not in text


def test_marketplace_by_country_code():
    assert resolve_marketplace("DE") == "A1PA6795UKMFR9"
    assert resolve_marketplace("uk") == "A1F83G8C2ARO7P"
    assert resolve_marketplace("ATVPDKIKX0DER") == "ATVPDKIKX0DER"
    with pytest.raises(ConfigurationError, match="Unknown Amazon marketplace"):
        resolve_marketplace("XX")


def test_add_store_validates_and_refuses_duplicates(ext, seller):
    from flask_amazon_orders.services.stores import StoreExistsError

    with pytest.raises(ConfigurationError, match="seller id"):
        ext.add_store(name="x", seller_id="no", marketplace="DE", refresh_token="t")
    with pytest.raises(ConfigurationError, match="region"):
        ext.add_store(
            name="x",
            seller_id=seller["seller_id"],
            marketplace="DE",
            region="na",
            refresh_token="t",
        )
    with pytest.raises(ConfigurationError, match="refresh token"):
        ext.add_store(name="x", seller_id=seller["seller_id"], marketplace="DE", refresh_token=" ")
    store = ext.add_store(
        name="Amazon DE",
        seller_id=seller["seller_id"].lower(),
        marketplace="DE",
        refresh_token=seller["refresh_token"],
    )
    assert store.seller_id == seller["seller_id"] and store.region == "eu"
    with pytest.raises(StoreExistsError):
        ext.add_store(
            name="Again",
            seller_id=seller["seller_id"],
            marketplace="A1PA6795UKMFR9",
            refresh_token="t",
        )


def test_encryption_keys_string_splits_on_commas_only():
    app = _app(AMAZON_ORDERS_ENCRYPTION_KEYS="a long pass phrase, second key")
    ext = AmazonOrders(app, db=SQLAlchemy(app))
    with app.app_context():
        assert ext.settings.encryption_keys == ("a long pass phrase", "second key")
