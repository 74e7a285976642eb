"""One benchmark run, side by side on one Temporal dev server, written to docs/benchmarks.md.

    python -m bench.run [--lifecycles 60] [--runs 3] [--open 10000] [--quota 1000] [--limiter both|on|off]

Measures (medians over --runs where it says so):
  a) lifecycles/s (book -> reschedule -> cancel) vs a bare-Temporal baseline doing the same messages
     with no-op activities, as a ratio (both workers are separate processes);
  b) p50/p99 book-to-join-URL beside the bare update-with-start + one activity (the baseline's first
     step) at the same concurrency, and reschedule-to-PATCH-applied latency;
  c) Zoom calls per lifecycle (the minimum is 3);
  d) history events and bytes of a typical lifecycle, and its budget (activities, workflow tasks, events);
     worker RSS with --open appointment workflows open, and the time to open them;
  e) refresh calls per expired-token burst (2 x 100 concurrent calls; the minimum is 1) and the added
     latency of a call that waits for a refresh held by another process;
  f) completion time of --quota bookings for one Zoom account, the emulator holding Zoom's Pro limits per
     account and category (Light 30/s, Medium 20/s: the create and the exactly-once list share Medium), vs
     the floor of quota/20 seconds, with 429s per booking and as a share of Zoom calls; with the shared
     limiter on and off (--limiter).
Nothing here is a pass/fail threshold: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from ratio_zoom.contract.appointment import AppointmentInput, Attendee, Cancel, Reschedule
from ratio_zoom.emulators.zoom_server.app import EmulatorConfig
from ratio_zoom.emulators.zoom_server.testing import running_zoom_emulator
from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.keyring import KeyRing
from ratio_zoom.connections.services import Services
from ratio_zoom.core.settings import Settings
from ratio_zoom.connections.service import ConnectionService
from starter import Appointments
from ratio_zoom.storage.migrate import upgrade_to_head
from ratio_zoom.storage.models import ZoomConnection
from ratio_zoom.zoom import rate_limits
from workflows.appointment import SEARCH_ATTRIBUTE_KEYS

PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CONCURRENCY = 20
PRO = rate_limits.PLAN_RATES["pro"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lines: list[str] = []

    def out(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    async def run(self) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="ratio-zoom-bench-"))
        db_name = f"ratio_zoom_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        db_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
        upgrade_to_head(db_url)
        temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
        keys = {"TOKEN_ENCRYPTION_KEYS": KeyRing.generate_entry("b1"), "PAYLOAD_ENCRYPTION_KEYS": KeyRing.generate_entry("bp1")}
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal, dev_server_database_filename=str(tmp / "temporal.sqlite3"),
            search_attributes=SEARCH_ATTRIBUTE_KEYS, dev_server_log_level="error")
        try:
            config = EmulatorConfig(client_id="bench", client_secret="bench-secret",
                                    light_per_second=0, medium_per_second=0, daily_create_update_limit=0)
            async with running_zoom_emulator(config) as emu:
                address = env.client.service_client.config.target_host
                queue = f"bench-{uuid.uuid4().hex[:6]}"
                settings = Settings(_env_file=None, DATABASE_URL=db_url, TEMPORAL_ADDRESS=address,  # type: ignore[call-arg]
                                    TEMPORAL_TASK_QUEUE=queue, ZOOM_CLIENT_ID="bench", ZOOM_CLIENT_SECRET="bench-secret",
                                    ZOOM_REDIRECT_URI="http://127.0.0.1:1/cb", ZOOM_API_BASE_URL=emu.api_base_url,
                                    ZOOM_OAUTH_BASE_URL=emu.oauth_base_url, **keys)
                client = await Client.connect(address, data_converter=data_converter(settings))
                services = Services.create(settings)
                workspace = "bench-ws"
                await self._connect(services, emu, workspace)
                # The emulator's daily quota is off for the bench (1,000 creates for one user would exceed
                # Zoom's 100 a day), so is the worker's daily budget; the per-second pacing is what is measured.
                self.worker_env = {**os.environ, **keys, "RATIO_ZOOM_MODE": "dev", "DATABASE_URL": db_url, "TEMPORAL_ADDRESS": address,
                                   "TEMPORAL_TASK_QUEUE": queue, "ZOOM_CLIENT_ID": "bench",
                                   "ZOOM_CLIENT_SECRET": "bench-secret", "ZOOM_API_BASE_URL": emu.api_base_url,
                                   "ZOOM_OAUTH_BASE_URL": emu.oauth_base_url, "LOG_LEVEL": "WARNING",
                                   "ZOOM_PLAN": "pro", "ZOOM_RATE_LIMITS": f"medium={self.args.quota_medium}",
                                   "ZOOM_DAILY_BUDGET": "100000000",
                                   "TEMPORAL_MAX_CACHED_WORKFLOWS": str(self.args.cache)}
                worker = self._start_worker(limiter=self.args.limiter != "off")
                base_queue = f"base-{uuid.uuid4().hex[:6]}"
                baseline = subprocess.Popen([sys.executable, "-m", "bench.baseline", address, base_queue])
                try:
                    await asyncio.sleep(3)
                    self._header(settings)
                    appointments = Appointments(client, task_queue=queue)
                    if self.args.lifecycles:
                        port = address.rsplit(":", 1)[1]
                        worker_pid, baseline_pid = worker.pid, baseline.pid
                        meter = CpuMeter({"our worker": lambda: [worker_pid], "baseline worker": lambda: [baseline_pid],
                                          "Temporal server": lambda: _pids_matching(f"start-dev --port {port}"),
                                          "PostgreSQL": lambda: _pids_matching("postgres: ")})
                        await self._lifecycles(appointments, emu, workspace, await Client.connect(address), base_queue,
                                               meter)
                        await self._history(appointments, workspace)
                        await self._refresh(services, settings, emu, workspace)
                        await self._limiter_cost(services)
                    if self.args.quota:
                        modes = {"both": [True, False], "on": [True], "off": [False]}[self.args.limiter]
                        results = []
                        for limiter in modes:
                            if limiter != (self.args.limiter != "off"):
                                self._stop(worker)
                                worker = self._start_worker(limiter=limiter)
                                await asyncio.sleep(3)
                            results.append(await self._quota(appointments, emu, workspace, limiter))
                        self._quota_report(results)
                    if self.args.open:
                        await self._open_workflows(client, queue, workspace, worker.pid)
                finally:
                    for proc in (worker, baseline):
                        self._stop(proc)
                    await services.aclose()
        finally:
            await env.shutdown()
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            shutil.rmtree(tmp, ignore_errors=True)
        if self.args.out:
            Path(self.args.out).write_text(self._document())

    def _start_worker(self, *, limiter: bool) -> subprocess.Popen[bytes]:
        env = {**self.worker_env, "ZOOM_RATE_LIMITER": "true" if limiter else "false"}
        return subprocess.Popen([sys.executable, "-m", "ratio_zoom.cli.main", "worker"], env=env,
                                stdout=subprocess.DEVNULL)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        proc.wait(timeout=30)

    async def _connect(self, services: Services, emu, workspace: str) -> None:  # type: ignore[no-untyped-def]
        connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom)
        url = await connections.start_connect(workspace, "bench", "owner", "https://ratio.example/")
        async with httpx.AsyncClient() as http:
            callback = httpx.URL((await http.get(url)).headers["location"])
        await connections.complete_connect(callback.params["code"], callback.params["state"], None)

    def _header(self, settings: Settings) -> None:
        self.out("# Benchmarks")
        self.out()
        self.out(f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}: "
                 f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}.")
        load = os.getloadavg()
        self.out("Server mode: `temporal server start-dev` (Server 1.32) with a SQLite file; PostgreSQL 15 for our "
                 "database; the Zoom emulator over HTTP (rate limits off except where a section says otherwise); "
                 "worker and baseline worker in separate processes; payload encryption on for ours; the worker's "
                 "Zoom limiter on (Pro rates) unless a section says otherwise. Load average at the start: "
                 f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores. "
                 f"Command: `python -m bench.run {' '.join(sys.argv[1:])}`.")
        self.out()

    def _booking(self, workspace: str, i: int) -> AppointmentInput:
        start = (datetime.now(timezone.utc) + timedelta(days=3, minutes=i)).replace(microsecond=0)
        return AppointmentInput(appointment_id=f"bench-{uuid.uuid4().hex[:10]}", workspace_id=workspace,
                                title=f"Bench {i}", start_time=start.isoformat(), duration_minutes=30,
                                timezone="Europe/Berlin", conference_provider="zoom",
                                attendees=[Attendee(name="Client", email="client@example.com")])

    async def _lifecycles(self, appointments: Appointments, emu, workspace: str, plain: Client, base_queue: str,  # type: ignore[no-untyped-def]
                          meter: CpuMeter) -> None:
        n = self.args.lifecycles
        ours_rates, base_rates, book_lat, patch_lat, calls_per, base_lat = [], [], [], [], [], []
        ours_cpu: list[dict[str, float]] = []
        base_cpu: list[dict[str, float]] = []
        for _ in range(self.args.runs):
            sem = asyncio.Semaphore(CONCURRENCY)
            calls_before = len(await emu.calls())

            async def ours(i: int) -> None:
                async with sem:
                    b = self._booking(workspace, i)
                    t0 = time.perf_counter()
                    await appointments.book(b)
                    book_lat.append(time.perf_counter() - t0)
                    new_start = (datetime.now(timezone.utc) + timedelta(days=4, minutes=i)).replace(microsecond=0)
                    t1 = time.perf_counter()
                    await appointments.reschedule(b.appointment_id, Reschedule(
                        request_id="r1", start_time=new_start.isoformat(), duration_minutes=45))
                    await appointments.await_conference(b.appointment_id, after_request_id="r1")
                    patch_lat.append(time.perf_counter() - t1)
                    await appointments.cancel(b.appointment_id, Cancel(request_id="c1", actor="bench"))
                    await appointments.handle(b.appointment_id).result()

            t = time.perf_counter()
            meter.start()
            await asyncio.gather(*(ours(i) for i in range(n)))
            ours_rates.append(n / (time.perf_counter() - t))
            ours_cpu.append(meter.stop())
            calls_per.append((len(await emu.calls()) - calls_before) / n)

            async def base(i: int) -> None:
                async with sem:
                    from temporalio.client import WithStartWorkflowOperation

                    wid = f"base-{uuid.uuid4().hex[:10]}"
                    op = WithStartWorkflowOperation("BaselineWorkflow", wid, id=wid, task_queue=base_queue,
                                                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
                    t0 = time.perf_counter()
                    await plain.execute_update_with_start_workflow("await_done", 1, start_workflow_operation=op)
                    base_lat.append(time.perf_counter() - t0)
                    handle = plain.get_workflow_handle(wid)
                    await handle.signal("step", "reschedule")
                    await handle.execute_update("await_done", 2)
                    await handle.signal("step", "cancel")
                    await handle.result()

            t = time.perf_counter()
            meter.start()
            await asyncio.gather(*(base(i) for i in range(n)))
            base_rates.append(n / (time.perf_counter() - t))
            base_cpu.append(meter.stop())
        ours_rate, base_rate = statistics.median(ours_rates), statistics.median(base_rates)
        self.out(f"## Appointment lifecycles ({n} per run, {CONCURRENCY} concurrent, median of {self.args.runs} runs)")
        self.out()
        self.out("| figure | value |")
        self.out("|---|---|")
        self.out(f"| lifecycles/s, ratio-zoom (book -> reschedule -> cancel) | {ours_rate:.1f} |")
        self.out(f"| lifecycles/s, bare-Temporal baseline (same messages, no-op activities) | {base_rate:.1f} |")
        self.out(f"| ratio ours / baseline | {ours_rate / base_rate:.2f} |")
        self.out(f"| book -> join URL, p50 / p99 | {pct(book_lat, .5) * 1000:.0f} ms / {pct(book_lat, .99) * 1000:.0f} ms |")
        self.out(f"| bare update-with-start + one activity (baseline's first step, same concurrency), p50 / p99 | "
                 f"{pct(base_lat, .5) * 1000:.0f} ms / {pct(base_lat, .99) * 1000:.0f} ms |")
        self.out(f"| book p99 / bare p99 | {pct(book_lat, .99) / pct(base_lat, .99):.2f} |")
        self.out(f"| reschedule -> PATCH applied, p50 / p99 | {pct(patch_lat, .5) * 1000:.0f} ms / {pct(patch_lat, .99) * 1000:.0f} ms |")
        self.out(f"| Zoom calls per lifecycle (minimum 3) | {statistics.median(calls_per):.2f} |")
        self.out()
        # Where the CPU goes: both sides share 2 cores with the server, so CPU per lifecycle sets the ratio.
        self.out("CPU per lifecycle (ms, median of runs; the bench process, which also hosts the Zoom emulator, "
                 "is not counted):")
        self.out()
        self.out("| process | ours | baseline |")
        self.out("|---|---|---|")
        for name in meter.groups:
            ours_ms = statistics.median(c[name] for c in ours_cpu) * 1000 / n
            base_ms = statistics.median(c[name] for c in base_cpu) * 1000 / n
            self.out(f"| {name} | {ours_ms:.0f} | {base_ms:.0f} |")
        self.out()

    async def _history(self, appointments: Appointments, workspace: str) -> None:
        b = self._booking(workspace, 999)
        await appointments.book(b)
        new_start = (datetime.now(timezone.utc) + timedelta(days=5)).replace(microsecond=0)
        await appointments.reschedule(b.appointment_id, Reschedule(request_id="r", start_time=new_start.isoformat(), duration_minutes=50))
        await appointments.await_conference(b.appointment_id, after_request_id="r")
        await appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="bench"))
        await appointments.handle(b.appointment_id).result()
        history = await appointments.handle(b.appointment_id).fetch_history()
        size = sum(event.ByteSize() for event in history.events)
        kinds = [event.WhichOneof("attributes") for event in history.events]
        activities = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                      if e.HasField("activity_task_scheduled_event_attributes")]
        tasks = kinds.count("workflow_task_completed_event_attributes")
        markers = [e.marker_recorded_event_attributes.marker_name for e in history.events
                   if e.HasField("marker_recorded_event_attributes")]
        local, patches = markers.count("core_local_activity"), markers.count("core_patch")
        self.out("## History of a typical lifecycle (book -> reschedule -> cancel)")
        self.out()
        self.out(f"{len(history.events)} events, {size / 1024:.1f} KiB of events (payloads encrypted). Budget: "
                 f"{len(activities)} activities ({', '.join(f'{n} x{activities.count(n)}' for n in dict.fromkeys(activities))}), "
                 f"{local} local activities ({patches} patch markers), "
                 f"{tasks} workflow tasks, {kinds.count('workflow_execution_signaled_event_attributes')} signals, "
                 f"{kinds.count('workflow_execution_update_accepted_event_attributes')} updates accepted.")
        self.out()

    async def _refresh(self, services: Services, settings: Settings, emu, workspace: str) -> None:  # type: ignore[no-untyped-def]
        from sqlalchemy import update

        async def expire() -> None:
            async with services.db.transaction() as session:
                await session.execute(update(ZoomConnection).where(ZoomConnection.workspace_id == workspace).values(
                    access_token_expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))

        bursts = []
        for _ in range(self.args.runs):
            await expire()
            before = int((await emu.counters()).get("oauth_token:refresh", 0))
            other = Services.create(settings)  # a second "process": its own engine, pool and broker

            async def burst(svc: Services) -> None:
                await asyncio.gather(*(svc.broker.call(workspace, lambda lease, s=svc: s.zoom.get_me(lease.token))
                                       for _ in range(100)))

            await asyncio.gather(burst(services), burst(other))
            await other.aclose()
            bursts.append(int((await emu.counters()).get("oauth_token:refresh", 0)) - before)
        # added latency: B's call waits while A holds the row lock for a (slow, 300 ms) refresh
        normal = []
        for _ in range(20):
            t = time.perf_counter()
            await services.broker.call(workspace, lambda lease: services.zoom.get_me(lease.token))
            normal.append(time.perf_counter() - t)
        await emu.set_faults([{"path": "^/oauth/token$", "kind": "latency", "latency_ms": 300}])
        waits = []
        for _ in range(self.args.runs):
            await expire()
            other = Services.create(settings)
            holder = asyncio.create_task(services.broker.call(workspace, lambda lease: services.zoom.get_me(lease.token)))
            await asyncio.sleep(0.05)
            t = time.perf_counter()
            await other.broker.call(workspace, lambda lease: other.zoom.get_me(lease.token))
            waits.append(time.perf_counter() - t)
            await holder
            await other.aclose()
        await emu.set_faults([])
        self.out("## Token refresh")
        self.out()
        self.out("| figure | value |")
        self.out("|---|---|")
        self.out(f"| refresh calls per expired-token burst (2 brokers x 100 concurrent calls; minimum 1) | {statistics.median(bursts):.0f} (runs: {bursts}) |")
        self.out(f"| a normal call, p50 | {pct(normal, .5) * 1000:.1f} ms |")
        self.out(f"| a call waiting for a 300 ms refresh held by the other broker, p50 | {pct(waits, .5) * 1000:.0f} ms "
                 f"(added: {(pct(waits, .5) - pct(normal, .5)) * 1000:.0f} ms) |")
        self.out()

    async def _limiter_cost(self, services: Services) -> None:
        """What the shared limiter adds to one Zoom call when nothing has to wait (its database round trip),
        alone and with 200 callers contending for one account's row."""
        from ratio_zoom.connections.limiter import LimiterConfig, PaceKeys, ZoomLimiter

        unlimited = LimiterConfig(per_second={"light": 1e6, "medium": 1e6, "heavy": 1e6}, headroom=1.0,
                                  daily_budget=10**9)
        limiter = ZoomLimiter(services.db, unlimited)
        self.out("## What the shared limiter costs per Zoom call (PostgreSQL, nothing waits)")
        self.out()
        self.out("| call | one at a time | 200 at once on one account |")
        self.out("|---|---|---|")
        for endpoint, what in (("get_meeting", "get / delete (a slot)"),
                               ("create_meeting", "create / update (a slot and the daily count)")):
            key = f"bench-cost-{uuid.uuid4().hex[:8]}"
            keys = PaceKeys(account=key, user=key)  # one user alone in its account
            await limiter.acquire(keys, endpoint)
            t = time.perf_counter()
            for _ in range(200):
                await limiter.acquire(keys, endpoint)
            alone = (time.perf_counter() - t) / 200
            t = time.perf_counter()
            await asyncio.gather(*(limiter.acquire(keys, endpoint) for _ in range(200)))
            crowded = (time.perf_counter() - t) / 200
            self.out(f"| {what} | {alone * 1000:.1f} ms | {crowded * 1000:.1f} ms per call ({1 / crowded:.0f} calls/s on one row) |")
        self.out()

    async def _quota(self, appointments: Appointments, emu, workspace: str, limiter: bool) -> dict[str, object]:  # type: ignore[no-untyped-def]
        n = self.args.quota
        # Zoom's Pro limits per account and category (Medium as --quota-medium); the daily quota off.
        await emu.set_limits(medium_per_second=self.args.quota_medium, light_per_second=PRO["light"], daily=0)
        sem = asyncio.Semaphore(self.args.quota_concurrency)
        runs: list[dict[str, float]] = []
        for run in range(self.args.runs):
            counters = await emu.counters()
            limited_before = sum(v for k, v in counters.items() if k.startswith("429:"))
            calls_before = len(await emu.calls())

            async def one(i: int, run: int = run) -> None:
                async with sem:
                    await self._book_until_ready(appointments, self._booking(workspace, 10_000 + run * n + i))

            t = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            elapsed = time.perf_counter() - t
            calls = await emu.calls()
            counters = await emu.counters()
            limited = sum(v for k, v in counters.items() if k.startswith("429:")) - limited_before
            mine = calls[calls_before:]
            runs.append({"elapsed": elapsed, "limited": limited, "calls": len(mine),
                         "lists": sum(1 for c in mine if c["operation"] == "list_meetings")})
            await asyncio.sleep(2)  # let the emulator's per-second windows empty between runs
        await emu.set_limits(medium_per_second=0, light_per_second=0)
        return {"limiter": limiter, "runs": runs}

    def _quota_report(self, results: list[dict[str, object]]) -> None:
        n = self.args.quota
        medium = self.args.quota_medium
        floor = n / medium
        limits = ("Zoom's Pro limits" if medium == PRO["medium"] else f"Pro limits with Medium lowered to {medium}/s")
        self.out(f"## {n} bookings for one Zoom account under {limits} (Medium {medium}/s: create and list; "
                 f"Light {PRO['light']}/s), {self.args.quota_concurrency} concurrent, median of {self.args.runs} runs")
        self.out()
        self.out(f"The floor is {floor:.0f} s ({n} creates at {medium}/s). The worker is told the same limits "
                 f"(`ZOOM_PLAN=pro`, `ZOOM_RATE_LIMITS=medium={medium}`); it aims at `ZOOM_RATE_HEADROOM` (default 95%) of them.")
        self.out()
        self.out("| limiter | time (x floor) | 429s | 429s per booking | 429s / Zoom calls | lists | runs (time / 429s / calls) |")
        self.out("|---|---|---|---|---|---|---|")
        for result in results:
            runs: list[dict[str, float]] = result["runs"]  # type: ignore[assignment]
            elapsed = statistics.median(r["elapsed"] for r in runs)
            limited = statistics.median(r["limited"] for r in runs)
            calls = statistics.median(r["calls"] for r in runs)
            lists = statistics.median(r["lists"] for r in runs)
            share = statistics.median(r["limited"] / r["calls"] for r in runs if r["calls"])
            detail = "; ".join(f"{r['elapsed']:.0f} s / {r['limited']:.0f} / {r['calls']:.0f}" for r in runs)
            self.out(f"| {'on' if result['limiter'] else 'off'} | {elapsed:.1f} s ({elapsed / floor:.2f}x) | "
                     f"{limited:.0f} | {limited / n:.2f} | {share * 100:.1f}% of {calls:.0f} | {lists:.0f} | {detail} |")
        self.out()

    @staticmethod
    async def _book_until_ready(appointments: Appointments, booking: AppointmentInput) -> None:
        """What the core app does: book (idempotent: update-with-start, USE_EXISTING) and, while the meeting
        is not there yet, wait again. Under a rate limit a wait can outlast one update RPC; the SQLite dev
        server also cancels some under this load. Neither loses the booking, so both are simply retried."""
        for _ in range(60):
            try:
                result = await appointments.book(booking, timeout_seconds=50)
                if result.conference.status == "ready":
                    return
            except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
                await asyncio.sleep(1)
        raise RuntimeError(f"{booking.appointment_id} had no meeting after 60 waits")

    async def _open_workflows(self, client: Client, queue: str, workspace: str, worker_pid: int) -> None:
        n = self.args.open
        query = f'WorkflowType="AppointmentWorkflow" AND ExecutionStatus="Running" AND WorkspaceId="{workspace}" ' \
                'AND ConferenceStatus="ready"'
        already = (await client.count_workflows(query)).count
        sem = asyncio.Semaphore(50)
        t = time.perf_counter()

        async def start(i: int) -> None:
            async with sem:
                b = self._booking(workspace, 20_000 + i)
                await client.start_workflow("AppointmentWorkflow", b, id=f"appointment-{b.appointment_id}",
                                            task_queue=queue)

        await asyncio.gather(*(start(i) for i in range(n)))
        started = time.perf_counter() - t
        # wait until every one of them has its meeting (the worker has run all of them at least once)
        deadline = time.monotonic() + 1800
        ready = 0
        while time.monotonic() < deadline:
            ready = (await client.count_workflows(query)).count - already
            if ready >= n:
                break
            await asyncio.sleep(5)
        settled = time.perf_counter() - t
        rss = _rss_mib(worker_pid)
        self.out(f"## {n} open appointment workflows")
        self.out()
        self.out(f"Started in {started:.0f} s ({n / started:.0f}/s); {ready} had their meeting after {settled:.0f} s. "
                 f"Worker RSS with all {n} open: {rss:.0f} MiB "
                 f"(the worker caches at most {self.args.cache} workflow instances, `TEMPORAL_MAX_CACHED_WORKFLOWS`; "
                 "the rest live in Temporal).")
        self.out()

    def _document(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids_matching(fragment: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if fragment in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds per process group over a phase of the benchmark (Linux /proc)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups  # looked up at start and stop: PostgreSQL backends come and go
        self._start: dict[tuple[str, int], float] = {}

    def _now(self) -> dict[tuple[str, int], float]:
        return {(name, pid): _cpu_seconds(pid) for name, pids in self.groups.items() for pid in pids()}

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        used = dict.fromkeys(self.groups, 0.0)
        for (name, pid), value in self._now().items():
            used[name] += value - self._start.get((name, pid), 0.0)
        return used


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifecycles", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--quota", type=int, default=300, help="bookings for one account (the issue's figure: 1000)")
    parser.add_argument("--quota-concurrency", type=int, default=50)
    parser.add_argument("--cache", type=int, default=200, help="the worker's TEMPORAL_MAX_CACHED_WORKFLOWS")
    parser.add_argument("--quota-medium", type=int, default=PRO["medium"],
                        help="the account's Medium limit per second (Pro: 20; the issue's harsher figure: 10)")
    parser.add_argument("--limiter", choices=["both", "on", "off"], default="both",
                        help="run the --quota phase with the worker's shared Zoom limiter on, off, or both")
    parser.add_argument("--out", default="docs/benchmarks.md")
    asyncio.run(Bench(parser.parse_args()).run())
    sys.stdout.flush()
    os._exit(0)  # the SDK runtime can crash at interpreter exit (sdk-python #300)


if __name__ == "__main__":
    main()
