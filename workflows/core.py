"""The appointment's decisions, as a pure state machine: no Temporal import, no I/O, no clock of its own.

The workflow class (`workflows/appointment.py`) is the shell around it, like h11's connection object is
the shell-less protocol: it feeds one event at a time (a message, an activity result or failure, a timer)
into `decide(state, event, env)` and runs the commands `pending(state, env)` names, one lane per concern:

- Zoom lane:   create / patch / delete / check the meeting (`ZoomCommand`)
- bot lane:    schedule / move / cancel the recording bot (`BotCommand`)
- email lane:  one round of attendee emails (`SendEmails`)
- records:     audit rows and consent rows are commands kept in the state's outboxes (the shell writes them)

Each lane's next command is derived from the state alone, so a newer message *supersedes* older work: when
`pending()` no longer names the command a lane is running, the shell cancels it (`is_superseded`). Every
function takes the current time in `env`, so the same events give the same decisions on replay.

`decide` mutates the state it is given and returns it with the lanes' next commands: the workflow keeps one
state object (carried whole through continue-as-new), and tests hold on to the same object between steps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError

from activities import schemas as act
from ratio_zoom.contract import validation
from ratio_zoom.contract.appointment import (
    AppointmentInput,
    AppointmentView,
    Cancel,
    Consent,
    ConsentView,
    RejectedRequest,
    Reschedule,
    UpdateDetails,
    ZoomConnectionChanged,
)
from ratio_zoom.contract.bot_status import BotStatusEvent
from ratio_zoom.contract.zoom_events import ZoomMeetingChanged
from workflows.state import (
    MAX_REJECTIONS_KEPT,
    REQUEST_MEMORY,
    LaneState,
    QueuedRequest,
    RequestRecord,
    WorkflowState,
)

AGENDA_MAX = 2000
MARKER_RESERVE = 60  # room kept at the end of the agenda for the create marker (activities/meetings.py)
# After a lane's retry chain is exhausted it tries again this often. Short for Zoom, so that a cancelled
# appointment's meeting is deleted within a minute of Zoom answering again (not after a 5-minute backoff).
ZOOM_PARK = timedelta(seconds=30)
BOT_PARK = timedelta(seconds=30)
EMAIL_PARK = timedelta(minutes=1)
RATE_LIMIT_FALLBACK = timedelta(seconds=2)  # a first 429 without a usable Retry-After; doubles up to a minute
RATE_LIMIT_MAX = timedelta(seconds=60)
BOT_EVENTS_KEPT = 200
TERMINAL_BOT = ("ended", "failed", "cancelled", "none")

PARK_REASONS = {
    act.ERR_NOT_CONNECTED: ("waiting", "Zoom is not connected for this workspace; waiting for an Owner or Admin to connect it"),
    act.ERR_NEEDS_RECONNECT: ("waiting", "the Zoom connection needs to be re-authorized by an Owner or Admin"),
    act.ERR_DETACHED: ("detached", "Zoom was disconnected from this workspace; no Zoom link until it is connected again"),
}

MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "reschedule": Reschedule, "cancel": Cancel, "update_details": UpdateDetails, "consent": Consent,
}


# -- environment, events, commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """What the shell knows that the state does not: the time and the workflow's identity."""

    now: datetime
    workflow_id: str
    run_id: str


@dataclass(frozen=True)
class Failure:
    """An activity failure as the core sees it: the typed error (or "timeout"/"unknown"), never a string to parse."""

    type: str
    message: str = ""
    details: tuple[Any, ...] = ()
    retry_after: timedelta | None = None  # from Retry-After (429s)


@dataclass(frozen=True)
class CreateMeeting:
    spec: act.MeetingSpec
    reason: str
    lane: Literal["zoom"] = "zoom"


@dataclass(frozen=True)
class PatchMeeting:
    zoom_meeting_id: int
    changes: tuple[tuple[str, Any], ...]  # sorted (field, value) pairs: hashable and comparable
    lane: Literal["zoom"] = "zoom"

    @property
    def change_dict(self) -> dict[str, object]:
        return dict(self.changes)


@dataclass(frozen=True)
class DeleteMeeting:
    zoom_meeting_id: int
    reason: str
    lane: Literal["zoom"] = "zoom"


@dataclass(frozen=True)
class CheckMeeting:
    zoom_meeting_id: int
    start_time: str  # the appointment start this check is for (the pre-start check runs once per start)
    lane: Literal["zoom"] = "zoom"


ZoomCommand = Union[CreateMeeting, PatchMeeting, DeleteMeeting, CheckMeeting]


@dataclass(frozen=True)
class ScheduleBot:
    generation: int
    dispatch_key: str
    meeting_url: str
    join_at: str
    duration_minutes: int
    meeting_id: int
    lane: Literal["bot"] = "bot"


@dataclass(frozen=True)
class MoveBot:
    bot_id: str
    generation: int
    dispatch_key: str
    join_at: str
    meeting_url: str
    meeting_id: int
    lane: Literal["bot"] = "bot"


@dataclass(frozen=True)
class CancelBot:
    bot_id: str | None  # None: remove whatever the provider holds under dispatch_key (a superseded schedule)
    dispatch_key: str | None
    reason: str
    lane: Literal["bot"] = "bot"


BotCommand = Union[ScheduleBot, MoveBot, CancelBot]


@dataclass(frozen=True)
class SendEmails:
    kind: Literal["confirmation", "update", "cancellation"]
    revision: int
    fingerprint: str  # everything the round carries (facts and recipients)
    facts_fingerprint: str  # what the attendee sees change (time, title, link)
    title: str
    description: str | None
    start_time: str
    duration_minutes: int
    timezone: str
    join_url: str | None
    attendees: tuple[act.EmailAttendee, ...]
    lane: Literal["email"] = "email"


Command = Union[ZoomCommand, BotCommand, SendEmails]


@dataclass(frozen=True)
class Pending:
    """The next command of each lane (None: nothing to do now)."""

    zoom: ZoomCommand | None
    bot: BotCommand | None
    email: SendEmails | None


@dataclass(frozen=True)
class Booked:
    """The start input, raw (any JSON), and the database record read at the start of a fresh run."""

    raw: Any
    loaded: act.LoadConferenceResult


@dataclass(frozen=True)
class MessageReceived:
    kind: str  # reschedule | cancel | update_details | consent
    raw: Any


@dataclass(frozen=True)
class BotStatusReceived:
    raw: Any


@dataclass(frozen=True)
class ConnectionChanged:
    raw: Any


@dataclass(frozen=True)
class ZoomMeetingChangedReceived:
    """Zoom reported a change to a meeting (`meeting.updated` / `meeting.deleted`), relayed by the API."""

    raw: Any


