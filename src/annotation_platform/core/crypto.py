"""Field-level encryption at rest: AES-256-GCM under a key ring read from `ENCRYPTION_KEYS`.

A ciphertext is text, `enc:v1:<key id>:<base64url(nonce || ciphertext || tag)>`, so it fits the columns that
held the plaintext and says which key made it: a new key can go first in the ring while the old ones still
decrypt, and `needs_rotation()` finds what to re-encrypt. The optional `context` is authenticated but not
stored (AES-GCM associated data): a ciphertext copied into another column or row that uses a different context
does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyRingError(ValueError):
    """`ENCRYPTION_KEYS` cannot be used; the message says what is wrong (never the key itself)."""


class DecryptionError(RuntimeError):
    """A stored value does not decrypt: unknown key id, a wrong context, or the value was tampered with."""


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_key_entry(key_id: str | None = None) -> str:
    """A fresh `id:key` entry for `ENCRYPTION_KEYS` (32 random bytes, base64url)."""
    identifier = key_id or f"k{secrets.token_hex(4)}"
    if not KEY_ID.match(identifier):
        raise KeyRingError(f"A key id is 1 to 32 letters, digits, '_' or '-'; got {identifier!r}.")
    return f"{identifier}:{_b64encode(os.urandom(KEY_BYTES))}"


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; the first one encrypts, every one decrypts."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("ENCRYPTION_KEYS holds no key.")
        ids = [key_id for key_id, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise KeyRingError("ENCRYPTION_KEYS repeats a key id.")

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """`id1:base64key,id2:base64key` (the first is the current key). Raises KeyRingError."""
        entries: list[tuple[str, bytes]] = []
        for position, entry in enumerate((part.strip() for part in text.split(",")), start=1):
            if not entry:
                continue
            key_id, separator, encoded = entry.partition(":")
            if not separator or not KEY_ID.match(key_id):
                raise KeyRingError(
                    f"ENCRYPTION_KEYS entry {position} is not `id:key` with an id of letters, digits, '_' or '-'; "
                    "make one with `annotation-platform keys generate`."
                )
            try:
                key = _b64decode(encoded.strip())
            except (binascii.Error, ValueError):
                raise KeyRingError(f"ENCRYPTION_KEYS entry {position} ({key_id}): the key is not base64.") from None
            if len(key) != KEY_BYTES:
                raise KeyRingError(
                    f"ENCRYPTION_KEYS entry {position} ({key_id}): the key is {len(key)} bytes, not {KEY_BYTES}; "
                    "make one with `annotation-platform keys generate`."
                )
            entries.append((key_id, key))
        return cls(tuple(entries))

    @property
    def current_key_id(self) -> str:
        return self.keys[0][0]

    @property
    def key_ids(self) -> Sequence[str]:
        return [key_id for key_id, _ in self.keys]

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> str:
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext, context or None)
        return f"{PREFIX}{key_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, context: bytes = b"") -> bytes:
        key_id, payload = self._split(token)
        key = dict(self.keys).get(key_id)
        if key is None:
            raise DecryptionError(f"A value was encrypted with key {key_id!r}, which ENCRYPTION_KEYS no longer holds.")
        try:
            raw = _b64decode(payload)
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context or None)
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError(f"A value encrypted with key {key_id!r} does not decrypt.") from None

    def encrypt_text(self, plaintext: str, *, context: bytes = b"") -> str:
        return self.encrypt(plaintext.encode("utf-8"), context=context)

    def decrypt_text(self, token: str, *, context: bytes = b"") -> str:
        return self.decrypt(token, context=context).decode("utf-8")

    def needs_rotation(self, token: str) -> bool:
        """True when the value was made by a key other than the current one."""
        return self.key_id_of(token) != self.current_key_id

    def holds_key_of(self, token: str) -> bool:
        """True when the ring has the key that made the value (whether or not it decrypts)."""
        return self.key_id_of(token) in dict(self.keys)

    @classmethod
    def key_id_of(cls, token: str) -> str:
        return cls._split(token)[0]

    @staticmethod
    def is_ciphertext(value: str) -> bool:
        return value.startswith(PREFIX)

    @staticmethod
    def _split(token: str) -> tuple[str, str]:
        if not token.startswith(PREFIX):
            raise DecryptionError("The value is not encrypted.")
        key_id, separator, payload = token[len(PREFIX) :].partition(":")
        if not separator:
            raise DecryptionError("The encrypted value is malformed.")
        return key_id, payload
