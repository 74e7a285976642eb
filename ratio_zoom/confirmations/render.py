"""The attendee email: subject, plain text, HTML and the .ics attachment, times in the attendee's zone."""

from __future__ import annotations

import html
import zoneinfo
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr

from ratio_zoom.confirmations.ics import build_invite
from ratio_zoom.confirmations.models import InviteFacts, Recipient

SUBJECTS = {"confirmation": "Confirmed: {title}", "update": "Updated: {title}", "cancellation": "Cancelled: {title}"}


def _when(facts: InviteFacts, tz_name: str) -> str:
    tz = zoneinfo.ZoneInfo(tz_name)
    start = facts.start.astimezone(tz)
    # Add the duration in UTC, then convert: aware-datetime arithmetic is wall-clock arithmetic, which is
    # an hour off for a meeting that spans a daylight-saving change.
    end = (facts.start + timedelta(minutes=facts.duration_minutes)).astimezone(tz)
    day = f"{start:%A}, {start.day} {start:%B %Y}"
    end_text = f"{end:%H:%M}" if end.date() == start.date() else f"{end.day} {end:%B} {end:%H:%M}"
    end_offset = "" if _offset(end) == _offset(start) else f", ends UTC{_offset(end)}"
    return f"{day}, {start:%H:%M}–{end_text} ({tz_name}, UTC{_offset(start)}{end_offset})"


def _offset(value: datetime) -> str:
    minutes = int(value.utcoffset().total_seconds() // 60) if value.utcoffset() else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def build_message(facts: InviteFacts, recipient: Recipient, *, sender: str, message_id: str) -> EmailMessage:
    tz_name = recipient.timezone or facts.host_timezone
    when = _when(facts, tz_name)
    subject = SUBJECTS[facts.kind].format(title=facts.title)
    lines = [f"Hello {recipient.name}," if recipient.name else "Hello,", ""]
    if facts.kind == "cancellation":
        lines += [f"The appointment \"{facts.title}\" on {when} has been cancelled."]
    else:
        verb = "is confirmed" if facts.kind == "confirmation" else "has changed"
        lines += [f"Your appointment \"{facts.title}\" {verb}.", "", f"When: {when}",
                  f"Duration: {facts.duration_minutes} minutes"]
        if facts.join_url:
            lines += [f"Join the Zoom meeting: {facts.join_url}"]
    lines += ["", "The calendar invitation is attached."]
    text = "\n".join(lines) + "\n"
    esc = html.escape
    items = "".join(f"<p>{esc(line)}</p>" for line in lines if line and "Join the Zoom meeting" not in line)
    link = (f'<p><a href="{esc(facts.join_url, quote=True)}">Join the Zoom meeting</a></p>'
            if facts.join_url and facts.kind != "cancellation" else "")
    body_html = f"<!doctype html><html><body>{items}{link}</body></html>"
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = formataddr((recipient.name, recipient.email))
    message["Message-ID"] = message_id
    message.set_content(text)
    message.add_alternative(body_html, subtype="html")
    method = "CANCEL" if facts.kind == "cancellation" else "REQUEST"
    invite = build_invite(facts, recipient)
    message.add_attachment(invite, maintype="text", subtype="calendar", filename="invite.ics",
                           params={"method": method})
    return message
