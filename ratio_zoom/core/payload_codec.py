"""`EncryptionCodec`: every Temporal payload (inputs, signals, queries, results, failures' encoded attributes)
leaves the process encrypted with AES-256-GCM under the active key of `PAYLOAD_ENCRYPTION_KEYS`.

Attendee names, emails and join URLs therefore never sit in clear in a history; the Temporal UI shows them
only through the codec server (`ratio_zoom/codec/server.py`), which holds the keys. Search attributes are
not payloads and stay in clear: they carry no personal data by design.

While encryption is on, a payload that arrives *unencrypted* is refused: anyone with access to the Temporal
frontend could otherwise signal a workflow with plaintext (forged) input. What Temporal itself must pass
through never reaches this codec: the SDK skips search attributes and headers (no header codec is
configured), and failures made by the server or the SDK core (timeouts, terminations, cancellations) carry
no encoded attributes. Every payload that legitimately reaches `decode` was therefore written by a client
holding the keys. The one exception is a history written *before* encryption was turned on: its plaintext
inputs are refused too, so turn encryption on before the first workflow starts (or let those finish first).

One payload is written by the Temporal *server* itself and so is never encrypted: when a workflow cancels an
activity that has not started yet (it waits for a retry), the server records the cancellation with the
details `"ACTIVITY_ID_NOT_STARTED"` (`json/plain`). It is let through as is: a fixed string carries nothing
(as a forged signal it would be a wrong-typed message, rejected in `state`), and refusing it would fail
every workflow that cancels such an activity (the lanes do, whenever newer work supersedes a retrying step).

Refusing must not raise inside the worker: a decode error fails the whole workflow activation, and the
workflow task would then retry forever (a plaintext signal would wedge the appointment). So a refused payload
is replaced by an empty one marked `binary/plaintext-refused`, which no converter accepts: the SDK drops
such a signal (with a log line), rejects such an update or query, and the value never reaches our code.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from ratio_zoom.core.keyring import KeyRing

ENCODING = b"binary/encrypted"
REFUSED_ENCODING = b"binary/plaintext-refused"
KEY_ID = "encryption-key-id"
# Fixed associated data: binds ciphertexts to this use (a payload ciphertext cannot pass for a vault
# ciphertext or vice versa even if the same key were configured for both).
AAD = b"ratio-zoom/temporal-payload/v1"


class PayloadDecryptionError(ValueError):
    """A payload names an unknown key ID or failed authentication."""


# Plaintext payloads the Temporal server writes on its own (see the module docstring), by (encoding, data).
SERVER_WRITTEN = frozenset({(b"json/plain", b'"ACTIVITY_ID_NOT_STARTED"')})


def refused_plaintext() -> Payload:
    """What an unencrypted payload decodes to: no data (its content is never read), a marker encoding."""
    return Payload(metadata={"encoding": REFUSED_ENCODING})


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
            encoding = payload.metadata.get("encoding")
            if encoding != ENCODING:
                if (encoding, payload.data) in SERVER_WRITTEN:
                    out.append(payload)  # written by the Temporal server, not by a client: nothing to refuse
                else:
                    out.append(refused_plaintext())  # see the module docstring: refused, never raised
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            try:
                plain = self._ring.decrypt(kid, payload.data, AAD)
            except Exception as exc:  # noqa: BLE001 - re-raised as one typed error with the reason
                raise PayloadDecryptionError(f"cannot decrypt payload with key {kid!r}: {exc}") from None
            out.append(Payload.FromString(plain))
        return out