@dataclass(frozen=True)
class Started:
    """The shell started `command` (an activity): revisions and generations are taken here."""

    command: Command


@dataclass(frozen=True)
class Succeeded:
    command: Command
    result: Any


@dataclass(frozen=True)
class Failed:
    command: Command
    failure: Failure


@dataclass(frozen=True)
class Superseded:
    """The shell cancelled `command` because `pending()` no longer names it; its effect is unknown."""

    command: Command


@dataclass(frozen=True)
class TimerFired:
    pass


Event = Union[Booked, MessageReceived, BotStatusReceived, ConnectionChanged, ZoomMeetingChangedReceived, Started,
              Succeeded, Failed, Superseded, TimerFired]


@dataclass
class Decision:
    state: WorkflowState
    pending: Pending
    metrics: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (counter, labels) to add 1 to


def decide(s: WorkflowState, event: Event, env: Env) -> Decision:
    """Apply one event to the state; return it with each lane's next command."""
    metrics: list[tuple[str, dict[str, str]]] = []
    if isinstance(event, Booked):
        _booked(s, event, env)
    elif isinstance(event, MessageReceived):
        receive(s, event.kind, event.raw, env)
    elif isinstance(event, BotStatusReceived):
        _bot_status(s, event.raw)
    elif isinstance(event, ConnectionChanged):
        _connection_changed(s, event.raw, env)
    elif isinstance(event, ZoomMeetingChangedReceived):
        _zoom_meeting_changed(s, event.raw, env)
    elif isinstance(event, Started):
        _started(s, event.command)
    elif isinstance(event, Succeeded):
        _succeeded(s, event.command, event.result, env)
    elif isinstance(event, Failed):
        metrics += _failed(s, event.command, event.failure, env)
    elif isinstance(event, Superseded):
        _superseded(s, event.command)
    elif isinstance(event, TimerFired):
        end_if_over(s, env.now)
    now_pending = pending(s, env)
    if now_pending.zoom is None:
        settle_zoom_status(s, env.now)
    bot_note(s)
    return Decision(state=s, pending=now_pending, metrics=metrics)


# -- small helpers ---------------------------------------------------------------------------------------------


def utc_z(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fp(*parts: object) -> str:
    """A fingerprint over explicitly listed fields: adding a model field never changes it."""
    return hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).hexdigest()[:16]


def _describe(error: ValidationError) -> str:
    """The first problem, by field: no input values echoed (they may hold personal data or join URLs)."""
    first = error.errors()[0]
    where = ".".join(str(x) for x in first.get("loc", ())) or "message"
    return f"{where}: {first.get('msg', 'invalid')}"[:200]


def _parked(lane: LaneState, now: datetime) -> bool:
    until = validation.parse_rfc3339(lane.parked_until or "")
    return until is not None and now < until


def _audit(s: WorkflowState, env: Env, event: str, key: str, details: dict[str, object]) -> None:
    s.outbox_audit.append(act.AuditNote(
        workspace_id=s.appointment.workspace_id, appointment_id=s.appointment.appointment_id, event=event,
        actor="system", workflow_id=env.workflow_id, run_id=env.run_id, details=details,
        dedupe_key=f"{env.workflow_id}:{key}"))


# -- the start ---------------------------------------------------------------------------------------------------


def initial_state(raw: Any, workflow_id: str) -> tuple[WorkflowState, bool]:
    """The state for a start input (any JSON). Returns (state, fresh): carried state resumes as it was."""
    if isinstance(raw, dict) and isinstance(raw.get("carried_state"), dict):
        try:
            return WorkflowState.model_validate(raw["carried_state"]), False
        except ValidationError:
            pass  # not ours to trust: start over from the database record like a fresh run
    booking, _ = parse_booking(raw, workflow_id)
    return WorkflowState(appointment=_view_of(booking)), True


def parse_booking(raw: Any, workflow_id: str) -> tuple[AppointmentInput, str | None]:
    """The start input, whatever JSON it is: fields of the wrong type fall back to their defaults and the
    first problem is returned as the reason (the booking is then rejected in state, never a failed task)."""
    fallback_id = workflow_id.removeprefix("appointment-")
    data: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    reason = None if isinstance(raw, dict) else "the start input is not a JSON object"
    data.pop("carried_state", None)
    for _ in range(len(data) + 2):
        try:
            booking = AppointmentInput.model_validate(
                {"appointment_id": fallback_id, "workspace_id": "", **data})
            return booking, reason
        except ValidationError as err:
            reason = reason or _describe(err)
            bad = {str(e["loc"][0]) for e in err.errors() if e.get("loc")}
            if not bad & set(data):
                break
            for name in bad:
                data.pop(name, None)
    return AppointmentInput(appointment_id=fallback_id, workspace_id=""), reason or "the start input is malformed"


def _view_of(booking: AppointmentInput) -> AppointmentView:
    return AppointmentView(
        appointment_id=booking.appointment_id, workspace_id=booking.workspace_id,
        booking_type_id=booking.booking_type_id, title=booking.title, description=booking.description,
        start_time=booking.start_time, duration_minutes=booking.duration_minutes, timezone=booking.timezone,
        conference_provider=booking.conference_provider, attendees=booking.attendees,
        note_taking_enabled=booking.note_taking_enabled,
    )


def _booked(s: WorkflowState, event: Booked, env: Env) -> None:
    booking, shape_problem = parse_booking(event.raw, env.workflow_id)
    s.policy = event.loaded.policy
    record = event.loaded.record
    if record is not None:
        # A new run for an appointment that had one before (signal-with-start after completion, or book after
        # a crash): the database is the source of truth, never create a second meeting.
        s.restored = True
        if record.appointment_status == "cancelled":
            s.status = "cancelled"
            s.cancel_reason = "the appointment was cancelled earlier"
        if record.zoom_meeting_id is not None and record.status not in ("deleted",):
            s.zoom_meeting_id = record.zoom_meeting_id
            s.join_url = record.join_url
            s.synced = None  # unknown: checked against Zoom before anything is patched
        s.conference_status = record.status
    reason = shape_problem or validation.check_booking(booking, env.now)
    if reason is not None and not (s.restored and s.zoom_meeting_id is not None):
        s.booking_valid = False
        s.conference_status = "failed"
        s.conference_reason = f"booking rejected: {reason}"
        _reject(s, env, "book", f"book:{booking.appointment_id}"[:128], reason)
    s.loaded = True
    queued = list(s.queue)
    s.queue.clear()
    for item in queued:
        _apply(s, item, env)


# -- messages ----------------------------------------------------------------------------------------------------


