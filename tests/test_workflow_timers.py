"""Time-skipping tests of AppointmentWorkflow: grace period, pre-start drift check, daily-limit wait,
and bad input that must never fail a workflow task."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import schemas as act
from ratio_zoom.contract.appointment import AppointmentInput, AppointmentStateView, Attendee, Cancel, Reschedule, UpdateDetails
from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.temporal import register_search_attributes
from tests.conftest import time_skipping_server_cli
from tests.workflow_fakes import FakeZoom
from workflows.appointment import AppointmentWorkflow


@pytest.fixture(scope="module")
async def skipping_env():
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server_cli(), data_converter=data_converter(None))
    await register_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()


def booking(now: datetime, **overrides: object) -> AppointmentInput:
    values: dict[str, object] = dict(
        appointment_id=f"a-{uuid.uuid4().hex[:8]}", workspace_id="w1", title="Intro call",
        description="Discuss the plan", start_time=(now + timedelta(days=2)).isoformat(), duration_minutes=30,
        timezone="Europe/Berlin", conference_provider="zoom",
        attendees=[Attendee(name="Ada", email="ada@example.com")])
    values.update(overrides)
    return AppointmentInput(**values)  # type: ignore[arg-type]


async def _state(handle: WorkflowHandle) -> AppointmentStateView:
    return await handle.query("state", result_type=AppointmentStateView)


async def _start(env: WorkflowEnvironment, fake: FakeZoom, task_queue: str, b: AppointmentInput) -> WorkflowHandle:
    return await env.client.start_workflow(AppointmentWorkflow.run, b, id=f"appointment-{b.appointment_id}",
                                           task_queue=task_queue)


async def test_workflow_completes_after_end_plus_grace(skipping_env: WorkflowEnvironment) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=24, pre_start_check_minutes=60))
    tq = f"tq-{uuid.uuid4()}"
    now = await _now(skipping_env)
    async with Worker(skipping_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await _start(skipping_env, fake, tq, booking(now))
        result = await handle.result()
    assert result.status == "completed"
    assert result.conference.status == "ready"
    # create once, then exactly one pre-start check an hour before; nothing else
    assert fake.calls == ["create", "check"]


async def test_pre_start_check_repairs_a_meeting_deleted_inside_zoom(skipping_env: WorkflowEnvironment) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=1, pre_start_check_minutes=60))
    tq = f"tq-{uuid.uuid4()}"
    now = await _now(skipping_env)
    async with Worker(skipping_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await _start(skipping_env, fake, tq, booking(now))
        await handle.execute_update("await_conference", act_await(), result_type=object)
        first = (await _state(handle)).conference.zoom_meeting_id
        fake.meetings.clear()  # the host deleted the meeting inside Zoom
        result = await handle.result()
    assert fake.calls == ["create", "check", "create"]
    assert result.conference.zoom_meeting_id not in (None, first)


async def test_daily_limit_waits_for_the_timer_instead_of_spinning(skipping_env: WorkflowEnvironment) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=1))
    tq = f"tq-{uuid.uuid4()}"
    now = await _now(skipping_env)
    retry_at = (now + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.fail_next.append(ApplicationError("daily limit", retry_at, type=act.ERR_DAILY_LIMIT, non_retryable=True))
    async with Worker(skipping_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await _start(skipping_env, fake, tq, booking(now))
        conference = await handle.execute_update("await_conference", act_await(), result_type=dict)
        assert conference["conference"]["status"] == "waiting_for_zoom"
        assert "daily limit" in (await _state(handle)).last_error
        result = await handle.result()
    assert fake.calls[:2] == ["create", "create"]  # one refused call, one after the wait: no spinning
    assert result.conference.status == "ready"


def bad_signals(now: datetime) -> list[tuple[str, object, str]]:
    soon = (now + timedelta(days=10)).isoformat()
    return [
    ("reschedule", Reschedule(request_id="r-past", start_time="2001-01-01T10:00:00+00:00", duration_minutes=30), "past"),
    ("reschedule", Reschedule(request_id="r-zero", start_time=soon, duration_minutes=0), "positive"),
    ("reschedule", Reschedule(request_id="r-huge", start_time=soon, duration_minutes=3000), "24 hours"),
    ("reschedule", Reschedule(request_id="r-tz", start_time=soon, duration_minutes=30, timezone="Mars/Base"), "time zone"),
    ("reschedule", Reschedule(request_id="r-naive", start_time=soon[:19], duration_minutes=30), "RFC 3339"),
    ("update_details", UpdateDetails(request_id="u-empty", title="  "), "empty"),
    ("update_details", UpdateDetails(request_id="u-long", title="x" * 201), "limit"),
    ("update_details", UpdateDetails(request_id="u-ctl", title="bad\x07title"), "control"),
    ("update_details", UpdateDetails(request_id="u-prov", conference_provider="skype"), "provider"),
    ("update_details", UpdateDetails(request_id="u-mail", attendees=[Attendee(name="x", email="not-an-email")]), "email"),
    ("cancel", Cancel(request_id="", actor="u1"), "request_id"),
    ]


async def test_bad_messages_are_rejected_in_state_and_never_fail_a_task(skipping_env: WorkflowEnvironment) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=1))
    tq = f"tq-{uuid.uuid4()}"
    now = await _now(skipping_env)
    async with Worker(skipping_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await _start(skipping_env, fake, tq, booking(now))
        await handle.execute_update("await_conference", act_await(), result_type=dict)
        bad = bad_signals(now)
        for name, message, _ in bad:
            await handle.signal(name, message)
        await handle.signal("reschedule", Reschedule(request_id="good", start_time=(now + timedelta(days=3)).isoformat(), duration_minutes=45))
        await handle.signal("reschedule", Reschedule(request_id="good", start_time=(now + timedelta(days=4)).isoformat(), duration_minutes=60))
        done = await handle.execute_update("await_conference", act_await("good"), result_type=dict)
        state = await _state(handle)
        await handle.signal("cancel", Cancel(request_id="c1", actor="u1"))
        await handle.signal("cancel", Cancel(request_id="c2", actor="u1"))
        result = await handle.result()
    assert done["request_outcome"] == "applied"
    reasons = {r.request_id: r.reason for r in state.rejected_requests}
    for _, message, fragment in bad:
        assert fragment in reasons[message.request_id], (message.request_id, reasons[message.request_id])
    assert "duplicate request_id" in [r for r in state.rejected_requests if r.request_id == "good"][0].reason
    assert state.appointment.duration_minutes == 45  # the duplicate changed nothing
    assert fake.calls == ["create", "update:duration,start_time", "delete"]
    assert result.status == "cancelled" and result.conference.status == "deleted"
    # c2 arrived after the cancel: rejected or (if it raced the workflow's completion) never delivered
    history = [e async for e in handle.fetch_history_events()]
    assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history)


async def test_invalid_booking_makes_no_zoom_call_and_says_why(skipping_env: WorkflowEnvironment) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=1))
    tq = f"tq-{uuid.uuid4()}"
    now = await _now(skipping_env)
    async with Worker(skipping_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await _start(skipping_env, fake, tq, booking(now, timezone="Nowhere/Land"))
        answer = await handle.execute_update("await_conference", act_await(), result_type=dict)
        await handle.signal("cancel", Cancel(request_id="c1", actor="u1"))
        await handle.result()
    assert answer["conference"]["status"] == "failed" and "time zone" in answer["conference"]["reason"]
    assert fake.calls == []


def act_await(after: str | None = None) -> dict:
    return {"after_request_id": after, "timeout_seconds": 60}


async def _now(env: WorkflowEnvironment) -> datetime:
    return (await env.get_current_time()).astimezone(timezone.utc)
