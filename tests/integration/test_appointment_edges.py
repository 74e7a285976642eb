"""Edges of the lifecycle: a new run after completion, daylight-saving changes, another Zoom account,
and the `ratio-zoom appointment` CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

from temporalio.testing import WorkflowEnvironment

from ratio_zoom.contract.appointment import Cancel, Reschedule
from tests.integration.conftest import Stack, ws
from tests.integration.test_appointment_lifecycle import booking
from tests.integration.worker_process import worker_env
from tests.integration.zoom_view import live_meetings, meeting_by_id


async def test_a_new_run_after_completion_restores_the_meeting_instead_of_creating_one(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace)
    first = await stack.appointments.book(b)
    # The run ends (here: terminated, as after end + grace); later a reschedule arrives with signal-with-start.
    await stack.appointments.handle(b.appointment_id).terminate("simulating a completed run")
    start = (datetime.now(timezone.utc) + timedelta(days=4)).replace(microsecond=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(
        request_id="after", start_time=start.isoformat(), duration_minutes=25), booking=b)
    answer = await stack.appointments.await_conference(b.appointment_id, after_request_id="after")
    assert answer.conference.zoom_meeting_id == first.conference.zoom_meeting_id
    assert answer.conference.join_url == first.conference.join_url
    ours = [m for m in await live_meetings(stack.emulator) if m["topic"] == b.title and m["id"] == first.conference.zoom_meeting_id]
    assert len(ours) == 1 and ours[0]["duration"] == 25
    again = await stack.appointments.book(b)  # and booking again still returns the same meeting
    assert again.conference.zoom_meeting_id == first.conference.zoom_meeting_id
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()


async def test_times_across_daylight_saving_changes_reach_zoom_in_utc(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    cases = [
        # Berlin switches to summer time on 2027-03-28: 10:00 local is 08:00Z that day, 09:00Z the day before.
        ("2027-03-27T10:00:00+01:00", "Europe/Berlin", "2027-03-27T09:00:00Z"),
        ("2027-03-28T10:00:00+02:00", "Europe/Berlin", "2027-03-28T08:00:00Z"),
        # New York leaves summer time on 2027-11-07.
        ("2027-11-06T09:00:00-04:00", "America/New_York", "2027-11-06T13:00:00Z"),
        ("2027-11-07T09:00:00-05:00", "America/New_York", "2027-11-07T14:00:00Z"),
        # A host in Tokyo booking a client in Berlin: the offset given is what counts.
        ("2027-03-28T17:00:00+09:00", "Asia/Tokyo", "2027-03-28T08:00:00Z"),
    ]
    for start, tz, expected in cases:
        b = booking(workspace, start_time=start, timezone=tz, title=f"DST {uuid.uuid4().hex[:6]}")
        result = await stack.appointments.book(b)
        meeting = await meeting_by_id(stack.emulator, result.conference.zoom_meeting_id)
        assert (meeting["start_time"], meeting["timezone"]) == (expected, tz)
        await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))


async def test_reconnecting_with_another_zoom_account_moves_the_next_change_to_a_new_meeting(stack: Stack) -> None:
    workspace = ws()
    await stack.emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA")
    await stack.connect_workspace(workspace)
    b = booking(workspace)
    first = await stack.appointments.book(b)
    other = f"zoomuser{uuid.uuid4().hex[:8]}"
    await stack.emulator.add_user(other, f"{other}@example.com")
    await stack.emulator.set_next_consent(user_id=other)
    try:
        assert "zoom=connected" in await stack.connect_workspace(workspace)
    finally:
        await stack.emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA")
    start = (datetime.now(timezone.utc) + timedelta(days=6)).replace(microsecond=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r", start_time=start.isoformat(), duration_minutes=40))
    moved = await stack.appointments.await_conference(b.appointment_id, after_request_id="r")
    assert moved.conference.status == "ready"
    assert moved.conference.zoom_meeting_id != first.conference.zoom_meeting_id
    new_meeting = await meeting_by_id(stack.emulator, moved.conference.zoom_meeting_id)
    old_meeting = await meeting_by_id(stack.emulator, first.conference.zoom_meeting_id)
    assert new_meeting["host_id"] == other and new_meeting["duration"] == 40
    assert not old_meeting["deleted"]  # the old account's meeting could not be touched and stays there
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()
    assert (await meeting_by_id(stack.emulator, moved.conference.zoom_meeting_id))["deleted"]


async def test_appointment_cli_books_shows_and_refuses_bad_input(temporal_env: WorkflowEnvironment, stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    env = worker_env(stack.settings, temporal_env.client.service_client.config.target_host)
    appointment_id = f"cli-{uuid.uuid4().hex[:8]}"
    start = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0).isoformat()

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        # asynchronously: the worker under test runs on this test's event loop
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ratio_zoom.cli.main", "appointment", *args,
                                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())

    booked = await cli("book", appointment_id, "--workspace", workspace, "--title", "CLI call", "--start", start,
                 "--duration", "20", "--timezone", "Europe/Paris", "--attendee", "Ada <ada@example.com>")
    assert booked.returncode == 0, booked.stderr
    conference = json.loads(booked.stdout)["conference"]
    assert conference["status"] == "ready" and conference["join_url"].startswith("https://")
    shown = await cli("show", appointment_id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["appointment"]["title"] == "CLI call"
    bad = await cli("book", f"{appointment_id}-bad", "--workspace", workspace, "--title", "x", "--start", "2001-01-01T00:00:00Z",
              "--duration", "20")
    assert bad.returncode == 1 and "past" in bad.stdout
    cancelled = await cli("cancel", appointment_id, "--actor", "u1")
    assert cancelled.returncode == 0
