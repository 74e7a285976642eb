"""Connecting to Temporal with the project's converter, and the search attributes we register."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.settings import Settings
from ratio_zoom.contract.search_attributes import SEARCH_ATTRIBUTE_FLAGS, SEARCH_ATTRIBUTE_KEYS

SEARCH_ATTRIBUTES = SEARCH_ATTRIBUTE_KEYS


async def connect_client(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                data_converter=data_converter(settings), runtime=runtime)


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
