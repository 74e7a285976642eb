"""Tokens in use: the cross-process refresh race, a lost refresh response, reconnect, disconnect mid-traffic."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from ratio_zoom.contract.appointment import Reschedule
from ratio_zoom.storage.models import ZoomConnection
from tests.integration.conftest import Stack, ws
from tests.integration.test_appointment_lifecycle import booking


async def _expire_access_token(stack: Stack, workspace: str) -> None:
    """Make the stored token expired for us *and* for Zoom (emulator clock moves past its hour)."""
    async with stack.services.db.transaction() as session:
        await session.execute(update(ZoomConnection).where(ZoomConnection.workspace_id == workspace).values(
            access_token_expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
    await stack.emulator.advance_clock(3700)


async def _counter(stack: Stack, key: str) -> int:
    return int((await stack.emulator.counters()).get(key, 0))


async def test_two_processes_200_calls_one_refresh(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    await _expire_access_token(stack, workspace)
    refreshes_before = await _counter(stack, "oauth_token:refresh")
    invalid_before = await _counter(stack, "oauth_token:invalid_grant")
    argv = [sys.executable, "-m", "tests.integration.refresh_burst", stack.settings.database_url,
            stack.emulator.api_base_url, stack.emulator.oauth_base_url, workspace, "100"]
    # The race is about refreshes, not Zoom's per-second limit (that has its own tests).
    await stack.emulator.set_limits(light_per_second=0)
    try:
        procs = [await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE) for _ in range(2)]
        outputs = [json.loads((await p.communicate())[0].decode().strip().splitlines()[-1]) for p in procs]
    finally:
        await stack.emulator.set_limits(light_per_second=30)
    assert all(p.returncode == 0 for p in procs)
    assert [o["errors"] for o in outputs] == [{}, {}]
    assert sum(o["refreshes"] for o in outputs) == 1
    assert await _counter(stack, "oauth_token:refresh") - refreshes_before == 1
    assert await _counter(stack, "oauth_token:invalid_grant") - invalid_before == 0


async def test_lost_refresh_response_needs_reconnect_then_parked_work_completes(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace)
    booked = await stack.appointments.book(b)
    await _expire_access_token(stack, workspace)
    # Zoom rotates the pair, then the connection drops: we never see the new refresh token.
    await stack.emulator.set_faults([{"path": "^/oauth/token$", "kind": "lost", "count": 1}])
    start = (datetime.now(timezone.utc) + timedelta(days=8)).replace(microsecond=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r1", start_time=start.isoformat(), duration_minutes=30))
    parked = await stack.appointments.await_conference(b.appointment_id, after_request_id="r1")
    assert parked.conference.status == "waiting_for_zoom"
    status = await stack.connections.status(workspace)
    assert status.status == "needs_reconnect" and "invalid_grant" in (status.reason or "")
    events = await _audit_events(stack, workspace)
    assert events.count("connection.refresh_failed") == 1 and events.count("connection.needs_reconnect") == 1

    assert "zoom=connected" in await stack.connect_workspace(workspace)
    for _ in range(60):
        state = await stack.appointments.state(b.appointment_id)
        if state.conference.status == "ready":
            break
        await asyncio.sleep(0.25)
    assert state.conference.status == "ready" and state.conference.zoom_meeting_id == booked.conference.zoom_meeting_id
    meeting = next(m for m in await stack.emulator.meetings() if m["id"] == booked.conference.zoom_meeting_id)
    assert meeting["duration"] == 30


async def test_disconnect_mid_traffic_then_zero_zoom_calls(stack: Stack) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    bookings = [booking(workspace) for _ in range(3)]
    for b in bookings:
        await stack.appointments.book(b)
    await stack.connections.disconnect(workspace, "u-admin", "owner")
    calls_after_disconnect = len(await stack.emulator.calls())
    start = (datetime.now(timezone.utc) + timedelta(days=9)).replace(microsecond=0)
    for b in bookings:
        await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r", start_time=start.isoformat(), duration_minutes=20))
    for b in bookings:
        answer = await stack.appointments.await_conference(b.appointment_id, after_request_id="r")
        assert answer.conference.status == "detached"
        assert "disconnected" in (answer.conference.reason or "")
    new = booking(workspace)
    refused = await stack.appointments.book(new)
    assert refused.conference.status == "detached" and refused.conference.join_url is None
    assert len(await stack.emulator.calls()) == calls_after_disconnect  # not a single Zoom call
    events = await _audit_events(stack, workspace)
    assert events.count("connection.disconnected") == 1
    assert events.count("meeting.detached") == len(bookings)
    live = {m["id"] for m in await stack.emulator.meetings() if not m["deleted"]}
    for b in bookings:  # existing meetings stay in Zoom
        assert (await stack.appointments.state(b.appointment_id)).conference.zoom_meeting_id in live


async def _audit_events(stack: Stack, workspace: str) -> list[str]:
    from sqlalchemy import select

    from ratio_zoom.storage.models import AuditEvent

    async with stack.services.db.sessions() as session:
        return list((await session.execute(select(AuditEvent.event).where(
            AuditEvent.workspace_id == workspace).order_by(AuditEvent.seq))).scalars())
