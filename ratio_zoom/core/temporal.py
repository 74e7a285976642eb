"""Connecting to Temporal with the project's converter, and the search attributes we register.

`connect_client` is the one place a Temporal client is built (worker, API, starter, CLI), so every one of
them reaches a secured cluster the same way: server CA, mTLS client certificate, API key, TLS server name.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.settings import ConfigurationError, Settings
from ratio_zoom.contract.search_attributes import SEARCH_ATTRIBUTE_FLAGS, SEARCH_ATTRIBUTE_KEYS

SEARCH_ATTRIBUTES = SEARCH_ATTRIBUTE_KEYS


async def connect_client(settings: Settings, runtime: Runtime | None = None) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() or None
    # The SDK sends the API key as `authorization: Bearer <key>` metadata on every call.
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                data_converter=data_converter(settings), runtime=runtime,
                                tls=temporal_tls(settings), api_key=api_key)


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """The TLS configuration from the settings, or False for plain text (the dev server, a private network).

    Files are read here, at start-up, so a wrong path stops the process with one line naming the variable
    instead of failing inside the first RPC."""
    if not settings.temporal_tls_enabled:
        return False
    cert = _read("TEMPORAL_TLS_CLIENT_CERT_PATH", settings.temporal_tls_client_cert_path)
    key = _read("TEMPORAL_TLS_CLIENT_KEY_PATH", settings.temporal_tls_client_key_path)
    if (cert is None) != (key is None):
        missing = "TEMPORAL_TLS_CLIENT_KEY_PATH" if key is None else "TEMPORAL_TLS_CLIENT_CERT_PATH"
        raise ConfigurationError(f"{missing} is required: an mTLS client certificate needs both its cert and key")
    return TLSConfig(server_root_ca_cert=_read("TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                                               settings.temporal_tls_server_ca_cert_path),
                     domain=settings.temporal_tls_server_name or None, client_cert=cert, client_private_key=key)


def _read(name: str, path: str) -> bytes | None:
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{name} cannot be read: {exc.strerror or type(exc).__name__} ({path})") from None
    if b"-----BEGIN " not in data:
        raise ConfigurationError(f"{name} is not a PEM file ({path})")
    return data


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register our typed search attributes (idempotent: already-registered ones are fine)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    kinds = {"Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
             "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
    for flag in SEARCH_ATTRIBUTE_FLAGS:
        name, _, kind = flag.partition("=")
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes={name: kinds[kind]}))
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
