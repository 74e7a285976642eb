"""Proof under fire. Each scenario drives appointments (book, reschedules, detail changes, consent,
cancellations, randomly interleaved) through the public contract while something breaks, then checks the
invariants from the emulators' inspection endpoints, the mailbox and the database:

- every live appointment owns exactly one Zoom meeting with the right title, time and duration; every
  cancelled one none; no orphan meeting;
- with note-taking on and consent granted exactly one live recording bot on that meeting at its start, and
  otherwise none; no orphan bot;
- every attendee's last invite matches the final time (or is a cancellation);
- no workflow task ever failed; the audit chain of every workspace verifies.

Sizes: `worker_kills` runs 200 appointments and 24 SIGKILLs over two worker processes; the others run 40.
RATIO_ZOOM_CHAOS_APPOINTMENTS and RATIO_ZOOM_CHAOS_KILLS override both for a long manual run
(e.g. `RATIO_ZOOM_CHAOS_APPOINTMENTS=1000 RATIO_ZOOM_CHAOS_KILLS=100 pytest tests/chaos -s`)."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from ratio_zoom.emulators.zoom_server.app import EmulatorConfig
from ratio_zoom.storage.models import ZoomConnection
from tests.chaos.conftest import REPORT_LINES
from tests.chaos.harness import ChaosStack, Report, Traffic, chaos_stack, live_meetings

OVERRIDE_APPOINTMENTS = os.environ.get("RATIO_ZOOM_CHAOS_APPOINTMENTS")
OVERRIDE_KILLS = os.environ.get("RATIO_ZOOM_CHAOS_KILLS")
DAILY_LIMIT = 20  # per Zoom user and UTC day in the daily_limit scenario: about half of what its traffic needs
DAILY_RESET_IN = 45.0  # seconds from connect to the emulator's 00:00 UTC in the daily_limit scenario

Hook = Callable[["Run"], Awaitable[None]]


@dataclass
class Run:
    """One scenario in flight: the stack, the traffic, the report, and the workspaces it uses."""

    stack: ChaosStack
    traffic: Traffic
    report: Report
    rng: random.Random
    workspaces: dict[str, str]  # workspace -> Zoom user
    # workspace -> index in the emulator's call log when its Zoom link was cut (disconnect / deauthorization)
    cut_at: dict[str, int] = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    appointments: int = 40
    workspaces: int = 1
    # Zoom allows 100 meeting creates/updates per user and UTC day; the traffic spreads over enough hosts
    # (one workspace each) to stay under it, except where the scenario is about that limit (None).
    per_workspace: int | None = 30
    kills: int = 0
    zoom_config: dict[str, object] = field(default_factory=dict)
    before: Hook | None = None  # after connecting, before traffic
    at_third: tuple[Hook, Hook] | None = None  # at 1/3 and 2/3 of the traffic
    after: Hook | None = None  # after the traffic, before judging
    redeliveries_allowed: bool = False  # see ChaosStack.check
    zoom_events: bool = False  # the emulator sends meeting events to the API (see chaos_stack)


# -- fault injectors --------------------------------------------------------------------------------------------

async def zoom_faults_on(run: Run) -> None:
    await run.stack.zoom.set_faults([
        {"path": "^/v2/", "kind": "error", "status": 503, "rate": 0.20},
        {"path": "^/v2/", "kind": "lost", "rate": 0.05},
    ], seed=11)
    # 429 bursts: tight per-second limits, Retry-After first in seconds, then as a date, then missing.
    await run.stack.zoom.set_limits(medium_per_second=2, light_per_second=5, retry_after_format="seconds")
    await burst(run)


async def burst(run: Run, size: int = 16) -> None:
    """A booking rush: `size` bookings at once, far above the per-second limit of meeting creates."""
    await asyncio.gather(*(run.traffic.book() for _ in range(size)))
    run.report.add("booking_bursts")


async def retry_after_as_date(run: Run) -> None:
    await run.stack.zoom.set_limits(retry_after_format="date")
    await burst(run)


async def retry_after_missing(run: Run) -> None:
    await run.stack.zoom.set_limits(retry_after_format="none")
    await burst(run)


async def zoom_faults_off(run: Run) -> None:
    counters = await run.stack.zoom.counters()
    run.report.faults.update({"zoom_5xx": counters.get("fault:error", 0), "zoom_lost": counters.get("fault:lost", 0),
                              "zoom_429": counters.get("429:per_second", 0), "zoom_calls": len(await run.stack.zoom.calls())})
    await run.stack.zoom.set_faults([])
    await run.stack.zoom.set_limits(medium_per_second=20, light_per_second=30, retry_after_format="seconds")


async def expire_tokens(run: Run) -> None:
    async with run.stack.services.db.transaction() as session:
        await session.execute(update(ZoomConnection).values(
            access_token_expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
    await run.stack.zoom.advance_clock(3700)  # Zoom now refuses the old access tokens too
    run.report.add("tokens_expired")


async def refresh_counts(run: Run) -> None:
    counters = await run.stack.zoom.counters()
    run.report.faults["refreshes"] = counters.get("oauth_token:refresh", 0)
    run.report.faults["invalid_grant"] = counters.get("oauth_token:invalid_grant", 0)
    if run.report.faults["invalid_grant"]:
        run.report.violations.append("a refresh token was used twice (rotation raced)")


async def restart_postgres(run: Run) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                   check=True, capture_output=True)
    run.report.add("postgres_restarts")


async def restart_temporal(run: Run) -> None:
    await run.stack.server.restart()
    run.report.faults["temporal_restarts"] = run.stack.server.restarts


async def day_ends_soon(run: Run) -> None:
    """Move the emulator's clock so that its 00:00 UTC is DAILY_RESET_IN seconds away; the daily quota is
    DAILY_LIMIT, so it runs out mid-traffic. Shortly before the reset the next day's quota is raised: the
    parked workflows must sleep through to 00:00 on their own timers and then finish the work."""
    now = datetime.now(timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    await run.stack.zoom.advance_clock((midnight - now).total_seconds() - DAILY_RESET_IN)

    async def next_day_has_room() -> None:
        await asyncio.sleep(DAILY_RESET_IN - 5)
        run.report.faults["daily_429"] = (await run.stack.zoom.counters()).get("429:daily", 0)
        run.report.faults["parked_until_midnight"] = await run.traffic.count_status("waiting_for_zoom")
        await run.stack.zoom.set_limits(daily=10_000)

    run.stack.background.append(asyncio.create_task(next_day_has_room()))


async def daily_limit_judged(run: Run) -> None:
    await asyncio.gather(*run.stack.background)
    daily = run.report.faults.get("daily_429", 0)
    if daily == 0 or run.report.faults.get("parked_until_midnight", 0) == 0:
        run.report.violations.append("the daily limit never parked anything: the scenario proved nothing")
    # Parking, not spinning: each appointment meets the exhausted quota at most once a day.
    if daily > len(run.traffic.expected):
        run.report.violations.append(f"{daily} daily-limit 429s for {len(run.traffic.expected)} appointments: spinning")


async def _cut(run: Run, workspace: str, how: Callable[[], Awaitable[None]], fault: str) -> None:
    await how()
    run.cut_at[workspace] = len(await run.stack.zoom.calls())
    run.report.add(fault)


async def disconnect_first(run: Run) -> None:
    workspace = sorted(run.workspaces)[0]

    async def in_app() -> None:
        # The core app's call: an Owner clicks Disconnect (the API purges, revokes and tells the workflows).
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{run.stack.api_base}/v1/workspaces/{workspace}/zoom/disconnect",
                                       json={"actor_id": "chaos-admin", "actor_role": "owner"},
                                       headers={"Authorization": f"Bearer {run.stack.settings.internal_api_token.get_secret_value()}"})
        assert response.status_code == 200 and response.json()["status"] == "disconnected", response.text

    await _cut(run, workspace, in_app, "disconnects")


async def deauthorize_second(run: Run) -> None:
    workspace = sorted(run.workspaces)[1]

    async def webhook() -> None:
        # Zoom's signed app_deauthorized event, delivered to the API process like Zoom delivers it.
        delivered = await run.stack.zoom.send_webhook(event="app_deauthorized", user_id=run.workspaces[workspace],
                                                      url=f"{run.stack.api_base}/v1/webhooks/zoom")
        assert delivered["status"] == 200 and "deauthorized" in delivered["body"], delivered

    await _cut(run, workspace, webhook, "deauthorizations")


async def _host_edits(run: Run, count: int, edit: Callable[[dict[str, Any]], Awaitable[None]], fault: str) -> None:
    """The host, inside Zoom, on `count` live meetings of appointments that are not cancelled."""
    wanted = {a for a, e in run.traffic.expected.items() if not e.cancelled}
    by_appointment = live_meetings(await run.stack.zoom.meetings())
    owned = [ms[0] for a, ms in sorted(by_appointment.items()) if a in wanted and len(ms) == 1]
    for meeting in run.rng.sample(owned, min(count, len(owned))):
        await edit(meeting)
        run.report.add(fault)


async def host_deletes(run: Run) -> None:
    await _host_edits(run, 6, lambda m: run.stack.zoom.delete_meeting_in_zoom(m["id"]), "host_deletions")


async def host_moves(run: Run) -> None:
    async def move(meeting: dict[str, Any]) -> None:
        start = datetime.fromisoformat(meeting["start_time"].replace("Z", "+00:00")) + timedelta(hours=5)
        await run.stack.zoom.edit_meeting_in_zoom(meeting["id"], topic="Renamed by the host",
                                                  start_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"))

    await _host_edits(run, 6, move, "host_moves")


SCENARIOS = [
    Scenario("worker_kills", appointments=200, kills=24, redeliveries_allowed=True),
    Scenario("zoom_faults", before=zoom_faults_on, at_third=(retry_after_as_date, retry_after_missing),
             after=zoom_faults_off),
    Scenario("token_expiry", at_third=(expire_tokens, expire_tokens), after=refresh_counts),
    Scenario("daily_limit", per_workspace=None, zoom_config={"daily_create_update_limit": DAILY_LIMIT}, before=day_ends_soon,
             after=daily_limit_judged),
    Scenario("postgres_restart", at_third=(restart_postgres, restart_postgres)),
    Scenario("temporal_restart", at_third=(restart_temporal, restart_temporal), redeliveries_allowed=True),
    Scenario("disconnect_and_deauthorization", workspaces=3, at_third=(disconnect_first, deauthorize_second)),
    # Ratio is the source of truth: meetings the host deletes or moves inside Zoom are recreated or patched
    # back (Zoom's meeting events reach the API), and every invariant still holds at the end.
    Scenario("host_changes", zoom_events=True, at_third=(host_deletes, host_moves)),
]


async def kill_workers(run: Run, kills: int, traffic_done: asyncio.Event) -> None:
    """SIGKILL a random worker at random moments (during the traffic and while the backlog drains), then
    start it again, until `kills` kills."""
    while run.report.faults.get("worker_kills", 0) < kills:
        await asyncio.sleep(run.rng.uniform(0.3, 1.2 if not traffic_done.is_set() else 2.5))
        victim = run.rng.choice(run.stack.workers)
        victim.kill()
        run.report.add("worker_kills")
        victim.start()


async def judge_cut_workspaces(run: Run) -> list[str]:
    """After a disconnect or deauthorization returned: not one Zoom call for that workspace (a call with its
    dead token is caught by the emulator's `token_owner`), its workflows settle detached or cancelled, and the
    meetings made before stay in Zoom."""
    cut = set(run.cut_at)
    violations = await run.traffic.settle_detached(cut)
    calls = await run.stack.zoom.calls()
    for workspace, index in sorted(run.cut_at.items()):
        user = run.workspaces[workspace]
        late = [c for c in calls[index:] if user in (c["user_id"], c["token_owner"])]
        if late:
            violations.append(f"{workspace}: {len(late)} Zoom call(s) after its connection was cut, e.g. {late[0]}")
    return violations


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_chaos(scenario: Scenario, fresh_pg_url: str, tmp_path: Path) -> None:
    appointments = int(OVERRIDE_APPOINTMENTS or scenario.appointments)
    kills = int(OVERRIDE_KILLS or scenario.kills) if scenario.kills else 0
    rng = random.Random(f"{scenario.name}-20261202")
    zoom_config = EmulatorConfig(client_id="test-client-id", client_secret="test-client-secret",
                                 webhook_secret_token="test-webhook-secret", **scenario.zoom_config)  # type: ignore[arg-type]
    async with chaos_stack(fresh_pg_url, tmp_path, zoom_config=zoom_config, zoom_events=scenario.zoom_events) as stack:
        count = max(scenario.workspaces, -(-appointments // scenario.per_workspace) if scenario.per_workspace else 1)
        workspaces = {f"chaos-{scenario.name[:12]}-{i:02d}": f"zoom-user-{i:02d}" for i in range(count)}
        for workspace, user in workspaces.items():
            await stack.connect(workspace, user)
        traffic = Traffic(stack.client, stack.settings.temporal_task_queue, sorted(workspaces), rng)
        run = Run(stack, traffic, Report(scenario.name, appointments), rng, workspaces)
        if scenario.before:
            await scenario.before(run)
        traffic_done = asyncio.Event()
        killer = asyncio.create_task(kill_workers(run, kills, traffic_done)) if kills else None
        steps = appointments * 2
        thirds = {steps // 3: 0, (2 * steps) // 3: 1}
        for step in range(steps):
            if len(traffic.expected) < appointments and (step % 2 == 0 or step < appointments // 3):
                await traffic.book()
            if traffic.expected and rng.random() < 0.7:
                await traffic.change()
            if scenario.at_third and step in thirds:
                await scenario.at_third[thirds[step]](run)
            await asyncio.sleep(rng.uniform(0.02, 0.15))
        traffic_done.set()
        run.report.appointments = len(traffic.expected)
        if killer is not None:
            await killer
        if scenario.after:
            await scenario.after(run)
        stack.restart_dead_workers()
        connected = set(workspaces) - set(run.cut_at)
        if run.cut_at:
            run.report.violations += await judge_cut_workspaces(run)
        run.report.violations += await stack.check(traffic, connected, run.report,
                                                   redeliveries_allowed=scenario.redeliveries_allowed)
    REPORT_LINES.append(run.report.line())
    REPORT_LINES.extend(f"  violation: {v}" for v in run.report.violations[:20])
    print("\n".join(REPORT_LINES[-1 - min(20, len(run.report.violations)):]))
    assert run.report.violations == []
