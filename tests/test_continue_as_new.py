"""Continue-as-new carries the whole state: the meeting, the appointment, and request-ID de-duplication.

A dev server of its own suggests continue-as-new after 40 history events, so a few reschedules trigger it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import schemas as act
from ratio_zoom.contract.appointment import AppointmentStateView, Cancel, Reschedule
from ratio_zoom.core.converter import data_converter
from tests.conftest import temporal_cli
from tests.test_workflow_timers import booking
from tests.workflow_fakes import FakeZoom
from workflows.appointment import SEARCH_ATTRIBUTE_KEYS, AppointmentWorkflow


async def test_state_survives_continue_as_new() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=SEARCH_ATTRIBUTE_KEYS,
        data_converter=data_converter(None),
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"])
    try:
        fake = FakeZoom(policy=act.Policy(grace_hours=1))
        tq = f"can-{uuid.uuid4().hex[:6]}"
        now = datetime.now(timezone.utc)
        b = booking(now)
        async with Worker(env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
            handle = await env.client.start_workflow(AppointmentWorkflow.run, b, id=f"appointment-{b.appointment_id}", task_queue=tq)
            first_run = handle.result_run_id
            for i in range(12):
                start = (now + timedelta(days=3, hours=i)).replace(microsecond=0).isoformat()
                await handle.signal("reschedule", Reschedule(request_id=f"r{i}", start_time=start, duration_minutes=30 + i))
                await handle.execute_update("await_conference", {"after_request_id": f"r{i}", "timeout_seconds": 30}, result_type=dict)
            latest = env.client.get_workflow_handle(handle.id)
            description = await latest.describe()
            assert description.run_id != first_run  # it continued as new at least once
            # a request ID seen in an earlier run is still recognised as a duplicate
            await latest.signal("reschedule", Reschedule(request_id="r0", start_time=(now + timedelta(days=9)).isoformat(), duration_minutes=90))
            await latest.execute_update("await_conference", {"timeout_seconds": 30}, result_type=dict)
            state = await latest.query("state", result_type=AppointmentStateView)
            assert state.appointment.duration_minutes == 41 and state.last_applied_request_id == "r11"
            assert any(r.request_id == "r0" and "duplicate" in r.reason for r in state.rejected_requests)
            assert state.conference.status == "ready" and state.conference.zoom_meeting_id == next(iter(fake.meetings))
            assert fake.calls.count("create") == 1  # the new run did not create a second meeting
            await latest.signal("cancel", Cancel(request_id="c", actor="u"))
            await latest.result()
        assert fake.meetings == {}
    finally:
        await env.shutdown()


async def test_a_waiting_update_is_answered_when_the_workflow_continues_as_new() -> None:
    """An update waiting for a request whose PATCH is parked (a 429's Retry-After) must not hang until its own
    timeout when continue-as-new is suggested: it is answered ("ask again") and the new run applies the request."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=SEARCH_ATTRIBUTE_KEYS,
        data_converter=data_converter(None),
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=30"])
    try:
        fake = FakeZoom(policy=act.Policy(grace_hours=1))
        tq = f"can-{uuid.uuid4().hex[:6]}"
        now = datetime.now(timezone.utc)
        b = booking(now)
        async with Worker(env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
            handle = await env.client.start_workflow(AppointmentWorkflow.run, b, id=f"appointment-{b.appointment_id}", task_queue=tq)
            first_run = handle.result_run_id
            await handle.execute_update("await_conference", {"timeout_seconds": 30}, result_type=dict)
            asked_again = 0
            for i in range(8):
                fake.fail_next.append(ApplicationError("rate limited", type=act.ERR_RATE_LIMITED,
                                                       next_retry_delay=timedelta(seconds=3)))
                latest = env.client.get_workflow_handle(handle.id)
                start = (now + timedelta(days=3, hours=i)).replace(microsecond=0).isoformat()
                await latest.signal("reschedule", Reschedule(request_id=f"r{i}", start_time=start, duration_minutes=30 + i))
                began = asyncio.get_running_loop().time()
                answer = await latest.execute_update(
                    "await_conference", {"after_request_id": f"r{i}", "timeout_seconds": 300}, result_type=dict)
                assert asyncio.get_running_loop().time() - began < 30, "an update hung"
                if answer["request_outcome"] == "pending":
                    assert "ask again" in answer["reason"]
                    asked_again += 1
                    again = await env.client.get_workflow_handle(handle.id).execute_update(
                        "await_conference", {"after_request_id": f"r{i}", "timeout_seconds": 60}, result_type=dict)
                    assert again["request_outcome"] == "applied"
                else:
                    assert answer["request_outcome"] == "applied"
            assert asked_again > 0, "continue-as-new never met a waiting update: the test proved nothing"
            latest = env.client.get_workflow_handle(handle.id)
            assert (await latest.describe()).run_id != first_run
            state = await latest.query("state", result_type=AppointmentStateView)
            assert state.appointment.duration_minutes == 37 and state.last_applied_request_id == "r7"
            assert fake.calls.count("create") == 1
            await latest.signal("cancel", Cancel(request_id="c", actor="u"))
            await latest.result()
        assert fake.meetings == {}
    finally:
        await env.shutdown()