def receive(s: WorkflowState, kind: str, raw: Any, env: Env) -> None:
    """A client message (any JSON): validate, de-duplicate, then apply (or queue until the record is loaded)."""
    model = MESSAGE_MODELS[kind]
    request_id = raw.get("request_id") if isinstance(raw, dict) else None
    if not isinstance(request_id, str):
        request_id = ""
    id_problem = validation.check_request_id(request_id)
    if id_problem is not None:
        _reject(s, env, kind, request_id, id_problem, record=False)
        return
    if request_id in s.requests:
        # Retries by the core app are expected: the first occurrence stands, nothing changes.
        _reject(s, env, kind, request_id, "duplicate request_id; the first request with this ID stands", record=False)
        return
    if not isinstance(raw, dict):
        _reject(s, env, kind, request_id, "the message is not a JSON object")
        return
    try:
        msg = model.model_validate(raw)
    except ValidationError as err:
        _reject(s, env, kind, request_id, _describe(err))
        return
    reason = _check(s, kind, msg, env.now)
    if reason is None and s.status != "scheduled":
        reason = f"the appointment is {s.status}; {kind} is no longer possible"
    if reason is not None:
        _reject(s, env, kind, request_id, reason)
        return
    seq = s.next_seq
    s.next_seq += 1
    _remember(s, request_id, RequestRecord(seq=seq, kind=kind, outcome="queued"))
    payload = msg.model_dump(mode="json", exclude_none=kind == "update_details")
    item = QueuedRequest(seq=seq, request_id=request_id, kind=kind, payload=payload)
    if s.loaded:
        _apply(s, item, env)
    else:
        s.queue.append(item)


def _check(s: WorkflowState, kind: str, msg: BaseModel, now: datetime) -> str | None:
    if isinstance(msg, Reschedule):
        tz = msg.timezone or s.appointment.timezone
        return validation.check_schedule(msg.start_time, msg.duration_minutes, now) or validation.check_timezone(tz)
    if isinstance(msg, Cancel):
        return None if msg.actor else "actor is missing"
    if isinstance(msg, UpdateDetails):
        reason = validation.check_title(msg.title) if msg.title is not None else None
        reason = reason or validation.check_description(msg.description)
        if reason is None and msg.conference_provider is not None:
            reason = validation.check_provider(msg.conference_provider)
        reason = reason or validation.check_attendees(msg.attendees)
        if reason is None and all(v is None for v in (msg.title, msg.description, msg.attendees, msg.conference_provider)):
            reason = "nothing to update"
        return reason
    if isinstance(msg, Consent):
        if not msg.actor or not msg.subject or not msg.channel or not msg.consent_text_version:
            return "consent needs actor, subject, channel and consent_text_version"
        if validation.parse_rfc3339(msg.occurred_at) is None:
            return "occurred_at is not RFC 3339 with an offset"
    return None


def _remember(s: WorkflowState, request_id: str, record: RequestRecord) -> None:
    s.requests[request_id] = record
    if len(s.requests) > REQUEST_MEMORY:
        # Oldest first (dicts keep insertion order, also through JSON): the documented guarantee is the last
        # REQUEST_MEMORY request IDs.
        for old in list(s.requests)[: len(s.requests) - REQUEST_MEMORY]:
            del s.requests[old]


def _reject(s: WorkflowState, env: Env, kind: str, request_id: str, reason: str, *, record: bool = True) -> None:
    if record and request_id:
        _remember(s, request_id, RequestRecord(seq=0, kind=kind, outcome="rejected"))
    s.rejection_count += 1
    s.rejected.append(RejectedRequest(request_id=request_id, kind=kind, reason=reason, at=utc_z(env.now)))
    del s.rejected[:-MAX_REJECTIONS_KEPT]
    _audit(s, env, "request.rejected", f"rejected:{s.rejection_count}",
           {"kind": kind, "request_id": request_id[:128], "reason": reason})


def _apply(s: WorkflowState, item: QueuedRequest, env: Env) -> None:
    if s.status != "scheduled":
        # Accepted before the run knew better (e.g. signal-with-start of a new run for an appointment the
        # database says was cancelled): refuse it now, visibly.
        _reject(s, env, item.kind, item.request_id, f"the appointment is {s.status}; {item.kind} is no longer possible")
        return
    a = s.appointment
    if item.kind == "reschedule":
        r = Reschedule.model_validate(item.payload)
        a.start_time, a.duration_minutes = r.start_time, r.duration_minutes
        if r.timezone:
            a.timezone = r.timezone
        s.booking_valid = s.booking_valid or _now_valid(s, env.now)
        s.pre_start_checked_for = None
    elif item.kind == "cancel":
        c = Cancel.model_validate(item.payload)
        s.status, s.cancel_actor, s.cancel_reason = "cancelled", c.actor, c.reason
    elif item.kind == "update_details":
        u = UpdateDetails.model_validate(item.payload)
        if u.title is not None:
            a.title = u.title
        if u.description is not None:
            a.description = u.description
        if u.attendees is not None:
            a.attendees = u.attendees
        if u.conference_provider is not None:
            a.conference_provider = u.conference_provider
        s.booking_valid = s.booking_valid or _now_valid(s, env.now)
    elif item.kind == "consent":
        k = Consent.model_validate(item.payload)
        s.consent = ConsentView(granted=k.granted, actor=k.actor, channel=k.channel,
                                consent_text_version=k.consent_text_version, occurred_at=k.occurred_at)
        s.outbox_consent.append(act.ConsentLogEntry(
            appointment_id=a.appointment_id, workspace_id=a.workspace_id, request_id=item.request_id,
            granted=k.granted, actor=k.actor, subject=k.subject, channel=k.channel,
            consent_text_version=k.consent_text_version, occurred_at=k.occurred_at,
            note_taking_enabled=a.note_taking_enabled))
    s.requests[item.request_id] = RequestRecord(seq=item.seq, kind=item.kind, outcome="applied")
    s.last_applied_request_id = item.request_id
    # A new message is the "next relevant message" every parked lane resumes on.
    for lane in (s.zoom_lane, s.bot_lane, s.email_lane):
        lane.parked_until = None
    s.failed_fingerprint = s.failed_fingerprint if s.failed_fingerprint == desired_fingerprint(s) else None


def _now_valid(s: WorkflowState, now: datetime) -> bool:
    booking = AppointmentInput(**s.appointment.model_dump())
    if validation.check_booking(booking, now) is None:
        s.conference_reason = None
        if s.conference_status == "failed":
            s.conference_status = "pending"
        return True
    return False


