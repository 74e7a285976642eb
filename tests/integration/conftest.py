"""Integration fixtures: the real Zoom emulator over HTTP, real PostgreSQL, a real Temporal dev server,
and the real worker (workflow + activities) on a task queue of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from connections.service import ConnectionService
from emulators.zoom_server.testing import running_zoom_emulator
from ratio_zoom.services import Services
from ratio_zoom.settings import Settings
from ratio_zoom.worker_app import build_worker
from starter import Appointments
from tests.conftest import make_settings


@pytest.fixture(scope="session")
async def zoom_emulator() -> AsyncIterator[object]:
    from emulators.zoom_server.app import EmulatorConfig

    config = EmulatorConfig(client_id="test-client-id", client_secret="test-client-secret",
                            webhook_secret_token="test-webhook-secret")
    async with running_zoom_emulator(config) as emu:
        yield emu


@dataclass
class Stack:
    settings: Settings
    services: Services
    connections: ConnectionService
    client: Client
    appointments: Appointments
    task_queue: str
    emulator: object

    async def connect_workspace(self, workspace_id: str, *, actor_role: str = "owner") -> str:
        """Drive the real OAuth flow: connect -> Zoom authorize (emulator auto-consents) -> callback."""
        url = await self.connections.start_connect(workspace_id, "u-admin", actor_role, "https://ratio.example/settings")
        async with httpx.AsyncClient(follow_redirects=False) as http:
            response = await http.get(url)
        assert response.status_code in (302, 303, 307), response.text
        callback = httpx.URL(response.headers["location"])
        return await self.connections.complete_connect(
            callback.params.get("code"), callback.params.get("state"), callback.params.get("error"))


@pytest.fixture
async def stack(temporal_env: WorkflowEnvironment, pg_database_url: str, zoom_emulator) -> AsyncIterator[Stack]:  # type: ignore[no-untyped-def]
    from connections.notify import temporal_notifier

    task_queue = f"zoom-meetings-{uuid.uuid4().hex[:8]}"
    settings = make_settings(pg_database_url, ZOOM_API_BASE_URL=zoom_emulator.api_base_url,
                             ZOOM_OAUTH_BASE_URL=zoom_emulator.oauth_base_url, TEMPORAL_TASK_QUEUE=task_queue)
    services = Services.create(settings)
    client = temporal_env.client
    connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom,
                                    notify=temporal_notifier(client))
    worker = build_worker(client, services, task_queue=task_queue)
    async with worker:
        yield Stack(settings=settings, services=services, connections=connections, client=client,
                    appointments=Appointments(client, task_queue=task_queue), task_queue=task_queue,
                    emulator=zoom_emulator)
    await services.aclose()


def ws() -> str:
    return f"w-{uuid.uuid4().hex[:8]}"


LONG = timedelta(seconds=60)
