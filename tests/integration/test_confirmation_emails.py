"""Attendees get the join URL by email, with invites that follow reschedules and the cancellation,
exactly once per (appointment, revision, attendee, kind)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar
from sqlalchemy import select, update
from temporalio.testing import WorkflowEnvironment

from activities import schemas as act
from activities.emails import EmailActivities
from ratio_zoom.confirmations.smtp import SmtpConfig, SmtpSender
from ratio_zoom.connections.notify import temporal_notifier
from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.contract.appointment import Attendee, Cancel, Reschedule
from ratio_zoom.emulators.smtp_sink.testing import SinkHandle, running_smtp_sink
from ratio_zoom.connections.services import Services
from ratio_zoom.worker_app import build_worker
from starter import Appointments
from ratio_zoom.storage.models import EmailOutbox
from tests.conftest import make_settings
from tests.integration.conftest import Stack, ws
from tests.integration.test_appointment_lifecycle import booking


@pytest.fixture
async def mail_stack(temporal_env: WorkflowEnvironment, pg_database_url: str, zoom_emulator) -> AsyncIterator[tuple[Stack, SinkHandle]]:  # type: ignore[no-untyped-def]
    with running_smtp_sink() as sink:
        queue = f"mail-{uuid.uuid4().hex[:8]}"
        settings = make_settings(pg_database_url, ZOOM_API_BASE_URL=zoom_emulator.api_base_url,
                                 ZOOM_OAUTH_BASE_URL=zoom_emulator.oauth_base_url, TEMPORAL_TASK_QUEUE=queue,
                                 SMTP_URL=sink.smtp_url, EMAIL_FROM="Ratio <no-reply@ratio.example>")
        services = Services.create(settings)
        client = temporal_env.client
        connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom,
                                        notify=temporal_notifier(client))
        async with build_worker(client, services, task_queue=queue):
            yield Stack(settings=settings, services=services, connections=connections, client=client,
                        appointments=Appointments(client, task_queue=queue), task_queue=queue,
                        emulator=zoom_emulator), sink
        await services.aclose()


def invites(sink: SinkHandle, appointment_id: str) -> list[tuple[str, str, int, str, str]]:
    """(recipient, METHOD, SEQUENCE, Message-ID, text) of every message about the appointment, in order."""
    out = []
    for stored in sink.messages:
        msg = email.message_from_string(stored["raw"], policy=email.policy.default)
        cal = text = None
        for part in msg.walk():
            if part.get_content_type() == "text/calendar":
                cal = Calendar.from_ical(part.get_payload(decode=True))
            elif part.get_content_type() == "text/plain":
                text = part.get_content()
        assert cal is not None and text is not None
        event = next(c for c in cal.walk() if c.name == "VEVENT")
        if str(event["UID"]) != f"appointment-{appointment_id}@ratio-zoom":
            continue
        out.append((stored["to"][0], str(cal["METHOD"]), int(event["SEQUENCE"]), str(msg["Message-ID"]), text))
    return out


async def test_confirmation_update_and_cancellation_reach_every_attendee(mail_stack) -> None:  # type: ignore[no-untyped-def]
    stack, sink = mail_stack
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace, attendees=[Attendee(name="Ada", email="ada@example.com"),
                                      Attendee(name="Bert", email="bert@example.com", timezone="Europe/Berlin")])
    booked = await stack.appointments.book(b)
    start = (datetime.now(timezone.utc) + timedelta(days=5)).replace(microsecond=0, second=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r1", start_time=start.isoformat(), duration_minutes=60))
    await stack.appointments.await_conference(b.appointment_id, after_request_id="r1")
    # The email lane runs beside the Zoom lane: wait (bounded) for the update to go out before cancelling,
    # or the cancel would rightly supersede it (an update nobody needs any more is never sent).
    for _ in range(100):
        if len(invites(sink, b.appointment_id)) >= 4:
            break
        await asyncio.sleep(0.1)
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c1", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()
    got = invites(sink, b.appointment_id)
    assert [(to, method, seq) for to, method, seq, _, _ in got] == [
        ("ada@example.com", "REQUEST", 1), ("bert@example.com", "REQUEST", 1),
        ("ada@example.com", "REQUEST", 2), ("bert@example.com", "REQUEST", 2),
        ("ada@example.com", "CANCEL", 3), ("bert@example.com", "CANCEL", 3)]
    assert booked.conference.join_url in got[0][4] and "Europe/Berlin" in got[1][4]
    assert len({message_id for *_, message_id, _ in got}) == 6


async def test_one_refusing_mailbox_does_not_block_the_others(mail_stack) -> None:  # type: ignore[no-untyped-def]
    stack, sink = mail_stack
    workspace = ws()
    await stack.connect_workspace(workspace)
    sink.sink.reject = {"gone@example.com"}
    b = booking(workspace, attendees=[Attendee(name="Gone", email="gone@example.com"), Attendee(name="Ok", email="ok@example.com")])
    await stack.appointments.book(b)
    for _ in range(40):
        if invites(sink, b.appointment_id):
            break
        await asyncio.sleep(0.25)
    assert [to for to, *_ in invites(sink, b.appointment_id)] == ["ok@example.com"]
    # The outbox row turns `sent` only after the server's 250 is committed: a moment after the sink has it.
    for _ in range(40):
        async with stack.services.db.sessions() as session:
            statuses = sorted((await session.execute(select(EmailOutbox.status).where(
                EmailOutbox.appointment_id == b.appointment_id))).scalars())
        if statuses == ["failed", "sent"]:
            break
        await asyncio.sleep(0.25)
    assert statuses == ["failed", "sent"]
    sink.sink.reject = set()
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()


async def test_a_worker_killed_between_send_and_record_neither_skips_nor_multiplies(mail_stack) -> None:  # type: ignore[no-untyped-def]
    """The outbox row is left `sending` (the crash happened after the SMTP server accepted the message,
    before we recorded it). The retry sends again with the *same* Message-ID, which mail clients collapse;
    rows already `sent` are never sent again."""
    stack, sink = mail_stack
    activities = EmailActivities(stack.services.db, stack.services.vault,
                                 SmtpSender(SmtpConfig.from_url(sink.smtp_url, allow_plaintext=True)),  # loopback sink
                                 "no-reply@ratio.example")
    appointment_id = f"mail-{uuid.uuid4().hex[:8]}"
    args = act.SendConfirmationsArgs(
        ctx=act.OpContext(workflow_id=f"appointment-{appointment_id}", run_id="r", appointment_id=appointment_id,
                          workspace_id="w-mail", op_id="op-1"),
        kind="confirmation", revision=1, title="Intro", start_time="2030-01-01T10:00:00Z", duration_minutes=30,
        timezone="UTC", join_url="https://zoom.example/j/1?pwd=x",
        attendees=[act.EmailAttendee(email="one@example.com"), act.EmailAttendee(email="two@example.com")])
    from temporalio.testing import ActivityEnvironment

    env = ActivityEnvironment()
    first = await env.run(activities.send_confirmations, args)
    assert (first.sent, first.already_sent) == (2, 0)
    async with stack.services.db.transaction() as session:  # simulate: "two" was accepted by SMTP, not recorded
        await session.execute(update(EmailOutbox).where(EmailOutbox.appointment_id == appointment_id,
                                                        EmailOutbox.id == select(EmailOutbox.id).where(
                                                            EmailOutbox.appointment_id == appointment_id).order_by(
                                                            EmailOutbox.id.desc()).limit(1).scalar_subquery()).values(status="sending"))
    again = await env.run(activities.send_confirmations, args)
    assert (again.sent, again.already_sent) == (1, 1)
    third = await env.run(activities.send_confirmations, args)
    assert (third.sent, third.already_sent) == (0, 2)
    got = invites(sink, appointment_id)
    per_recipient = {to: {mid for t, _, _, mid, _ in got if t == to} for to, *_ in got}
    assert per_recipient == {"one@example.com": {got[0][3]}, "two@example.com": {got[1][3]}}  # one Message-ID each
    assert [to for to, *_ in got].count("one@example.com") == 1
