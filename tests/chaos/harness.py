"""The chaos harness: a Temporal dev server we can restart (SQLite file kept), worker processes we can kill,
the Zoom emulator with faults, real PostgreSQL; random traffic through the public contract only; and one
invariant checker that reads the emulators' inspection endpoints and the database."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from contract.appointment import AppointmentInput, Attendee, Cancel, ConferenceResult, Reschedule, UpdateDetails
from emulators.zoom_server.testing import ZoomEmulatorHandle, free_port
from ratio_zoom.converter import data_converter
from ratio_zoom.settings import Settings
from ratio_zoom.temporal import SEARCH_ATTRIBUTE_FLAGS
from storage import audit
from tests.integration.worker_process import WorkerProcess, worker_env


class TemporalServer:
    """`temporal server start-dev` with a SQLite file, so a restart keeps every workflow."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.db = data_dir / "temporal.sqlite3"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
        argv = [temporal, "server", "start-dev", "--db-filename", str(self.db), "--port", str(self.port),
                "--headless", "--ip", "127.0.0.1", "--log-level", "error",
                "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"]
        for flag in SEARCH_ATTRIBUTE_FLAGS:
            argv += ["--search-attribute", flag]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(300):
            try:
                client = await Client.connect(self.address)
                await client.service_client.check_health()
                return
            except Exception:  # noqa: BLE001 - the server is still starting
                await asyncio.sleep(0.1)
        raise RuntimeError("temporal dev server did not start")

    async def restart(self) -> None:
        self.stop()
        self.restarts += 1
        await self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Expected:
    booking: AppointmentInput
    cancelled: bool = False
    start: datetime | None = None
    duration: int = 30
    title: str = ""
    last_request: str | None = None


@dataclass
class Report:
    scenario: str
    appointments: int
    faults: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        return (f"chaos {self.scenario}: {self.appointments} appointments, faults injected: {faults}; "
                f"invariant violations: {len(self.violations)}")


class Traffic:
    """Random interleavings of book / reschedule / details / cancel, through the public contract only."""

    def __init__(self, client: Client, task_queue: str, workspace: str, rng: random.Random) -> None:
        self.client = client
        self.queue = task_queue
        self.workspace = workspace
        self.rng = rng
        self.expected: dict[str, Expected] = {}
        self.base = (datetime.now(timezone.utc) + timedelta(days=2)).replace(second=0, microsecond=0)

    async def _retry(self, fn, *args: Any) -> Any:  # type: ignore[no-untyped-def]
        for attempt in range(120):  # the server may be restarting
            try:
                return await fn(*args)
            except (RPCError, RuntimeError, ConnectionError):
                await asyncio.sleep(0.25 + 0.05 * attempt)
        raise RuntimeError("Temporal stayed unreachable")

    async def book(self) -> None:
        appointment_id = f"chaos-{uuid.uuid4().hex[:10]}"
        start = self.base + timedelta(minutes=15 * self.rng.randint(0, 400))
        title = f"Chaos {appointment_id}"
        booking = AppointmentInput(appointment_id=appointment_id, workspace_id=self.workspace, title=title,
                                   start_time=start.isoformat(), duration_minutes=30, timezone="Europe/Madrid",
                                   conference_provider="zoom", attendees=[Attendee(name="C", email="c@example.com")])
        self.expected[appointment_id] = Expected(booking=booking, start=start, duration=30, title=title)
        await self._retry(lambda: self.client.start_workflow(
            "AppointmentWorkflow", booking, id=f"appointment-{appointment_id}", task_queue=self.queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING))

    async def change(self) -> None:
        live = [e for e in self.expected.values() if not e.cancelled]
        if not live:
            return
        e = self.rng.choice(live)
        handle = self.client.get_workflow_handle(f"appointment-{e.booking.appointment_id}")
        rid = f"q-{uuid.uuid4().hex[:8]}"
        roll = self.rng.random()
        if roll < 0.2:
            await self._retry(handle.signal, "cancel", Cancel(request_id=rid, actor="chaos"))
            e.cancelled = True
        elif roll < 0.4:
            title = f"Chaos {e.booking.appointment_id} v{self.rng.randint(2, 99)}"
            await self._retry(handle.signal, "update_details", UpdateDetails(request_id=rid, title=title))
            e.title = title
        else:
            start = self.base + timedelta(minutes=15 * self.rng.randint(0, 400))
            duration = self.rng.choice([15, 30, 45, 60, 90])
            await self._retry(handle.signal, "reschedule", Reschedule(request_id=rid, start_time=start.isoformat(),
                                                                     duration_minutes=duration))
            e.start, e.duration = start, duration
        e.last_request = rid

    async def settle_detached(self, timeout: float = 120) -> list[str]:
        """After a disconnect: every open appointment answers with `detached` (or is cancelled)."""
        problems = []
        for e in self.expected.values():
            handle: WorkflowHandle = self.client.get_workflow_handle(f"appointment-{e.booking.appointment_id}")
            if e.cancelled:
                await asyncio.wait_for(self._retry(handle.result), timeout=timeout)
                continue
            answer = await self._retry(lambda: handle.execute_update(
                "await_conference", {"after_request_id": e.last_request, "timeout_seconds": timeout},
                result_type=ConferenceResult))
            if answer.conference.status not in ("detached", "ready"):
                problems.append(f"{e.booking.appointment_id}: {answer.conference.status} after disconnect")
            history = [ev async for ev in handle.fetch_history_events()]
            if any(ev.HasField("workflow_task_failed_event_attributes") for ev in history):
                problems.append(f"{e.booking.appointment_id}: a workflow task failed")
        return problems

    async def settle(self, timeout: float = 240) -> list[str]:
        problems = []
        for e in self.expected.values():
            handle: WorkflowHandle = self.client.get_workflow_handle(f"appointment-{e.booking.appointment_id}")
            try:
                if e.cancelled:
                    await asyncio.wait_for(self._retry(handle.result), timeout=timeout)
                else:
                    answer = await self._retry(lambda: handle.execute_update(
                        "await_conference", {"after_request_id": e.last_request, "timeout_seconds": timeout},
                        result_type=ConferenceResult))
                    if not answer.applied or answer.conference.status != "ready":
                        problems.append(f"{e.booking.appointment_id}: not settled ({answer.conference.status}, {answer.reason})")
            except asyncio.TimeoutError:
                problems.append(f"{e.booking.appointment_id}: did not settle in {timeout:.0f}s")
        return problems


