"""Key rotation: re-encrypt every stored secret under the current key.

Put a new key first in ``AMAZON_ORDERS_ENCRYPTION_KEYS`` (keep the old ones),
run :func:`rotate_keys` (``flask amazon-orders rotate-keys``), then remove the
old keys: every refresh token and every order's buyer data is then encrypted
under the new key. Values are read and written in batches, each committed, so
a rotation can be interrupted and run again; a value that no configured key
decrypts is left as it is and counted, never deleted.
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa

from ..crypto import buyer_data_context, refresh_token_context
from ..errors import ConfigurationError
from ..extension import get_extension
from ..models import AmazonOrder, Store, metadata

log = logging.getLogger("flask_amazon_orders.keys")

BATCH_SIZE = 500


@dataclasses.dataclass
class Rotation:
    """What :func:`rotate_keys` did."""

    #: The id of the key everything is now encrypted under (a hash, never the key).
    key_id: str
    refresh_tokens: int = 0
    buyer_data: int = 0
    #: Values already under the current key.
    current: int = 0
    #: ``(table, id)`` of values no configured key decrypts (left unchanged).
    unreadable: list[tuple[str, int]] = dataclasses.field(default_factory=list)


def rotate_keys() -> Rotation:
    """Re-encrypt refresh tokens and buyer data under the first configured key."""
    ext = get_extension()
    session = ext.session
    encryptor = ext.encryptor
    result = Rotation(key_id=encryptor.current_key_id)
    for store in session.scalars(
        sa.select(Store).where(Store.refresh_token_encrypted.is_not(None))
    ):
        assert store.refresh_token_encrypted is not None
        if encryptor.is_current(store.refresh_token_encrypted):
            result.current += 1
            continue
        context = refresh_token_context(store.seller_id, store.marketplace_id)
        try:
            store.refresh_token_encrypted = encryptor.rotate(
                store.refresh_token_encrypted, context=context
            )
        except ConfigurationError:
            result.unreadable.append(("amazon_stores", store.id))
            continue
        result.refresh_tokens += 1
    session.commit()
    orders = metadata.tables[AmazonOrder.__tablename__]
    last_id = 0
    while True:
        rows = session.execute(
            sa.select(
                orders.c.id,
                orders.c.store_id,
                orders.c.amazon_order_id,
                orders.c.buyer_data_encrypted,
            )
            .where(orders.c.id > last_id, orders.c.buyer_data_encrypted.is_not(None))
            .order_by(orders.c.id)
            .limit(BATCH_SIZE)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        for row in rows:
            if encryptor.is_current(row.buyer_data_encrypted):
                result.current += 1
                continue
            context = buyer_data_context(row.store_id, row.amazon_order_id)
            try:
                rotated = encryptor.rotate(row.buyer_data_encrypted, context=context)
            except ConfigurationError:
                result.unreadable.append(("amazon_orders", row.id))
                continue
            # Compare-and-set: a sync that wrote a fresh copy meanwhile wins.
            session.execute(
                sa.update(orders)
                .where(
                    orders.c.id == row.id,
                    orders.c.buyer_data_encrypted == row.buyer_data_encrypted,
                )
                .values(buyer_data_encrypted=rotated)
            )
            result.buyer_data += 1
        session.commit()
    log.info(
        "keys rotated to %s: %d refresh tokens, %d buyer data, %d unreadable",
        result.key_id,
        result.refresh_tokens,
        result.buyer_data,
        len(result.unreadable),
    )
    return result
