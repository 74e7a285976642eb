"""The whole state of one appointment workflow, in one serialisable structure.

Kept in one model so continue-as-new carries it whole (the samples-python rule for long-lived workflows),
and so the `state` query is a pure projection of it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from activities.schemas import AuditNote, ConsentLogEntry, MeetingSpec, Policy
from ratio_zoom.contract.appointment import AppointmentView, ConsentView, RecordingBotView, RejectedRequest

MAX_REJECTIONS_KEPT = 50
# Request-ID memory (dedupe across continue-as-new) is bounded: the guarantee is that a retry of any of the
# last REQUEST_MEMORY messages this appointment received is recognised as a duplicate. The core app retries
# within seconds to minutes; an appointment that receives over a thousand messages is itself a bug upstream.
REQUEST_MEMORY = 1000


class RequestRecord(BaseModel):
    """Every request ID ever seen (dedupe survives continue-as-new) and what became of it."""

    model_config = ConfigDict(extra="ignore")
    seq: int
    kind: str
    outcome: str  # queued | applied | rejected | failed


class QueuedRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    seq: int
    request_id: str
    kind: str
    payload: dict


class LaneState(BaseModel):
    """Retry bookkeeping of one lane (Zoom meeting, recording bot, attendee emails).

    Each lane runs bounded activity retry chains. When a chain is exhausted the lane parks until
    `parked_until` with a plain-words `attention` reason (shown in `state`), and tries again after it, on the
    next relevant message, or when the dependency answers again. A 429 parks the lane for Retry-After without
    counting as a failure, so it never lengthens the backoff of a later 5xx."""

    model_config = ConfigDict(extra="ignore")
    failures: int = 0  # consecutive exhausted retry chains
    parked_until: str | None = None  # RFC 3339 (UTC Z): do not start the lane's next step before this
    attention: str | None = None  # why the lane needs attention, in plain words; None when healthy
    rate_limited: int = 0  # consecutive 429s: sets the wait when Retry-After is missing (kept apart from failures)


class WorkflowState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    appointment: AppointmentView
    booking_valid: bool = True
    status: str = "scheduled"  # scheduled | cancelled | completed
    cancel_actor: str | None = None
    cancel_reason: str | None = None

    # The conference, mirroring the appointment_conferences row (the source of truth).
    conference_status: str = "pending"
    conference_reason: str | None = None
    zoom_meeting_id: int | None = None
    join_url: str | None = None
    synced: MeetingSpec | None = None  # what Zoom holds, as far as we know; None = unknown, check first

    # Requests: dedupe table, queue, and how far they have been applied to Zoom.
    requests: dict[str, RequestRecord] = {}
    queue: list[QueuedRequest] = []
    next_seq: int = 1
    done_seq: int = -1  # the booking itself is request 0
    last_applied_request_id: str | None = None
    rejected: list[RejectedRequest] = []
    rejection_count: int = 0
    last_error: str | None = None

    # Zoom side bookkeeping.
    op_seq: int = 0
    zoom_link: str = "unknown"  # unknown | ok | waiting | detached
    connection_epoch: int = 0
    parked_epoch: int = 0
    parked_until: str | None = None  # RFC 3339; daily-limit or reconnect recheck
    failed_fingerprint: str | None = None
    recreate_reason: str | None = None
    pre_start_checked_for: str | None = None

    # What attendees have been told (activities/emails.py sends each revision once per attendee).
    email_revision: int = 0
    email_kind: str | None = None
    email_fingerprint: str | None = None
    email_facts_fingerprint: str | None = None
    email_cancel_sent: bool = False

    consent: ConsentView = ConsentView()
    recording_bot: RecordingBotView = RecordingBotView()
    bot_join_at: str | None = None  # what the live bot was told: start (UTC Z) and meeting
    bot_meeting_id: int | None = None
    bot_events_seen: list[str] = []  # webhook delivery IDs already applied

    bot_unsure_key: str | None = None  # a schedule with this dispatch key may have reached the provider
    bot_must_replace: bool = False  # the provider refused a move inside its 10-minute window

    # Lanes: each concern retries and parks on its own (workflows/core.py).
    zoom_lane: LaneState = LaneState()
    bot_lane: LaneState = LaneState()
    email_lane: LaneState = LaneState()
    unsure_fields: list[str] = []
    # The operation ID of a create whose outcome is not known yet (its retry chain ran out, or it is in flight).
    # Every later create attempt reuses it, so activities/meetings.py finds and adopts a meeting an earlier
    # chain created (same marker) instead of creating a second one.
    create_op_id: str | None = None  # fields of a superseded PATCH that Zoom may or may not have applied
    loaded: bool = False  # the database record has been read; messages before that wait in `queue`
    email_done_revision: int = 0  # the revision whose send completed last
    email_started_fingerprint: str | None = None  # what the revision `email_revision` carries
    email_confirmed: bool = False  # a confirmation round completed

    policy: Policy = Policy()
    restored: bool = False
    outbox_audit: list[AuditNote] = []
    outbox_consent: list[ConsentLogEntry] = []
