"""What an attendee email is made of. Pure data; no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["confirmation", "update", "cancellation"]


class InviteFacts(BaseModel):
    # Validation errors must not echo the join URL (it embeds the passcode) into logs.
    model_config = ConfigDict(hide_input_in_errors=True)

    appointment_id: str
    title: str
    description: str | None = None
    start: datetime  # aware
    duration_minutes: int
    host_timezone: str  # IANA; the attendee sees times in it unless they have their own
    join_url: str | None = None  # absent for a cancellation
    sequence: int  # iCalendar SEQUENCE: grows with every change the attendee is told about
    kind: Kind
    organizer_email: str
    organizer_name: str = "Ratio"


class Recipient(BaseModel):
    name: str = ""
    email: str
    timezone: str | None = None
