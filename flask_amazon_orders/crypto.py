"""Encryption at rest for refresh tokens and buyer data.

Values are encrypted with AES-256-GCM from the ``cryptography`` package, with a
fresh random 96-bit nonce per value; the authentication tag makes any change to
a stored value detectable. Keys come from ``AMAZON_ORDERS_ENCRYPTION_KEYS``: the
first key encrypts, every key decrypts, so a new key can be put first while
values written under an old one stay readable (:meth:`Encryptor.rotate`
re-encrypts a value under the current key). A key may be 32 random bytes in
URL-safe base64 (``flask amazon-orders generate-key``) or any passphrase, from
which a key is derived with HKDF-SHA256 (which does not slow down guessing: use
generated keys, or long random passphrases). Without configured keys, one key is derived from
the app's ``SECRET_KEY``; changing ``SECRET_KEY`` then makes stored values
unreadable, which is why production set-ups should configure their own keys.

Every value is bound to where it belongs: the *context* (for example
``buyer_data/3/028-1234567-1234567`` for one order's buyer data) is the
authenticated associated data, so a value copied into another row (another
order's buyer data, another store's refresh token) fails to decrypt instead of
showing one buyer's address on another order. :func:`buyer_data_context` and
:func:`refresh_token_context` name the contexts the extension uses.

A stored value reads ``v2.<key id>.<base64 of nonce + ciphertext + tag>``; the
key id is a short hash of the key, never the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigurationError

_INFO = b"flask-amazon-orders encryption key v1"
_AAD = b"flask-amazon-orders/v2/"
_PREFIX = "v2"


def _key_bytes(material: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(material.encode())
        if len(raw) == 32:
            return raw
    except (binascii.Error, ValueError):
        pass
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        material.encode()
    )


class Encryptor:
    """Encrypts and decrypts text values with a list of keys (the first is current)."""

    def __init__(self, keys: tuple[str, ...] | list[str]) -> None:
        if not keys:
            raise ConfigurationError(
                "No encryption key: set AMAZON_ORDERS_ENCRYPTION_KEYS (or the app's SECRET_KEY)."
            )
        self._keys: list[tuple[str, AESGCM]] = []
        for material in keys:
            key = _key_bytes(material)
            key_id = hashlib.sha256(b"key-id" + key).hexdigest()[:8]
            self._keys.append((key_id, AESGCM(key)))

    def __repr__(self) -> str:
        return f"<Encryptor with {len(self._keys)} key(s)>"

    @property
    def current_key_id(self) -> str:
        """The id of the key that encrypts (the first one)."""
        return self._keys[0][0]

    def encrypt(self, value: str, *, context: str) -> str:
        """Encrypt ``value`` for ``context`` (where it is stored) under the current key."""
        key_id, cipher = self._keys[0]
        nonce = os.urandom(12)
        sealed = cipher.encrypt(nonce, value.encode(), _AAD + context.encode())
        return f"{_PREFIX}.{key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, token: str, *, context: str) -> str:
        """Decrypt a value stored for ``context``; any other context fails."""
        try:
            prefix, key_id, payload = token.split(".", 2)
            if prefix != _PREFIX:
                raise ValueError(prefix)
            blob = base64.urlsafe_b64decode(payload.encode("ascii"))
        except (ValueError, binascii.Error, UnicodeError):
            raise ConfigurationError(
                "A stored secret is not in a format this version reads."
            ) from None
        candidates = [c for kid, c in self._keys if kid == key_id] or [c for _, c in self._keys]
        for cipher in candidates:
            try:
                return cipher.decrypt(blob[:12], blob[12:], _AAD + context.encode()).decode()
            except (InvalidTag, ValueError):
                continue
        raise ConfigurationError(
            "A stored secret cannot be decrypted with the configured "
            "AMAZON_ORDERS_ENCRYPTION_KEYS (was a key removed or SECRET_KEY changed?)."
        )

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is encrypted under the current key (no rotation needed)."""
        return token.startswith(f"{_PREFIX}.{self.current_key_id}.")

    def rotate(self, token: str, *, context: str) -> str:
        """Re-encrypt ``token`` under the current (first) key."""
        return self.encrypt(self.decrypt(token, context=context), context=context)

    @staticmethod
    def generate_key() -> str:
        """A new random key, suitable for ``AMAZON_ORDERS_ENCRYPTION_KEYS``."""
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def buyer_data_context(store_id: int, amazon_order_id: str) -> str:
    """The context of one order's buyer data."""
    return f"buyer_data/{store_id}/{amazon_order_id}"


def refresh_token_context(seller_id: str, marketplace_id: str) -> str:
    """The context of one store's refresh token."""
    return f"refresh_token/{seller_id}/{marketplace_id}"
