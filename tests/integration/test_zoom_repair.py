"""Zoom and Ratio stay in step in real time, end to end: the host deletes or moves the meeting inside Zoom
(the emulator sends Zoom's signed meeting events to our API), the API relays them to the workflow, the
workflow repairs the meeting, the attendees get the new link, and the core app hears about it through its
signed event feed. Everything is real: Temporal, PostgreSQL, HTTP to the emulator, SMTP to the sink."""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from ratio_zoom.connections.notify import temporal_notifier
from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.connections.services import Services
from ratio_zoom.contract.appointment import Attendee
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.emulators.smtp_sink.testing import SinkHandle, running_smtp_sink
from ratio_zoom.emulators.zoom_server.app import EmulatorConfig
from ratio_zoom.emulators.zoom_server.testing import ZoomEmulatorHandle, free_port, running_zoom_emulator
from ratio_zoom.events.signing import generate_secret
from ratio_zoom.http_api.server import create_app, temporal_meeting_signaller
from ratio_zoom.storage.models import AuditEvent
from ratio_zoom.worker_app import build_worker, event_dispatcher
from starter import Appointments
from starter.example_receiver import Inbox, make_app
from tests.conftest import make_settings
from tests.integration.test_appointment_lifecycle import booking

SECRET = generate_secret()
SCOPES = ("meeting:write:meeting meeting:update:meeting meeting:delete:meeting meeting:read:meeting "
          "meeting:read:list_meetings user:read:user")


@dataclass
class Repair:
    emulator: ZoomEmulatorHandle
    appointments: Appointments
    services: Services
    connections: ConnectionService
    sink: SinkHandle
    inbox: Inbox

    async def connect(self, workspace: str) -> None:
        url = await self.connections.start_connect(workspace, "u-admin", "owner", "https://ratio.example/settings")
        async with httpx.AsyncClient(follow_redirects=False) as http:
            response = await http.get(url)
        callback = httpx.URL(response.headers["location"])
        await self.connections.complete_connect(callback.params.get("code"), callback.params.get("state"), None)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30.0) -> None:
    """Bounded wait for an asynchronous outcome (a relay, a workflow step, an SMTP delivery)."""
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


@pytest.fixture
async def repair(temporal_env: WorkflowEnvironment, fresh_pg_url: str) -> AsyncIterator[Repair]:
    api_port = free_port()
    inbox = Inbox()
    queue = f"repair-{uuid.uuid4().hex[:8]}"
    config = EmulatorConfig(client_id="test-client-id", client_secret="test-client-secret",
                            webhook_secret_token="test-webhook-secret",
                            webhook_url=f"http://127.0.0.1:{api_port}/v1/webhooks/zoom")
    with running_smtp_sink() as sink, serving(make_app(SECRET, inbox), free_port(), name="core-app") as core_app:
        async with running_zoom_emulator(config) as emulator:
            settings = make_settings(fresh_pg_url, ZOOM_API_BASE_URL=emulator.api_base_url,
                                     ZOOM_OAUTH_BASE_URL=emulator.oauth_base_url, TEMPORAL_TASK_QUEUE=queue,
                                     SMTP_URL=sink.smtp_url, SMTP_ALLOW_PLAINTEXT="true",
                                     CORE_APP_WEBHOOK_URL=f"{core_app}/ratio-zoom/events",
                                     CORE_APP_WEBHOOK_SECRET=SECRET)
            await emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA", scopes=SCOPES)
            services = Services.create(settings)
            server_services = Services.create(settings, pooled=False)
            client = temporal_env.client
            connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom,
                                            notify=temporal_notifier(client), outbox=services.outbox)
            api = create_app(server_services, ConnectionService(
                server_services.db, server_services.vault, server_services.oauth, server_services.zoom,
                outbox=server_services.outbox), meeting_signaller=temporal_meeting_signaller(client))
            stop = asyncio.Event()
            delivery = asyncio.create_task(event_dispatcher(services).run(stop))
            try:
                with serving(api, api_port, name="api"):
                    async with build_worker(client, services, task_queue=queue):
                        yield Repair(emulator, Appointments(client, task_queue=queue), services, connections,
                                     sink, inbox)
            finally:
                stop.set()
                await delivery
                await services.aclose()