def _bot_status(s: WorkflowState, raw: Any) -> None:
    """A verified provider webhook, relayed by the service. Applied once per delivery ID."""
    try:
        event = BotStatusEvent.model_validate(raw)
    except ValidationError:
        return  # only our own service sends these; a malformed one carries nothing to apply
    if not event.delivery_id or event.delivery_id in s.bot_events_seen:
        return
    s.bot_events_seen.append(event.delivery_id)
    del s.bot_events_seen[:-BOT_EVENTS_KEPT]
    bot = s.recording_bot
    if event.bot_id != bot.bot_id:
        return  # a bot of an older generation: the sweep removes it
    bot.status, bot.sub_code = event.status, event.sub_code
    if event.status == "waiting_for_host_permission":
        bot.note = "the host must admit the bot and allow recording in Zoom"


def _connection_changed(s: WorkflowState, raw: Any, env: Env) -> None:
    # Sent by the service when the workspace connects, disconnects or needs re-authorization. Not a client
    # request: it only makes the Zoom lane ask the database for the truth again.
    try:
        msg = ZoomConnectionChanged.model_validate(raw)
    except ValidationError:
        msg = ZoomConnectionChanged()
    s.connection_epoch += 1
    s.zoom_lane.parked_until = None
    if msg.status == "disconnected" and s.zoom_meeting_id is not None:
        s.zoom_link = "detached"
        if s.status == "scheduled" and s.conference_status not in ("deleted", "failed"):
            # The service has purged the tokens: detach now, as a Zoom call would find (the meeting stays in
            # Zoom, the appointment shows why there is no link), without waiting for the next change to try one.
            _park_on_connection(s, env, act.ERR_DETACHED)


# Fields of the meeting Ratio owns and repairs when the host changes them inside Zoom. The agenda is not
# among them: Zoom's copy carries our create marker, so comparing it would "repair" our own writes.
REPAIRED_FIELDS = ("topic", "start_time", "duration", "timezone")


def _zoom_meeting_changed(s: WorkflowState, raw: Any, env: Env) -> None:
    """Ratio is the source of truth: a meeting the host deleted is recreated, one moved or retitled is patched
    back. Only changes that differ from what the appointment wants count, so the events our own PATCHes and
    creates cause change nothing (no repair loop), and an event for an older meeting is ignored."""
    try:
        msg = ZoomMeetingChanged.model_validate(raw)
    except ValidationError:
        return  # the API relays only verified, parsed events; anything else is not Zoom's
    if s.zoom_meeting_id is None or msg.meeting_id != s.zoom_meeting_id or not wants_meeting(s):
        return  # an older meeting, or one the appointment no longer wants (the delete path owns it)
    if msg.event == "meeting.deleted":
        _audit(s, env, "meeting.deleted_in_zoom", f"zoom-deleted:{msg.meeting_id}",
               {"zoom_meeting_id": msg.meeting_id, "by": msg.operator})
        _forget_meeting(s, "recreated")  # the Zoom lane creates a new meeting; emails and the bot follow the link
        return
    if s.synced is None:
        return  # a check of the meeting is owed anyway and reads what Zoom holds
    want = desired_spec(s).model_dump()
    reported: dict[str, object] = {}
    for name in REPAIRED_FIELDS:
        if name not in msg.changed:
            continue
        value = msg.changed[name]
        if name == "start_time":
            parsed = validation.parse_rfc3339(value) if isinstance(value, str) else None
            if parsed is None:
                continue
            value = utc_z(parsed)
        reported[name] = value
    changed_by_host = sorted(name for name, value in reported.items() if value != want.get(name))
    if reported:
        # What Zoom holds now: where it differs from what the appointment wants, the Zoom lane patches it back.
        s.synced = s.synced.model_copy(update=reported)
    queued = {note.dedupe_key for note in s.outbox_audit}
    if changed_by_host and f"{env.workflow_id}:zoom-changed:{msg.delivery_id}" not in queued:
        # (A redelivery after the row was written is dropped by the audit trail's dedupe key.)
        _audit(s, env, "meeting.changed_in_zoom", f"zoom-changed:{msg.delivery_id}",
               {"zoom_meeting_id": msg.meeting_id, "fields": changed_by_host, "by": msg.operator})


# -- what the appointment wants ----------------------------------------------------------------------------------


def wants_meeting(s: WorkflowState) -> bool:
    return s.booking_valid and s.status == "scheduled" and s.appointment.conference_provider == "zoom"


def must_delete(s: WorkflowState) -> bool:
    """Cancelled, or switched to another provider. A *completed* appointment keeps its meeting."""
    if s.zoom_meeting_id is None or s.conference_status == "deleted":
        return False
    return s.status == "cancelled" or (s.status == "scheduled" and s.appointment.conference_provider != "zoom")


def create_unresolved(s: WorkflowState) -> bool:
    """A create may have reached Zoom (its outcome is unknown) although the appointment no longer wants it."""
    return s.zoom_meeting_id is None and s.create_op_id is not None and s.booking_valid and not wants_meeting(s)


def zoom_work_needed(s: WorkflowState) -> bool:
    return wants_meeting(s) or must_delete(s) or create_unresolved(s)


def desired_spec(s: WorkflowState) -> act.MeetingSpec:
    a = s.appointment
    start = validation.parse_rfc3339(a.start_time)
    assert start is not None  # booking_valid guarantees it
    return act.MeetingSpec(topic=a.title[:200], agenda=(a.description or "")[: AGENDA_MAX - MARKER_RESERVE],
                           start_time=utc_z(start), duration=a.duration_minutes, timezone=a.timezone)


def desired_fingerprint(s: WorkflowState) -> str:
    a = s.appointment
    return _fp(s.status, s.booking_valid, a.title, a.description, a.start_time, a.duration_minutes, a.timezone,
               a.conference_provider)


def bot_gates_open(s: WorkflowState) -> bool:
    """Both gates (note-taking on, latest consent granted) on an appointment that still wants its meeting."""
    return (s.appointment.note_taking_enabled and s.consent.granted is True and s.status == "scheduled"
            and wants_meeting(s))


def bot_wanted(s: WorkflowState) -> bool:
    """Gates open and a ready meeting to join. While the meeting is being recreated the bot waits (it is
    moved to the new meeting afterwards), it is not removed."""
    return (bot_gates_open(s) and s.conference_status == "ready" and s.join_url is not None
            and s.zoom_meeting_id is not None)


def bot_live(s: WorkflowState) -> bool:
    bot = s.recording_bot
    return bot.bot_id is not None and bot.status not in TERMINAL_BOT


def dispatch_key(s: WorkflowState, generation: int) -> str:
    return f"{s.appointment.appointment_id}:recbot:{generation}"


# -- Zoom lane ---------------------------------------------------------------------------------------------------


