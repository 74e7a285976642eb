"""The token vault: AES-256-GCM, key ring rotation, row/column binding, typed errors."""

from __future__ import annotations

import base64

import pytest

from ratio_zoom.core.keyring import KeyRing, KeyRingError, TamperedCiphertextError, UnknownKeyError
from ratio_zoom.storage.vault import MalformedCiphertextError, Vault

K1 = "k1:" + base64.b64encode(b"\x11" * 32).decode()
K2 = "k2:" + base64.b64encode(b"\x22" * 32).decode()


def vault(text: str) -> Vault:
    return Vault(KeyRing.parse(text))


def test_round_trip_with_fresh_nonce_each_time() -> None:
    v = vault(K1)
    a = v.encrypt("secret-token", table="t", row_key="w1", column="c")
    b = v.encrypt("secret-token", table="t", row_key="w1", column="c")
    assert a != b  # a fresh 96-bit nonce per encryption
    assert "secret-token" not in a
    assert v.decrypt(a, table="t", row_key="w1", column="c") == "secret-token"
    assert a.startswith("v1:k1:")


def test_ciphertext_copied_to_another_row_or_column_fails() -> None:
    v = vault(K1)
    stored = v.encrypt("tok", table="zoom_connections", row_key="w1", column="access_token_enc")
    with pytest.raises(TamperedCiphertextError):
        v.decrypt(stored, table="zoom_connections", row_key="w2", column="access_token_enc")
    with pytest.raises(TamperedCiphertextError):
        v.decrypt(stored, table="zoom_connections", row_key="w1", column="refresh_token_enc")


def test_tampering_is_detected() -> None:
    v = vault(K1)
    stored = v.encrypt("tok", table="t", row_key="r", column="c")
    prefix, kid, b64 = stored.split(":")
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    with pytest.raises(TamperedCiphertextError):
        v.decrypt(f"{prefix}:{kid}:{base64.b64encode(bytes(raw)).decode()}", table="t", row_key="r", column="c")
    with pytest.raises(MalformedCiphertextError):
        v.decrypt("plaintext-token", table="t", row_key="r", column="c")


def test_rotation_encrypts_with_first_key_and_decrypts_with_any() -> None:
    old = vault(K1).encrypt("tok", table="t", row_key="r", column="c")
    rotated = vault(f"{K2},{K1}")
    assert rotated.decrypt(old, table="t", row_key="r", column="c") == "tok"
    assert rotated.needs_rotation(old)
    new = rotated.encrypt("tok", table="t", row_key="r", column="c")
    assert new.startswith("v1:k2:") and not rotated.needs_rotation(new)


def test_unknown_key_id_is_a_typed_error() -> None:
    stored = vault(K2).encrypt("tok", table="t", row_key="r", column="c")
    with pytest.raises(UnknownKeyError, match="k2"):
        vault(K1).decrypt(stored, table="t", row_key="r", column="c")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1:" + base64.b64encode(b"short").decode(), "needs exactly 32"),
        ("k1:not-base64!!", "not valid base64"),
        ("nokid", "kid:base64key"),
        (f"{K1},{K1}", "appears twice"),
        ("", "empty"),
    ],
)
def test_malformed_key_rings_are_refused(text: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message):
        KeyRing.parse(text)


def test_key_material_never_in_repr() -> None:
    ring = KeyRing.parse(K1)
    assert base64.b64encode(b"\x11" * 32).decode() not in repr(ring)
    assert "\\x11" not in repr(ring) and "\\x11" not in repr(Vault(ring))


def test_lookup_hashes_are_keyed_and_cover_the_whole_ring() -> None:
    v = vault(f"{K2},{K1}")
    assert v.lookup_hash("zoom-user", "p") == v.lookup_hashes("zoom-user", "p")[0]
    assert vault(K1).lookup_hash("zoom-user", "p") in v.lookup_hashes("zoom-user", "p")
    assert v.lookup_hash("zoom-user", "p") != v.lookup_hash("zoom-user", "other-purpose")
