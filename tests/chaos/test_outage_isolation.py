"""Chaos scenario "outage isolation": one concern never waits behind another.

Appointments are booked with note-taking on and consent granted (a live recording bot each) and confirmed
by email. Then Zoom answers 503 to everything and the SMTP server refuses every recipient for OUTAGE_SECONDS
while clients withdraw consent, reschedule and cancel. The recording-bot provider stays up.

Measured (and reported in docs/reliability.md):
- withdrawal -> bot removed, p50 / p99 (seconds): the bot lane acts at once, whatever Zoom and SMTP do;
- Zoom recovery -> every cancelled appointment's meeting deleted (seconds): recovery is noticed promptly;
- stale PATCHes: PATCH calls reaching a cancelled appointment's meeting more than a second after the cancel
  was sent (must be 0: the cancel supersedes the pending PATCH);
- emails for superseded revisions: messages delivered after recovery that carry a time the appointment no
  longer has, or an invite for an appointment already cancelled (must be 0);
- lanes that escalated (needs attention) during the outage: the bounded retries ran out and said so.
Then every invariant of the other scenarios (ChaosStack.check)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from icalendar import Calendar

from ratio_zoom.contract.appointment import AppointmentInput, AppointmentStateView, Attendee, Cancel, Reschedule
from ratio_zoom.emulators.zoom_server.app import EmulatorConfig
from tests.chaos.conftest import REPORT_LINES
from tests.chaos.harness import ChaosStack, Expected, Report, Traffic, chaos_stack, check_bots, check_emails, retrying

GROUP = 8  # appointments per group: withdraw / cancel / reschedule twice
OUTAGE_SECONDS = 120.0  # long enough for every lane's bounded retry chain to run out and escalate
SLACK_SECONDS = 1.0  # an attempt already on the wire when the cancel arrived may still land this long after


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def book_with_bot(stack: ChaosStack, traffic: Traffic, workspace: str, start: datetime) -> Expected:
    appointment_id = f"chaos-{uuid.uuid4().hex[:10]}"
    title = f"Chaos {appointment_id}"
    booking = AppointmentInput(appointment_id=appointment_id, workspace_id=workspace, title=title,
                               start_time=start.isoformat(), duration_minutes=30, timezone="Europe/Madrid",
                               conference_provider="zoom", note_taking_enabled=True,
                               attendees=[Attendee(name="C", email="c@example.com")])
    e = Expected(booking=booking, workspace=workspace, start=start, duration=30, title=title, note_taking=True)
    traffic.expected[appointment_id] = e
    await retrying(lambda: stack.client.start_workflow("AppointmentWorkflow", booking, id=f"appointment-{appointment_id}",
                                                       task_queue=traffic.queue))
    await traffic.consent(e, True)
    return e


async def settled_with_bots_and_mail(stack: ChaosStack, traffic: Traffic, workspaces: set[str]) -> list[str]:
    problems = await traffic.settle(workspaces)
    for _ in range(120):
        expected = traffic.of(workspaces)
        bot_problems = check_bots(expected, await stack.bots(), await stack.zoom.meetings(), set(traffic.expected))
        mail_problems, _ = check_emails(expected, stack.sink.messages)
        if not bot_problems and not mail_problems:
            return problems
        await asyncio.sleep(1.0)
    return problems + bot_problems + mail_problems


def invites_after(messages: list[dict[str, Any]], index: int) -> list[tuple[str, str, datetime, int]]:
    """(appointment, METHOD, DTSTART, minutes) of every invite delivered from `index` on."""
    out = []
    for stored in messages[index:]:
        msg = email.message_from_string(stored["raw"], policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_type() == "text/calendar":
                cal = Calendar.from_ical(part.get_payload(decode=True))
                event = next(c for c in cal.walk() if c.name == "VEVENT")
                minutes = int((event["DTEND"].dt - event["DTSTART"].dt).total_seconds() // 60)
                out.append((str(event["UID"]).split("@")[0].removeprefix("appointment-"), str(cal["METHOD"]),
                            event["DTSTART"].dt, minutes))
    return out


async def test_outage_isolation(fresh_pg_url: str, tmp_path: Path) -> None:
    began = time.monotonic()
    rng = random.Random("outage_isolation-20261202")
    zoom_config = EmulatorConfig(client_id="test-client-id", client_secret="test-client-secret",
                                 webhook_secret_token="test-webhook-secret")
    report = Report("outage_isolation", 3 * GROUP)
    async with chaos_stack(fresh_pg_url, tmp_path, zoom_config=zoom_config) as stack:
        workspaces = {"chaos-outage-00": "zoom-user-00", "chaos-outage-01": "zoom-user-01"}
        for workspace, user in workspaces.items():
            await stack.connect(workspace, user)
        traffic = Traffic(stack.client, stack.settings.temporal_task_queue, sorted(workspaces), rng)
        base = (datetime.now(timezone.utc) + timedelta(days=2)).replace(second=0, microsecond=0)
        booked = [await book_with_bot(stack, traffic, sorted(workspaces)[i % 2], base + timedelta(minutes=30 * i))
                  for i in range(3 * GROUP)]
        report.violations += await settled_with_bots_and_mail(stack, traffic, set(workspaces))
        withdraw, cancel, twice = booked[:GROUP], booked[GROUP:2 * GROUP], booked[2 * GROUP:]
        bots_before = {b["metadata"]["appointment_id"]: b["id"] for b in await stack.bots()
                       if not b["deleted"] and not b["left"]}
        meetings_of = {m["topic"].split()[1]: m["id"] for m in await stack.zoom.meetings() if not m["deleted"]}

        # -- the outage: Zoom 503 on everything, SMTP refusing every recipient; the bot provider is up ---------
        await stack.zoom.set_faults([{"path": "^/v2/", "kind": "error", "status": 503, "rate": 1.0}], seed=5)
        stack.sink.sink.tempfail_next = 10**9
        outage_began = time.monotonic()
        withdrawn_at: dict[str, float] = {}
        cancel_sent_at: dict[str, datetime] = {}

        async def reschedule(e: Expected, hours: int) -> None:
            start = base + timedelta(days=1, hours=hours)
            rid = f"q-{uuid.uuid4().hex[:8]}"
            await retrying(lambda: traffic.handle(e.appointment_id).signal(
                "reschedule", Reschedule(request_id=rid, start_time=start.isoformat(), duration_minutes=45)))
            e.start, e.duration, e.last_request = start, 45, rid

        for i, e in enumerate(booked):
            await reschedule(e, i)  # a PATCH is now pending on a Zoom that answers 503
        await asyncio.sleep(5.0)
        for i, e in enumerate(booked):
            if e in withdraw:
                withdrawn_at[e.appointment_id] = time.monotonic()
                await traffic.consent(e, False)
            elif e in cancel:
                cancel_sent_at[e.appointment_id] = datetime.now(timezone.utc)
                rid = f"c-{uuid.uuid4().hex[:8]}"
                await retrying(lambda: traffic.handle(e.appointment_id).signal("cancel", Cancel(request_id=rid, actor="chaos")))
                e.cancelled, e.last_request = True, rid
            else:
                await reschedule(e, 100 + i)  # supersedes the first reschedule (and its email revision)
            await asyncio.sleep(rng.uniform(0.05, 0.3))

        removed_after: dict[str, float] = {}
        while time.monotonic() - outage_began < OUTAGE_SECONDS:
            live = {b["id"] for b in await stack.bots() if not b["deleted"] and not b["left"]}
            for e in withdraw:
                if e.appointment_id not in removed_after and bots_before.get(e.appointment_id) not in live:
                    removed_after[e.appointment_id] = time.monotonic() - withdrawn_at[e.appointment_id]
            await asyncio.sleep(0.25)
        escalated = 0
        for e in booked:
            view = await retrying(lambda: traffic.handle(e.appointment_id).query("state", result_type=AppointmentStateView))
            escalated += bool(view.needs_attention)

        # -- recovery ------------------------------------------------------------------------------------------
        await stack.zoom.set_faults([])
        stack.sink.sink.tempfail_next = 0
        recovered = time.monotonic()
        mail_index = len(stack.sink.messages)
        cancelled_ids = {meetings_of[e.appointment_id] for e in cancel if e.appointment_id in meetings_of}
        deleted_within: float | None = None
        while time.monotonic() - recovered < 180:
            alive = {m["id"] for m in await stack.zoom.meetings() if not m["deleted"]}
            if not cancelled_ids & alive:
                deleted_within = time.monotonic() - recovered
                break
            await asyncio.sleep(0.5)

        report.violations += await stack.check(traffic, set(workspaces), report)

        # -- the figures -------------------------------------------------------------------------------------------
        calls = await stack.zoom.calls()
        stale = 0
        for e in cancel:
            meeting = meetings_of.get(e.appointment_id)
            after = cancel_sent_at[e.appointment_id] + timedelta(seconds=SLACK_SECONDS)
            stale += sum(1 for c in calls if c["method"] == "PATCH" and c["path"].endswith(f"/{meeting}")
                         and datetime.fromisoformat(c["at"].replace("Z", "+00:00")) > after)
        final = {e.appointment_id: e for e in booked}
        superseded_mail = 0
        for appointment_id, method, start, minutes in invites_after(stack.sink.messages, mail_index):
            e = final.get(appointment_id)
            if e is None:
                continue
            if e.cancelled and method != "CANCEL":
                superseded_mail += 1
            elif not e.cancelled and (method, start, minutes) != ("REQUEST", e.start, e.duration):
                superseded_mail += 1
        missing = [e.appointment_id for e in withdraw if e.appointment_id not in removed_after]
        if missing:
            report.violations.append(f"{len(missing)} bot(s) still live {OUTAGE_SECONDS:.0f} s after the withdrawal "
                                     f"during the outage, e.g. {missing[0]}")
        if deleted_within is None:
            report.violations.append("cancelled appointments' meetings were not deleted within 180 s of Zoom's recovery")
        if stale:
            report.violations.append(f"{stale} stale PATCH(es) reached a cancelled appointment's meeting")
        if superseded_mail:
            report.violations.append(f"{superseded_mail} email(s) for superseded revisions were delivered")
        if escalated == 0:
            report.violations.append("no lane escalated during the outage: the retries are not bounded")
        removal = list(removed_after.values()) or [float("nan")]
        report.faults.update({"zoom_503_seconds": int(OUTAGE_SECONDS), "smtp_refusing_seconds": int(OUTAGE_SECONDS),
                              "withdrawals": len(withdraw), "cancels": len(cancel), "double_reschedules": len(twice),
                              "stale_patches_after_cancel": stale, "emails_for_superseded_revisions": superseded_mail,
                              "lanes_escalated": escalated})
    line = (f"{report.line()}; withdrawal -> bot removed p50 {pct(removal, .5):.1f} s, p99 {pct(removal, .99):.1f} s; "
            f"Zoom recovery -> cancelled meetings deleted {deleted_within if deleted_within is None else round(deleted_within, 1)} s; "
            f"scenario took {time.monotonic() - began:.0f} s")
    REPORT_LINES.append(line)
    REPORT_LINES.extend(f"  violation: {v}" for v in report.violations[:20])
    print("\n".join(REPORT_LINES[-1 - min(20, len(report.violations)):]))
    assert report.violations == []
