"""Events ratio-zoom POSTs to the core app (`CORE_APP_WEBHOOK_URL`): part of the public contract.

Delivery is at least once, in order per stream (one stream per appointment, one per workspace for the
connection), signed in the Standard Webhooks format (`webhook-id`, `webhook-timestamp`,
`webhook-signature`). `id` is the same on every redelivery of one event: de-duplicate on it. `sequence`
grows by one per stream, so a receiver can tell an old event from a new one even if it processed them out
of order after a crash of its own.

No secret, start URL or token is ever in an event. The join URL (it embeds the passcode) is only in the
events that carry it for the appointment record: `conference.ready` and `conference.updated`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ConferenceEventType = Literal[
    "conference.ready",            # the meeting exists; join_url is the link to show and send
    "conference.updated",          # the join URL or the meeting changed (recreated after a host deleted it)
    "conference.waiting",          # no usable Zoom connection or the daily quota is used up; `reason` says which
    "conference.needs_attention",  # a retry ceiling was reached; a person should look (`reason`)
    "conference.detached",         # Zoom was disconnected; the old meeting stays in Zoom, no link from us
    "conference.deleted",          # the appointment was cancelled and its meeting deleted
]
ConnectionEventType = Literal[
    "connection.connected",
    "connection.needs_reconnect",  # refresh token dead or the grant was superseded: re-authorize
    "connection.disconnected",     # an Owner or Admin disconnected Zoom in Ratio
    "connection.deauthorized",     # the app was removed in the Zoom Marketplace
]
EventType = ConferenceEventType | ConnectionEventType
EVENT_TYPES: tuple[str, ...] = ConferenceEventType.__args__ + ConnectionEventType.__args__  # type: ignore[attr-defined]


class ConferenceEventData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appointment_id: str
    status: str = Field(description="the conference status after the change (see `conference.status`)")
    meeting_id: int | None = None
    join_url: str | None = Field(default=None, description="only in conference.ready and conference.updated")
    reason: str | None = Field(default=None, description="plain words: why waiting, detached or needing attention")


class ConnectionEventData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["connected", "needs_reconnect", "disconnected"]
    reason: str | None = None


class CoreAppEvent(BaseModel):
    """The body of every POST to the core app."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="unique per event and stable across redeliveries: de-duplicate on it")
    type: EventType
    stream: str = Field(description="`appointment:{appointment_id}` or `workspace:{workspace_id}`")
    sequence: int = Field(ge=1, description="1, 2, 3... per stream, in the order the events happened")
    occurred_at: datetime
    workspace_id: str
    appointment_id: str | None = None
    data: ConferenceEventData | ConnectionEventData


def appointment_stream(appointment_id: str) -> str:
    return f"appointment:{appointment_id}"


def workspace_stream(workspace_id: str) -> str:
    return f"workspace:{workspace_id}"
