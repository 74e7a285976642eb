"""The appointment lifecycle end to end: real worker, real Temporal, real PostgreSQL, Zoom emulator."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from ratio_zoom.contract.appointment import AppointmentInput, Attendee, Cancel, Reschedule, UpdateDetails
from ratio_zoom.storage import audit
from ratio_zoom.storage.models import AppointmentConference, AuditEvent
from tests.integration.conftest import Stack, ws
from tests.integration.zoom_view import live_meetings, meeting_by_id


def booking(workspace_id: str, **overrides: object) -> AppointmentInput:
    start = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
    values: dict[str, object] = dict(
        appointment_id=f"a-{uuid.uuid4().hex[:10]}", workspace_id=workspace_id, title="Portfolio review",
        description="Quarterly review", start_time=start.isoformat(), duration_minutes=45,
        timezone="America/New_York", conference_provider="zoom",
        attendees=[Attendee(name="Grace", email="grace@example.com")])
    values.update(overrides)
    return AppointmentInput(**values)  # type: ignore[arg-type]


async def test_book_reschedule_cancel_touches_zoom_exactly_three_times(stack: Stack) -> None:
    workspace = ws()
    assert "zoom=connected" in await stack.connect_workspace(workspace)
    first_call = len(await stack.emulator.calls())  # tests run one at a time: later calls are this test's
    b = booking(workspace)
    result = await stack.appointments.book(b)
    assert result.conference.status == "ready" and result.conference.join_url
    meeting_id = result.conference.zoom_meeting_id
    meeting = await meeting_by_id(stack.emulator, meeting_id)
    assert meeting["topic"] == "Portfolio review" and meeting["duration"] == 45
    assert meeting["settings"]["join_before_host"] is True and meeting["settings"]["waiting_room"] is False
    assert meeting["settings"]["auto_recording"] == "none"

    again = await stack.appointments.book(b)  # booking twice returns the same meeting
    assert again.conference.zoom_meeting_id == meeting_id

    new_start = (datetime.now(timezone.utc) + timedelta(days=5)).replace(microsecond=0, second=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(
        request_id="r1", start_time=new_start.isoformat(), duration_minutes=60))
    done = await stack.appointments.await_conference(b.appointment_id, after_request_id="r1")
    assert done.request_outcome == "applied"
    meeting = await meeting_by_id(stack.emulator, meeting_id)
    assert meeting["duration"] == 60
    assert datetime.fromisoformat(meeting["start_time"].replace("Z", "+00:00")) == new_start

    # the same time again: nothing changed, so no PATCH (the daily quota is precious)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(
        request_id="r2", start_time=new_start.isoformat(), duration_minutes=60))
    await stack.appointments.await_conference(b.appointment_id, after_request_id="r2")

    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c1", actor="u-7", reason="client asked"))
    final = await stack.appointments.handle(b.appointment_id).result()
    assert final["status"] == "cancelled" and final["conference"]["status"] == "deleted"
    assert meeting_id not in {m["id"] for m in await live_meetings(stack.emulator)}

    calls = [c for c in (await stack.emulator.calls())[first_call:] if c["method"] != "GET"]
    assert [(c["method"], c["status"]) for c in calls] == [("POST", 201), ("PATCH", 204), ("DELETE", 204)]

    async with stack.services.db.sessions() as session:
        row = await session.get(AppointmentConference, b.appointment_id)
        assert row is not None and row.status == "deleted" and row.zoom_meeting_id == meeting_id
        events = list((await session.execute(select(AuditEvent.event).where(
            AuditEvent.appointment_id == b.appointment_id).order_by(AuditEvent.seq))).scalars())
        assert events == ["meeting.created", "meeting.updated", "meeting.deleted"]
        assert (await audit.verify_workspace(session, workspace)).ok


async def test_details_change_and_provider_switch(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace)
    first = await stack.appointments.book(b)
    await stack.appointments.update_details(b.appointment_id, UpdateDetails(request_id="u1", title="Renamed review"))
    await stack.appointments.await_conference(b.appointment_id, after_request_id="u1")
    assert (await meeting_by_id(stack.emulator, first.conference.zoom_meeting_id))["topic"] == "Renamed review"

    await stack.appointments.update_details(b.appointment_id, UpdateDetails(request_id="u2", conference_provider="google_meet"))
    switched = await stack.appointments.await_conference(b.appointment_id, after_request_id="u2")
    assert switched.conference.status == "deleted"
    assert first.conference.zoom_meeting_id not in {m["id"] for m in await live_meetings(stack.emulator)}

    await stack.appointments.update_details(b.appointment_id, UpdateDetails(request_id="u3", conference_provider="zoom"))
    back = await stack.appointments.await_conference(b.appointment_id, after_request_id="u3")
    assert back.conference.status == "ready"
    assert back.conference.zoom_meeting_id not in (None, first.conference.zoom_meeting_id)
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()


async def test_not_connected_waits_then_resumes_when_connected(stack: Stack) -> None:
    workspace = ws()
    b = booking(workspace)
    parked = await stack.appointments.book(b)
    assert parked.conference.status == "waiting_for_zoom"
    assert "not connected" in (parked.conference.reason or "")
    await stack.connect_workspace(workspace)  # signals the workflow through the WorkspaceId search attribute
    ready = await stack.appointments.await_conference(b.appointment_id, timeout_seconds=1)
    for _ in range(40):
        state = await stack.appointments.state(b.appointment_id)
        if state.conference.status == "ready":
            break
        import asyncio

        await asyncio.sleep(0.25)
    assert state.conference.status == "ready" and state.conference.join_url, ready
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()


async def test_meeting_deleted_inside_zoom_is_recreated_on_patch(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace)
    first = await stack.appointments.book(b)
    await stack.emulator.delete_meeting_in_zoom(first.conference.zoom_meeting_id)
    start = (datetime.now(timezone.utc) + timedelta(days=6)).replace(microsecond=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r", start_time=start.isoformat(), duration_minutes=30))
    after = await stack.appointments.await_conference(b.appointment_id, after_request_id="r")
    assert after.conference.status == "ready"
    assert after.conference.zoom_meeting_id != first.conference.zoom_meeting_id
    assert after.conference.join_url != first.conference.join_url
    meeting = await meeting_by_id(stack.emulator, after.conference.zoom_meeting_id)
    assert meeting["duration"] == 30
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()


async def test_history_holds_no_personal_data_in_clear(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace, title="Confidential title", attendees=[Attendee(name="Ada Lovelace", email="ada.l@example.com")])
    booked = await stack.appointments.book(b)
    history = await stack.appointments.handle(b.appointment_id).fetch_history()
    raw = history.to_json()
    for secret in ("ada.l@example.com", "Ada Lovelace", "Confidential title", booked.conference.join_url or "?"):
        assert secret not in raw
    assert "binary/encrypted" in raw or "YmluYXJ5L2VuY3J5cHRlZA" in raw  # metadata is base64 in JSON histories
    state = await stack.appointments.state(b.appointment_id)  # the client decodes with the same codec
    assert state.appointment.attendees[0].email == "ada.l@example.com"
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()


# The per-lifecycle budget stated in docs/benchmarks.md: what one book -> reschedule -> cancel may cost in
# Temporal (no attendees, so no email activity; no note-taking, so no bot). Counted from the real history,
# so a change that adds a round trip fails here, whatever the machine's speed.
LIFECYCLE_ACTIVITIES = ["create_meeting", "update_meeting", "delete_meeting"]
LIFECYCLE_LOCAL_ACTIVITIES = 1  # load_conference, inside the first workflow task
LIFECYCLE_WORKFLOW_TASKS = 6  # the bare-Temporal baseline's count for the same messages (bench/baseline.py)
LIFECYCLE_WORKFLOW_TASKS_CEILING = 8  # a signal landing while a task is in flight costs one more; never two more


async def test_a_lifecycle_stays_within_its_temporal_budget(stack: Stack) -> None:
    workspace = ws()
    assert "zoom=connected" in await stack.connect_workspace(workspace)
    b = booking(workspace, attendees=[])
    await stack.appointments.book(b)
    new_start = (datetime.now(timezone.utc) + timedelta(days=5)).replace(microsecond=0, second=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(
        request_id="r1", start_time=new_start.isoformat(), duration_minutes=60))
    await stack.appointments.await_conference(b.appointment_id, after_request_id="r1")
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c1", actor="u-7"))
    await stack.appointments.handle(b.appointment_id).result()

    history = await stack.appointments.handle(b.appointment_id).fetch_history()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    markers = [e.marker_recorded_event_attributes.marker_name for e in history.events
               if e.HasField("marker_recorded_event_attributes")]
    tasks = kinds.count("workflow_task_completed_event_attributes")
    assert scheduled == LIFECYCLE_ACTIVITIES
    assert markers.count("core_local_activity") == LIFECYCLE_LOCAL_ACTIVITIES
    assert LIFECYCLE_WORKFLOW_TASKS <= tasks <= LIFECYCLE_WORKFLOW_TASKS_CEILING, (tasks, kinds)
    assert "workflow_task_failed_event_attributes" not in kinds
