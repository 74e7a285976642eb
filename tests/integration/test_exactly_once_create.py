"""Exactly-once create across a reschedule (docs/exactly-once.md): the real activity, the Zoom emulator over
HTTP, real PostgreSQL.

A create whose response was lost leaves its outcome unknown; the appointment can then move (new time, new
title) before the operation's next retry chain runs with the same create marker. The retry must find the
meeting the lost attempt made by its marker, even though topic and start no longer match, and adopt it:
one meeting, never two. (A fresh-clone chaos run found a second live meeting before this was fixed.)"""

from __future__ import annotations

import uuid

from temporalio.testing import ActivityEnvironment

from activities import schemas as act
from activities.meetings import MeetingActivities
from tests.integration.conftest import Stack, ws
from tests.integration.zoom_view import live_meetings

CREATE = {"path": "^/v2/users/me/meetings$", "method": "POST"}


async def test_a_retry_after_a_lost_create_adopts_the_meeting_though_the_appointment_moved(stack: Stack) -> None:
    workspace = ws()
    assert "zoom=connected" in await stack.connect_workspace(workspace)
    services = stack.services
    meetings = MeetingActivities(services.db, services.broker, services.zoom)
    appointment = f"a-{uuid.uuid4().hex[:10]}"
    ctx = act.OpContext(workflow_id=f"appointment-{appointment}", run_id="run-1", appointment_id=appointment,
                        workspace_id=workspace, op_id=f"appointment-{appointment}:op:1")
    first = act.MeetingSpec(topic="Intro call", agenda="Plan", start_time="2027-01-12T10:00:00Z", duration=30,
                            timezone="UTC")
    env = ActivityEnvironment()
    before = {m["id"] for m in await live_meetings(stack.emulator)}

    await stack.emulator.set_faults([{**CREATE, "kind": "lost", "count": 1}])  # Zoom creates; the answer is lost
    try:
        try:
            await env.run(meetings.create_meeting, act.CreateMeetingArgs(ctx=ctx, spec=first))
            raise AssertionError("the lost response should have failed the attempt")
        except AssertionError:
            raise
        except Exception:
            pass  # a transport error: outcome unknown, the create intent stays set
    finally:
        await stack.emulator.set_faults([])
    made = [m for m in await live_meetings(stack.emulator) if m["id"] not in before]
    assert len(made) == 1

    # Between the two retry chains the appointment moved and was renamed; the same operation retries.
    moved = first.model_copy(update={"topic": "Intro call (moved)", "start_time": "2027-01-13T15:30:00Z"})
    result = await env.run(meetings.create_meeting, act.CreateMeetingArgs(ctx=ctx, spec=moved))

    assert result.outcome == "adopted" and result.zoom_meeting_id == made[0]["id"]
    after = [m for m in await live_meetings(stack.emulator) if m["id"] not in before]
    assert [m["id"] for m in after] == [made[0]["id"]]  # one meeting for the appointment, not two
