"""The attendee email: subject, plain text, HTML and the `invite.ics` attachment, in one EmailMessage.

Times are shown in the attendee-facing zone (the attendee's own, else the host's), computed from the UTC
instant, so the wall-clock hours are right on either side of a daylight-saving change. Day and month names
come from fixed English tables, not `strftime`, whose output follows the process locale.
"""

from __future__ import annotations

import hashlib
import html
import zoneinfo
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, parseaddr

from confirmations.ics import build_invite
from confirmations.models import Attendee, ConfirmationKind, InviteFacts

INVITE_FILENAME = "invite.ics"
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_SUBJECT_PREFIX = {
    ConfirmationKind.CONFIRMATION: "Confirmed",
    ConfirmationKind.UPDATE: "Updated",
    ConfirmationKind.CANCELLATION: "Cancelled",
}
_LEAD = {
    ConfirmationKind.CONFIRMATION: "Your appointment {title} is confirmed.",
    ConfirmationKind.UPDATE: "Your appointment {title} has changed. These details replace the earlier ones.",
    ConfirmationKind.CANCELLATION: "Your appointment {title} has been cancelled.",
}


# -- time and duration, as people read them ------------------------------------------------------------------

def _day(value: datetime) -> str:
    return f"{_WEEKDAYS[value.weekday()]}, {value.day} {_MONTHS[value.month - 1]} {value.year}"


def format_when(start: datetime, end: datetime, tz_name: str) -> str:
    """`Tuesday, 3 March 2026, 09:00–09:30 (Europe/Berlin)`; both days are named when it ends on another."""
    zone = zoneinfo.ZoneInfo(tz_name)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if local_start.date() == local_end.date():
        return f"{_day(local_start)}, {local_start:%H:%M}–{local_end:%H:%M} ({tz_name})"
    return f"{_day(local_start)}, {local_start:%H:%M} – {_day(local_end)}, {local_end:%H:%M} ({tz_name})"


def format_start(start: datetime, tz_name: str) -> str:
    """`Tuesday, 3 March 2026 at 09:00 (Europe/Berlin)`: the short form used in the subject."""
    local = start.astimezone(zoneinfo.ZoneInfo(tz_name))
    return f"{_day(local)} at {local:%H:%M} ({tz_name})"


def format_duration(minutes: int) -> str:
    """`45 minutes`, `1 hour`, `1 hour 30 minutes`, `2 hours`."""
    hours, rest = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour" + ("s" if hours != 1 else ""))
    if rest or not hours:
        parts.append(f"{rest} minute" + ("s" if rest != 1 else ""))
    return " ".join(parts)


# -- subject and bodies ---------------------------------------------------------------------------------------

def render_subject(facts: InviteFacts) -> str:
    when = format_start(facts.start, facts.display_timezone)
    return f"{_SUBJECT_PREFIX[facts.kind]}: {facts.display_title} on {when}"


def _greeting(attendee: Attendee) -> str:
    return f"Hello {attendee.name}," if attendee.name else "Hello,"


def _details(facts: InviteFacts) -> list[tuple[str, str]]:
    """(label, value) rows; the join URL only while the appointment stands."""
    rows = [("When", format_when(facts.start, facts.end, facts.display_timezone)),
            ("Duration", format_duration(facts.duration_minutes))]
    join_url = facts.attendee_join_url
    if join_url is not None:
        rows.append(("Join Zoom meeting", join_url))
    return rows


def _closing(facts: InviteFacts) -> str:
    if facts.cancelled:
        return f"The attached calendar update ({INVITE_FILENAME}) removes it from your calendar."
    return f"The calendar invitation ({INVITE_FILENAME}) is attached."


def render_text(facts: InviteFacts, attendee: Attendee) -> str:
    lines = [_greeting(attendee), "", _LEAD[facts.kind].format(title=f'"{facts.display_title}"'), ""]
    width = max(len(label) for label, _ in _details(facts)) + 2
    lines += [f"{label + ':':<{width}}{value}" for label, value in _details(facts)]
    if facts.description and not facts.cancelled:
        lines += ["", facts.description]
    lines += ["", _closing(facts)]
    return "\n".join(lines) + "\n"


