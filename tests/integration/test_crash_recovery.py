"""Exactly-once under fire: the worker runs as a subprocess and is SIGKILLed at random instants, including
inside the create activity after Zoom created the meeting (the emulator holds the answer back). Afterwards
the emulator's inspection endpoint must show exactly one live meeting per live appointment, with the right
time and duration, and none for cancelled ones."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timedelta, timezone

from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from ratio_zoom.contract.appointment import AppointmentInput, Cancel, ConferenceResult, Reschedule
from tests.integration.conftest import Stack, ws
from tests.integration.worker_process import WorkerProcess, worker_env

APPOINTMENTS = 16
KILLS = 6


async def test_worker_killed_at_random_points_leaves_exactly_one_meeting_each(
    temporal_env: WorkflowEnvironment, stack: Stack
) -> None:
    rng = random.Random(20261124)
    workspace = ws()
    await stack.connect_workspace(workspace)
    # A second task queue served only by the killable subprocess (the in-process worker of `stack` serves
    # its own queue and stays out of this).
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    settings = stack.settings.model_copy(update={"temporal_task_queue": task_queue})
    worker = WorkerProcess(worker_env(settings, temporal_env.client.service_client.config.target_host))
    await stack.emulator.set_faults([{"path": "^/v2/", "kind": "delay_after", "latency_ms": 300}])
    base = (datetime.now(timezone.utc) + timedelta(days=2)).replace(second=0, microsecond=0)
    expected: dict[str, tuple[datetime, int] | None] = {}
    handles: dict[str, WorkflowHandle] = {}
    last_request: dict[str, str | None] = {}
    try:
        worker.start()

        async def book(i: int) -> None:
            appointment_id = f"crash-{uuid.uuid4().hex[:10]}"
            start = base + timedelta(hours=i)
            booking = AppointmentInput(appointment_id=appointment_id, workspace_id=workspace,
                                       title=f"Crash test {appointment_id}", start_time=start.isoformat(),
                                       duration_minutes=30, timezone="Europe/London", conference_provider="zoom")
            handles[appointment_id] = await stack.client.start_workflow(
                "AppointmentWorkflow", booking, id=f"appointment-{appointment_id}", task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            expected[appointment_id] = (start, 30)
            last_request[appointment_id] = None

        for i in range(APPOINTMENTS // 2):
            await book(i)
        for kill in range(KILLS):
            # new bookings keep creates in flight, so some kills land between "Zoom created" and "recorded"
            for i in range(APPOINTMENTS // 2 // KILLS + 1):
                if len(handles) < APPOINTMENTS:
                    await book(len(handles))
            await _until_zoom_traffic(stack)  # the (re)started worker is doing Zoom work now
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            ids = list(handles)
            # traffic while the worker lives and dies: reschedules and cancellations
            for appointment_id in rng.sample(ids, 3):
                if expected[appointment_id] is None:
                    continue
                request_id = f"k{kill}-{uuid.uuid4().hex[:6]}"
                if rng.random() < 0.3:
                    await handles[appointment_id].signal("cancel", Cancel(request_id=request_id, actor="chaos"))
                    expected[appointment_id] = None
                else:
                    start = base + timedelta(days=1, minutes=15 * rng.randint(1, 40))
                    duration = rng.choice([15, 30, 45, 60])
                    await handles[appointment_id].signal("reschedule", Reschedule(
                        request_id=request_id, start_time=start.isoformat(), duration_minutes=duration))
                    expected[appointment_id] = (start, duration)
                last_request[appointment_id] = request_id
            worker.kill()
            worker.start()
        await stack.emulator.set_faults([])
        # Let the last worker settle everything (killed activities retry after the heartbeat timeout).
        for appointment_id, handle in handles.items():
            if expected[appointment_id] is None:
                await asyncio.wait_for(handle.result(), timeout=120)
            else:
                answer = await handle.execute_update(
                    "await_conference", {"after_request_id": last_request[appointment_id], "timeout_seconds": 120},
                    result_type=ConferenceResult)
                assert answer.applied and answer.conference.status == "ready", (appointment_id, answer)
    finally:
        worker.stop()
        await stack.emulator.set_faults([])
    assert worker.kills == KILLS
    meetings = await stack.emulator.meetings()
    violations = []
    for appointment_id, want in expected.items():
        live = [m for m in meetings if m["topic"] == f"Crash test {appointment_id}" and not m["deleted"]]
        if want is None:
            if live:
                violations.append(f"{appointment_id}: cancelled but owns {len(live)} live meeting(s)")
            continue
        if len(live) != 1:
            violations.append(f"{appointment_id}: owns {len(live)} live meetings")
            continue
        start, duration = want
        got = datetime.fromisoformat(live[0]["start_time"].replace("Z", "+00:00"))
        if got != start or live[0]["duration"] != duration:
            violations.append(f"{appointment_id}: meeting at {got} for {live[0]['duration']} min, want {start} / {duration}")
    for handle in handles.values():
        history = [e async for e in handle.fetch_history_events()]
        if any(e.HasField("workflow_task_failed_event_attributes") for e in history):
            violations.append(f"{handle.id}: a workflow task failed")
    from sqlalchemy import select

    from ratio_zoom.storage import audit
    from ratio_zoom.storage.models import AuditEvent

    async with stack.services.db.sessions() as session:
        rows = list((await session.execute(select(AuditEvent.appointment_id, AuditEvent.event).where(
            AuditEvent.workspace_id == workspace))).all())
        chain = await audit.verify_workspace(session, workspace)
    if not chain.ok:
        violations.append(f"audit chain broken at row {chain.first_broken_id}: {chain.problem}")
    for appointment_id, want in expected.items():
        created = sum(1 for a, e in rows if a == appointment_id and e == "meeting.created")
        deleted = sum(1 for a, e in rows if a == appointment_id and e == "meeting.deleted")
        if created != 1 or deleted != (1 if want is None else 0):
            violations.append(f"{appointment_id}: audit has {created} created / {deleted} deleted rows")
    reconciles = sum(1 for c in await stack.emulator.calls() if c["operation"] == "list_meetings")
    print(f"crash test: {APPOINTMENTS} appointments, {worker.kills} kills, {reconciles} create reconciliations, "
          f"{len(violations)} invariant violations")
    assert violations == []


async def _until_zoom_traffic(stack: Stack, timeout: float = 30.0) -> None:
    before = len(await stack.emulator.calls())
    deadline = asyncio.get_running_loop().time() + timeout
    while len(await stack.emulator.calls()) == before:
        if asyncio.get_running_loop().time() > deadline:
            return  # nothing left to do for Zoom: kill anyway
        await asyncio.sleep(0.05)
