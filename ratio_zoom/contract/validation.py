"""Pure checks of contract messages. Each returns a reason in plain words, or None when the input is fine.

Deterministic: time zones come from the pinned `tzdata` package, never the host's tz database, so two
workers with different operating-system tz data decide the same on replay. The workflow calls these inside
its decision core (with `workflow.now()`) and the starter calls them before sending, to fail fast client-side.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import unicodedata
import zoneinfo
from datetime import datetime, timedelta

from ratio_zoom.contract.appointment import PROVIDERS, AppointmentInput, Attendee

TITLE_MAX = 200  # Zoom's topic limit: we refuse rather than silently cut the client's title
DESCRIPTION_MAX = 10_000  # the agenda sent to Zoom is cut to Zoom's 2,000 characters; this bounds state size
MAX_DURATION_MINUTES = 24 * 60
MAX_ATTENDEES = 200
MAX_FUTURE = timedelta(days=3 * 366)
REQUEST_ID_MAX = 128
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def parse_rfc3339(text: str) -> datetime | None:
    """An aware datetime, or None when the text is not RFC 3339 with an offset."""
    if not isinstance(text, str) or not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", text):
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return value if value.tzinfo is not None and value.utcoffset() is not None else None


_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")


@functools.lru_cache(maxsize=512)
def load_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone from the pinned `tzdata` package (never the host's tz files), or None if unknown."""
    if not isinstance(name, str) or len(name) > 64 or not _ZONE_NAME.match(name):
        return None
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    try:
        with resource.open("rb") as handle:
            return zoneinfo.ZoneInfo.from_file(handle, key=name)
    except (OSError, ValueError):
        return None


def check_timezone(name: object) -> str | None:
    if not name or not isinstance(name, str) or load_zone(name) is None:
        return f"unknown time zone {str(name)[:64]!r}"
    return None


def check_title(title: str | None) -> str | None:
    if title is None or not title.strip():
        return "title is empty"
    if len(title) > TITLE_MAX:
        return f"title is {len(title)} characters; the limit is {TITLE_MAX} (Zoom's topic limit)"
    if any(unicodedata.category(ch) == "Cc" for ch in title):
        return "title contains control characters"
    return None


def check_description(description: str | None) -> str | None:
    if description is None:
        return None
    if len(description) > DESCRIPTION_MAX:
        return f"description is {len(description)} characters; the limit is {DESCRIPTION_MAX}"
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in description):
        return "description contains control characters"
    return None


def check_provider(provider: str | None) -> str | None:
    if provider not in PROVIDERS:
        return f"unknown conference provider {str(provider)[:40]!r}; expected one of {', '.join(PROVIDERS)}"
    return None


def check_attendees(attendees: list[Attendee] | None) -> str | None:
    if attendees is None:
        return None
    if len(attendees) > MAX_ATTENDEES:
        return f"{len(attendees)} attendees; the limit is {MAX_ATTENDEES}"
    for index, attendee in enumerate(attendees):
        if not _EMAIL.match(attendee.email or "") or len(attendee.email) > 254:
            return f"attendee {index + 1} has a malformed email address"
        if len(attendee.name) > 200 or any(unicodedata.category(ch) == "Cc" for ch in attendee.name):
            return f"attendee {index + 1} has an invalid name"
        if attendee.timezone is not None and check_timezone(attendee.timezone) is not None:
            return f"attendee {index + 1} has an unknown time zone"
    return None


def check_schedule(start_time: str, duration_minutes: int, now: datetime) -> str | None:
    start = parse_rfc3339(start_time)
    if start is None:
        return f"start_time {str(start_time)[:40]!r} is not RFC 3339 with an offset"
    if not isinstance(duration_minutes, int) or isinstance(duration_minutes, bool):
        return "duration_minutes must be an integer"
    if duration_minutes <= 0:
        return "duration_minutes must be positive"
    if duration_minutes > MAX_DURATION_MINUTES:
        return f"duration_minutes {duration_minutes} is above 24 hours"
    if start + timedelta(minutes=duration_minutes) <= now:
        return "the appointment would end in the past"
    if start < now - timedelta(minutes=5):
        return "start_time is in the past"
    if start > now + MAX_FUTURE:
        return "start_time is more than three years ahead"
    return None


def check_request_id(request_id: str) -> str | None:
    if not request_id or not isinstance(request_id, str):
        return "request_id is missing"
    if len(request_id) > REQUEST_ID_MAX or any(unicodedata.category(ch) == "Cc" for ch in request_id):
        return "request_id is malformed"
    return None


def check_booking(booking: AppointmentInput, now: datetime) -> str | None:
    """The first problem with a start input, or None."""
    if not booking.appointment_id or len(booking.appointment_id) > 100:
        return "appointment_id is missing or longer than 100 characters"
    if not booking.workspace_id or len(booking.workspace_id) > 100:
        return "workspace_id is missing or longer than 100 characters"
    return (
        check_title(booking.title)
        or check_description(booking.description)
        or check_schedule(booking.start_time, booking.duration_minutes, now)
        or check_timezone(booking.timezone)
        or check_provider(booking.conference_provider)
        or check_attendees(booking.attendees)
    )
