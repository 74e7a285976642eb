"""The contract the core app codes against: workflow input, signals, query and update models.

Names here are public (docs/contract.md publishes their JSON Schemas). The workflow accepts *any* JSON at
the Temporal boundary (its start input, signals and updates are typed `Any` there): a payload that failed to
deserialise would fail the workflow task or be dropped by the SDK. It then validates the JSON against these
models itself: a field of the wrong type, or one `contract.validation` refuses, becomes a rejection recorded
in `state` with the reason, never an exception in the workflow.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

WORKFLOW_TYPE = "AppointmentWorkflow"
PROVIDERS = ("zoom", "google_meet", "microsoft_teams", "none")

AppointmentStatus = Literal["scheduled", "cancelled", "completed"]
ConferenceStatus = Literal["pending", "ready", "waiting_for_zoom", "detached", "deleted", "failed"]


def workflow_id_for(appointment_id: str) -> str:
    return f"appointment-{appointment_id}"


class _Message(BaseModel):
    # Unknown fields are ignored so that a newer core app can add fields without breaking older workers.
    model_config = ConfigDict(extra="ignore")


class Attendee(_Message):
    name: str = ""
    email: str = ""
    timezone: str | None = Field(default=None, description="IANA zone the attendee sees times in; default: the appointment's")


class AppointmentInput(_Message):
    """Start input of `AppointmentWorkflow` (`appointment-{appointment_id}`)."""

    appointment_id: str
    workspace_id: str
    booking_type_id: str | None = None
    title: str = ""
    description: str | None = None
    start_time: str = Field(default="", description="RFC 3339 with an offset, e.g. 2026-03-03T09:00:00+01:00")
    duration_minutes: int = 0
    timezone: str = Field(default="UTC", description="IANA time zone name, e.g. Europe/Berlin")
    conference_provider: str = Field(default="zoom", description="zoom | google_meet | microsoft_teams | none")
    attendees: list[Attendee] = []
    note_taking_enabled: bool = False
    # Set only by the workflow itself when it continues-as-new; the core app leaves it empty.
    carried_state: dict | None = Field(default=None, description="internal: state carried over continue-as-new")


class Reschedule(_Message):
    request_id: str = ""
    start_time: str = ""
    duration_minutes: int = 0
    timezone: str | None = None


class Cancel(_Message):
    request_id: str = ""
    actor: str = ""
    reason: str | None = None


class UpdateDetails(_Message):
    request_id: str = ""
    title: str | None = None
    description: str | None = None
    attendees: list[Attendee] | None = None
    conference_provider: str | None = None


class Consent(_Message):
    request_id: str = ""
    granted: bool = False
    actor: str = ""
    subject: str = ""
    channel: str = ""
    consent_text_version: str = ""
    occurred_at: str = Field(default="", description="RFC 3339 with an offset")


class AwaitConference(_Message):
    after_request_id: str | None = None
    timeout_seconds: float = Field(default=30.0, description="how long the update waits, at most 600")


class ZoomConnectionChanged(_Message):
    """Signal sent by the service (not the core app) when the workspace's Zoom connection changes."""

    request_id: str = ""
    status: str = ""  # connected | needs_reconnect | disconnected
    reason: str | None = None


# -- what `state` and `await_conference` return ------------------------------------------------------


class ConferenceView(_Message):
    provider: str
    status: ConferenceStatus
    zoom_meeting_id: int | None = None
    join_url: str | None = None
    reason: str | None = Field(default=None, description="why the conference is not ready, in plain words")


class AppointmentView(_Message):
    appointment_id: str
    workspace_id: str
    booking_type_id: str | None = None
    title: str
    description: str | None = None
    start_time: str
    duration_minutes: int
    timezone: str
    conference_provider: str
    attendees: list[Attendee]
    note_taking_enabled: bool


class RejectedRequest(_Message):
    request_id: str
    kind: str
    reason: str
    at: str


class ConsentView(_Message):
    granted: bool | None = None
    actor: str | None = None
    channel: str | None = None
    consent_text_version: str | None = None
    occurred_at: str | None = None


class RecordingBotView(_Message):
    status: str = "none"
    generation: int = 0
    bot_id: str | None = None
    sub_code: str | None = None
    note: str | None = None


class AppointmentStateView(_Message):
    status: AppointmentStatus
    appointment: AppointmentView
    conference: ConferenceView
    last_applied_request_id: str | None = None
    rejected_requests: list[RejectedRequest] = []
    pending_operations: list[str] = []
    last_error: str | None = None
    consent: ConsentView = ConsentView()
    recording_bot: RecordingBotView = RecordingBotView()
    needs_attention: list[str] = Field(
        default=[], description="lanes (zoom, recording_bot, emails) whose retries ran out, with the reason; "
                                "they keep retrying on a timer and on the next message")


class ConferenceResult(_Message):
    """Answer of the `await_conference` update."""

    conference: ConferenceView
    applied: bool = Field(description="every request up to after_request_id has been applied or has failed")
    request_outcome: str | None = Field(
        default=None, description="applied | rejected | failed | pending (for after_request_id)"
    )
    reason: str | None = None
