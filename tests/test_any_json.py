"""Any well-formed JSON is a message, never a failure: a wrong type in every field of every message, sent
*raw* through a plain temporalio Client (as a core app in another language would, not through starter/).

Per message: no WorkflowTaskFailed in the history, no signal dropped (each one is in `rejected_requests`
with a reason naming the field), and `await_conference(after_request_id)` answers for it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import schemas as act
from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.temporal import register_search_attributes
from tests.conftest import time_skipping_server_cli
from tests.workflow_fakes import FakeZoom
from workflows.appointment import AppointmentWorkflow

# A value of another JSON type for each kind of field.
WRONG = {"str": 12345, "opt_str": {"not": "a string"}, "int": "abc", "bool": "maybe", "list": "not-a-list"}

SIGNAL_FIELDS: dict[str, dict[str, str]] = {
    "reschedule": {"start_time": "str", "duration_minutes": "int", "timezone": "opt_str"},
    "cancel": {"actor": "str", "reason": "opt_str"},
    "update_details": {"title": "opt_str", "description": "opt_str", "attendees": "list", "conference_provider": "opt_str"},
    "consent": {"granted": "bool", "actor": "str", "subject": "str", "channel": "str", "consent_text_version": "str",
                "occurred_at": "str"},
}
START_FIELDS = {"workspace_id": "str", "booking_type_id": "opt_str", "title": "str", "description": "opt_str",
                "start_time": "str", "duration_minutes": "int", "timezone": "str", "conference_provider": "str",
                "attendees": "list", "note_taking_enabled": "bool"}


def valid_signal(kind: str, request_id: str, now: datetime) -> dict[str, Any]:
    return {
        "reschedule": {"start_time": (now + timedelta(days=3)).isoformat(), "duration_minutes": 45},
        "cancel": {"actor": "u1"},
        "update_details": {"title": "Renamed"},
        "consent": {"granted": True, "actor": "c", "subject": "c", "channel": "web", "consent_text_version": "v1",
                    "occurred_at": now.isoformat()},
    }[kind] | {"request_id": request_id}


def valid_start(appointment_id: str, now: datetime) -> dict[str, Any]:
    return {"appointment_id": appointment_id, "workspace_id": "w1", "title": "Intro call",
            "start_time": (now + timedelta(days=2)).isoformat(), "duration_minutes": 30, "timezone": "Europe/Berlin",
            "conference_provider": "zoom", "attendees": [{"name": "Ada", "email": "ada@example.com"}]}


@pytest.fixture(scope="module")
async def raw_env():
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server_cli(), data_converter=data_converter(None))
    await register_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()


async def no_failed_tasks(handle: WorkflowHandle[Any, Any]) -> None:
    history = [e async for e in handle.fetch_history_events()]
    assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history)


async def start_raw(client: Client, tq: str, payload: Any, appointment_id: str) -> WorkflowHandle[Any, Any]:
    # By name, with a plain dict: exactly what a client in another language sends.
    return await client.start_workflow("AppointmentWorkflow", payload, id=f"appointment-{appointment_id}", task_queue=tq)


@pytest.mark.parametrize("kind", sorted(SIGNAL_FIELDS))
async def test_a_wrong_type_in_any_signal_field_is_a_rejection_in_state(raw_env: WorkflowEnvironment, kind: str) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=1))
    tq = f"tq-{uuid.uuid4()}"
    now = (await raw_env.get_current_time()).astimezone(timezone.utc)
    appointment_id = f"raw-{uuid.uuid4().hex[:8]}"
    async with Worker(raw_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await start_raw(raw_env.client, tq, valid_start(appointment_id, now), appointment_id)
        await handle.execute_update("await_conference", {"timeout_seconds": 60}, result_type=dict)
        sent: dict[str, str] = {}
        for field, shape in SIGNAL_FIELDS[kind].items():
            rid = f"{kind}-{field}"
            await handle.signal(kind, valid_signal(kind, rid, now) | {field: WRONG[shape]})
            sent[rid] = field
        # Not even an object, and a wrongly typed request_id: still no failure, still visible.
        await handle.signal(kind, ["not", "an", "object"])
        await handle.signal(kind, valid_signal(kind, "x", now) | {"request_id": 7})
        for rid in sent:
            answer = await handle.execute_update("await_conference", {"after_request_id": rid, "timeout_seconds": 30},
                                                 result_type=dict)
            assert answer["request_outcome"] == "rejected" and sent[rid] in answer["reason"], (rid, answer)
        state = await handle.query("state", result_type=dict)
        reasons = {r["request_id"]: r["reason"] for r in state["rejected_requests"]}
        for rid, field in sent.items():
            assert field in reasons[rid]
        assert sum(1 for r in state["rejected_requests"] if r["request_id"] == "") == 2  # the last two signals
        assert state["appointment"]["title"] == "Intro call" and state["conference"]["status"] == "ready"
        # The update's own input is any JSON too: a wrong type is answered, not thrown.
        odd = await handle.execute_update("await_conference", {"timeout_seconds": "soon"}, result_type=dict)
        assert odd["request_outcome"] == "rejected" and odd["applied"] is False
        await handle.signal("bot_status", {"delivery_id": 5, "status": []})
        await handle.signal("zoom_connection_changed", "connected")
        await handle.signal("cancel", {"request_id": "c-final", "actor": "u1"})
        await handle.result()
        await no_failed_tasks(handle)
    assert fake.calls == ["create", "delete"]


@pytest.mark.parametrize("field", sorted(START_FIELDS))
async def test_a_wrong_type_in_any_start_field_is_a_rejected_booking(raw_env: WorkflowEnvironment, field: str) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=1))
    tq = f"tq-{uuid.uuid4()}"
    now = (await raw_env.get_current_time()).astimezone(timezone.utc)
    appointment_id = f"raw-{uuid.uuid4().hex[:8]}"
    async with Worker(raw_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await start_raw(raw_env.client, tq, valid_start(appointment_id, now) | {field: WRONG[START_FIELDS[field]]},
                                 appointment_id)
        answer = await handle.execute_update("await_conference", {"timeout_seconds": 60}, result_type=dict)
        state = await handle.query("state", result_type=dict)
        assert answer["conference"]["status"] == "failed" and field in answer["conference"]["reason"], answer
        assert any(field in r["reason"] for r in state["rejected_requests"] if r["kind"] == "book")
        assert state["appointment"]["appointment_id"] == appointment_id
        await handle.signal("cancel", {"request_id": "c", "actor": "u1"})
        await handle.result()
        await no_failed_tasks(handle)
    assert fake.calls == []  # nothing reached Zoom for a booking it could not trust


async def test_a_start_input_that_is_not_an_object_still_runs_and_says_why(raw_env: WorkflowEnvironment) -> None:
    fake = FakeZoom(policy=act.Policy(grace_hours=1))
    tq = f"tq-{uuid.uuid4()}"
    appointment_id = f"raw-{uuid.uuid4().hex[:8]}"
    async with Worker(raw_env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        handle = await start_raw(raw_env.client, tq, "just a string", appointment_id)
        answer = await handle.execute_update("await_conference", {"timeout_seconds": 60}, result_type=dict)
        assert answer["conference"]["status"] == "failed" and "not a JSON object" in answer["conference"]["reason"]
        await handle.signal("cancel", {"request_id": "c", "actor": "u1"})
        await handle.result()
        await no_failed_tasks(handle)