def render_html(facts: InviteFacts, attendee: Attendee) -> str:
    """Every interpolated value is escaped: titles, names and descriptions come from users."""
    esc = html.escape
    lead = esc(_LEAD[facts.kind].format(title=f"“{facts.display_title}”"))
    rows = []
    for label, value in _details(facts):
        shown = esc(value)
        if label == "Join Zoom meeting":
            shown = f'<a href="{esc(value, quote=True)}">{shown}</a>'
        rows.append(f'<tr><th align="left" style="padding:4px 16px 4px 0">{esc(label)}</th><td>{shown}</td></tr>')
    description = ""
    if facts.description and not facts.cancelled:
        description = "<p>" + "<br>\n".join(esc(line) for line in facts.description.splitlines()) + "</p>\n"
    return (
        "<!DOCTYPE html>\n"
        f'<html><head><meta charset="utf-8"><title>{esc(render_subject(facts))}</title></head>\n'
        '<body style="font-family:sans-serif">\n'
        f"<p>{esc(_greeting(attendee))}</p>\n"
        f"<p>{lead}</p>\n"
        f"<table>{''.join(rows)}</table>\n"
        f"{description}"
        f"<p>{esc(_closing(facts))}</p>\n"
        "</body></html>\n"
    )


# -- the message ----------------------------------------------------------------------------------------------

def parse_mailbox(value: str) -> Address:
    """`Ratio <no-reply@ratio.example>` or a bare address, as a header-ready Address (ValueError if neither)."""
    name, addr = parseaddr(value)
    if not addr or "@" not in addr:
        raise ValueError("expected 'Name <user@domain>' or 'user@domain'")
    return Address(display_name=name, addr_spec=addr)


def _key_digest(outbox_key: str) -> str:
    # Hashed: the key holds the attendee's identity and may hold characters a Message-ID cannot.
    return hashlib.sha256(outbox_key.encode("utf-8")).hexdigest()[:40]


def message_id_for(outbox_key: str, domain: str) -> str:
    """The same outbox key always yields the same Message-ID, so a re-send is recognisable as one."""
    return f"<{_key_digest(outbox_key)}@{domain}>"


def build_message(facts: InviteFacts, attendee: Attendee, *, sender: str, outbox_key: str,
                  now: datetime | None = None) -> EmailMessage:
    """multipart/mixed: multipart/alternative (text, HTML) + `invite.ics` (`text/calendar; method=...`).

    `now` sets Date and the invite's DTSTAMP; with the outbox row's creation time as `now`, a re-send is
    byte-for-byte the same message.
    """
    sent_at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    from_address = parse_mailbox(sender)

    bodies = MIMEPart()
    bodies.set_content(render_text(facts, attendee), cte="quoted-printable")
    bodies.add_alternative(render_html(facts, attendee), subtype="html", cte="quoted-printable")
    invite = MIMEPart()
    # Bytes, base64: RFC 5545 wants CRLF line ends, and a text part would be re-flowed to the policy's LF.
    invite.set_content(build_invite(facts, attendee, now=sent_at).to_ical(), maintype="text", subtype="calendar",
                       disposition="attachment", filename=INVITE_FILENAME,
                       params={"method": facts.kind.ics_method, "charset": "utf-8"})

    message = EmailMessage()
    message["Subject"] = render_subject(facts)
    message["From"] = from_address
    message["To"] = Address(display_name=attendee.name, addr_spec=attendee.email)
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id_for(outbox_key, from_address.domain)
    # RFC 3834: tells vacation responders and auto-forwarders not to answer a machine.
    message["Auto-Submitted"] = "auto-generated"
    message["MIME-Version"] = "1.0"
    # Assembled from MIMEParts (not add_alternative/add_attachment on the message) so only the top-level
    # headers carry MIME-Version.
    message.make_mixed()
    message.attach(bodies)
    message.attach(invite)
    # Boundaries from the key (not random) keep a re-send identical. "=_" cannot occur in quoted-printable
    # or base64 content, so a boundary starting with it never collides with a body line.
    digest = _key_digest(outbox_key)
    message.set_boundary(f"=_mixed_{digest}")
    bodies.set_boundary(f"=_alternative_{digest}")
    return message
