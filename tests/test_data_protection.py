"""Buyer-data protection: encryption bound to its row, key rotation, the purge job,
re-authorization, and secrets that never leave the database in clear text."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import connect_store

from flask_amazon_orders import get_extension
from flask_amazon_orders.crypto import Encryptor, buyer_data_context, refresh_token_context
from flask_amazon_orders.errors import ConfigurationError
from flask_amazon_orders.jobs import purge
from flask_amazon_orders.jobs.sync import sync_store
from flask_amazon_orders.models import AmazonOrder, OrderEvent, Store, StoreEvent, SyncRun
from flask_amazon_orders.runners.embedded import EmbeddedWorker

PREFIX = "/amazon-orders"
DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _order(sandbox, seller, *, status: str = "UNSHIPPED", ago: float = 3600, **spec: Any) -> str:
    moment = _iso(_now() - dt.timedelta(seconds=ago))
    spec.setdefault("items", [{"sku": "TEA-GREEN-100", "quantity": 1, "unit_price": "8.90"}])
    return sandbox.control.create_order(
        seller["seller_id"], status=status, created_time=moment, last_updated_time=moment, **spec
    )["orderId"]


def _stored(db, amazon_order_id: str) -> AmazonOrder:
    db.session.expire_all()
    return db.session.scalar(sa.select(AmazonOrder).filter_by(amazon_order_id=amazon_order_id))


def _grant(app, *, manage: bool = True) -> None:
    ext = get_extension(app)
    ext.access_handler(lambda permission, store: permission == "view" or manage)
    ext.actor_loader(lambda: "ann@example.com")


def _csrf(client, url: str) -> str:
    import re

    page = client.get(url).data.decode()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


# -- encryption ------------------------------------------------------------------------


def test_a_value_only_decrypts_in_its_own_row():
    encryptor = Encryptor([Encryptor.generate_key()])
    mine = buyer_data_context(1, "028-1111111-1111111")
    token = encryptor.encrypt('{"buyer": "Anna"}', context=mine)
    assert encryptor.decrypt(token, context=mine) == '{"buyer": "Anna"}'
    for other in (
        buyer_data_context(1, "028-2222222-2222222"),
        buyer_data_context(2, "028-1111111-1111111"),
        refresh_token_context("A1SELLER", "A1PA6795UKMFR9"),
    ):
        with pytest.raises(ConfigurationError, match="cannot be decrypted"):
            encryptor.decrypt(token, context=other)
    # A fresh nonce per value: the same text twice gives two different values.
    assert encryptor.encrypt("x", context=mine) != encryptor.encrypt("x", context=mine)
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(ConfigurationError):
        encryptor.decrypt(tampered, context=mine)
    assert "Anna" not in token and "Anna" not in repr(encryptor)


def test_old_keys_stay_readable_after_a_new_key_is_added():
    old, new = Encryptor.generate_key(), "a long random passphrase works too"
    context = refresh_token_context("A1SELLER", "A1PA6795UKMFR9")
    token = Encryptor([old]).encrypt("Atzr|secret", context=context)
    both = Encryptor([new, old])
    assert both.decrypt(token, context=context) == "Atzr|secret"
    assert not both.is_current(token)
    rotated = both.rotate(token, context=context)
    assert both.is_current(rotated)
    assert Encryptor([new]).decrypt(rotated, context=context) == "Atzr|secret"
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        Encryptor([new]).decrypt(token, context=context)
    with pytest.raises(ConfigurationError, match="format"):
        both.decrypt("v1.abcd.AAAA", context=context)


def test_buyer_data_copied_onto_another_order_is_not_shown(app, db, sandbox, seller):
    first = _order(sandbox, seller, buyer_name="Anna Copyme")
    second = _order(sandbox, seller, buyer_name="Bert Victim")
    store = connect_store(seller)
    sync_store(store)
    ext = get_extension()
    assert ext.buyer_data(_stored(db, first))["buyer"]["buyerName"] == "Anna Copyme"
    # Someone with write access to the database copies one buyer's data onto another order.
    with db.engine.begin() as conn:
        blob = conn.scalar(
            sa.select(AmazonOrder.buyer_data_encrypted).where(AmazonOrder.amazon_order_id == first)
        )
        conn.execute(
            sa.update(AmazonOrder)
            .where(AmazonOrder.amazon_order_id == second)
            .values(buyer_data_encrypted=blob)
        )
    with pytest.raises(ConfigurationError):
        ext.buyer_data(_stored(db, second))
    _grant(app)
    page = app.test_client().get(f"{PREFIX}/stores/{store.id}/orders/{second}")
    assert page.status_code == 200
    text = page.data.decode()
    assert "cannot be decrypted" in text
    assert "Anna Copyme" not in text


def test_a_refresh_token_copied_to_another_store_fails(app, db, sandbox, seller):
    other = sandbox.control.create_seller(marketplace_id="A1PA6795UKMFR9")
    first = connect_store(seller)
    second = connect_store(other, name="Other")
    with db.engine.begin() as conn:
        conn.execute(
            sa.update(Store)
            .where(Store.id == second.id)
            .values(refresh_token_encrypted=first.refresh_token_encrypted)
        )
    db.session.expire_all()
    with pytest.raises(ConfigurationError):
        get_extension().client_for(db.session.get(Store, second.id))
    run = sync_store(second.id)
    assert run.status == "failed"
    assert seller["refresh_token"] not in (run.error or "")


def test_rotate_keys_re_encrypts_everything_and_keeps_what_it_cannot_read(
    app_factory, make_app, database_url, sandbox, seller
):
    old, new = Encryptor.generate_key(), Encryptor.generate_key()
    first = app_factory(AMAZON_ORDERS_ENCRYPTION_KEYS=[old])
    with first.app_context():
        ids = [_order(sandbox, seller, buyer_name=f"Buyer {n}") for n in range(3)]
        store = connect_store(seller)
        assert sync_store(store).status == "succeeded"
        store_id = store.id
    # A new key first, the old one kept: rotate.
    second, second_db = make_app(
        database_url, sandbox.url, AMAZON_ORDERS_ENCRYPTION_KEYS=[new, old]
    )
    with second.app_context():
        second_db.session.execute(
            sa.update(AmazonOrder)
            .where(AmazonOrder.amazon_order_id == ids[2])
            .values(buyer_data_encrypted="v2.00000000.broken")
        )
        second_db.session.commit()
        result = second.test_cli_runner().invoke(args=["amazon-orders", "rotate-keys"])
        assert result.exit_code == 1, result.output
        assert "Re-encrypted 1 refresh tokens and 2 buyer data" in result.output
        assert "amazon_orders id" in result.output and "could not be decrypted" in result.output
        broken = second_db.session.scalar(
            sa.select(AmazonOrder.buyer_data_encrypted).filter_by(amazon_order_id=ids[2])
        )
        assert broken == "v2.00000000.broken"  # left as it was, never deleted
        again = second.test_cli_runner().invoke(args=["amazon-orders", "rotate-keys"])
        assert "Re-encrypted 0 refresh tokens and 0 buyer data" in again.output
        assert "3 were current already" in again.output
        second_db.session.remove()
        second_db.engine.dispose()
    # Only the new key: everything rotated is readable, and the store still syncs.
    third, third_db = make_app(database_url, sandbox.url, AMAZON_ORDERS_ENCRYPTION_KEYS=[new])
    with third.app_context():
        ext = get_extension()
        for amazon_order_id, n in zip(ids[:2], range(2), strict=True):
            order = third_db.session.scalar(
                sa.select(AmazonOrder).filter_by(amazon_order_id=amazon_order_id)
            )
            assert ext.buyer_data(order)["buyer"]["buyerName"] == f"Buyer {n}"
        _order(sandbox, seller)
        assert sync_store(store_id).status == "succeeded"
        third_db.session.remove()
        third_db.engine.dispose()


# -- the purge job ---------------------------------------------------------------------


@pytest.fixture
def closed(app, db, sandbox, seller) -> dict[str, Any]:
    """A store with a shipped, a cancelled and an unshipped order, synced."""
    ids = {
        "shipped": _order(sandbox, seller, status="SHIPPED", ago=2 * 86400, buyer_name="Sam Ship"),
        "cancelled": _order(
            sandbox, seller, status="CANCELLED", ago=86400, cancel_reason="NO_INVENTORY"
        ),
        "unshipped": _order(sandbox, seller, ago=3600, buyer_name="Una Open"),
    }
    store = connect_store(seller)
    assert sync_store(store).status == "succeeded"
    ids["store_id"] = store.id
    return ids


def test_purge_deletes_buyer_data_only_after_the_retention_period(app, db, closed):
    shipped = _stored(db, closed["shipped"])
    assert shipped.buyer_data_encrypted and shipped.closed_at == shipped.amazon_updated_at
    assert _stored(db, closed["unshipped"]).closed_at is None
    # One day before the period ends nothing goes; one day after, the closed orders' data does.
    assert purge.purge_store(closed["store_id"], now=shipped.closed_at + 29 * DAY).purged == 0
    run = purge.purge_store(closed["store_id"], now=_now() + 31 * DAY)
    assert run.purged == 2
    for key in ("shipped", "cancelled"):
        order = _stored(db, closed[key])
        assert order.buyer_data_encrypted is None
        assert order.buyer_data_purged_at is not None
        assert get_extension().buyer_data(order) is None
    open_order = _stored(db, closed["unshipped"])
    assert get_extension().buyer_data(open_order)["buyer"]["buyerName"] == "Una Open"
    # It is recorded on each order's timeline and in the store's activity log.
    kinds = db.session.scalars(
        sa.select(OrderEvent.kind).where(OrderEvent.kind == "buyer_data_purged")
    ).all()
    assert len(kinds) == 2
    logged = db.session.scalars(
        sa.select(StoreEvent.message).where(StoreEvent.kind == "buyer_data_purged")
    ).all()
    assert logged == ["Buyer data of 2 orders deleted (retention period 30 days)."]
    # A second run finds nothing more to do.
    assert purge.purge_store(closed["store_id"], now=_now() + 31 * DAY).purged == 0


def test_a_purged_order_never_gets_its_buyer_data_back(app, db, sandbox, seller, closed):
    purge.purge_store(closed["store_id"], now=_now() + 31 * DAY)
    # The sync's overlap brings the same copies again, with the buyer data.
    store = db.session.get(Store, closed["store_id"])
    store.sync_cursor = _now() - 3 * DAY
    db.session.commit()
    run = sync_store(closed["store_id"])
    assert run.status == "succeeded" and run.orders_updated == 0
    assert _stored(db, closed["shipped"]).buyer_data_encrypted is None


def test_retention_counts_from_when_the_order_closed(app, db, sandbox, seller):
    order_id = _order(sandbox, seller, ago=60)
    store = connect_store(seller)
    sync_store(store)
    assert _stored(db, order_id).closed_at is None
    sandbox.control.set_status(order_id, "SHIPPED")
    sync_store(store)
    order = _stored(db, order_id)
    assert order.status == "Shipped" and order.closed_at is not None
    assert purge.purge_store(store.id, now=order.closed_at + 29 * DAY).purged == 0
    assert purge.purge_store(store.id, now=order.closed_at + 30 * DAY).purged == 1


def test_an_order_that_reopens_starts_its_period_again():
    order = AmazonOrder(status="Shipped")
    assert order.closed_at is not None
    order.status = "Unshipped"
    assert order.closed_at is None
    order.status = "Canceled"
    first = order.closed_at
    order.status = "Canceled"
    assert order.closed_at == first


def test_purge_works_in_batches_and_records_one_entry(app, db, sandbox, seller, monkeypatch):
    monkeypatch.setattr(purge, "BATCH_SIZE", 2)
    for n in range(5):
        _order(sandbox, seller, status="SHIPPED", ago=86400 + n)
    store = connect_store(seller)
    sync_store(store)
    run = purge.purge_store(store.id, now=_now() + 40 * DAY)
    assert run.purged == 5
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AmazonOrder)
            .where(AmazonOrder.buyer_data_encrypted.is_not(None))
        )
        == 0
    )
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(StoreEvent)
            .where(StoreEvent.kind == "buyer_data_purged")
        )
        == 1
    )


def test_the_worker_and_the_cli_purge(app_factory, sandbox, seller):
    app = app_factory(AMAZON_ORDERS_BUYER_DATA_RETENTION_DAYS=0)
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        shipped = _order(sandbox, seller, status="SHIPPED", ago=600)
        store = connect_store(seller)
        EmbeddedWorker(app, interval=60).run_once()
        assert _stored(db, shipped).buyer_data_purged_at is not None
        second = _order(sandbox, seller, status="CANCELLED", ago=300, cancel_reason="NO_INVENTORY")
        sync_store(store)
        assert _stored(db, second).buyer_data_encrypted is not None
    result = app.test_cli_runner().invoke(args=["amazon-orders", "purge"])
    assert result.exit_code == 0, result.output
    assert "Buyer data of 1 orders deleted (closed more than 0 days ago" in result.output


def test_the_order_page_says_the_buyer_data_was_deleted(app, db, closed):
    purge.purge_store(closed["store_id"], now=_now() + 31 * DAY)
    _grant(app)
    page = app.test_client().get(f"{PREFIX}/stores/{closed['store_id']}/orders/{closed['shipped']}")
    text = " ".join(page.data.decode().split())
    assert "Buyer data deleted" in text and "retention period" in text
    assert "Sam Ship" not in text


def test_buyer_data_needs_the_view_permission(app, closed):
    url = f"{PREFIX}/stores/{closed['store_id']}/orders/{closed['unshipped']}"
    assert app.test_client().get(url).status_code == 403  # no access handler: closed
    get_extension(app).access_handler(lambda permission, store: False)
    page = app.test_client().get(url)
    assert page.status_code == 403 and b"Una Open" not in page.data
    _grant(app, manage=False)
    assert b"Una Open" in app.test_client().get(url).data


# -- re-authorization ------------------------------------------------------------------


def test_a_revoked_store_is_authorized_again_from_the_settings_page(app, db, sandbox, seller):
    _order(sandbox, seller)
    store = connect_store(seller)
    sandbox.control.revoke_seller(seller["seller_id"])
    assert sync_store(store).status == "failed"
    _grant(app)
    client = app.test_client()
    dashboard = client.get(f"{PREFIX}/stores/{store.id}").data.decode()
    assert "authorize the app again in Seller Central" in dashboard
    assert "Settings → Authorization" in dashboard
    settings_url = f"{PREFIX}/stores/{store.id}/settings"
    url = f"{PREFIX}/stores/{store.id}/authorization"
    token = _csrf(client, settings_url)
    before = db.session.get(Store, store.id).refresh_token_encrypted
    # Bad input changes nothing and never echoes what was typed.
    for bad in ("", "two words", "x" * 3000):
        answer = client.post(url, data={"csrf_token": token, "refresh_token": bad})
        assert answer.status_code == 302 and answer.location.endswith("#authorization")
        page = client.get(settings_url).data.decode()
        assert "Nothing was changed" in page
        if bad:
            assert bad not in page
    assert client.post(url, data={"refresh_token": "Atzr|x"}).status_code == 400  # no CSRF
    db.session.expire_all()
    assert db.session.get(Store, store.id).refresh_token_encrypted == before
    # The seller authorizes again; the admin enters the new token.
    fresh = sandbox.control.reauthorize_seller(seller["seller_id"])["refresh_token"]
    answer = client.post(url, data={"csrf_token": token, "refresh_token": fresh})
    assert answer.status_code == 302
    db.session.expire_all()
    loaded = db.session.get(Store, store.id)
    assert loaded.last_sync_error is None and loaded.sync_requested_at is not None
    assert fresh not in client.get(settings_url).data.decode()
    assert sync_store(store.id).status == "succeeded"
    assert (
        db.session.scalar(
            sa.select(StoreEvent.actor).where(StoreEvent.kind == "refresh_token_updated")
        )
        == "admin:ann@example.com"
    )


def test_only_managers_update_the_authorization(app, db, seller):
    store = connect_store(seller)
    url = f"{PREFIX}/stores/{store.id}/authorization"
    assert app.test_client().post(url, data={"refresh_token": "Atzr|x"}).status_code == 403
    _grant(app, manage=False)
    assert app.test_client().post(url, data={"refresh_token": "Atzr|x"}).status_code == 403


def test_the_cli_sets_a_new_refresh_token(app, db, sandbox, seller):
    store = connect_store(seller)
    sandbox.control.revoke_seller(seller["seller_id"])
    fresh = sandbox.control.reauthorize_seller(seller["seller_id"])["refresh_token"]
    result = app.test_cli_runner().invoke(
        args=["amazon-orders", "store", "token", str(store.id)], input=fresh + "\n"
    )
    assert result.exit_code == 0, result.output
    assert fresh not in result.output
    assert sync_store(store.id).status == "succeeded"


# -- secrets never leave in clear text -------------------------------------------------

CLIENT_SECRET = "sandbox-client-secret"


def test_secrets_and_buyer_data_never_appear_in_logs_errors_pages_or_listings(
    app, db, sandbox, seller, caplog
):
    caplog.set_level(logging.DEBUG)
    buyer = "Zelda Leakcheck"
    street = "Geheimweg 77"
    order_id = _order(sandbox, seller, buyer_name=buyer, address={"addressLine1": street})
    store = connect_store(seller)
    ext = get_extension()
    texts: list[str] = []
    assert sync_store(store).status == "succeeded"
    # Faults on the way: a token endpoint error, a server error, a revoked authorization.
    for kind, operation in (("500", "token"), ("503_html", "searchOrders")):
        ext.session.remove()
        sandbox.control.inject_fault(operation, kind, count=50)
        run = sync_store(store.id)
        texts.append(run.error or "")
        sandbox.control.clear_faults()
    sandbox.control.revoke_seller(seller["seller_id"])
    run = sync_store(store.id)
    assert run.status == "failed"
    texts.append(run.error or "")
    db.session.expire_all()
    loaded = db.session.get(Store, store.id)
    texts += [loaded.last_sync_error or "", repr(loaded), repr(_stored(db, order_id))]
    texts += [repr(ext.settings), repr(app.extensions["amazon_orders"]), repr(ext.encryptor)]
    client = ext.client_for(loaded)
    texts += [repr(client), str(vars(client))]
    for line in db.session.scalars(sa.select(SyncRun.error)).all():
        texts.append(line or "")
    runner = app.test_cli_runner()
    for args in (["store", "list"], ["sync"], ["store", "settings", str(store.id)]):
        texts.append(runner.invoke(args=["amazon-orders", *args]).output)
    _grant(app)
    web = app.test_client()
    for url in (
        "/",
        f"/stores/{store.id}",
        f"/stores/{store.id}/settings",
        f"/stores/{store.id}/orders",
    ):
        texts.append(web.get(PREFIX + url).data.decode())
    texts.append(caplog.text)
    everything = "\n".join(texts)
    assert "revoked" in everything  # the failures were seen and described
    for secret in (seller["refresh_token"], CLIENT_SECRET, buyer, street):
        assert secret not in everything, secret
    # ... while the secrets are stored, encrypted.
    assert (
        loaded.refresh_token_encrypted
        and seller["refresh_token"] not in loaded.refresh_token_encrypted
    )