async def test_a_meeting_the_host_deletes_is_recreated_and_everyone_hears_of_the_new_link(repair: Repair) -> None:
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    await repair.connect(workspace)
    b = booking(workspace, attendees=[Attendee(name="Ada", email="ada@example.com")])
    booked = await repair.appointments.book(b)
    first_id, first_link = booked.conference.zoom_meeting_id, booked.conference.join_url
    assert first_id is not None and first_link

    await repair.emulator.delete_meeting_in_zoom(first_id)  # the host, inside Zoom

    async def recreated() -> bool:
        state = await repair.appointments.state(b.appointment_id)
        return state.conference.zoom_meeting_id not in (None, first_id) and state.conference.status == "ready"

    await eventually(recreated, "a new meeting after the host deleted the first", seconds=20)
    state = await repair.appointments.state(b.appointment_id)
    new_link = state.conference.join_url
    assert new_link and new_link != first_link
    live = [m for m in await repair.emulator.meetings() if not m["deleted"]]
    assert [m["id"] for m in live] == [state.conference.zoom_meeting_id]  # one meeting wanted, one meeting held

    def text_of(raw: str) -> str:
        message = email.message_from_string(raw, policy=email.policy.default)
        return "".join(part.get_content() for part in message.walk() if part.get_content_type() == "text/plain")

    async def attendee_updated() -> bool:
        return any(m["subject"].startswith("Updated:") and new_link in text_of(m["raw"]) for m in repair.sink.messages)

    await eventually(attendee_updated, "an update email with the new link")

    async def core_app_told() -> bool:
        kinds = [e.type for e in repair.inbox.applied if e.appointment_id == b.appointment_id]
        return kinds == ["conference.ready", "conference.updated"]

    await eventually(core_app_told, "conference.ready then one conference.updated at the core app")
    updated = [e for e in repair.inbox.applied if e.type == "conference.updated"][0]
    assert updated.data.join_url == new_link  # type: ignore[union-attr]
    assert repair.inbox.refused == 0


async def test_a_meeting_the_host_moves_is_patched_back_once_and_never_loops(repair: Repair) -> None:
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    await repair.connect(workspace)
    b = booking(workspace)
    booked = await repair.appointments.book(b)
    meeting_id = booked.conference.zoom_meeting_id
    assert meeting_id is not None
    wanted = (await repair.emulator.meetings())[0]["start_time"]
    moved = (datetime.now(timezone.utc) + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await repair.emulator.edit_meeting_in_zoom(meeting_id, start_time=moved, topic="Host renamed it")

    async def back_in_step() -> bool:
        meeting = next(m for m in await repair.emulator.meetings() if m["id"] == meeting_id)
        return meeting["start_time"] == wanted and meeting["topic"] == "Portfolio review"

    await eventually(back_in_step, "the meeting patched back to the appointment")
    await asyncio.sleep(2)  # room for a loop to show itself: our PATCH's own meeting.updated comes back to us
    patches = [c for c in await repair.emulator.calls()
               if c["method"] == "PATCH" and str(meeting_id) in c["path"]]
    assert len(patches) == 1, patches
    async with repair.services.db.sessions() as session:
        rows = list((await session.execute(select(AuditEvent).where(
            AuditEvent.appointment_id == b.appointment_id, AuditEvent.event == "meeting.changed_in_zoom"))).scalars())
    assert len(rows) == 1 and '"fields":["start_time","topic"]' in rows[0].details


async def test_forged_meeting_events_change_nothing(repair: Repair) -> None:
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    await repair.connect(workspace)
    b = booking(workspace)
    booked = await repair.appointments.book(b)
    meeting_id = booked.conference.zoom_meeting_id
    answer: dict[str, Any] = await repair.emulator.send_webhook(event="meeting.deleted", meeting_id=meeting_id,
                                                                secret="not-zoom's-secret")
    assert answer["status"] == 401
    await asyncio.sleep(1)
    state = await repair.appointments.state(b.appointment_id)
    assert state.conference.zoom_meeting_id == meeting_id
    assert len([c for c in await repair.emulator.calls() if c["method"] == "POST"]) == 1  # one create, ever


async def test_a_disconnect_reaches_the_core_app_as_connection_and_conference_events(repair: Repair) -> None:
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    await repair.connect(workspace)
    b = booking(workspace)
    await repair.appointments.book(b)
    await repair.connections.disconnect(workspace, "u-admin", "owner")

    async def told() -> bool:
        ours = [e for e in repair.inbox.applied if e.workspace_id == workspace]
        return ("connection.disconnected" in [e.type for e in ours]
                and "conference.detached" in [e.type for e in ours if e.appointment_id == b.appointment_id])

    try:
        await eventually(told, "connection.disconnected and conference.detached at the core app")
    except AssertionError:
        state = await repair.appointments.state(b.appointment_id)
        raise AssertionError(f"{[(e.type, e.appointment_id) for e in repair.inbox.applied]} {state.conference}")
    detached = next(e for e in repair.inbox.applied if e.type == "conference.detached" and e.appointment_id == b.appointment_id)
    assert detached.data.reason and detached.data.join_url is None  # type: ignore[union-attr]  # the why, never the link
    stream = [e.sequence for e in repair.inbox.applied if e.stream == f"appointment:{b.appointment_id}"]
    assert stream == sorted(stream) == list(range(1, len(stream) + 1))  # in order, none missing
