"""What the API relays to an appointment's workflow when Zoom reports a change to its meeting
(signal `zoom_meeting_changed`). Ratio is the source of truth: the workflow repairs what the host changed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ZOOM_MEETING_CHANGED_SIGNAL = "zoom_meeting_changed"
MEETING_EVENTS = ("meeting.deleted", "meeting.updated")


class ZoomMeetingChanged(BaseModel):
    delivery_id: str = Field(description="hash of the signed delivery: the same on Zoom's redeliveries")
    event: Literal["meeting.deleted", "meeting.updated"]
    meeting_id: int
    # meeting.updated: the new values of the fields Zoom reports as changed (topic, start_time, duration,
    # timezone, agenda, settings). The workflow compares them with what the appointment wants, so the
    # events its own PATCHes cause change nothing (no repair loop).
    changed: dict[str, object] = {}
    operator: Literal["host", "other"] = "other"
