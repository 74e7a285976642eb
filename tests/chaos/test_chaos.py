"""Proof under fire. Each scenario drives appointments through the public contract while something breaks,
then checks the invariants: every live appointment owns exactly one Zoom meeting with the right title, time
and duration; every cancelled one none; no workflow task failed; the audit chain verifies.

RATIO_ZOOM_CHAOS_APPOINTMENTS (default 24) and RATIO_ZOOM_CHAOS_KILLS (default 8) scale it up for a long
manual run (e.g. 200 and 25)."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from temporalio.client import Client

from connections.service import ConnectionService
from emulators.zoom_server.app import EmulatorConfig
from emulators.smtp_sink.testing import running_smtp_sink
from emulators.zoom_server.testing import ZoomEmulatorHandle, running_zoom_emulator
from ratio_zoom.converter import data_converter
from ratio_zoom.services import Services
from storage.models import ZoomConnection
from tests.chaos.harness import Report, TemporalServer, Traffic, check_invariants, spawn_workers
from tests.conftest import make_settings

APPOINTMENTS = int(os.environ.get("RATIO_ZOOM_CHAOS_APPOINTMENTS", "24"))
KILLS = int(os.environ.get("RATIO_ZOOM_CHAOS_KILLS", "8"))
SCENARIOS = ["worker_kills", "zoom_faults", "token_expiry", "postgres_restart", "temporal_restart", "disconnect"]


@pytest.fixture
async def chaos_emulator() -> AsyncIterator[ZoomEmulatorHandle]:
    async with running_zoom_emulator(EmulatorConfig(client_id="test-client-id", client_secret="test-client-secret")) as emu:
        yield emu


async def _connect(services: Services, emu: ZoomEmulatorHandle, workspace: str) -> None:
    connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom)
    url = await connections.start_connect(workspace, "chaos", "owner", "https://ratio.example/")
    async with httpx.AsyncClient() as http:
        callback = httpx.URL((await http.get(url)).headers["location"])
    assert "connected" in await connections.complete_connect(callback.params["code"], callback.params["state"], None)


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_chaos(scenario: str, fresh_pg_url: str, chaos_emulator: ZoomEmulatorHandle, tmp_path: Path) -> None:
    rng = random.Random(f"{scenario}-20261124")
    server = TemporalServer(tmp_path)
    await server.start()
    queue = f"chaos-{uuid.uuid4().hex[:6]}"
    sink_context = running_smtp_sink()
    sink = sink_context.__enter__()
    settings = make_settings(fresh_pg_url, ZOOM_API_BASE_URL=chaos_emulator.api_base_url,
                             ZOOM_OAUTH_BASE_URL=chaos_emulator.oauth_base_url, TEMPORAL_TASK_QUEUE=queue,
                             SMTP_URL=sink.smtp_url)
    services = Services.create(settings)
    workspace = f"chaos-{scenario}"
    await _connect(services, chaos_emulator, workspace)
    client = await Client.connect(server.address, data_converter=data_converter(settings))
    workers = spawn_workers(settings, server.address, 2)
    report = Report(scenario, APPOINTMENTS)
    traffic = Traffic(client, queue, workspace, rng)
    calls_at_disconnect: int | None = None
    try:
        if scenario == "zoom_faults":
            await chaos_emulator.set_faults([
                {"path": "^/v2/", "kind": "error", "status": 503, "rate": 0.20},
                {"path": "^/v2/", "kind": "lost", "rate": 0.05},
            ], seed=11)
            await chaos_emulator.set_limits(medium_per_second=4, light_per_second=8)
        steps = APPOINTMENTS * 2
        fault_at = {steps // 3, (2 * steps) // 3}
        kill_every = max(1, steps // max(KILLS, 1))
        for step in range(steps):
            if len(traffic.expected) < APPOINTMENTS and (step % 2 == 0 or step < APPOINTMENTS // 3):
                await traffic.book()
            if traffic.expected and rng.random() < 0.7:
                await traffic.change()
            if scenario == "worker_kills" and step % kill_every == 0 and report.faults.get("worker_kills", 0) < KILLS:
                victim = rng.choice(workers)
                victim.kill()
                victim.start()
                report.faults["worker_kills"] = report.faults.get("worker_kills", 0) + 1
            if step in fault_at:
                if scenario == "token_expiry":
                    async with services.db.transaction() as session:
                        await session.execute(update(ZoomConnection).where(ZoomConnection.workspace_id == workspace).values(
                            access_token_expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
                    await chaos_emulator.advance_clock(3700)  # Zoom now refuses the old access token too
                    report.faults["tokens_expired"] = report.faults.get("tokens_expired", 0) + 1
                elif scenario == "postgres_restart":
                    version = sorted(os.listdir("/etc/postgresql"))[0]
                    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                                   check=True, capture_output=True)
                    report.faults["postgres_restarts"] = report.faults.get("postgres_restarts", 0) + 1
                elif scenario == "temporal_restart":
                    await server.restart()
                    report.faults["temporal_restarts"] = server.restarts
                elif scenario == "disconnect" and calls_at_disconnect is None:
                    connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom)
                    await connections.disconnect(workspace, "chaos-admin", "owner")
                    calls_at_disconnect = len(await chaos_emulator.calls())
                    report.faults["disconnects"] = 1
            await asyncio.sleep(rng.uniform(0.02, 0.15))
        if scenario == "zoom_faults":
            counters = await chaos_emulator.counters()
            report.faults.update({"zoom_5xx": counters.get("fault:error", 0), "zoom_lost": counters.get("fault:lost", 0),
                                  "zoom_429": counters.get("429:per_second", 0)})
            await chaos_emulator.set_faults([])
            await chaos_emulator.set_limits(medium_per_second=20, light_per_second=30)
        if scenario == "token_expiry":
            counters = await chaos_emulator.counters()
            report.faults["refreshes"] = counters.get("oauth_token:refresh", 0)
            report.faults["invalid_grant"] = counters.get("oauth_token:invalid_grant", 0)
        for w in workers:
            if w.process is None or w.process.poll() is not None:
                w.start()
        if scenario == "disconnect":
            # After the disconnect returned: not one Zoom call for the workspace, every workflow settles
            # (detached or cancelled), none fails, and the meetings made before stay in Zoom.
            report.violations = await traffic.settle_detached()
            assert calls_at_disconnect is not None
            extra = len(await chaos_emulator.calls()) - calls_at_disconnect
            if extra:
                report.violations.append(f"{extra} Zoom call(s) after the disconnect returned")
        else:
            report.violations = await check_invariants(traffic, chaos_emulator, settings, sink, report)
        if scenario == "token_expiry":
            assert report.faults["invalid_grant"] == 0  # rotation never raced
    finally:
        for w in workers:
            w.stop()
        server.stop()
        sink_context.__exit__(None, None, None)
        await services.aclose()
    print(report.line())
    assert report.violations == []
