"""AES-256-GCM with a key ring: the one primitive behind the token vault and the Temporal payload codec.

Format of a ring: `kid:base64key[,kid:base64key...]`; the first key encrypts, any key decrypts, so keys
rotate without downtime. Every ciphertext carries its key ID, a fresh 96-bit random nonce, and is bound
to *associated data* chosen by the caller (for tokens: workspace ID + column), so a ciphertext copied to
another row or column fails to decrypt instead of silently yielding another row's secret.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
NONCE_BYTES = 12


class KeyRingError(ValueError):
    """The key ring text is malformed (bad kid, not base64, wrong key length, duplicates)."""


class DecryptionError(Exception):
    """A ciphertext could not be opened: unknown key ID, tampered bytes or wrong associated data."""


class UnknownKeyError(DecryptionError):
    """The ciphertext names a key ID that is not in the ring (was it removed too early?)."""


class TamperedCiphertextError(DecryptionError):
    """Authentication failed: the bytes, the key or the associated data (row/field binding) differ."""


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, bytes] = field(repr=False)
    active_kid: str

    def __repr__(self) -> str:  # keys are secrets: show only their IDs
        return f"KeyRing(active={self.active_kid!r}, kids={list(self.keys)!r})"

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for index, item in enumerate(part.strip() for part in text.split(",")):
            if not item:
                raise KeyRingError(f"entry {index + 1} is empty")
            kid, sep, b64 = item.partition(":")
            if not sep or not _KID.match(kid):
                raise KeyRingError(f"entry {index + 1} must look like kid:base64key (kid: letters, digits, _.-)")
            try:
                key = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"key {kid!r} is not valid base64") from None
            if len(key) != 32:
                raise KeyRingError(f"key {kid!r} is {len(key)} bytes; AES-256 needs exactly 32")
            if kid in keys:
                raise KeyRingError(f"key ID {kid!r} appears twice")
            keys[kid] = key
            order.append(kid)
        return cls(keys=keys, active_kid=order[0])

    @staticmethod
    def generate_entry(kid: str) -> str:
        return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> tuple[str, bytes]:
        """Return (key ID, nonce || ciphertext+tag) under the active key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active_kid]).encrypt(nonce, plaintext, associated_data)
        return self.active_kid, nonce + sealed

    def decrypt(self, kid: str, blob: bytes, associated_data: bytes) -> bytes:
        key = self.keys.get(kid)
        if key is None:
            raise UnknownKeyError(f"key ID {kid!r} is not in the key ring")
        if len(blob) < NONCE_BYTES + 16:
            raise TamperedCiphertextError("ciphertext is too short")
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise TamperedCiphertextError(
                "ciphertext failed authentication (tampered, wrong key, or bound to another row/field)"
            ) from None
