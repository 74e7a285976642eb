"""`AppointmentWorkflow`: one long-lived workflow per appointment, the shell around `workflows/core.py`.

The decisions live in the core (pure, tested without Temporal). This class only:
- turns every Temporal input into one core event. Start input, signals and updates are typed `Any` at the
  Temporal boundary: any well-formed JSON deserialises, and the core turns a wrong type into a rejection in
  `state` (a payload that failed to deserialise would fail the workflow task or drop the signal);
- runs one *lane* per concern (Zoom meeting, recording bot, attendee emails, database records) as its own
  task: a step retrying in one lane never delays another. A lane cancels its in-flight activity as soon as
  the core no longer names it (a cancel stops a pending PATCH; a withdrawal stops a bot schedule);
- keeps one durable alarm timer for the earliest deadline (park timers, the pre-start check, end of life),
  re-armed only when that deadline changes, so waiting costs few history events;
- continues-as-new when suggested, at a quiet moment, after answering waiting updates.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    # Pure modules: pydantic models, checks, and the decision core.
    from pydantic import ValidationError

    from activities import schemas as act
    from ratio_zoom.contract.appointment import (
        AppointmentStateView,
        AwaitConference,
        ConferenceResult,
        ConferenceView,
    )
    from ratio_zoom.contract.search_attributes import (
        APPOINTMENT_ID,
        APPOINTMENT_START,
        CONFERENCE_STATUS,
        SEARCH_ATTRIBUTE_KEYS,
        WORKSPACE_ID,
    )
    from ratio_zoom.contract import validation
    from ratio_zoom.contract.zoom_events import ZOOM_MEETING_CHANGED_SIGNAL
    from workflows import core

# Bounded retry chains: when one is exhausted the core parks the lane with a reason (needs attention) and
# tries again after a short park, on the next message, or when the dependency answers again. A 429 is not
# retried here (non-retryable in the policy): the core waits out Retry-After on a timer and starts a fresh
# chain, so rate limiting never inflates the attempt count that sets the backoff of a later 5xx.
ZOOM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=16),
    maximum_attempts=8,  # about a minute of 5xx / timeouts / killed workers before the lane escalates
    non_retryable_error_types=[*act.NON_RETRYABLE_ZOOM_ERRORS, act.ERR_RATE_LIMITED],
)
BOT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=16),
                        maximum_attempts=5,
                        non_retryable_error_types=[act.ERR_BOT_AUTH, "BotProviderRefused", "BotRateLimited"])
EMAIL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(seconds=30),
                          maximum_attempts=4)
# The database is our own: its writes retry until it is back (they block no other lane; the bot lane waits
# only for a consent grant to be logged before it schedules).
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
ZOOM_ACTIVITY_TIMEOUT = timedelta(seconds=60)
# Zoom and bot activities heartbeat every 2 s (activities/heartbeat.py): a killed worker is noticed in 10 s,
# and a cancellation reaches a running attempt with its next heartbeat.
ZOOM_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
DB_ACTIVITY_TIMEOUT = timedelta(seconds=30)
# A local activity runs inside the workflow task (the SDK keeps the task alive while it runs); a longer database
# outage retries it on the local-activity backoff with timers, like any other DB write.
LOCAL_DB_TIMEOUT = timedelta(seconds=10)
# One patch for the leaner start (local load, no redundant search-attribute upsert): every patch also costs an
# upsert of Temporal's change-version attribute, so two changes share one marker.
LEAN_START_PATCH = "lean-start-2026-12"
PUBLISHED_KEYS = frozenset({APPOINTMENT_ID.name, WORKSPACE_ID.name, CONFERENCE_STATUS.name, APPOINTMENT_START.name})
UPDATE_MAX_WAIT_SECONDS = 600.0
PARKED_COUNTER = "ratio_zoom_workflows_parked"


class _Alarm:
    """One durable timer for the earliest deadline; a new timer only when that deadline moves."""

    def __init__(self) -> None:
        self.at: datetime | None = None
        self.rings = 0
        self._task: asyncio.Task[None] | None = None

    def arm(self, at: datetime | None) -> None:
        # A deadline that moved *later* keeps the armed timer: it rings early, the loop finds nothing due and
        # re-arms. Moving a timer costs two history events; most appointments end before it would ring.
        if at == self.at or (at is None or (self.at is not None and self.at <= at)) and self._task is not None:
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.at = at
        self._task = asyncio.create_task(self._ring(at)) if at is not None else None

    async def _ring(self, at: datetime) -> None:
        await asyncio.sleep(max((at - workflow.now()).total_seconds(), 0.001))
        self.at = None
        self.rings += 1


@workflow.defn(name="AppointmentWorkflow")
class AppointmentWorkflow:
    @workflow.init
    def __init__(self, booking: Any = None) -> None:
        self._s, self._fresh = core.initial_state(booking, workflow.info().workflow_id)
        self._version = 0  # bumped by every event: the main loop's signal to re-arm and re-publish
        self._busy: dict[str, core.Command] = {}  # lane -> command in flight
        self._records_busy = False
        self._saving_status = False
        self._stopping = False
        self._closing = False  # continuing-as-new: waiting updates answer now instead of hanging
        self._over = False
        self._alarm = _Alarm()
        self._saved_status: str | None = None
        self._row_written: str | None = None
        self._published: dict[str, object] = {}

    # -- run -------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, booking: Any = None) -> AppointmentStateView:
        s = self._s
        lean = workflow.patched(LEAN_START_PATCH)
        if lean:
            # What the search attributes already say: the starter sets all four at start and continue-as-new
            # carries them over, so publishing upserts only what differs (each upsert is a history event and
            # a visibility write). Runs recorded before the patch upserted all four once more.
            self._published = {pair.key.name: pair.value for pair in workflow.info().typed_search_attributes
                               if pair.key.name in PUBLISHED_KEYS}
        if self._fresh:
            parsed, _ = core.parse_booking(booking, workflow.info().workflow_id)
            args = act.LoadConferenceArgs(appointment_id=parsed.appointment_id, workspace_id=parsed.workspace_id)
            if lean:
                # One primary-key read: run it inside the first workflow task, so the create is scheduled by
                # that same task (one workflow task and one activity round trip fewer per appointment).
                loaded = await workflow.execute_local_activity(
                    act.LOAD_CONFERENCE, args, result_type=act.LoadConferenceResult,
                    start_to_close_timeout=LOCAL_DB_TIMEOUT, retry_policy=DB_RETRY,
                    summary="load the appointment's conference record")
            else:  # histories recorded before the patch scheduled it as a regular activity
                loaded = await workflow.execute_activity(
                    act.LOAD_CONFERENCE, args, result_type=act.LoadConferenceResult,
                    start_to_close_timeout=DB_ACTIVITY_TIMEOUT, retry_policy=DB_RETRY,
                    summary="load the appointment's conference record")
            self._decide(core.Booked(raw=booking, loaded=loaded))
        lanes = [asyncio.create_task(self._lane(name)) for name in ("zoom", "bot", "email")]
        lanes.append(asyncio.create_task(self._records_lane()))
        while True:
            self._publish()
            if self._over or (not self._busy and core.finished(s, self._env())):
                break
            if workflow.info().is_continue_as_new_suggested() and self._quiet():
                self._closing = True
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._quiet():
                    await self._stop(lanes)
                    workflow.continue_as_new(
                        {"appointment_id": s.appointment.appointment_id, "workspace_id": s.appointment.workspace_id,
                         "carried_state": s.model_dump(mode="json")})
                self._closing = False
            self._alarm.arm(core.next_deadline(s, workflow.now()))
            seen, rings = self._version, self._alarm.rings
            await workflow.wait_condition(
                lambda: self._version != seen or self._alarm.rings != rings
                or (workflow.info().is_continue_as_new_suggested() and self._quiet()))
            if self._alarm.rings != rings:
                self._decide(core.TimerFired())
                self._over = self._over or core.end_if_over(s, workflow.now())
        await self._stop(lanes)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush_records()
        await self._save_status()
        return self._view()

    def _env(self) -> core.Env:
        info = workflow.info()
        return core.Env(now=workflow.now(), workflow_id=info.workflow_id, run_id=info.run_id)

    def _decide(self, event: core.Event) -> core.Decision:
        decision = core.decide(self._s, event, self._env())
        for name, labels in decision.metrics:
            # Replay-safe counters (the SDK skips them while replaying).
            workflow.metric_meter().create_counter(name, "appointment workflow lane events").add(1, labels)
        if (self._s.loaded and not self._s.queue and "zoom" not in self._busy
                and core.zoom_in_step(self._s, workflow.now())):
            self._s.done_seq = self._s.next_seq - 1  # every request so far is reflected in Zoom (or parked)
        self._version += 1
        return decision

    def _quiet(self) -> bool:
        return (not self._busy and not self._records_busy and not self._saving_status and self._s.loaded and not self._s.queue
                and not self._s.outbox_audit and not self._s.outbox_consent and not self._status_due())

    async def _stop(self, lanes: list[asyncio.Task[None]]) -> None:
        self._stopping = True
        self._alarm.arm(None)
        await asyncio.gather(*lanes)
        self._stopping = False

    # -- lanes -----------------------------------------------------------------------------------------------

    async def _lane(self, name: str) -> None:
        """Run the core's next command for this lane, one at a time, until the workflow stops."""
        s = self._s
        next_command = {"zoom": core.next_zoom_command, "bot": core.next_bot_command,
                        "email": core.next_email_command}[name]
        # The conference row's status is written by the Zoom lane, between its Zoom steps: the create and
        # delete activities write the same row, so the writes must not race.
        saves_status = name == "zoom"
        while True:
            await workflow.wait_condition(lambda: self._stopping or next_command(s, workflow.now()) is not None
                                          or (saves_status and self._status_due()))
            if self._stopping:
                return
            command = next_command(s, workflow.now())
            if command is None:
                self._saving_status = True
                await self._save_status()
                self._saving_status = False
                continue
            self._busy[name] = command
            self._decide(core.Started(command))
            handle = self._start(command)
            await workflow.wait_condition(
                lambda: handle.done() or self._stopping or core.is_superseded(s, command, workflow.now()))
            cancelled_by_us = not handle.done()
            if cancelled_by_us:
                handle.cancel()
            try:
                result = await handle
            except (ActivityError, asyncio.CancelledError) as err:
                del self._busy[name]
                if cancelled_by_us and _is_cancellation(err):
                    self._decide(core.Superseded(command))
                else:
                    self._decide(core.Failed(command, _failure_of(err)))
                continue
            del self._busy[name]
            if isinstance(command, core.CreateMeeting):
                self._row_written = "ready|scheduled"  # the create activity wrote this to the conference row
            elif isinstance(command, core.DeleteMeeting):
                self._row_written = f"deleted|{s.status}"  # so did the delete
            self._decide(core.Succeeded(command, result))

    def _ctx(self) -> act.OpContext:
        s = self._s
        s.op_seq += 1
        info = workflow.info()
        return act.OpContext(workflow_id=info.workflow_id, run_id=info.run_id,
                             appointment_id=s.appointment.appointment_id, workspace_id=s.appointment.workspace_id,
                             op_id=f"{info.workflow_id}:op:{s.op_seq}", actor=s.cancel_actor or "system")

    def _start(self, c: core.Command) -> workflow.ActivityHandle[Any]:
        """The activity for one command. Superseded work is cancelled and *waited for*: a stale PATCH or bot
        schedule must be over before the lane's next step (a delete, a removal) reaches the same resource."""
        wait = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        zoom: dict[str, Any] = dict(start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT, heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT,
                                    retry_policy=ZOOM_RETRY, cancellation_type=wait)
        bot: dict[str, Any] = dict(start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT, heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT,
                                   retry_policy=BOT_RETRY, cancellation_type=wait)
        if isinstance(c, core.CreateMeeting):
            ctx = self._ctx()
            if self._s.create_op_id is None:
                self._s.create_op_id = ctx.op_id
            else:  # same operation, same create marker: a later chain adopts what an earlier one created
                ctx = ctx.model_copy(update={"op_id": self._s.create_op_id})
            return workflow.start_activity(
                act.CREATE_MEETING, act.CreateMeetingArgs(ctx=ctx, spec=c.spec, reason=c.reason),
                result_type=act.MeetingResult, summary=f"create Zoom meeting ({c.reason})", **zoom)
        if isinstance(c, core.PatchMeeting):
            return workflow.start_activity(
                act.UPDATE_MEETING, act.UpdateMeetingArgs(ctx=self._ctx(), zoom_meeting_id=c.zoom_meeting_id,
                                                          changes=c.change_dict),
                result_type=act.UpdateMeetingResult,
                summary=f"patch Zoom meeting {c.zoom_meeting_id}: {', '.join(k for k, _ in c.changes)}", **zoom)
        if isinstance(c, core.DeleteMeeting):
            return workflow.start_activity(
                act.DELETE_MEETING, act.DeleteMeetingArgs(ctx=self._ctx(), zoom_meeting_id=c.zoom_meeting_id,
                                                          reason=c.reason),
                result_type=act.DeleteMeetingResult, summary=f"delete Zoom meeting {c.zoom_meeting_id} ({c.reason})",
                **zoom)
        if isinstance(c, core.CheckMeeting):
            return workflow.start_activity(
                act.CHECK_MEETING, act.CheckMeetingArgs(ctx=self._ctx(), zoom_meeting_id=c.zoom_meeting_id),
                result_type=act.CheckMeetingResult,
                summary=f"check Zoom meeting {c.zoom_meeting_id} for changes made inside Zoom", **zoom)
        if isinstance(c, core.ScheduleBot):
            return workflow.start_activity(
                act.SCHEDULE_BOT,
                act.ScheduleBotArgs(ctx=self._ctx(), generation=c.generation, dispatch_key=c.dispatch_key,
                                    meeting_url=c.meeting_url, join_at=c.join_at, duration_minutes=c.duration_minutes),
                result_type=act.BotResult, summary=f"schedule recording bot (generation {c.generation})", **bot)
        if isinstance(c, core.MoveBot):
            return workflow.start_activity(
                act.MOVE_BOT,
                act.MoveBotArgs(ctx=self._ctx(), bot_id=c.bot_id, dispatch_key=c.dispatch_key, generation=c.generation,
                                join_at=c.join_at, meeting_url=c.meeting_url),
                result_type=act.BotResult, summary=f"move recording bot {c.bot_id}", **bot)
        if isinstance(c, core.CancelBot):
            return workflow.start_activity(
                act.CANCEL_BOT,
                act.CancelBotArgs(ctx=self._ctx(), bot_id=c.bot_id, dispatch_key=c.dispatch_key, reason=c.reason),
                result_type=act.BotResult, summary=f"remove recording bot {c.bot_id or c.dispatch_key}", **bot)
        return workflow.start_activity(
            act.SEND_CONFIRMATIONS,
            act.SendConfirmationsArgs(
                ctx=self._ctx(), kind=c.kind, revision=c.revision, title=c.title, description=c.description,
                start_time=c.start_time, duration_minutes=c.duration_minutes, timezone=c.timezone,
                join_url=c.join_url, attendees=list(c.attendees)),
            result_type=act.SendConfirmationsResult,
            # heartbeats once per attendee; one SMTP exchange is bounded by a 20 s timeout
            start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(seconds=30),
            retry_policy=EMAIL_RETRY, cancellation_type=wait,
            summary=f"email attendees: {c.kind} (revision {c.revision})")

    async def _records_lane(self) -> None:
        """Consent log, audit rows and the conference row's status: our own database, its own lane."""
        while True:
            await workflow.wait_condition(lambda: self._stopping or self._records_due())
            if self._stopping:
                return
            self._records_busy = True
            await self._flush_records()
            self._records_busy = False

    def _records_due(self) -> bool:
        return bool(self._s.outbox_consent or self._s.outbox_audit)

    def _status_key(self) -> str:
        return f"{self._s.conference_status}|{self._s.status}"

    def _status_due(self) -> bool:
        return self._s.loaded and self._status_key() != self._saved_status

    async def _flush_records(self) -> None:
        s = self._s
        if s.outbox_consent:
            batch = list(s.outbox_consent)
            await workflow.execute_activity(act.RECORD_CONSENT, batch, start_to_close_timeout=DB_ACTIVITY_TIMEOUT,
                                            retry_policy=DB_RETRY, summary="record consent in the consent log")
            del s.outbox_consent[: len(batch)]
            self._version += 1
        if s.outbox_audit:
            notes = list(s.outbox_audit)
            await workflow.execute_activity(act.WRITE_AUDIT_EVENTS, notes, start_to_close_timeout=DB_ACTIVITY_TIMEOUT,
                                            retry_policy=DB_RETRY, summary="write workflow events to the audit trail")
            del s.outbox_audit[: len(notes)]
            self._version += 1

    async def _save_status(self) -> None:
        s = self._s
        key = self._status_key()
        if self._saved_status == key or not s.loaded:
            return
        if self._row_written == key:  # already in the row: no extra activity (and history) for it
            self._saved_status = key
            return
        await workflow.execute_activity(
            act.SAVE_CONFERENCE_STATUS,
            act.SaveConferenceStatusArgs(appointment_id=s.appointment.appointment_id,
                                         workspace_id=s.appointment.workspace_id, status=s.conference_status,
                                         appointment_status=s.status, reason=s.conference_reason),
            start_to_close_timeout=DB_ACTIVITY_TIMEOUT, retry_policy=DB_RETRY,
            summary=f"save conference status {s.conference_status}")
        self._saved_status = key
        self._version += 1

    # -- messages: any JSON in, a core event out; never raise ----------------------------------------------

    @workflow.signal
    def reschedule(self, msg: Any = None) -> None:
        self._decide(core.MessageReceived("reschedule", msg))

    @workflow.signal
    def cancel(self, msg: Any = None) -> None:
        self._decide(core.MessageReceived("cancel", msg))

    @workflow.signal
    def update_details(self, msg: Any = None) -> None:
        self._decide(core.MessageReceived("update_details", msg))

    @workflow.signal
    def consent(self, msg: Any = None) -> None:
        self._decide(core.MessageReceived("consent", msg))

    @workflow.signal
    def bot_status(self, event: Any = None) -> None:
        """A verified provider webhook, relayed by the service. Applied once per delivery ID."""
        self._decide(core.BotStatusReceived(event))

    @workflow.signal
    def zoom_connection_changed(self, msg: Any = None) -> None:
        self._decide(core.ConnectionChanged(msg))

    @workflow.signal(name=ZOOM_MEETING_CHANGED_SIGNAL)
    def zoom_meeting_changed(self, event: Any = None) -> None:
        """Zoom's verified meeting.updated / meeting.deleted, relayed by the API: the core repairs what the
        host changed inside Zoom (recreate, patch back) and ignores the echoes of our own changes."""
        self._decide(core.ZoomMeetingChangedReceived(event))

    # -- query and update ---------------------------------------------------------------------------------

    @workflow.query
    def state(self) -> AppointmentStateView:
        return self._view()

    @workflow.update
    async def await_conference(self, req: Any = None) -> ConferenceResult:
        s = self._s
        try:
            ask = AwaitConference.model_validate(req if req is not None else {})
        except ValidationError as err:
            reason = f"await_conference: {err.errors()[0].get('msg', 'invalid')}"
            return ConferenceResult(conference=self._conference(), applied=False, request_outcome="rejected",
                                    reason=reason)
        rid = ask.after_request_id
        # Without a request ID: everything received up to now (frozen at the time of the call).
        target = s.next_seq - 1

        def applied() -> bool:
            if rid is None:
                return s.done_seq >= target
            record = s.requests.get(rid)
            return record is not None and (record.outcome == "rejected" or 0 < record.seq <= s.done_seq)

        wait = ask.timeout_seconds
        timeout = min(max(wait, 0.0), UPDATE_MAX_WAIT_SECONDS) if wait == wait else 0.0
        try:
            # Continue-as-new answers waiting updates at once (`_closing`) instead of letting them hang.
            await workflow.wait_condition(lambda: self._closing or applied(), timeout=timeout)
        except asyncio.TimeoutError:
            return ConferenceResult(conference=self._conference(), applied=False, request_outcome="pending",
                                    reason="timed out waiting for the request to be applied")
        if not applied():
            return ConferenceResult(conference=self._conference(), applied=False, request_outcome="pending",
                                    reason="the workflow is continuing as new; ask again")
        outcome = None
        reason = None
        if rid is not None:
            outcome = s.requests[rid].outcome
            if outcome == "rejected":
                reason = next((r.reason for r in reversed(s.rejected) if r.request_id == rid), None)
        return ConferenceResult(conference=self._conference(), applied=True, request_outcome=outcome, reason=reason)

    # -- projections --------------------------------------------------------------------------------------------

    def _publish(self) -> None:
        """Search attributes (no personal data) and the UI's current details, for ops."""
        s = self._s
        pairs: list[SearchAttributePair[Any]] = [
            SearchAttributePair(APPOINTMENT_ID, s.appointment.appointment_id),
            SearchAttributePair(WORKSPACE_ID, s.appointment.workspace_id),
            SearchAttributePair(CONFERENCE_STATUS, s.conference_status),
        ]
        start = validation.parse_rfc3339(s.appointment.start_time)
        if start is not None:
            pairs.append(SearchAttributePair(APPOINTMENT_START, start.astimezone(timezone.utc)))
        changed = [p for p in pairs if self._published.get(p.key.name) != p.value]
        if changed:
            workflow.upsert_search_attributes([p.key.value_set(p.value) for p in changed])
            self._published.update({p.key.name: p.value for p in changed})
        lines = [
            f"**Appointment** {s.appointment.appointment_id} ({s.status}) in workspace {s.appointment.workspace_id}",
            f"**Conference** {s.appointment.conference_provider}: {s.conference_status}"
            + (f", Zoom meeting {s.zoom_meeting_id}" if s.zoom_meeting_id else ""),
            f"**Starts** {s.appointment.start_time} for {s.appointment.duration_minutes} min",
        ]
        if s.last_error:
            lines.append(f"**Last error** {s.last_error}")
        for name, lane in (("Zoom", s.zoom_lane), ("Recording bot", s.bot_lane), ("Emails", s.email_lane)):
            if lane.attention:
                lines.append(f"**{name} needs attention** {lane.attention}")
        workflow.set_current_details("\n\n".join(lines))

    def _conference(self) -> ConferenceView:
        s = self._s
        return ConferenceView(provider=s.appointment.conference_provider, status=s.conference_status,  # type: ignore[arg-type]
                              zoom_meeting_id=s.zoom_meeting_id, join_url=s.join_url, reason=s.conference_reason)

    def _view(self) -> AppointmentStateView:
        s = self._s
        in_flight = [f"{lane}: {type(c).__name__}" for lane, c in sorted(self._busy.items())]
        return AppointmentStateView(
            status=s.status,  # type: ignore[arg-type]
            appointment=s.appointment,
            conference=self._conference(),
            last_applied_request_id=s.last_applied_request_id,
            rejected_requests=list(s.rejected),
            pending_operations=core.pending_operations(s, workflow.now(), in_flight),
            last_error=s.last_error,
            consent=s.consent,
            recording_bot=s.recording_bot,
            needs_attention=[f"{name}: {lane.attention}" for name, lane in
                             (("zoom", s.zoom_lane), ("recording_bot", s.bot_lane), ("emails", s.email_lane))
                             if lane.attention],
        )


def _is_cancellation(err: BaseException) -> bool:
    return isinstance(err, asyncio.CancelledError) or isinstance(getattr(err, "cause", None), CancelledError)


def _failure_of(err: BaseException) -> core.Failure:
    cause = getattr(err, "cause", None)
    if isinstance(cause, ApplicationError):
        return core.Failure(type=cause.type or "ApplicationError", message=cause.message,
                            details=tuple(cause.details), retry_after=cause.next_retry_delay)
    if isinstance(cause, ActivityTimeout):
        return core.Failure(type="timeout", message="the activity timed out")
    return core.Failure(type="unknown", message=str(cause or err)[:200])


__all__ = ["AppointmentWorkflow", "SEARCH_ATTRIBUTE_KEYS", "TypedSearchAttributes"]
