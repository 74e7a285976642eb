"""`EncryptionCodec`: every Temporal payload (inputs, signals, queries, results, failures' encoded attributes)
leaves the process encrypted with AES-256-GCM under the active key of `PAYLOAD_ENCRYPTION_KEYS`.

Attendee names, emails and join URLs therefore never sit in clear in a history; the Temporal UI shows them
only through the codec server (`ratio_zoom/codec/server.py`), which holds the keys. Search attributes are
not payloads and stay in clear: they carry no personal data by design.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from ratio_zoom.core.keyring import KeyRing

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# Fixed associated data: binds ciphertexts to this use (a payload ciphertext cannot pass for a vault
# ciphertext or vice versa even if the same key were configured for both).
AAD = b"ratio-zoom/temporal-payload/v1"


class PayloadDecryptionError(ValueError):
    """A payload names an unknown key ID or failed authentication."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            kid, blob = self._ring.encrypt(payload.SerializeToString(), AAD)
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=blob))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)  # not ours (e.g. written before encryption was turned on)
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            try:
                plain = self._ring.decrypt(kid, payload.data, AAD)
            except Exception as exc:  # noqa: BLE001 - re-raised as one typed error with the reason
                raise PayloadDecryptionError(f"cannot decrypt payload with key {kid!r}: {exc}") from None
            out.append(Payload.FromString(plain))
        return out
