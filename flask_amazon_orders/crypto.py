"""Encryption at rest for refresh tokens and buyer data.

Values are encrypted with Fernet (AES-128-CBC with HMAC-SHA256 and a fresh
random IV per value) from the ``cryptography`` package. Keys come from
``AMAZON_ORDERS_ENCRYPTION_KEYS``: the first key encrypts, every key decrypts,
so a new key can be put first while values written under an old one stay
readable. A key may be a Fernet key or any passphrase (a passphrase is stretched
with HKDF-SHA256). Without configured keys, one key is derived from the app's
``SECRET_KEY``; changing ``SECRET_KEY`` then makes stored values unreadable,
which is why production set-ups should configure their own keys.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigurationError

_INFO = b"flask-amazon-orders encryption key v1"


def _fernet_key(material: str) -> bytes:
    raw = material.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)
    return base64.urlsafe_b64encode(derived)


class Encryptor:
    """Encrypts and decrypts text values with a list of keys (first one current)."""

    def __init__(self, keys: tuple[str, ...] | list[str]) -> None:
        if not keys:
            raise ConfigurationError(
                "No encryption key: set AMAZON_ORDERS_ENCRYPTION_KEYS (or the app's SECRET_KEY)."
            )
        self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in keys])

    def __repr__(self) -> str:
        return "<Encryptor>"

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError):
            raise ConfigurationError(
                "A stored secret cannot be decrypted with the configured "
                "AMAZON_ORDERS_ENCRYPTION_KEYS (was a key removed or SECRET_KEY changed?)."
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the current (first) key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise ConfigurationError(
                "A stored secret cannot be decrypted with the configured keys."
            ) from None

    @staticmethod
    def generate_key() -> str:
        """A new random key, suitable for ``AMAZON_ORDERS_ENCRYPTION_KEYS``."""
        return Fernet.generate_key().decode("ascii")
