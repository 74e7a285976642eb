"""The iCalendar invite (RFC 5545 / iTIP RFC 5546) sent with each confirmation.

A stable UID per appointment and a growing SEQUENCE make calendar clients update the same event on a
reschedule and remove it on METHOD:CANCEL. Times are written in UTC (`...Z`): every client converts them
into the viewer's zone, and no VTIMEZONE rules can drift across daylight-saving changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from icalendar import Calendar, Event, vCalAddress, vText

from ratio_zoom.confirmations.models import InviteFacts, Recipient

PRODID = "-//Ratio//ratio-zoom//EN"


def event_uid(appointment_id: str) -> str:
    return f"appointment-{appointment_id}@ratio-zoom"


def build_invite(facts: InviteFacts, recipient: Recipient, *, now: datetime | None = None) -> bytes:
    cancel = facts.kind == "cancellation"
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "CANCEL" if cancel else "REQUEST")
    event = Event()
    event.add("uid", event_uid(facts.appointment_id))
    event.add("sequence", facts.sequence)
    event.add("dtstamp", (now or datetime.now(timezone.utc)).astimezone(timezone.utc))
    start = facts.start.astimezone(timezone.utc)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=facts.duration_minutes))
    event.add("summary", facts.title)
    description = facts.description or ""
    if facts.join_url and not cancel:
        event.add("location", facts.join_url)
        event.add("url", facts.join_url)
        description = f"{description}\n\nJoin the Zoom meeting: {facts.join_url}".strip()
    if description:
        event.add("description", description)
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{facts.organizer_email}")
    organizer.params["cn"] = vText(facts.organizer_name)
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{recipient.email}")
    if recipient.name:
        attendee.params["cn"] = vText(recipient.name)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("NEEDS-ACTION")
    attendee.params["rsvp"] = vText("FALSE")
    event.add("attendee", attendee)
    cal.add_component(event)
    return cal.to_ical()
