"""`ratio-zoom appointment book|reschedule|cancel|update|consent|show`: the contract from a shell."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from ratio_zoom.contract.appointment import AppointmentInput, Attendee, Cancel, Consent, Reschedule, UpdateDetails
from ratio_zoom.cli.dates import StartTimeError, resolve_start
from ratio_zoom.core.settings import Settings


def add_appointment_commands(sub: Any) -> None:
    appt = sub.add_parser("appointment", help="book and change appointments through the workflow contract")
    verbs = appt.add_subparsers(dest="verb", required=True)
    book = verbs.add_parser("book")
    book.add_argument("appointment_id")
    book.add_argument("--workspace", required=True)
    book.add_argument("--title", required=True)
    book.add_argument("--description")
    book.add_argument("--start", required=True, help="RFC 3339 with offset, or +Nd HH:MM (N days from today, in --timezone)")
    book.add_argument("--duration", type=int, required=True, help="minutes")
    book.add_argument("--timezone", default="UTC")
    book.add_argument("--provider", default="zoom")
    book.add_argument("--attendee", action="append", default=[], help="Name <email> or email")
    book.add_argument("--note-taking", action="store_true")
    book.add_argument("--timeout", type=float, default=30.0)
    resched = verbs.add_parser("reschedule")
    resched.add_argument("appointment_id")
    resched.add_argument("--start", required=True, help="RFC 3339 with offset, or +Nd HH:MM (in --timezone, else UTC)")
    resched.add_argument("--duration", type=int, required=True)
    resched.add_argument("--timezone")
    resched.add_argument("--request-id")
    cancel = verbs.add_parser("cancel")
    cancel.add_argument("appointment_id")
    cancel.add_argument("--actor", required=True)
    cancel.add_argument("--reason")
    cancel.add_argument("--request-id")
    update = verbs.add_parser("update")
    update.add_argument("appointment_id")
    update.add_argument("--title")
    update.add_argument("--description")
    update.add_argument("--provider")
    update.add_argument("--request-id")
    consent = verbs.add_parser("consent")
    consent.add_argument("appointment_id")
    consent.add_argument("--withdraw", action="store_true")
    consent.add_argument("--actor", required=True)
    consent.add_argument("--subject", required=True)
    consent.add_argument("--channel", default="cli")
    consent.add_argument("--text-version", default="v1")
    consent.add_argument("--request-id")
    show = verbs.add_parser("show")
    show.add_argument("appointment_id")


def _attendee(text: str) -> Attendee:
    if "<" in text and text.endswith(">"):
        name, _, email = text[:-1].partition("<")
        return Attendee(name=name.strip(), email=email.strip())
    return Attendee(name="", email=text.strip())


def _rid(value: str | None) -> str:
    return value or f"cli-{uuid.uuid4()}"


async def run_appointment(settings: Settings, args: argparse.Namespace) -> int:
    from starter import Appointments, BookingRejected, connect

    if args.verb in ("book", "reschedule"):
        try:
            args.start = resolve_start(args.start, args.timezone)
        except StartTimeError as exc:
            print(f"ratio-zoom appointment {args.verb}: {exc}")
            return 2
    client = await connect(settings)
    appointments = Appointments(client, task_queue=settings.temporal_task_queue)
    out: Any
    if args.verb == "book":
        booking = AppointmentInput(
            appointment_id=args.appointment_id, workspace_id=args.workspace, title=args.title,
            description=args.description, start_time=args.start, duration_minutes=args.duration,
            timezone=args.timezone, conference_provider=args.provider,
            attendees=[_attendee(a) for a in args.attendee], note_taking_enabled=args.note_taking,
        )
        try:
            out = await appointments.book(booking, timeout_seconds=args.timeout)
        except BookingRejected as exc:
            print(f"booking rejected: {exc}")
            return 1
    elif args.verb == "reschedule":
        rid = _rid(args.request_id)
        await appointments.reschedule(args.appointment_id, Reschedule(
            request_id=rid, start_time=args.start, duration_minutes=args.duration, timezone=args.timezone))
        out = await appointments.await_conference(args.appointment_id, after_request_id=rid)
    elif args.verb == "cancel":
        rid = _rid(args.request_id)
        await appointments.cancel(args.appointment_id, Cancel(request_id=rid, actor=args.actor, reason=args.reason))
        out = {"request_id": rid, "signalled": True}
    elif args.verb == "update":
        rid = _rid(args.request_id)
        await appointments.update_details(args.appointment_id, UpdateDetails(
            request_id=rid, title=args.title, description=args.description, conference_provider=args.provider))
        out = await appointments.await_conference(args.appointment_id, after_request_id=rid)
    elif args.verb == "consent":
        rid = _rid(args.request_id)
        await appointments.record_consent(args.appointment_id, Consent(
            request_id=rid, granted=not args.withdraw, actor=args.actor, subject=args.subject,
            channel=args.channel, consent_text_version=args.text_version,
            occurred_at=datetime.now(timezone.utc).isoformat()))
        out = {"request_id": rid, "signalled": True}
    else:
        out = await appointments.state(args.appointment_id)
    text = out.model_dump_json(indent=2) if hasattr(out, "model_dump_json") else json.dumps(out, indent=2)
    print(text)
    return 0
