"""Zoom's meeting.updated / meeting.deleted at `/v1/webhooks/zoom`: verified, de-duplicated, routed by meeting
ID to the owning appointment's workflow as the `zoom_meeting_changed` signal; everything else recorded and
ignored. The API is served for real, the signal goes through a real Temporal server to a recorder workflow
standing in for the appointment workflow (this test is about the routing, not the repair)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.connections.services import Services
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.emulators.zoom_server.testing import free_port
from ratio_zoom.http_api.server import create_app, temporal_meeting_signaller
from ratio_zoom.storage.models import AppointmentConference
from ratio_zoom.zoom.webhooks import sign
from tests.conftest import make_settings
from tests.integration.meeting_event_recorder import Recorder

SECRET = "test-webhook-secret"


@dataclass
class Setup:
    base: str
    services: Services
    env: WorkflowEnvironment
    task_queue: str
    http: httpx.AsyncClient

    async def appointment(self, meeting_id: int, *, status: str = "scheduled", running: bool = True) -> tuple[str, WorkflowHandle[Any, Any] | None]:
        appointment_id = f"a-{uuid.uuid4().hex[:8]}"
        now = datetime.now(timezone.utc)
        async with self.services.db.transaction() as session:
            session.add(AppointmentConference(appointment_id=appointment_id, workspace_id="w-1", status="ready",
                                              appointment_status=status, zoom_meeting_id=meeting_id,
                                              created_at=now, updated_at=now))
        handle = None
        if running:
            handle = await self.env.client.start_workflow("MeetingEventRecorder", id=f"appointment-{appointment_id}",
                                                          task_queue=self.task_queue)
        return appointment_id, handle

    async def deliver(self, event: str, payload: dict[str, Any], *, secret: str = SECRET,
                      timestamp: int | None = None) -> httpx.Response:
        raw = json.dumps({"event": event, "event_ts": int(time.time() * 1000), "payload": payload}).encode()
        return await self.post(raw, secret=secret, timestamp=timestamp)

    async def post(self, raw: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> httpx.Response:
        stamp = str(timestamp or int(time.time()))
        return await self.http.post(f"{self.base}/v1/webhooks/zoom", content=raw, headers={
            "content-type": "application/json", "x-zm-request-timestamp": stamp, "x-zm-signature": sign(secret, stamp, raw)})


def updated(meeting_id: int, **changed: Any) -> dict[str, Any]:
    return {"account_id": "acct", "operator": "host@example.com", "operator_id": "host-1", "operation": "single",
            "time_stamp": 1, "object": {"id": meeting_id, "uuid": "u", "host_id": "host-1", **changed},
            "old_object": {"id": meeting_id, "uuid": "u"}}


def deleted(meeting_id: int) -> dict[str, Any]:
    return {"account_id": "acct", "operator": "host@example.com", "operator_id": "host-1", "operation": "single",
            "object": {"id": meeting_id, "uuid": "u", "host_id": "host-1", "topic": "t", "type": 2}}


@pytest.fixture
async def setup(temporal_env: WorkflowEnvironment, fresh_pg_url: str) -> AsyncIterator[Setup]:
    settings = make_settings(fresh_pg_url)
    server_services = Services.create(settings, pooled=False)
    services = Services.create(settings)
    connections = ConnectionService(server_services.db, server_services.vault, server_services.oauth, server_services.zoom)
    task_queue = f"recorder-{uuid.uuid4().hex[:8]}"
    app = create_app(server_services, connections, meeting_signaller=temporal_meeting_signaller(temporal_env.client))
    async with Worker(temporal_env.client, task_queue=task_queue, workflows=[Recorder]):
        with serving(app, free_port()) as base:
            async with httpx.AsyncClient(timeout=20) as http:
                yield Setup(base, services, temporal_env, task_queue, http)
    await services.aclose()


async def test_a_host_change_reaches_the_owning_workflow_once(setup: Setup) -> None:
    meeting_id = 84_000_000_000 + int(uuid.uuid4().int % 1_000_000)
    _, handle = await setup.appointment(meeting_id)
    assert handle is not None
    payload = updated(meeting_id, start_time="2031-01-01T09:00:00Z", topic="moved")
    raw = json.dumps({"event": "meeting.updated", "event_ts": 1, "payload": payload}).encode()
    first = await setup.post(raw)
    again = await setup.post(raw)  # Zoom's redelivery of the same signed body
    assert first.json() == {"status": "relayed"} and again.json() == {"status": "duplicate delivery ignored"}
    seen = await handle.query(Recorder.seen)
    assert len(seen) == 1
    assert seen[0].event == "meeting.updated" and seen[0].meeting_id == meeting_id and seen[0].operator == "host"
    assert seen[0].changed == {"start_time": "2031-01-01T09:00:00Z", "topic": "moved"}
    assert seen[0].delivery_id == hashlib.sha256(raw).hexdigest()
    await handle.signal(Recorder.finish)


async def test_deleted_meetings_are_relayed_too(setup: Setup) -> None:
    meeting_id = 85_000_000_000 + int(uuid.uuid4().int % 1_000_000)
    _, handle = await setup.appointment(meeting_id)
    assert handle is not None
    response = await setup.deliver("meeting.deleted", deleted(meeting_id))
    assert response.status_code == 200 and response.json()["status"] == "relayed"
    seen = await handle.query(Recorder.seen)
    assert [(e.event, e.meeting_id, e.changed) for e in seen] == [("meeting.deleted", meeting_id, {})]
    await handle.signal(Recorder.finish)


@pytest.mark.parametrize("case", ["not_ours", "cancelled", "closed"])
async def test_what_is_not_ours_to_repair_is_recorded_and_ignored(setup: Setup, case: str) -> None:
    meeting_id = 86_000_000_000 + int(uuid.uuid4().int % 1_000_000)
    handle = None
    if case == "cancelled":
        _, handle = await setup.appointment(meeting_id, status="cancelled")
    elif case == "closed":
        await setup.appointment(meeting_id, running=False)
    response = await setup.deliver("meeting.deleted", deleted(meeting_id))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    again = await setup.deliver("meeting.deleted", deleted(meeting_id))
    assert again.status_code == 200
    if handle is not None:
        assert await handle.query(Recorder.seen) == []
        await handle.signal(Recorder.finish)


@pytest.mark.parametrize("attack", ["forged", "replayed_old"])
async def test_forged_or_replayed_events_change_nothing(setup: Setup, attack: str) -> None:
    meeting_id = 87_000_000_000 + int(uuid.uuid4().int % 1_000_000)
    _, handle = await setup.appointment(meeting_id)
    assert handle is not None
    if attack == "forged":
        response = await setup.deliver("meeting.deleted", deleted(meeting_id), secret="not-the-secret")
    else:
        response = await setup.deliver("meeting.deleted", deleted(meeting_id), timestamp=int(time.time()) - 3600)
    assert response.status_code == 401
    assert await handle.query(Recorder.seen) == []
    await handle.signal(Recorder.finish)