def _zoom_parked(s: WorkflowState, now: datetime) -> bool:
    """Parked on the connection (not connected, detached) or the daily limit, until a timer or a change."""
    if s.zoom_link not in ("waiting", "detached", "daily_limit") or not zoom_work_needed(s):
        return False
    if s.connection_epoch != s.parked_epoch:
        return False
    until = validation.parse_rfc3339(s.parked_until or "")
    return until is not None and now < until


def _in_pre_start_window(s: WorkflowState, now: datetime) -> bool:
    start = validation.parse_rfc3339(s.appointment.start_time)
    return start is not None and now >= start - timedelta(minutes=s.policy.pre_start_check_minutes)


def next_zoom_command(s: WorkflowState, now: datetime) -> ZoomCommand | None:
    if _parked(s.zoom_lane, now):
        return None
    return _zoom_step(s, now)


def zoom_in_step(s: WorkflowState, now: datetime) -> bool:
    """Zoom holds what the appointment wants, or the Zoom lane waits on something only a person or the
    calendar can change (connection, daily limit, a refusal). False while work is owed, even when the lane is
    briefly parked on an outage or a 429: the requests so far are not applied yet."""
    return _zoom_step(s, now) is None


def _zoom_step(s: WorkflowState, now: datetime) -> ZoomCommand | None:
    if not s.loaded or _zoom_parked(s, now):
        return None
    if s.failed_fingerprint is not None and s.failed_fingerprint == desired_fingerprint(s):
        return None  # Zoom refused exactly this; wait for the appointment to change
    if s.zoom_link == "detached" and s.parked_epoch == s.connection_epoch:
        return None
    if wants_meeting(s):
        if s.zoom_meeting_id is None:
            return CreateMeeting(spec=desired_spec(s), reason=s.recreate_reason or "created")
        if s.synced is None or (s.pre_start_checked_for != s.appointment.start_time and _in_pre_start_window(s, now)):
            return CheckMeeting(zoom_meeting_id=s.zoom_meeting_id, start_time=s.appointment.start_time)
        want = desired_spec(s).model_dump()
        have = s.synced.model_dump()
        changes = tuple(sorted((k, v) for k, v in want.items() if have.get(k) != v or k in s.unsure_fields))
        if changes:
            return PatchMeeting(zoom_meeting_id=s.zoom_meeting_id, changes=changes)
        return None
    if create_unresolved(s):
        # A create may have reached Zoom before the appointment stopped wanting a meeting: finish it (it adopts
        # the meeting an earlier attempt made, by its marker) so that it can be deleted, never left behind.
        return CreateMeeting(spec=desired_spec(s), reason=s.recreate_reason or "created")
    if must_delete(s):
        assert s.zoom_meeting_id is not None
        return DeleteMeeting(zoom_meeting_id=s.zoom_meeting_id,
                             reason="cancelled" if s.status == "cancelled" else "provider_switched")
    return None


def settle_zoom_status(s: WorkflowState, now: datetime) -> None:
    """The conference status when the Zoom lane has nothing to do."""
    if s.failed_fingerprint is not None and s.failed_fingerprint == desired_fingerprint(s):
        return  # Zoom refused exactly this appointment: the failure and its reason stand
    if s.zoom_lane.attention and _parked(s.zoom_lane, now) and _zoom_step(s, now) is not None:
        # Zoom work is owed and Zoom keeps failing: the meeting is not in step, say so (not "ready").
        s.conference_status, s.conference_reason = "waiting_for_zoom", s.zoom_lane.attention
        return
    if _zoom_parked(s, now):
        set_parked_status(s)
    elif wants_meeting(s) and s.zoom_meeting_id is not None:
        s.conference_status, s.conference_reason = "ready", None
    elif s.appointment.conference_provider != "zoom" and s.zoom_meeting_id is None:
        if s.conference_status != "deleted":
            s.conference_status = "detached"
            s.conference_reason = f"the conference provider is {s.appointment.conference_provider}; Zoom is not used"
    elif not s.booking_valid:
        s.conference_status = "failed"


def set_parked_status(s: WorkflowState) -> None:
    if s.zoom_link == "detached":
        s.conference_status = "detached"
    elif s.zoom_link in ("waiting", "daily_limit"):
        s.conference_status = "waiting_for_zoom"
    s.conference_reason = s.last_error


def _forget_meeting(s: WorkflowState, reason: str) -> None:
    s.zoom_meeting_id = None
    s.join_url = None
    s.synced = None
    s.unsure_fields = []
    s.recreate_reason = reason
    s.conference_status = "pending"


def _zoom_succeeded(s: WorkflowState, cmd: ZoomCommand, result: Any, env: Env) -> None:
    s.zoom_link = "ok"
    s.last_error = None
    s.failed_fingerprint = None
    _lane_healthy(s, s.zoom_lane, env, "zoom")
    if isinstance(cmd, CreateMeeting):
        r = act.MeetingResult.model_validate(result)
        s.zoom_meeting_id, s.join_url, s.synced = r.zoom_meeting_id, r.join_url, r.spec
        s.create_op_id = None
        s.recreate_reason = None
        s.unsure_fields = []
        if _in_pre_start_window(s, env.now):
            s.pre_start_checked_for = s.appointment.start_time  # just created: nothing to check
        s.conference_status = "ready" if wants_meeting(s) else s.conference_status
        s.conference_reason = None
    elif isinstance(cmd, PatchMeeting):
        r2 = act.UpdateMeetingResult.model_validate(result)
        if r2.outcome in ("not_found", "owner_changed"):
            _forget_meeting(s, "recreated" if r2.outcome == "not_found" else "account_changed")
            return
        assert s.synced is not None
        s.synced = s.synced.model_copy(update=cmd.change_dict)
        s.unsure_fields = [f for f in s.unsure_fields if f not in cmd.change_dict]
        if r2.outcome == "in_progress":  # Zoom will not change a meeting that has started: say so, no retry loop
            s.last_error = "Zoom refused the change because the meeting has already started or ended"
    elif isinstance(cmd, DeleteMeeting):
        r3 = act.DeleteMeetingResult.model_validate(result)
        if r3.outcome == "in_progress":
            s.conference_status = "failed"
            s.conference_reason = "Zoom refused to delete the meeting because it has already started or ended"
            s.last_error = s.conference_reason
            s.failed_fingerprint = desired_fingerprint(s)
            return
        s.conference_status = "deleted"
        s.conference_reason = ("the meeting belongs to a previously connected Zoom account and was left there"
                               if r3.outcome == "owner_changed" else None)
        s.synced = None
        s.unsure_fields = []
    elif isinstance(cmd, CheckMeeting):
        r4 = act.CheckMeetingResult.model_validate(result)
        s.pre_start_checked_for = cmd.start_time
        if not r4.exists or r4.actual is None:
            _forget_meeting(s, "account_changed" if r4.owner_changed else "recreated")
            return
        s.synced = r4.actual
        if r4.join_url and r4.join_url != s.join_url:
            s.join_url = r4.join_url