def check_emails(traffic: Traffic, messages: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Every attendee got what the history implies: the last invite of a live appointment carries its final
    time and duration, a confirmed appointment that was cancelled got a cancellation, nothing was skipped.

    Returns (problems, redeliveries). A redelivery is the same Message-ID arriving twice: the documented
    at-least-once window of SMTP (a worker killed between the server's 250 and our commit); mail clients
    collapse it, so it is counted and reported, not a violation. Two *different* messages for one
    (revision, attendee, kind) cannot happen: the Message-ID is derived from exactly that."""
    import email
    import email.policy

    from icalendar import Calendar

    problems: list[str] = []
    seen: dict[str, int] = {}
    last: dict[str, tuple[int, str, datetime, int]] = {}
    for stored in messages:
        msg = email.message_from_string(stored["raw"], policy=email.policy.default)
        seen[str(msg["Message-ID"])] = seen.get(str(msg["Message-ID"]), 0) + 1
        for part in msg.walk():
            if part.get_content_type() != "text/calendar":
                continue
            cal = Calendar.from_ical(part.get_payload(decode=True))
            event = next(c for c in cal.walk() if c.name == "VEVENT")
            appointment_id = str(event["UID"]).split("@")[0].removeprefix("appointment-")
            sequence = int(event["SEQUENCE"])
            if appointment_id not in last or sequence >= last[appointment_id][0]:
                last[appointment_id] = (sequence, str(cal["METHOD"]), event["DTSTART"].dt,
                                        int((event["DTEND"].dt - event["DTSTART"].dt).total_seconds() // 60))
    redeliveries = sum(n - 1 for n in seen.values() if n > 1)
    for appointment_id, e in traffic.expected.items():
        got = last.get(appointment_id)
        if e.cancelled:
            if got is not None and got[1] != "CANCEL":
                problems.append(f"{appointment_id}: cancelled, but the last invite is {got[1]}")
        elif got is None:
            problems.append(f"{appointment_id}: the attendee never got a confirmation")
        elif (got[1], got[2], got[3]) != ("REQUEST", e.start, e.duration):
            problems.append(f"{appointment_id}: last invite says {got[1]} {got[2]} {got[3]}m, want {e.start} {e.duration}m")
    return problems, redeliveries


async def check_invariants(traffic: Traffic, emulator: ZoomEmulatorHandle, settings: Settings,
                           sink: Any = None, report: Report | None = None) -> list[str]:
    violations = await traffic.settle()
    if sink is not None:
        # Emails go out after the conference settles; an email activity on a killed worker is retried only
        # after its heartbeat timeout. Wait (bounded) until the mailbox matches the history, then judge.
        for _ in range(120):
            email_problems, redeliveries = check_emails(traffic, sink.messages)
            if not email_problems:
                break
            await asyncio.sleep(1.0)
        violations += email_problems
        if report is not None:
            report.faults["email_redeliveries_same_message_id"] = redeliveries
    meetings = await emulator.meetings()
    by_appointment: dict[str, list[dict[str, Any]]] = {}
    for m in meetings:
        if m["topic"].startswith("Chaos ") and not m["deleted"]:
            by_appointment.setdefault(m["topic"].split()[1], []).append(m)
    for appointment_id, e in traffic.expected.items():
        live = by_appointment.get(appointment_id, [])
        if e.cancelled:
            if live:
                violations.append(f"{appointment_id}: cancelled but owns {len(live)} meeting(s)")
            continue
        if len(live) != 1:
            violations.append(f"{appointment_id}: owns {len(live)} live meetings")
            continue
        m = live[0]
        got = datetime.fromisoformat(m["start_time"].replace("Z", "+00:00"))
        if got != e.start or m["duration"] != e.duration or m["topic"] != e.title:
            violations.append(f"{appointment_id}: Zoom has {m['topic']!r} {got} {m['duration']}m, want {e.title!r} {e.start} {e.duration}m")
        handle = traffic.client.get_workflow_handle(f"appointment-{appointment_id}")
        history = [ev async for ev in handle.fetch_history_events()]
        if any(ev.HasField("workflow_task_failed_event_attributes") for ev in history):
            violations.append(f"{appointment_id}: a workflow task failed")
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        async with db.sessions() as session:
            report = await audit.verify_workspace(session, traffic.workspace)
        if not report.ok:
            violations.append(f"audit chain broken at row {report.first_broken_id}: {report.problem}")
    finally:
        await db.dispose()
    return violations


def spawn_workers(settings: Settings, address: str, count: int) -> list[WorkerProcess]:
    env = worker_env(settings, address)
    workers = [WorkerProcess(env) for _ in range(count)]
    for w in workers:
        w.start()
    return workers


__all__ = ["TemporalServer", "Traffic", "Report", "check_invariants", "spawn_workers", "data_converter"]
