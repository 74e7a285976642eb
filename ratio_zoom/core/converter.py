"""The project's Temporal data converter: pydantic JSON, plus AES-256-GCM payload encryption when
`PAYLOAD_ENCRYPTION_KEYS` is set. Worker, starter client, tests and replay all build it here."""

from __future__ import annotations

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from ratio_zoom.core.settings import Settings


def data_converter(settings: Settings | None = None) -> DataConverter:
    ring = settings.payload_keyring() if settings is not None else None
    if ring is None:
        return pydantic_data_converter
    from ratio_zoom.core.payload_codec import EncryptionCodec
    from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
