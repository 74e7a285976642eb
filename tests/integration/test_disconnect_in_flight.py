"""Finding 9: "after disconnect returns, no further Zoom call is made" must hold on every database the service
accepts in production. A Zoom call holds its lease (the token is in hand, the call not yet sent) while an
Owner disconnects:

- PostgreSQL: the lease holds `FOR SHARE` on the connection row, so the disconnect's `FOR UPDATE` waits
  until the call is done; the call goes out *before* disconnect returns, never after.
- SQLite: nothing can be held across processes without stalling every writer, so the disconnect returns
  while the leased call is still to go out, and it does go out afterwards. That is why production refuses
  SQLite (`ratio_zoom.core.mode`); this test shows the refusal is needed, and that it is there."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg

from ratio_zoom.connections.broker import Lease
from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.connections.services import Services
from ratio_zoom.core.mode import production_problems
from ratio_zoom.emulators.zoom_server.testing import ZoomEmulatorHandle
from tests.conftest import make_settings

SCOPES = ("meeting:write:meeting meeting:update:meeting meeting:delete:meeting meeting:read:meeting "
          "meeting:read:list_meetings user:read:user")


async def _connect(connections: ConnectionService, emulator: ZoomEmulatorHandle, workspace: str) -> str:
    user = f"zu-{uuid.uuid4().hex[:10]}"
    await emulator.add_user(user, f"{user}@example.com")
    await emulator.set_next_consent(user_id=user, scopes=SCOPES)
    url = await connections.start_connect(workspace, "u-admin", "owner", "https://ratio.example/settings")
    async with httpx.AsyncClient(follow_redirects=False) as http:
        callback = httpx.URL((await http.get(url)).headers["location"])
    outcome = await connections.complete_connect(callback.params.get("code"), callback.params.get("state"), None)
    assert "connected" in outcome, outcome
    return user


def _waiting_on_a_row_lock(database_url: str) -> bool:
    """Is some session of this database waiting for a lock (the disconnect's FOR UPDATE)?"""
    if not database_url.startswith("postgresql"):
        return False
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                           "WHERE NOT l.granted AND a.datname = current_database()").fetchone()
    return bool(row and row[0])


async def test_disconnect_and_a_leased_call_in_flight(database_url: str, zoom_emulator: ZoomEmulatorHandle) -> None:
    settings = make_settings(database_url, ZOOM_API_BASE_URL=zoom_emulator.api_base_url,
                             ZOOM_OAUTH_BASE_URL=zoom_emulator.oauth_base_url)
    services = Services.create(settings)
    connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom)
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    user = await _connect(connections, zoom_emulator, workspace)
    order: list[str] = []
    leased, release = asyncio.Event(), asyncio.Event()

    async def zoom_call(lease: Lease) -> object:
        leased.set()
        await release.wait()  # the token is in hand; the request is about to leave
        try:
            return await services.zoom.get_me(lease.token)
        finally:
            order.append("zoom call sent")

    async def disconnect() -> None:
        await connections.disconnect(workspace, "u-admin", "owner")
        order.append("disconnect returned")

    try:
        call = asyncio.create_task(services.broker.call(workspace, zoom_call))
        await leased.wait()
        cut = asyncio.create_task(disconnect())
        # Until the disconnect either finished or is seen queued behind the lease's row lock.
        while not cut.done() and not await asyncio.to_thread(_waiting_on_a_row_lock, database_url):
            await asyncio.sleep(0.02)
        release.set()
        await asyncio.gather(call, cut, return_exceptions=True)
        calls = [c for c in await zoom_emulator.calls() if user in (c["user_id"], c["token_owner"])]
        if database_url.startswith("postgresql"):
            assert order == ["zoom call sent", "disconnect returned"]
            assert call.exception() is None  # it ran to completion while the disconnect waited
            assert production_problems(settings) == []
        else:
            # The hole: the call left after disconnect had returned (Zoom saw it, with the revoked token).
            assert order == ["disconnect returned", "zoom call sent"]
            assert calls and calls[-1]["operation"] == "get_user" and calls[-1]["status"] == 401
            assert any(p.startswith("DATABASE_URL is SQLite") for p in production_problems(settings))
    finally:
        await services.aclose()
