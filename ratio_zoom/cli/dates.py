"""Start times for the shell: RFC 3339, or a date relative to today so that examples never rot.

`+7d 10:00` means "seven days from today, 10:00 wall-clock time in the appointment's zone". The README's
demo uses this form: a fixed date in documentation is refused once it falls in the past (or more than three
years ahead), and a demo that silently stops working is worse than none.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, time, timedelta

RELATIVE = re.compile(r"^\+(?P<days>\d{1,4})d(?:\s+|T|@)?(?P<hour>\d{1,2}):(?P<minute>\d{2})$")


class StartTimeError(ValueError):
    """The --start value is neither RFC 3339 nor `+Nd HH:MM`."""


def resolve_start(value: str, zone: str | None, *, now: datetime | None = None) -> str:
    """RFC 3339 text for `value`: passed through when absolute, computed in `zone` when relative."""
    text = value.strip()
    match = RELATIVE.match(text)
    if match is None:
        return text  # absolute: the contract validates it (offset required, sane range)
    try:
        tz = zoneinfo.ZoneInfo(zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise StartTimeError(f"unknown time zone {zone!r} for a relative --start") from exc
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise StartTimeError(f"--start {value!r}: {hour:02d}:{minute:02d} is not a time of day")
    today = (now or datetime.now(tz)).astimezone(tz).date()
    day = today + timedelta(days=int(match["days"]))
    # Wall-clock time in the zone, so "+7d 10:00" is 10:00 on that day whatever DST does in between.
    local = datetime.combine(day, time(hour, minute), tzinfo=tz)
    return local.isoformat()
