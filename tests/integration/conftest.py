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

from ratio_zoom.connections.notify import temporal_notifier
from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.emulators.zoom_server.testing import ZoomEmulatorHandle, free_port, running_zoom_emulator
from ratio_zoom.http_api.server import create_app
from ratio_zoom.connections.services import Services
from ratio_zoom.core.settings import Settings
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.worker_app import build_worker
from starter import Appointments
from tests.conftest import make_settings


@pytest.fixture(scope="session")
async def zoom_emulator() -> AsyncIterator[object]:
    from ratio_zoom.emulators.zoom_server.app import EmulatorConfig

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


# -- the HTTP API served for real (tests of the connection lifecycle and the bad-input catalogue) ----

TOKEN = "test-internal-token"
CODEC_TOKEN = "test-codec-token"
RETURN = "https://ratio.example/settings/zoom"
RETURN_ORIGINS = "https://ratio.example,http://localhost:3000"


@dataclass
class Api:
    base: str
    services: Services
    emulator: ZoomEmulatorHandle
    http: httpx.AsyncClient

    async def connect(self, workspace: str, role: str = "owner") -> httpx.Response:
        return await self.http.post(f"{self.base}/v1/workspaces/{workspace}/zoom/connect",
                                    json={"actor_id": "u1", "actor_role": role, "return_url": RETURN},
                                    headers={"Authorization": f"Bearer {TOKEN}"})

    async def browser(self, url: str) -> tuple[httpx.Response, list[str]]:
        """Follow redirects like a browser until we land back on Ratio (or on an error page)."""
        seen = []
        response = await self.http.get(url)
        while response.status_code in (302, 303, 307) and not response.headers["location"].startswith(RETURN):
            seen.append(response.headers["location"])
            response = await self.http.get(response.headers["location"])
        return response, seen

    async def status(self, workspace: str) -> dict:
        response = await self.http.get(f"{self.base}/v1/workspaces/{workspace}/zoom",
                                       headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        return response.json()


@pytest.fixture
async def api(temporal_env, fresh_pg_url: str, zoom_emulator: ZoomEmulatorHandle) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = make_settings(fresh_pg_url, ZOOM_API_BASE_URL=zoom_emulator.api_base_url,
                             ZOOM_OAUTH_BASE_URL=zoom_emulator.oauth_base_url,
                             ZOOM_REDIRECT_URI=f"http://127.0.0.1:{port}/v1/zoom/oauth/callback",
                             RECORDING_BOT_WEBHOOK_SECRET="test-recall-webhook-secret",
                             RETURN_URL_ORIGINS=RETURN_ORIGINS, CODEC_AUTH_TOKEN=CODEC_TOKEN)
    # The server runs on its own event loop (a thread): it gets its own unpooled services; the test
    # inspects the database through a second set bound to the test's loop.
    server_services = Services.create(settings, pooled=False)
    services = Services.create(settings)
    connections = ConnectionService(server_services.db, server_services.vault, server_services.oauth,
                                    server_services.zoom, notify=temporal_notifier(temporal_env.client))
    await zoom_emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA",
                                         scopes="meeting:write:meeting meeting:update:meeting meeting:delete:meeting "
                                                "meeting:read:meeting meeting:read:list_meetings user:read:user")
    with serving(create_app(server_services, connections), port) as base:
        async with httpx.AsyncClient(follow_redirects=False, timeout=20) as http:
            yield Api(base=base, services=services, emulator=zoom_emulator, http=http)
    await services.aclose()
