"""The iCalendar invite (RFC 5545, iTIP RFC 5546) attached to each attendee email.

- One `UID` per appointment (`appointment-{id}@ratio-zoom`) and the caller's growing `SEQUENCE`: calendar
  clients update the same event on a reschedule or a new join URL and remove it on `METHOD:CANCEL`.
- Times are UTC (`DTSTART:20260328T140000Z`), not `TZID` + `VTIMEZONE`. The appointment is an instant (the
  Zoom meeting is scheduled as a UTC instant too); UTC in the invite states exactly that instant, which
  every client renders in its viewer's own zone. A `TZID` would make clients re-derive the instant from
  wall-clock time with *their* copy of the zone rules (most ignore an embedded VTIMEZONE for well-known
  names), so a rules update on either side could put the calendar entry and the Zoom meeting an hour
  apart. The human-facing zone is written in the email itself.
- Only the recipient is listed as `ATTENDEE`: each attendee gets their own invite, so one attendee's
  address is never disclosed to another. `RSVP=FALSE`: replies would go to a no-reply organizer address.
"""

from __future__ import annotations

from datetime import datetime, timezone

from icalendar import Calendar, Conference, Event, vCalAddress, vText

from confirmations.models import Attendee, InviteFacts

PRODID = "-//Ratio//ratio-zoom confirmations//EN"
UID_DOMAIN = "ratio-zoom"


def event_uid(appointment_id: str) -> str:
    """The UID every invite about this appointment shares, whatever its kind or revision."""
    return f"appointment-{appointment_id}@{UID_DOMAIN}"


def ics_description(facts: InviteFacts) -> str:
    """The event's DESCRIPTION: the appointment's own description, then how to join (or that it is off)."""
    paragraphs = [facts.description] if facts.description else []
    join_url = facts.attendee_join_url
    if join_url is not None:
        paragraphs.append(f"Join the Zoom meeting: {join_url}")
    else:
        paragraphs.append("This appointment has been cancelled.")
    return "\n\n".join(paragraphs)


def build_invite(facts: InviteFacts, attendee: Attendee, *, now: datetime | None = None) -> Calendar:
    """The VCALENDAR for one attendee. `now` is DTSTAMP (pass a stored timestamp to rebuild it identically)."""
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", facts.kind.ics_method)

    event = Event()
    event.add("uid", event_uid(facts.appointment_id))
    event.add("sequence", facts.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", facts.start)
    event.add("dtend", facts.end)
    event.add("summary", facts.display_title)
    event.add("description", ics_description(facts))
    event.add("status", "CANCELLED" if facts.cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    join_url = facts.attendee_join_url
    if join_url is not None:
        event.add("location", join_url)
        event.add("url", join_url)
        # RFC 7986 CONFERENCE: clients that know it show a "join" button instead of a plain location.
        event.conferences = [Conference(join_url, feature="VIDEO", label="Zoom meeting")]
    event.add("organizer", _address(facts.organizer_email, facts.organizer_name))
    invitee = _address(attendee.email, attendee.name)
    invitee.params["CUTYPE"] = vText("INDIVIDUAL")
    invitee.params["ROLE"] = vText("REQ-PARTICIPANT")
    invitee.params["PARTSTAT"] = vText("NEEDS-ACTION")
    invitee.params["RSVP"] = vText("FALSE")
    event.add("attendee", invitee)
    calendar.add_component(event)
    return calendar


def _address(email: str, name: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = vText(name)
    return address