def _park_on_connection(s: WorkflowState, env: Env, error: str) -> None:
    """Park the Zoom lane on the workspace's connection (not connected, needs reconnect, detached)."""
    link, reason = PARK_REASONS[error]
    s.zoom_link = link
    s.parked_epoch = s.connection_epoch
    s.parked_until = utc_z(env.now + timedelta(minutes=s.policy.reconnect_recheck_minutes))
    s.last_error = reason
    if error == act.ERR_DETACHED and s.zoom_meeting_id is not None:
        _audit(s, env, "meeting.detached", f"detached:{s.zoom_meeting_id}",
               {"zoom_meeting_id": s.zoom_meeting_id, "reason": "zoom_disconnected"})
    set_parked_status(s)


def _zoom_failed(s: WorkflowState, cmd: ZoomCommand, failure: Failure, env: Env) -> list[tuple[str, dict[str, str]]]:
    now = env.now
    if failure.type == act.ERR_RATE_LIMITED:
        # Wait out Retry-After on a durable timer, then start a fresh retry chain: a 429 never raises the
        # attempt count that sets the backoff of a later 5xx.
        s.zoom_lane.parked_until = utc_z(now + rate_limit_wait(s, s.zoom_lane, failure))
        return []
    if failure.type in PARK_REASONS:
        _park_on_connection(s, env, failure.type)
        return [("ratio_zoom_workflows_parked", {"reason": failure.type})]
    if failure.type == act.ERR_DAILY_LIMIT:
        retry_at = now + timedelta(hours=1)
        if failure.details and isinstance(failure.details[0], str):
            retry_at = validation.parse_rfc3339(failure.details[0]) or retry_at
        s.parked_until = utc_z(retry_at)
        s.parked_epoch = s.connection_epoch
        s.zoom_link = "daily_limit"
        s.last_error = f"Zoom's daily limit of meeting create/update requests is reached; waiting until {s.parked_until}"
        set_parked_status(s)
        return [("ratio_zoom_workflows_parked", {"reason": failure.type})]
    if failure.type == act.ERR_REJECTED:
        # Permanent: Zoom rejected what we asked. Record it and wait for the next change of the appointment.
        s.last_error = f"Zoom rejected the request: {failure.message}"
        s.conference_status = "failed"
        s.conference_reason = s.last_error
        s.failed_fingerprint = desired_fingerprint(s)
        return []
    # Transient trouble that outlasted the bounded retry chain (5xx, timeouts, lost responses): park briefly
    # and escalate, so nobody is left guessing why nothing happens.
    if isinstance(cmd, PatchMeeting):
        s.unsure_fields = sorted(set(s.unsure_fields) | set(cmd.change_dict))
    return _escalate(s, s.zoom_lane, env, "zoom", ZOOM_PARK,
                     f"Zoom has not answered successfully ({failure.message or failure.type}); retrying every "
                     f"{int(ZOOM_PARK.total_seconds())} s")


def _escalate(s: WorkflowState, lane: LaneState, env: Env, name: str, park: timedelta,
              reason: str) -> list[tuple[str, dict[str, str]]]:
    lane.failures += 1
    lane.parked_until = utc_z(env.now + park)
    first = lane.attention is None
    lane.attention = reason[:300]
    if name == "zoom":
        s.last_error = lane.attention
    if first:
        _audit(s, env, "lane.needs_attention", f"attention:{name}:{s.op_seq}:{lane.failures}",
               {"lane": name, "reason": lane.attention})
        return [("ratio_zoom_lane_escalations", {"lane": name})]
    return []


def rate_limit_wait(s: WorkflowState, lane: LaneState, failure: Failure) -> timedelta:
    """How long a lane waits after a 429: Retry-After when given, else a backoff that doubles with each
    consecutive 429 (up to a minute). Plus a deterministic spread of up to 50% (a hash, not randomness, so
    replay decides the same), so that a burst of appointments told the same thing does not return at once:
    Zoom's per-second limits are shared by every app of the account."""
    lane.rate_limited += 1
    base = failure.retry_after or min(RATE_LIMIT_FALLBACK * 2 ** (lane.rate_limited - 1), RATE_LIMIT_MAX)
    spread = int(hashlib.sha256(f"{s.appointment.appointment_id}:{lane.rate_limited}".encode()).hexdigest()[:4], 16)
    return base * (1 + (spread % 50) / 100)


def _lane_healthy(s: WorkflowState, lane: LaneState, env: Env, name: str) -> None:
    if lane.attention is not None:
        _audit(s, env, "lane.recovered", f"recovered:{name}:{s.op_seq}", {"lane": name, "after_failures": lane.failures})
    lane.failures = 0
    lane.rate_limited = 0
    lane.attention = None
    lane.parked_until = None


# -- bot lane ----------------------------------------------------------------------------------------------------


def bot_note(s: WorkflowState) -> None:
    if bot_wanted(s) and not s.policy.bots_enabled:
        s.recording_bot.note = "a recording bot is wanted but no provider is configured (RECORDING_BOT_API_URL)"


def next_bot_command(s: WorkflowState, now: datetime) -> BotCommand | None:
    """Both gates (note-taking on, latest consent granted) and a ready meeting -> one bot that follows the
    meeting; otherwise none. Withdrawal always wins, whatever Zoom, SMTP or the database are doing."""
    if not s.loaded or not s.policy.bots_enabled or _parked(s.bot_lane, now):
        return None
    bot = s.recording_bot
    gates = bot_gates_open(s)
    if not gates and s.bot_unsure_key is not None:
        return CancelBot(bot_id=bot.bot_id if bot_live(s) and s.bot_unsure_key == dispatch_key(s, bot.generation) else None,
                         dispatch_key=s.bot_unsure_key, reason="consent withdrawn or appointment no longer needs it")
    if not gates:
        if bot_live(s):
            return CancelBot(bot_id=bot.bot_id, dispatch_key=dispatch_key(s, bot.generation),
                             reason="consent withdrawn or appointment no longer needs it")
        return None
    if not bot_wanted(s):
        return None  # the meeting is not ready (being created or recreated): the bot follows once it is
    assert s.join_url is not None and s.zoom_meeting_id is not None
    start = validation.parse_rfc3339(s.appointment.start_time)
    join_at = utc_z(start) if start is not None else ""
    if bot_live(s) and s.bot_must_replace:
        return CancelBot(bot_id=bot.bot_id, dispatch_key=dispatch_key(s, bot.generation), reason="replaced")
    if not bot_live(s):
        if s.outbox_consent:
            return None  # the schedule activity checks the consent log: the grant must be written first
        retry_same = s.bot_unsure_key is not None and s.bot_unsure_key == dispatch_key(s, bot.generation)
        generation = bot.generation if retry_same else bot.generation + 1
        return ScheduleBot(generation=generation, dispatch_key=dispatch_key(s, generation), meeting_url=s.join_url,
                           join_at=join_at, duration_minutes=s.appointment.duration_minutes,
                           meeting_id=s.zoom_meeting_id)
    if s.bot_join_at != join_at or s.bot_meeting_id != s.zoom_meeting_id:
        assert bot.bot_id is not None
        return MoveBot(bot_id=bot.bot_id, generation=bot.generation, dispatch_key=dispatch_key(s, bot.generation),
                       join_at=join_at, meeting_url=s.join_url, meeting_id=s.zoom_meeting_id)
    return None


