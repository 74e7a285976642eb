"""Activity names and their input/output models: the only part of `activities/` a workflow imports.

Pure pydantic, no I/O imports, so the workflow sandbox can load it. Every Zoom effect carries an `op_id`
(workflow ID + operation number) that names its idempotency key next to the call.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# Activity names (the registry in worker.py binds them to implementations).
LOAD_CONFERENCE = "load_conference"
CREATE_MEETING = "create_meeting"
UPDATE_MEETING = "update_meeting"
DELETE_MEETING = "delete_meeting"
CHECK_MEETING = "check_meeting"
SAVE_CONFERENCE_STATUS = "save_conference_status"
WRITE_AUDIT_EVENTS = "write_audit_events"
RECORD_CONSENT = "record_consent"
SEND_CONFIRMATIONS = "send_confirmations"
SCHEDULE_BOT = "schedule_bot"
MOVE_BOT = "move_bot"
CANCEL_BOT = "cancel_bot"
ERR_BOT_AUTH = "BotProviderAuth"

# ApplicationError types the Zoom activities raise: the workflow parks or fails on them by name.
ERR_NOT_CONNECTED = "ZoomNotConnected"
ERR_NEEDS_RECONNECT = "ZoomNeedsReconnect"
ERR_DETACHED = "ZoomDetached"
ERR_DAILY_LIMIT = "ZoomDailyLimitReached"
ERR_REJECTED = "ZoomRejectedRequest"
ERR_RATE_LIMITED = "ZoomRateLimited"
ERR_UNAVAILABLE = "ZoomUnavailable"
NON_RETRYABLE_ZOOM_ERRORS = [ERR_NOT_CONNECTED, ERR_NEEDS_RECONNECT, ERR_DETACHED, ERR_DAILY_LIMIT, ERR_REJECTED]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Policy(_Model):
    """Worker-side settings the workflow needs, fetched once per run (recorded in history: deterministic)."""

    pre_start_check_minutes: float = 60.0
    grace_hours: float = 24.0
    reconnect_recheck_minutes: float = 60.0
    emails_enabled: bool = False
    bots_enabled: bool = False


class MeetingSpec(_Model):
    """What the Zoom meeting should look like (start_time is UTC with Z)."""

    topic: str
    agenda: str
    start_time: str
    duration: int
    timezone: str


class OpContext(_Model):
    workflow_id: str
    run_id: str
    appointment_id: str
    workspace_id: str
    op_id: str
    actor: str = "system"


class LoadConferenceArgs(_Model):
    appointment_id: str
    workspace_id: str


class ConferenceRecord(_Model):
    zoom_meeting_id: int | None = None
    join_url: str | None = None
    status: str
    appointment_status: str = "scheduled"


class LoadConferenceResult(_Model):
    policy: Policy
    record: ConferenceRecord | None = None


class CreateMeetingArgs(_Model):
    ctx: OpContext
    spec: MeetingSpec
    replaces_meeting_id: int | None = None
    reason: str = "created"  # created | recreated (vanished in Zoom) | account_changed | provider_switched


class MeetingResult(_Model):
    outcome: Literal["created", "adopted"]
    zoom_meeting_id: int
    join_url: str
    spec: MeetingSpec


class UpdateMeetingArgs(_Model):
    ctx: OpContext
    zoom_meeting_id: int
    changes: dict[str, object]  # subset of MeetingSpec fields
    reason: str = "updated"


class UpdateMeetingResult(_Model):
    outcome: Literal["updated", "not_found", "in_progress", "owner_changed"]
    detail: str | None = None


class DeleteMeetingArgs(_Model):
    ctx: OpContext
    zoom_meeting_id: int
    reason: str = "cancelled"


class DeleteMeetingResult(_Model):
    outcome: Literal["deleted", "already_gone", "in_progress", "owner_changed"]
    detail: str | None = None


class CheckMeetingArgs(_Model):
    ctx: OpContext
    zoom_meeting_id: int


class CheckMeetingResult(_Model):
    exists: bool
    owner_changed: bool = False
    actual: MeetingSpec | None = None
    join_url: str | None = None


class SaveConferenceStatusArgs(_Model):
    appointment_id: str
    workspace_id: str
    status: str
    appointment_status: str
    # Why (waiting for Zoom, needs attention, detached): carried to the core app's conference event.
    reason: str | None = None


class AuditNote(_Model):
    workspace_id: str
    appointment_id: str | None
    event: str
    actor: str
    workflow_id: str | None
    run_id: str | None
    details: dict[str, object]
    dedupe_key: str


class ConsentLogEntry(_Model):
    appointment_id: str
    workspace_id: str
    request_id: str
    granted: bool
    actor: str
    subject: str
    channel: str
    consent_text_version: str
    occurred_at: str
    note_taking_enabled: bool


class EmailAttendee(_Model):
    name: str = ""
    email: str
    timezone: str | None = None


class SendConfirmationsArgs(_Model):
    """One round of attendee emails. (appointment, revision, attendee, kind) is sent exactly once."""

    ctx: OpContext
    kind: Literal["confirmation", "update", "cancellation"]
    revision: int
    title: str
    description: str | None = None
    start_time: str
    duration_minutes: int
    timezone: str
    join_url: str | None = None
    attendees: list[EmailAttendee]


class SendConfirmationsResult(_Model):
    sent: int
    already_sent: int
    failed: list[str]  # "attendee N: reason" for permanent (5xx) refusals


class ScheduleBotArgs(_Model):
    ctx: OpContext
    generation: int
    dispatch_key: str  # {appointment_id}:recbot:{generation}
    meeting_url: str
    join_at: str  # UTC Z
    duration_minutes: int


class BotResult(_Model):
    outcome: Literal["scheduled", "adopted", "refused", "moved", "too_late", "removed"]
    bot_id: str | None = None
    status: str = "unknown"
    sub_code: str | None = None
    note: str | None = None


class MoveBotArgs(_Model):
    ctx: OpContext
    bot_id: str
    dispatch_key: str
    generation: int
    join_at: str
    meeting_url: str


class CancelBotArgs(_Model):
    ctx: OpContext
    bot_id: str | None  # None: remove every live bot the provider holds under dispatch_key
    reason: str
    # Set when a schedule was cancelled mid-flight: it may or may not have reached the provider.
    dispatch_key: str | None = None
