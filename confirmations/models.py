"""What an attendee email is made of: validated, immutable facts. Pure data, no I/O.

Everything that reaches an attendee's inbox or calendar passes through these models, so they are strict
(`extra="forbid"`): there is deliberately no field for the host start URL, and a URL that looks like one is
refused as a join URL, so a wiring mistake cannot mail the host's key to every attendee.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta, timezone
from email.errors import HeaderParseError
from email.headerregistry import Address
from enum import StrEnum
from typing import Annotated, Self
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

_WHITESPACE = re.compile(r"\s+")
# Zoom host start URLs are `https://<host>/s/<meeting id>?zak=<host token>`; join URLs use `/j/` and `pwd=`.
_START_URL_PATH = re.compile(r"/s/\d+")


class ConfirmationKind(StrEnum):
    CONFIRMATION = "confirmation"
    UPDATE = "update"
    CANCELLATION = "cancellation"

    @property
    def ics_method(self) -> str:
        """The iTIP method (RFC 5546) a calendar client needs to add/update or remove the event."""
        return "CANCEL" if self is ConfirmationKind.CANCELLATION else "REQUEST"


def _one_line(value: str) -> str:
    # Names end up in To:/ORGANIZER headers; a CR/LF there would be header injection, so fold it away.
    return _WHITESPACE.sub(" ", value).strip()


def _email_address(value: str) -> str:
    value = value.strip()
    try:
        parsed = Address(addr_spec=value)
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise ValueError("not a valid email address") from exc
    if not parsed.username or not parsed.domain or "." not in parsed.domain:
        raise ValueError("not a valid email address (needs user@domain.tld)")
    return parsed.addr_spec


def _iana_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _join_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    # http(s) only: the URL becomes an <a href>, so javascript:/data: URLs must never get through.
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("the join URL must be an absolute http(s) URL")
    if any(key.lower() == "zak" for key, _ in parse_qsl(parts.query)) or _START_URL_PATH.match(parts.path):
        raise ValueError("this looks like a host start URL; attendees may only ever get the join URL")
    return value


EmailAddress = Annotated[str, AfterValidator(_email_address)]
DisplayName = Annotated[str, AfterValidator(_one_line)]
IanaZone = Annotated[str, AfterValidator(_iana_zone)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
JoinUrl = Annotated[str, AfterValidator(_join_url)]


class _Frozen(BaseModel):
    # hide_input_in_errors: a rejected join URL carries its passcode (or a host key); errors get logged.
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)


class Attendee(_Frozen):
    name: DisplayName = ""
    email: EmailAddress


class InviteFacts(_Frozen):
    """One appointment as one attendee is told about it, at one revision."""

    appointment_id: str = Field(min_length=1, max_length=200, pattern=r"^[^\s@]+$")
    title: str = ""
    description: str | None = None
    start: UtcDatetime
    # Up to a week: anything longer is a data error, not an appointment.
    duration_minutes: int = Field(gt=0, le=7 * 24 * 60)
    host_timezone: IanaZone
    attendee_timezone: IanaZone | None = None
    join_url: JoinUrl | None = None
    sequence: int = Field(ge=0, description="iCalendar SEQUENCE: grows with every change attendees are told about")
    organizer_email: EmailAddress
    organizer_name: DisplayName = "Ratio"
    kind: ConfirmationKind

    @model_validator(mode="after")
    def _join_url_unless_cancelled(self) -> Self:
        if self.kind is not ConfirmationKind.CANCELLATION and self.join_url is None:
            raise ValueError(f"a {self.kind.value} must carry the join URL")
        return self

    @property
    def cancelled(self) -> bool:
        return self.kind is ConfirmationKind.CANCELLATION

    @property
    def end(self) -> datetime:
        # Added in UTC: adding to a local wall-clock time would be off by an hour across a DST change.
        return self.start + timedelta(minutes=self.duration_minutes)

    @property
    def display_timezone(self) -> str:
        return self.attendee_timezone or self.host_timezone

    @property
    def display_title(self) -> str:
        return _one_line(self.title) or "Appointment"

    @property
    def attendee_join_url(self) -> str | None:
        """The join URL as attendees may see it: never for a cancelled appointment (the meeting is gone)."""
        return None if self.cancelled else self.join_url
