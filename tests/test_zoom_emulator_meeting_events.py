"""The Zoom emulator sends Zoom's signed meeting events when a meeting changes: by the host inside Zoom
(`/_emulator/edit-meeting`) or by an app through the API, as real Zoom does for subscribed apps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ratio_zoom.core.threaded_server import serving
from ratio_zoom.emulators.zoom_server.app import EmulatorConfig
from ratio_zoom.emulators.zoom_server.testing import ZoomEmulatorHandle, free_port, running_zoom_emulator
from ratio_zoom.zoom.client import ZoomClient
from ratio_zoom.zoom.models import MeetingWrite
from ratio_zoom.zoom.webhooks import verify_signature
from tests.test_zoom_client import authorize, body

SECRET = "emulator-webhook-secret"


class Receiver:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        verify_signature(SECRET, request.headers.get("x-zm-request-timestamp"), raw,
                         request.headers.get("x-zm-signature"))  # raises on a bad signature: a 500
        self.events.append(json.loads(raw))
        return JSONResponse({"ok": True})


@pytest.fixture
async def setup() -> AsyncIterator[tuple[ZoomEmulatorHandle, Receiver]]:
    receiver = Receiver()
    with serving(Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])]), free_port(), name="hook") as base:
        config = EmulatorConfig(client_id="cid", client_secret="csecret", webhook_secret_token=SECRET,
                                webhook_url=f"{base}/hook")
        async with running_zoom_emulator(config) as emu:
            yield emu, receiver


async def _wait_for(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    for _ in range(200):
        if len(receiver.events) >= count:
            return receiver.events
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} events, got {receiver.events}")


async def test_host_edits_and_deletes_send_signed_events(setup: tuple[ZoomEmulatorHandle, Receiver]) -> None:
    emu, receiver = setup
    _, token, _ = await authorize(emu)
    async with ZoomClient(emu.api_base_url) as zoom:
        meeting = await zoom.create_meeting(token, body())
    await emu.edit_meeting_in_zoom(meeting.id, start_time="2031-01-01T09:00:00Z", topic="Moved by host")
    await emu.edit_meeting_in_zoom(meeting.id, topic="Moved by host")  # no change: Zoom sends nothing
    await emu.delete_meeting_in_zoom(meeting.id)
    updated, deleted = await _wait_for(receiver, 2)
    await asyncio.sleep(0.2)
    assert len(receiver.events) == 2
    assert updated["event"] == "meeting.updated"
    payload = updated["payload"]
    assert payload["object"] == {"id": meeting.id, "uuid": payload["object"]["uuid"],
                                 "topic": "Moved by host", "start_time": "2031-01-01T09:00:00Z"}
    assert payload["old_object"]["topic"] == "Intro" and payload["old_object"]["id"] == meeting.id
    assert payload["operator"] == "host@example.com" and payload["operation"] == "single"
    assert deleted["event"] == "meeting.deleted" and deleted["payload"]["object"]["id"] == meeting.id
    assert "join_url" not in json.dumps(receiver.events) and "start_url" not in json.dumps(receiver.events)


async def test_app_changes_through_the_api_send_events_too(setup: tuple[ZoomEmulatorHandle, Receiver]) -> None:
    emu, receiver = setup
    _, token, _ = await authorize(emu)
    async with ZoomClient(emu.api_base_url) as zoom:
        meeting = await zoom.create_meeting(token, body())
        await zoom.update_meeting(token, meeting.id, MeetingWrite(duration=45))
        await zoom.update_meeting(token, meeting.id, MeetingWrite(duration=45))  # a no-op PATCH: no event
        await zoom.delete_meeting(token, meeting.id)
    events = await _wait_for(receiver, 2)
    await asyncio.sleep(0.2)
    assert [e["event"] for e in events] == ["meeting.updated", "meeting.deleted"]
    assert events[0]["payload"]["object"]["duration"] == 45 and events[0]["payload"]["old_object"]["duration"] == 30
    async with httpx.AsyncClient() as http:
        deliveries = (await http.get(f"{emu.base_url}/_emulator/webhook-deliveries")).json()
    assert [d["status"] for d in deliveries] == [200, 200]


async def test_a_silent_edit_sends_nothing(setup: tuple[ZoomEmulatorHandle, Receiver]) -> None:
    emu, receiver = setup
    _, token, _ = await authorize(emu)
    async with ZoomClient(emu.api_base_url) as zoom:
        meeting = await zoom.create_meeting(token, body())
    await emu.edit_meeting_in_zoom(meeting.id, delete=True, notify=False)
    await asyncio.sleep(0.3)
    assert receiver.events == []