def _bot_succeeded(s: WorkflowState, cmd: BotCommand, result: Any, env: Env) -> None:
    r = act.BotResult.model_validate(result)
    bot = s.recording_bot
    _lane_healthy(s, s.bot_lane, env, "bot")
    if isinstance(cmd, ScheduleBot):
        s.bot_unsure_key = None
        if r.outcome == "refused":
            bot.note = r.note
            # The consent log says no (it is the authority the activity checks): wait for the next message.
            s.bot_lane.parked_until = utc_z(env.now + timedelta(days=3650))
            return
        bot.bot_id, bot.status, bot.sub_code, bot.note = r.bot_id, r.status, r.sub_code, r.note
        s.bot_join_at, s.bot_meeting_id = cmd.join_at, cmd.meeting_id
    elif isinstance(cmd, MoveBot):
        if r.outcome == "too_late":  # inside the provider's 10-minute window: replace the bot
            s.bot_must_replace = True
            return
        s.bot_join_at, s.bot_meeting_id = cmd.join_at, cmd.meeting_id
    elif isinstance(cmd, CancelBot):
        if cmd.bot_id is None or cmd.dispatch_key == s.bot_unsure_key:
            s.bot_unsure_key = None
        if cmd.bot_id is not None and cmd.bot_id == bot.bot_id:
            bot.status, bot.sub_code = r.status, r.sub_code
        elif cmd.bot_id is None and bot.bot_id is not None and bot.generation == _generation(cmd.dispatch_key):
            bot.status = r.status
        s.bot_must_replace = False


