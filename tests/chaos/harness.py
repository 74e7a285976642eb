"""The chaos harness: a Temporal dev server we can restart (SQLite file kept), worker processes we can kill,
the HTTP API as its own process, the Zoom and Recall emulators with faults, an SMTP sink, real PostgreSQL;
random traffic through the public contract only; and one invariant checker that reads the emulators'
inspection endpoints, the mailbox and the database."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
from icalendar import Calendar
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.contract.appointment import (AppointmentInput, AppointmentStateView, Attendee, Cancel, ConferenceResult, Consent, Reschedule,
                                  UpdateDetails)
from ratio_zoom.emulators.recording_bot.app import BotEmulatorConfig, create_app as recall_app
from ratio_zoom.emulators.smtp_sink.testing import running_smtp_sink
from ratio_zoom.emulators.zoom_server.app import EmulatorConfig
from ratio_zoom.emulators.zoom_server.testing import ZoomEmulatorHandle, free_port, running_zoom_emulator
from ratio_zoom.core.converter import data_converter
from ratio_zoom.connections.services import Services
from ratio_zoom.core.settings import Settings
from ratio_zoom.core.temporal import SEARCH_ATTRIBUTE_FLAGS
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from tests.conftest import make_settings
from tests.integration.worker_process import WorkerProcess, worker_env

# For the log scan (kept in one block: other scenarios are added to this file concurrently).
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from ratio_zoom.connections.repository import read_secrets
from ratio_zoom.storage.models import ZoomConnection

T = TypeVar("T")
RECALL_KEY = "chaos-recall-key"
RECALL_SECRET = "chaos-recall-webhook-secret"
ZOOM_SCOPES = ("meeting:write:meeting meeting:update:meeting meeting:delete:meeting meeting:read:meeting "
               "meeting:read:list_meetings user:read:user")


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
    """What the history of messages we sent implies for one appointment."""

    booking: AppointmentInput
    workspace: str
    cancelled: bool = False
    start: datetime | None = None
    duration: int = 30
    title: str = ""
    note_taking: bool = False
    consent: bool | None = None  # the latest consent message, None before any
    last_request: str | None = None

    @property
    def appointment_id(self) -> str:
        return self.booking.appointment_id

    @property
    def wants_bot(self) -> bool:
        return not self.cancelled and self.note_taking and self.consent is True


@dataclass
class Report:
    scenario: str
    appointments: int
    faults: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def add(self, fault: str, n: int = 1) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + n

    def line(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        return (f"chaos {self.scenario}: {self.appointments} appointments, faults injected: {faults}; "
                f"invariant violations: {len(self.violations)}")


async def retrying(fn: Callable[[], Awaitable[T]], attempts: int = 120) -> T:
    """The core app's behaviour towards Temporal: keep trying while the server restarts."""
    for attempt in range(attempts):
        try:
            return await fn()
        except (RPCError, RuntimeError, ConnectionError):
            await asyncio.sleep(0.25 + 0.05 * attempt)
    raise RuntimeError("Temporal stayed unreachable")


