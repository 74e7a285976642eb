"""Run the Zoom emulator for tests and benchmarks: `async with running_zoom_emulator(config) as emu:`.

The server runs in a background thread with its own event loop (real HTTP on a free port), so the code
under test talks to it exactly as it would talk to Zoom.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ratio_zoom.emulators.zoom_server.app import EmulatorConfig, create_app
from ratio_zoom.core.threaded_server import serving


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ZoomEmulatorHandle:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.api_base_url = f"{base_url}/v2"
        self.oauth_base_url = base_url
        self._http = httpx.AsyncClient(base_url=f"{base_url}/_emulator", timeout=15)

    async def _get(self, action: str) -> Any:
        response = await self._http.get(f"/{action}")
        response.raise_for_status()
        return response.json()

    async def _post(self, action: str, body: dict[str, Any]) -> Any:
        response = await self._http.post(f"/{action}", json=body)
        response.raise_for_status()
        return response.json()

    async def meetings(self) -> list[dict[str, Any]]:
        return await self._get("meetings")

    async def calls(self) -> list[dict[str, Any]]:
        return await self._get("calls")

    async def counters(self) -> dict[str, int]:
        return await self._get("counters")

    async def grants(self) -> list[dict[str, Any]]:
        """Every authorization so far: user, alive (not revoked/replaced/deauthorized), scopes."""
        return await self._get("grants")

    async def reset(self) -> None:
        await self._post("reset", {})

    async def advance_clock(self, seconds: float) -> None:
        await self._post("clock", {"advance_seconds": seconds})

    async def add_user(self, user_id: str, email: str, account_id: str | None = None) -> None:
        await self._post("users", {"id": user_id, "email": email, "account_id": account_id or user_id})

    async def set_next_consent(self, *, user_id: str | None = None, scopes: str | None = None, deny: bool = False) -> None:
        body: dict[str, Any] = {"deny": deny}
        if user_id is not None:
            body["user_id"] = user_id
        if scopes is not None:
            body["scopes"] = scopes
        await self._post("consent", body)

    async def set_faults(self, rules: list[dict[str, Any]], seed: int | None = None) -> None:
        body: dict[str, Any] = {"rules": rules}
        if seed is not None:
            body["seed"] = seed
        await self._post("faults", body)

    async def set_limits(self, **limits: Any) -> None:
        await self._post("limits", limits)

    async def delete_meeting_in_zoom(self, meeting_id: int) -> None:
        await self._post("edit-meeting", {"id": meeting_id, "delete": True})

    async def edit_meeting_in_zoom(self, meeting_id: int, **changes: Any) -> None:
        await self._post("edit-meeting", {"id": meeting_id, **changes})

    async def send_webhook(self, **body: Any) -> dict[str, Any]:
        return await self._post("webhooks", body)

    async def aclose(self) -> None:
        await self._http.aclose()


@asynccontextmanager
async def running_zoom_emulator(config: EmulatorConfig | None = None) -> AsyncIterator[ZoomEmulatorHandle]:
    with serving(create_app(config or EmulatorConfig()), free_port(), name="zoom-emulator") as base_url:
        handle = ZoomEmulatorHandle(base_url)
        try:
            yield handle
        finally:
            await handle.aclose()
