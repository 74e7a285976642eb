"""The token vault: field-level AES-256-GCM for secrets stored in the database.

Stored text format: `v1:{kid}:{base64(nonce || ciphertext || tag)}` - the key ID sits beside the ciphertext
so any key of the ring can decrypt while the first one encrypts. The associated data binds each
ciphertext to its row and column (`{table}:{row key}:{column}`), so copying it elsewhere breaks it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from ratio_zoom.core.keyring import DecryptionError, KeyRing, TamperedCiphertextError

_PREFIX = "v1"


class MalformedCiphertextError(DecryptionError):
    """The stored text is not a vault ciphertext at all."""


def _aad(table: str, row_key: str, column: str) -> bytes:
    return f"{table}:{row_key}:{column}".encode()


class Vault:
    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def __repr__(self) -> str:
        return f"Vault({self._ring!r})"

    @property
    def active_kid(self) -> str:
        return self._ring.active_kid

    def encrypt(self, plaintext: str, *, table: str, row_key: str, column: str) -> str:
        kid, blob = self._ring.encrypt(plaintext.encode(), _aad(table, row_key, column))
        return f"{_PREFIX}:{kid}:{base64.b64encode(blob).decode()}"

    def decrypt(self, stored: str, *, table: str, row_key: str, column: str) -> str:
        kid, blob = self._split(stored)
        return self._ring.decrypt(kid, blob, _aad(table, row_key, column)).decode()

    def key_id_of(self, stored: str) -> str:
        return self._split(stored)[0]

    def needs_rotation(self, stored: str) -> bool:
        return self.key_id_of(stored) != self._ring.active_kid

    @staticmethod
    def _split(stored: str) -> tuple[str, bytes]:
        version, sep1, rest = stored.partition(":")
        kid, sep2, b64 = rest.partition(":")
        if version != _PREFIX or not sep1 or not sep2 or not kid:
            raise MalformedCiphertextError("stored value is not a v1 vault ciphertext")
        try:
            return kid, base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise TamperedCiphertextError("vault ciphertext is not valid base64") from None

    # -- searchable keyed hashes ----------------------------------------------------------------------

    def lookup_hash(self, value: str, purpose: str) -> str:
        """HMAC-SHA256 under the active key, for equality look-ups of encrypted values."""
        return self._hash(self._ring.keys[self._ring.active_kid], value, purpose)

    def lookup_hashes(self, value: str, purpose: str) -> list[str]:
        """The hash under every key of the ring: rows not yet re-keyed by `keys rotate` still match."""
        return [self._hash(key, value, purpose) for key in self._ring.keys.values()]

    @staticmethod
    def _hash(key: bytes, value: str, purpose: str) -> str:
        # A distinct derived key per purpose: the encryption key itself is never used as an HMAC key.
        derived = hmac.new(key, f"ratio-zoom lookup {purpose}".encode(), hashlib.sha256).digest()
        return hmac.new(derived, value.encode(), hashlib.sha256).hexdigest()