class Traffic:
    """Random interleavings of book / reschedule / details / consent / cancel over several workspaces,
    through the public contract only (the core app's Temporal client)."""

    def __init__(self, client: Client, task_queue: str, workspaces: list[str], rng: random.Random) -> None:
        self.client = client
        self.queue = task_queue
        self.workspaces = workspaces
        self.rng = rng
        self.expected: dict[str, Expected] = {}
        self.base = (datetime.now(timezone.utc) + timedelta(days=2)).replace(second=0, microsecond=0)

    def _start(self) -> datetime:
        return self.base + timedelta(minutes=15 * self.rng.randint(0, 400))

    def handle(self, appointment_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(f"appointment-{appointment_id}")

    async def book(self) -> None:
        appointment_id = f"chaos-{uuid.uuid4().hex[:10]}"
        start = self._start()
        title = f"Chaos {appointment_id}"
        workspace = self.rng.choice(self.workspaces)
        note_taking = self.rng.random() < 0.5
        booking = AppointmentInput(appointment_id=appointment_id, workspace_id=workspace, title=title,
                                   start_time=start.isoformat(), duration_minutes=30, timezone="Europe/Madrid",
                                   conference_provider="zoom", note_taking_enabled=note_taking,
                                   attendees=[Attendee(name="C", email="c@example.com")])
        self.expected[appointment_id] = Expected(booking=booking, workspace=workspace, start=start, duration=30,
                                                 title=title, note_taking=note_taking)
        await retrying(lambda: self.client.start_workflow(
            "AppointmentWorkflow", booking, id=f"appointment-{appointment_id}", task_queue=self.queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING))
        if note_taking and self.rng.random() < 0.5:
            await self.consent(self.expected[appointment_id], True)  # the client consents while booking

    async def consent(self, e: Expected, granted: bool) -> None:
        rid = f"k-{uuid.uuid4().hex[:8]}"
        msg = Consent(request_id=rid, granted=granted, actor="client-portal", subject="client:chaos",
                      channel="web", consent_text_version="2026-01", occurred_at=datetime.now(timezone.utc).isoformat())
        await retrying(lambda: self.handle(e.appointment_id).signal("consent", msg))
        e.consent, e.last_request = granted, rid

    async def change(self) -> None:
        live = [e for e in self.expected.values() if not e.cancelled]
        if not live:
            return
        e = self.rng.choice(live)
        handle = self.handle(e.appointment_id)
        rid = f"q-{uuid.uuid4().hex[:8]}"
        roll = self.rng.random()
        if roll < 0.15:
            await retrying(lambda: handle.signal("cancel", Cancel(request_id=rid, actor="chaos")))
            e.cancelled = True
        elif roll < 0.32:
            title = f"Chaos {e.appointment_id} v{self.rng.randint(2, 99)}"
            await retrying(lambda: handle.signal("update_details", UpdateDetails(request_id=rid, title=title)))
            e.title = title
        elif roll < 0.47:
            # Grants dominate so that bots are dispatched, moved and removed under fire.
            await self.consent(e, self.rng.random() < 0.7)
            return
        else:
            start = self._start()
            duration = self.rng.choice([15, 30, 45, 60, 90])
            await retrying(lambda: handle.signal("reschedule", Reschedule(
                request_id=rid, start_time=start.isoformat(), duration_minutes=duration)))
            e.start, e.duration = start, duration
        e.last_request = rid

    def of(self, workspaces: set[str]) -> list[Expected]:
        return [e for e in self.expected.values() if e.workspace in workspaces]

    async def _await_conference(self, e: Expected, timeout: float) -> ConferenceResult:
        return await retrying(lambda: self.handle(e.appointment_id).execute_update(
            "await_conference", {"after_request_id": e.last_request, "timeout_seconds": timeout},
            result_type=ConferenceResult))

    async def settle_detached(self, workspaces: set[str], timeout: float = 120) -> list[str]:
        """After a disconnect: every open appointment answers with `detached` (or is cancelled)."""
        problems = []
        for e in self.of(workspaces):
            if e.cancelled:
                await asyncio.wait_for(retrying(self.handle(e.appointment_id).result), timeout=timeout)
                continue
            answer = await self._await_conference(e, timeout)
            if answer.conference.status not in ("detached", "ready"):
                problems.append(f"{e.appointment_id}: {answer.conference.status} after disconnect")
        return problems

    async def settle(self, workspaces: set[str], timeout: float = 240) -> list[str]:
        """Every cancelled appointment's workflow completes; every live one applies our last message and is
        `ready` within `timeout` (one parked on Zoom, say until the daily quota resets, may take a while)."""
        problems = []
        deadline = asyncio.get_running_loop().time() + timeout
        for e in self.of(workspaces):
            remaining = max(1.0, deadline - asyncio.get_running_loop().time())
            try:
                if e.cancelled:
                    await asyncio.wait_for(retrying(self.handle(e.appointment_id).result), timeout=remaining)
                    continue
                while True:
                    answer = await self._await_conference(e, min(remaining, 60.0))
                    remaining = deadline - asyncio.get_running_loop().time()
                    if answer.applied and answer.conference.status == "ready":
                        break
                    if answer.conference.status in ("waiting_for_zoom", "pending") and remaining > 0:
                        await asyncio.sleep(1.0)
                        continue
                    problems.append(f"{e.appointment_id}: not settled ({answer.conference.status}, "
                                    f"{answer.conference.reason or answer.reason})")
                    break
            except asyncio.TimeoutError:
                problems.append(f"{e.appointment_id}: did not settle in {timeout:.0f}s")
        return problems

    async def count_status(self, conference_status: str) -> int:
        """How many open appointments report this conference status right now (the `state` query)."""
        count = 0
        for e in self.expected.values():
            if not e.cancelled:
                view = await retrying(lambda: self.handle(e.appointment_id).query("state", result_type=AppointmentStateView))
                count += view.conference.status == conference_status
        return count

    async def failed_workflow_tasks(self) -> list[str]:
        """No workflow may be stuck (or have been stuck) on a failing workflow task: that is a bug, not chaos."""
        problems = []
        for e in self.expected.values():
            history = [ev async for ev in self.handle(e.appointment_id).fetch_history_events()]
            if any(ev.HasField("workflow_task_failed_event_attributes") for ev in history):
                problems.append(f"{e.appointment_id}: a workflow task failed")
        return problems


def check_emails(expected: list[Expected], messages: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Every attendee got what the history implies: the last invite of a live appointment carries its final
    time and duration, a confirmed appointment that was cancelled got a cancellation, nothing was skipped.

    Returns (problems, redeliveries). A redelivery is the same Message-ID arriving twice: the documented
    at-least-once window of SMTP (a worker killed between the server's 250 and our commit); mail clients
    collapse it, so it is counted and reported, not a violation. Two *different* messages for one
    (revision, attendee, kind) cannot happen: the Message-ID is derived from exactly that."""
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
    for e in expected:
        got = last.get(e.appointment_id)
        if e.cancelled:
            if got is not None and got[1] != "CANCEL":
                problems.append(f"{e.appointment_id}: cancelled, but the last invite is {got[1]}")
        elif got is None:
            problems.append(f"{e.appointment_id}: the attendee never got a confirmation")
        elif (got[1], got[2], got[3]) != ("REQUEST", e.start, e.duration):
            problems.append(f"{e.appointment_id}: last invite says {got[1]} {got[2]} {got[3]}m, want {e.start} {e.duration}m")
    return problems, redeliveries


def live_meetings(meetings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_appointment: dict[str, list[dict[str, Any]]] = {}
    for m in meetings:
        if m["topic"].startswith("Chaos ") and not m["deleted"]:
            by_appointment.setdefault(m["topic"].split()[1], []).append(m)
    return by_appointment


def check_meetings(expected: list[Expected], meetings: list[dict[str, Any]], known: set[str]) -> list[str]:
    """Every live appointment owns exactly one meeting with its title, time and duration; a cancelled one none."""
    violations = []
    by_appointment = live_meetings(meetings)
    for e in expected:
        live = by_appointment.get(e.appointment_id, [])
        if e.cancelled:
            if live:
                violations.append(f"{e.appointment_id}: cancelled but owns {len(live)} meeting(s)")
            continue
        if len(live) != 1:
            violations.append(f"{e.appointment_id}: owns {len(live)} live meetings")
            continue
        m = live[0]
        got = datetime.fromisoformat(m["start_time"].replace("Z", "+00:00"))
        if got != e.start or m["duration"] != e.duration or m["topic"] != e.title:
            violations.append(f"{e.appointment_id}: Zoom has {m['topic']!r} {got} {m['duration']}m, "
                              f"want {e.title!r} {e.start} {e.duration}m")
    violations += [f"orphan meeting for unknown appointment {a}" for a in by_appointment if a not in known]
    return violations


def check_bots(expected: list[Expected], bots: list[dict[str, Any]], meetings: list[dict[str, Any]],
               known: set[str]) -> list[str]:
    """Both gates on -> exactly one live bot, on the appointment's live meeting at its start time; otherwise
    none. A live bot whose appointment we never booked is an orphan."""
    violations = []
    join_urls = {a: ms[0]["join_url"] for a, ms in live_meetings(meetings).items() if len(ms) == 1}
    live: dict[str, list[dict[str, Any]]] = {}
    for b in bots:
        if not b["deleted"] and not b["left"]:
            live.setdefault(b["metadata"].get("appointment_id", "?"), []).append(b)
    for e in expected:
        mine = live.get(e.appointment_id, [])
        if not e.wants_bot:
            if mine:
                violations.append(f"{e.appointment_id}: {len(mine)} live bot(s) but the gates are closed "
                                  f"(note-taking {e.note_taking}, consent {e.consent}, cancelled {e.cancelled})")
            continue
        if len(mine) != 1:
            violations.append(f"{e.appointment_id}: wants one bot, has {len(mine)}")
            continue
        bot = mine[0]
        assert e.start is not None
        joins = datetime.fromisoformat(bot["join_at"].replace("Z", "+00:00"))
        if joins != e.start or bot["meeting_url"] != join_urls.get(e.appointment_id):
            violations.append(f"{e.appointment_id}: bot joins {bot['join_at']} (want {e.start.isoformat()}) "
                              f"{'the live meeting' if bot['meeting_url'] == join_urls.get(e.appointment_id) else 'another meeting'}")
    violations += [f"orphan bot for unknown appointment {a}" for a in live if a not in known]
    # One dispatch key is one decision to have a bot: two bots under one key (even if one was removed since)
    # would mean a retry dispatched a duplicate.
    per_key: dict[str, int] = {}
    for b in bots:
        key = b["metadata"].get("dispatch_key", "?")
        per_key[key] = per_key.get(key, 0) + 1
    violations += [f"{n} bots dispatched under one key {key}" for key, n in per_key.items() if n > 1]
    return violations


# -- the log scan: no secret in any line the processes wrote ----------------------------------------------------

# Shapes of the secrets the emulators hand out (so a token rotated away before the scan is still caught),
# and of secrets in URLs. `[redacted]` is what the redactor leaves; a redacted value is not a leak.
LOG_SECRET_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    ("access/refresh token", re.compile(r"\b(?:at|rt)\.[A-Za-z0-9_-]{40,}")),
    ("on-behalf-of token", re.compile(r"\bobf\.[A-Za-z0-9_-]{20,}")),
    ("auth code, OAuth state or bot secret in a query string",
     re.compile(r"[?&](?:code|state|secret)=(?!\[redacted)[^&\s\"']+")),
    ("passcode in a join URL", re.compile(r"(?i)pwd=(?!\[redacted)[^&\s\"']+")),
    ("passcode field", re.compile(r"(?i)\b(?:h323_)?pass(?:word|code)\\?[\"']?\s*[:=]\s*\\?[\"']?(?!\[redacted)\w")),
    ("host start URL", re.compile(r"zak=|/s/\d+\?")),
]


def scan_log_lines(paths: list[Path], known: list[tuple[str, str]]) -> tuple[list[str], int]:
    """Every line of every file against the known secret values (kind, value) and the shapes above.

    Returns (violations, lines scanned). A violation names the file, the line number and the kind of secret,
    never the secret itself (the report is printed in CI)."""
    values = [(kind, value) for kind, value in known if len(value) >= 6]  # shorter would match by chance
    violations: list[str] = []
    lines = 0
    for path in sorted(paths):
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            lines += 1
            kinds = {kind for kind, value in values if value in line}
            kinds |= {kind for kind, pattern in LOG_SECRET_SHAPES if pattern.search(line)}
            violations += [f"log scan: {kind} in {path.name} line {number}" for kind in sorted(kinds)]
    return violations, lines


@dataclass
class ChaosStack:
    """Everything a scenario breaks, wired the way a deployment wires it."""

    server: TemporalServer
    zoom: ZoomEmulatorHandle
    recall_base: str
    sink: Any
    settings: Settings
    services: Services
    client: Client
    workers: list[WorkerProcess]
    api: WorkerProcess
    api_base: str
    background: list[asyncio.Task[None]] = field(default_factory=list)  # a scenario's timed faults
    log_dir: Path | None = None  # every process's stdout and stderr (access logs included), for the log scan
    oauth_secrets: list[tuple[str, str]] = field(default_factory=list)  # auth codes and states seen by connect

    async def connect(self, workspace: str, zoom_user: str) -> None:
        """An Owner connects `workspace` to the Zoom user `zoom_user` (the OAuth flow, against the emulator)."""
        await self.zoom.add_user(zoom_user, f"{zoom_user}@example.com")
        await self.zoom.set_next_consent(user_id=zoom_user, scopes=ZOOM_SCOPES)
        connections = ConnectionService(self.services.db, self.services.vault, self.services.oauth, self.services.zoom)
        url = await connections.start_connect(workspace, "chaos", "owner", "https://ratio.example/")
        async with httpx.AsyncClient() as http:
            callback = httpx.URL((await http.get(url)).headers["location"])
        self.oauth_secrets += [("auth code", callback.params["code"]), ("OAuth state", callback.params["state"])]
        outcome = await connections.complete_connect(callback.params["code"], callback.params["state"], None)
        assert "connected" in outcome, outcome

    async def bots(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=20) as http:
            return list((await http.get(f"{self.recall_base}/_emulator/bots")).json())

    def restart_dead_workers(self) -> None:
        for w in self.workers:
            if not w.running:
                w.start()

    async def check(self, traffic: Traffic, workspaces: set[str], report: Report, *,
                    redeliveries_allowed: bool = False) -> list[str]:
        """All invariants for the appointments of `workspaces`, once their work has settled.

        `redeliveries_allowed`: where an email activity can lose its outcome after the SMTP server accepted
        (a worker SIGKILLed, or the Temporal server down when it reports), the same Message-ID may arrive
        twice; anywhere else that is a violation."""
        expected = traffic.of(workspaces)
        violations = await traffic.settle(workspaces)
        # Emails and bots follow once the conference is settled; an activity on a killed worker resumes only
        # after its heartbeat timeout. Wait (bounded) until both match the history, then judge.
        for _ in range(120):
            email_problems, redeliveries = check_emails(expected, self.sink.messages)
            bot_problems = check_bots(expected, await self.bots(), await self.zoom.meetings(), set(traffic.expected))
            if not email_problems and not bot_problems:
                break
            await asyncio.sleep(1.0)
        violations += email_problems + bot_problems
        report.faults["email_redeliveries_same_message_id"] = redeliveries
        if redeliveries and not redeliveries_allowed:
            violations.append(f"{redeliveries} email(s) delivered twice although nothing could lose a send")
        report.faults["bots_live"] = sum(1 for e in expected if e.wants_bot)
        violations += check_meetings(expected, await self.zoom.meetings(), set(traffic.expected))
        violations += await traffic.failed_workflow_tasks()
        db = Database(self.settings.database_url)
        try:
            async with db.sessions() as session:
                for workspace in sorted(workspaces):
                    chain = await audit.verify_workspace(session, workspace)
                    if not chain.ok:
                        violations.append(f"{workspace}: audit chain broken at row {chain.first_broken_id}: {chain.problem}")
        finally:
            await db.dispose()
        violations += await self.scan_logs(report)
        return violations

    async def known_secrets(self) -> list[tuple[str, str]]:
        """Every secret value this run handed out or stored: tokens, codes and states, bot secrets, the
        service's own secrets, join URLs with their passcodes and host start URLs."""
        s = self.settings
        known = list(self.oauth_secrets)
        known += [("service secret", v.get_secret_value()) for v in (
            s.zoom_client_secret, s.internal_api_token, s.zoom_webhook_secret_token, s.codec_auth_token,
            s.recording_bot_api_key, s.recording_bot_webhook_secret)]
        for ring in (s.token_encryption_keys, s.payload_encryption_keys):
            known += [("encryption key", entry.partition(":")[2]) for entry in ring.get_secret_value().split(",")]
        async with self.services.db.sessions() as session:
            for row in (await session.execute(select(ZoomConnection))).scalars():
                secrets = read_secrets(self.services.vault, row)
                known += [("access/refresh token", t) for t in (secrets.access_token, secrets.refresh_token) if t]
        for bot in await self.bots():
            # The per-bot secret is carried by the OBF-token URL the provider holds (derived, never stored here).
            url = (bot.get("zoom") or {}).get("obf_token_url") or ""
            known += [("bot secret", v) for v in parse_qs(urlsplit(url).query).get("secret", [])]
        for meeting in await self.zoom.meetings():
            known.append(("join URL", meeting["join_url"]))
            known += [("passcode in a join URL", v) for v in re.findall(r"pwd=([^&]+)", meeting["join_url"])]
            known.append(("host start URL", meeting.get("start_url") or ""))
        return known

    async def scan_logs(self, report: Report) -> list[str]:
        """The log scan: zero secrets in every line the worker and API processes wrote."""
        if self.log_dir is None:
            return []
        violations, lines = scan_log_lines(list(self.log_dir.glob("*.log")), await self.known_secrets())
        report.faults["log_lines_scanned"] = lines
        if lines == 0:
            violations.append("log scan: the processes wrote no log line at all (is the capture broken?)")
        return violations


@asynccontextmanager
async def chaos_stack(database_url: str, data_dir: Path, *, workers: int = 2,
                      zoom_config: EmulatorConfig | None = None, zoom_events: bool = False) -> AsyncIterator[ChaosStack]:
    """`zoom_events`: the emulator sends Zoom's signed meeting events to the API process, as Zoom does."""
    async with AsyncExitStack() as stack:
        server = TemporalServer(data_dir)
        await server.start()
        stack.callback(server.stop)
        api_port = free_port()
        config = zoom_config or EmulatorConfig(client_id="test-client-id", client_secret="test-client-secret",
                                               webhook_secret_token="test-webhook-secret")
        if zoom_events:
            config.webhook_url = f"http://127.0.0.1:{api_port}/v1/webhooks/zoom"
        zoom = await stack.enter_async_context(running_zoom_emulator(config))
        recall_base = stack.enter_context(serving(recall_app(BotEmulatorConfig(
            api_key=RECALL_KEY, webhook_secret=RECALL_SECRET,
            webhook_url=f"http://127.0.0.1:{api_port}/v1/webhooks/recording-bot")), free_port(), name="recall"))
        sink = stack.enter_context(running_smtp_sink())
        queue = f"chaos-{uuid.uuid4().hex[:6]}"
        settings = make_settings(database_url, ZOOM_API_BASE_URL=zoom.api_base_url, ZOOM_OAUTH_BASE_URL=zoom.oauth_base_url,
                                 TEMPORAL_TASK_QUEUE=queue, SMTP_URL=sink.smtp_url, API_BIND=f"127.0.0.1:{api_port}",
                                 RECORDING_BOT_API_URL=recall_base, RECORDING_BOT_API_KEY=RECALL_KEY,
                                 RECORDING_BOT_WEBHOOK_SECRET=RECALL_SECRET)
        services = Services.create(settings)
        stack.push_async_callback(services.aclose)
        client = await Client.connect(server.address, data_converter=data_converter(settings))
        env = {**worker_env(settings, server.address), "API_BIND": settings.api_bind}
        env["LOG_LEVEL"] = "INFO"  # the log scan reads everything the processes say, not only warnings
        log_dir = data_dir / "logs"
        processes = [WorkerProcess(env, log_path=log_dir / f"worker-{i}.log") for i in range(workers)]
        api = WorkerProcess(env, command="api", log_path=log_dir / "api.log")
        for p in (*processes, api):
            p.start()
            stack.callback(p.stop)
        api_base = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    if (await http.get(f"{api_base}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the API process did not come up")
        yield ChaosStack(server=server, zoom=zoom, recall_base=recall_base, sink=sink, settings=settings,
                         services=services, client=client, workers=processes, api=api, api_base=api_base,
                         log_dir=log_dir)


__all__ = ["ChaosStack", "Expected", "Report", "TemporalServer", "Traffic", "chaos_stack", "check_bots",
           "check_emails", "check_meetings", "retrying", "scan_log_lines"]