def _generation(key: str | None) -> int:
    try:
        return int(str(key).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1


def _bot_failed(s: WorkflowState, cmd: BotCommand, failure: Failure, env: Env) -> list[tuple[str, dict[str, str]]]:
    s.recording_bot.note = f"recording bot provider problem: {failure.message or failure.type}"[:300]
    if failure.type == "BotRateLimited":
        s.bot_lane.parked_until = utc_z(env.now + rate_limit_wait(s, s.bot_lane, failure))
        return []
    return _escalate(s, s.bot_lane, env, "bot", BOT_PARK,
                     f"the recording-bot provider failed ({failure.message or failure.type}); retrying every "
                     f"{int(BOT_PARK.total_seconds())} s")


# -- email lane --------------------------------------------------------------------------------------------------


def _email_facts(s: WorkflowState) -> tuple[str, str, str]:
    a = s.appointment
    start = validation.parse_rfc3339(a.start_time)
    start_z = utc_z(start) if start is not None else ""
    facts = _fp(a.title, a.description, start_z, a.duration_minutes, a.timezone, s.join_url)
    everyone = _fp(facts, *[(x.name, x.email, x.timezone) for x in a.attendees])
    return facts, everyone, start_z


def next_email_command(s: WorkflowState, now: datetime) -> SendEmails | None:
    """Tell attendees what changed: a confirmation when the meeting is ready, an update (same UID, higher
    SEQUENCE) when its time, title or join URL changed, a cancellation when the appointment is cancelled.
    Only the newest revision is ever sent: an older one not yet out is superseded, never delivered late."""
    if not s.loaded or not s.policy.emails_enabled or not s.appointment.attendees or _parked(s.email_lane, now):
        return None
    a = s.appointment
    attendees = tuple(act.EmailAttendee(name=x.name, email=x.email, timezone=x.timezone) for x in a.attendees)
    facts, everyone, start_z = _email_facts(s)
    if s.status == "cancelled":
        if s.email_revision == 0 or s.email_cancel_sent:
            return None  # nothing was ever sent: nothing to take back
        fingerprint = "cancellation"
        revision = s.email_revision if s.email_started_fingerprint == fingerprint else s.email_revision + 1
        return SendEmails(kind="cancellation", revision=revision, fingerprint=fingerprint, facts_fingerprint=facts,
                          title=a.title, description=a.description, start_time=start_z,
                          duration_minutes=a.duration_minutes, timezone=a.timezone, join_url=None, attendees=attendees)
    if s.status != "scheduled" or s.conference_status != "ready" or not s.join_url:
        return None
    if everyone == s.email_fingerprint:
        return None
    if not s.email_confirmed:
        kind: Literal["confirmation", "update", "cancellation"] = "confirmation"
    elif facts != s.email_facts_fingerprint:
        kind = "update"
    else:
        kind = "update" if s.email_kind == "update" else "confirmation"  # only attendees changed
    if s.email_confirmed and facts == s.email_facts_fingerprint:
        revision = s.email_done_revision  # newcomers get the current revision; others already have it
    elif s.email_started_fingerprint == everyone:
        revision = s.email_revision  # the same round again (after a failure): same revision, same Message-IDs
    else:
        revision = s.email_revision + 1
    return SendEmails(kind=kind, revision=revision, fingerprint=everyone, facts_fingerprint=facts, title=a.title,
                      description=a.description, start_time=start_z, duration_minutes=a.duration_minutes,
                      timezone=a.timezone, join_url=s.join_url, attendees=attendees)


def _email_succeeded(s: WorkflowState, cmd: SendEmails, env: Env) -> None:
    _lane_healthy(s, s.email_lane, env, "email")
    s.email_done_revision = cmd.revision
    if cmd.kind == "cancellation":
        s.email_cancel_sent = True
        return
    s.email_kind = cmd.kind
    s.email_fingerprint = cmd.fingerprint
    s.email_facts_fingerprint = cmd.facts_fingerprint
    s.email_confirmed = True


# -- lane bookkeeping --------------------------------------------------------------------------------------------


def _started(s: WorkflowState, cmd: Command) -> None:
    if isinstance(cmd, CreateMeeting):
        pass  # the shell records the create's operation ID in `create_op_id` (it names operation IDs)
    elif isinstance(cmd, SendEmails):
        s.email_revision = max(s.email_revision, cmd.revision)
        s.email_started_fingerprint = cmd.fingerprint
    elif isinstance(cmd, ScheduleBot):
        s.recording_bot.generation = cmd.generation  # a new bot is needed: a new generation, a new dispatch key
        s.bot_unsure_key = cmd.dispatch_key  # until the provider's answer is in, the bot may or may not exist


def _succeeded(s: WorkflowState, cmd: Command, result: Any, env: Env) -> None:
    if cmd.lane == "zoom":
        _zoom_succeeded(s, cmd, result, env)  # type: ignore[arg-type]
    elif cmd.lane == "bot":
        _bot_succeeded(s, cmd, result, env)  # type: ignore[arg-type]
    else:
        _email_succeeded(s, cmd, env)  # type: ignore[arg-type]


def _failed(s: WorkflowState, cmd: Command, failure: Failure, env: Env) -> list[tuple[str, dict[str, str]]]:
    if cmd.lane == "zoom":
        return _zoom_failed(s, cmd, failure, env)  # type: ignore[arg-type]
    if cmd.lane == "bot":
        return _bot_failed(s, cmd, failure, env)  # type: ignore[arg-type]
    return _escalate(s, s.email_lane, env, "email", EMAIL_PARK,
                     f"attendee emails could not be sent ({failure.message or failure.type}); retrying every "
                     f"{int(EMAIL_PARK.total_seconds())} s")


def _superseded(s: WorkflowState, cmd: Command) -> None:
    if isinstance(cmd, PatchMeeting):
        # Zoom may or may not have applied it: send these fields again with the next PATCH.
        s.unsure_fields = sorted(set(s.unsure_fields) | set(cmd.change_dict))
    # ScheduleBot: bot_unsure_key (set when it started) makes the lane remove whatever it may have created.
    # SendEmails: the next round takes a new revision; the outbox rows of this one are never sent again.


def is_superseded(s: WorkflowState, cmd: Command, now: datetime) -> bool:
    """True when the lane running `cmd` should cancel it: newer work replaced it. A create is never cut
    (exactly-once create needs it to finish), nor a delete or a bot removal (they are what cancels lead to)."""
    if isinstance(cmd, (CreateMeeting, DeleteMeeting, CancelBot)):
        return False
    if isinstance(cmd, (PatchMeeting, CheckMeeting)):
        now_cmd = next_zoom_command(s, now)
        if isinstance(cmd, CheckMeeting):
            return must_delete(s) or not wants_meeting(s)
        return now_cmd != cmd and (must_delete(s) or not wants_meeting(s) or isinstance(now_cmd, PatchMeeting))
    if isinstance(cmd, (ScheduleBot, MoveBot)):
        if not bot_gates_open(s):
            return True
        if isinstance(cmd, MoveBot):
            nxt = next_bot_command(s, now)
            return isinstance(nxt, MoveBot) and nxt != cmd
        return False
    if cmd.kind == "cancellation":
        return False
    # What the round carries is no longer what the appointment says (a new time, title or join URL, or the
    # meeting is being recreated, or the appointment was cancelled): the round is stale, never delivered late.
    return s.status != "scheduled" or _email_facts(s)[1] != cmd.fingerprint


# -- the whole picture -------------------------------------------------------------------------------------------


def pending(s: WorkflowState, env: Env) -> Pending:
    return Pending(zoom=next_zoom_command(s, env.now), bot=next_bot_command(s, env.now),
                   email=next_email_command(s, env.now))


def end_of_life(s: WorkflowState) -> datetime | None:
    start = validation.parse_rfc3339(s.appointment.start_time)
    if start is None:
        return None
    return start + timedelta(minutes=max(s.appointment.duration_minutes, 0)) + timedelta(hours=s.policy.grace_hours)


def end_if_over(s: WorkflowState, now: datetime) -> bool:
    """After the appointment's end + grace the workflow closes, whatever is still parked."""
    end = end_of_life(s)
    if end is not None and now >= end:
        if s.status == "scheduled":
            s.status = "completed"
        return True
    return False


def finished(s: WorkflowState, env: Env) -> bool:
    """Nothing left to do, ever: completed, or cancelled with the meeting gone (or a recorded reason why not),
    the bot removed and the attendees told."""
    if not s.loaded or s.queue:
        return False
    if s.status == "completed":
        return True
    if s.status != "cancelled":
        return False
    p = pending(s, env)
    if p.zoom is not None or p.bot is not None or p.email is not None:
        return False
    if must_delete(s) and s.conference_status not in ("failed", "detached"):
        return False  # a delete is parked (outage, daily limit): it is still owed
    if s.policy.emails_enabled and s.appointment.attendees and s.email_revision > 0 and not s.email_cancel_sent:
        return False  # the attendees are owed their cancellation, even while the email lane is parked
    if s.policy.bots_enabled and (bot_live(s) or s.bot_unsure_key is not None):
        return False
    return not s.outbox_audit and not s.outbox_consent


def next_deadline(s: WorkflowState, now: datetime) -> datetime | None:
    """The earliest future moment at which some lane's decision changes by itself (a timer)."""
    out: list[datetime] = []
    end = end_of_life(s)
    out.append(end if end is not None else now + timedelta(days=7))
    start = validation.parse_rfc3339(s.appointment.start_time)
    # The pre-start check's moment whether or not the meeting exists yet: the alarm is then armed once at
    # booking instead of being moved when the create completes (two history events saved per lifecycle).
    if start is not None and wants_meeting(s) and s.pre_start_checked_for != s.appointment.start_time:
        out.append(start - timedelta(minutes=s.policy.pre_start_check_minutes))
    if zoom_work_needed(s) and s.zoom_link in ("waiting", "detached", "daily_limit"):
        until = validation.parse_rfc3339(s.parked_until or "")
        if until is not None:
            out.append(until)
    for lane in (s.zoom_lane, s.bot_lane, s.email_lane):
        until = validation.parse_rfc3339(lane.parked_until or "")
        if until is not None:
            out.append(until)
    future = [t for t in out if t > now]
    return min(future) if future else None


def pending_operations(s: WorkflowState, now: datetime, in_flight: list[str]) -> list[str]:
    """What is still owed, in plain words (the `state` query)."""
    out = [f"{q.kind} {q.request_id}" for q in s.queue] + list(in_flight)
    if s.zoom_link in ("waiting", "detached", "daily_limit") and zoom_work_needed(s):
        out.append("zoom sync (parked)")
    for name, lane in (("zoom", s.zoom_lane), ("recording bot", s.bot_lane), ("attendee emails", s.email_lane)):
        if lane.attention:
            out.append(f"{name}: needs attention: {lane.attention}")
        elif _parked(lane, now):
            out.append(f"{name}: waiting until {lane.parked_until}")
    return out

