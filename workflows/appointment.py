"""`AppointmentWorkflow`: one long-lived workflow per appointment that keeps its Zoom meeting in step.

Shape of the workflow (the rules it lives by are Temporal's):
- Signal handlers only *validate and queue*. They never raise (an exception in a signal handler fails or
  blocks the workflow) and never await, so a bad message can only ever become a rejection in `state`.
- The main loop applies queued requests to the desired appointment, then reconciles Zoom with it: create,
  PATCH only what differs, delete. Several queued changes coalesce into one PATCH (the daily quota of 100
  create/update calls per host is precious).
- Waiting is durable: no Zoom connection -> `waiting_for_zoom` until the service signals a change (or an
  hourly re-check); daily limit -> a timer until 00:00 UTC; the pre-start drift check and the end of the
  appointment + grace period are timers too.
- Everything lives in one `WorkflowState`, carried whole through continue-as-new.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Pure modules (pydantic models and checks). zoneinfo reads the tz database, which is static data.
    from activities import schemas as act
    from ratio_zoom.contract import validation
    from ratio_zoom.contract.appointment import (
        AppointmentInput,
        AppointmentStateView,
        AppointmentView,
        AwaitConference,
        Cancel,
        ConferenceResult,
        ConferenceView,
        Consent,
        ConsentView,
        RejectedRequest,
        Reschedule,
        UpdateDetails,
        ZoomConnectionChanged,
    )
    from ratio_zoom.contract.bot_status import BotStatusEvent as BotStatusSignal
    from ratio_zoom.contract.search_attributes import (
        APPOINTMENT_ID,
        APPOINTMENT_START,
        CONFERENCE_STATUS,
        SEARCH_ATTRIBUTE_KEYS,
        WORKSPACE_ID,
    )
    from workflows.state import MAX_REJECTIONS_KEPT, QueuedRequest, RequestRecord, WorkflowState


AGENDA_MAX = 2000
MARKER_RESERVE = 60  # room kept at the end of the agenda for the create marker (activities/meetings.py)

ZOOM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=0,  # transient Zoom trouble is retried until it passes; permanent errors are typed
    non_retryable_error_types=act.NON_RETRYABLE_ZOOM_ERRORS,
)
BOT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=2),
                        non_retryable_error_types=[act.ERR_BOT_AUTH])
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
ZOOM_ACTIVITY_TIMEOUT = timedelta(seconds=60)
# Zoom activities heartbeat every 2 s (activities/heartbeat.py): a killed worker is noticed in 10 s.
ZOOM_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
DB_ACTIVITY_TIMEOUT = timedelta(seconds=30)
UPDATE_MAX_WAIT_SECONDS = 600.0

PARK_REASONS = {
    act.ERR_NOT_CONNECTED: ("waiting", "Zoom is not connected for this workspace; waiting for an Owner or Admin to connect it"),
    act.ERR_NEEDS_RECONNECT: ("waiting", "the Zoom connection needs to be re-authorized by an Owner or Admin"),
    act.ERR_DETACHED: ("detached", "Zoom was disconnected from this workspace; no Zoom link until it is connected again"),
}


def _utc_z(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@workflow.defn(name="AppointmentWorkflow")
class AppointmentWorkflow:
    @workflow.init
    def __init__(self, booking: AppointmentInput) -> None:
        if booking.carried_state is not None:
            self._s = WorkflowState.model_validate(booking.carried_state)
            self._fresh = False
        else:
            self._s = WorkflowState(appointment=_view_of(booking))
            self._fresh = True
        self._wake = False
        self._saved_status: str | None = None
        self._row_written: str | None = None
        self._over = False
        self._published: dict[str, object] = {}

    # -- run -------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, booking: AppointmentInput) -> AppointmentStateView:
        s = self._s
        if self._fresh:
            await self._start_fresh(booking)
        while True:
            applied_through = self._apply_queue()
            await self._reconcile()
            s.done_seq = max(s.done_seq, applied_through)
            await self._notify_attendees()
            await self._flush_outboxes()  # consent reaches the log before a bot is considered
            await self._reconcile_bot()
            await self._flush_outboxes()
            self._publish()
            if self._finished():
                break
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not s.queue:
                    await self._flush_outboxes()
                    workflow.continue_as_new(
                        AppointmentInput(
                            appointment_id=s.appointment.appointment_id,
                            workspace_id=s.appointment.workspace_id,
                            carried_state=s.model_dump(mode="json"),
                        )
                    )
            await self._sleep_until_something_happens()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush_outboxes()
        return self._view()

    async def _start_fresh(self, booking: AppointmentInput) -> None:
        s = self._s
        loaded = await workflow.execute_activity(
            act.LOAD_CONFERENCE,
            act.LoadConferenceArgs(appointment_id=booking.appointment_id, workspace_id=booking.workspace_id),
            result_type=act.LoadConferenceResult,
            start_to_close_timeout=DB_ACTIVITY_TIMEOUT,
            retry_policy=DB_RETRY,
            summary="load the appointment's conference record",
        )
        s.policy = loaded.policy
        record = loaded.record
        if record is not None:
            # A new run for an appointment that had one before (signal-with-start after completion, or
            # book after a crash): the database is the source of truth, never create a second meeting.
            s.restored = True
            if record.appointment_status == "cancelled":
                s.status = "cancelled"
                s.cancel_reason = "the appointment was cancelled earlier"
            if record.zoom_meeting_id is not None and record.status not in ("deleted",):
                s.zoom_meeting_id = record.zoom_meeting_id
                s.join_url = record.join_url
                s.synced = None  # unknown: checked against Zoom before anything is patched
            s.conference_status = record.status
        reason = validation.check_booking(booking, workflow.now())
        if reason is not None and not (s.restored and s.zoom_meeting_id is not None):
            s.booking_valid = False
            s.conference_status = "failed"
            s.conference_reason = f"booking rejected: {reason}"
            self._reject("book", f"book:{booking.appointment_id}", reason)

    # -- signals: validate and queue, never raise ------------------------------------------------------

    @workflow.signal
    def reschedule(self, msg: Reschedule) -> None:
        tz = msg.timezone or self._s.appointment.timezone
        reason = validation.check_schedule(msg.start_time, msg.duration_minutes, workflow.now()) or (
            validation.check_timezone(tz)
        )
        self._accept("reschedule", msg.request_id, msg.model_dump(mode="json"), reason)

    @workflow.signal
    def cancel(self, msg: Cancel) -> None:
        reason = None if msg.actor else "actor is missing"
        self._accept("cancel", msg.request_id, msg.model_dump(mode="json"), reason)

    @workflow.signal
    def update_details(self, msg: UpdateDetails) -> None:
        reason = None
        if msg.title is not None:
            reason = validation.check_title(msg.title)
        if reason is None:
            reason = validation.check_description(msg.description)
        if reason is None and msg.conference_provider is not None:
            reason = validation.check_provider(msg.conference_provider)
        if reason is None:
            reason = validation.check_attendees(msg.attendees)
        if reason is None and all(
            v is None for v in (msg.title, msg.description, msg.attendees, msg.conference_provider)
        ):
            reason = "nothing to update"
        self._accept("update_details", msg.request_id, msg.model_dump(mode="json", exclude_none=True), reason)

    @workflow.signal
    def consent(self, msg: Consent) -> None:
        reason = None
        if not msg.actor or not msg.subject or not msg.channel or not msg.consent_text_version:
            reason = "consent needs actor, subject, channel and consent_text_version"
        elif validation.parse_rfc3339(msg.occurred_at) is None:
            reason = "occurred_at is not RFC 3339 with an offset"
        self._accept("consent", msg.request_id, msg.model_dump(mode="json"), reason, allowed_after_cancel=False)

    @workflow.signal
    def bot_status(self, event: BotStatusSignal) -> None:
        """A verified provider webhook, relayed by the service. Applied once per delivery ID."""
        s = self._s
        if not event.delivery_id or event.delivery_id in s.bot_events_seen:
            return
        s.bot_events_seen.append(event.delivery_id)
        del s.bot_events_seen[:-200]
        if event.bot_id != s.recording_bot.bot_id:
            return  # a bot of an older generation: the sweep removes it
        s.recording_bot.status = event.status
        s.recording_bot.sub_code = event.sub_code
        if event.status == "waiting_for_host_permission":
            s.recording_bot.note = "the host must admit the bot and allow recording in Zoom"
        self._wake = True

    @workflow.signal
    def zoom_connection_changed(self, msg: ZoomConnectionChanged) -> None:
        # Sent by the service when the workspace connects, disconnects or needs re-authorization. Not a
        # client request: it only wakes the loop, which asks the database for the truth.
        self._s.connection_epoch += 1
        if msg.status == "disconnected" and self._s.zoom_meeting_id is not None:
            self._s.zoom_link = "detached"
        self._wake = True

    # -- query and update ---------------------------------------------------------------------------------

    @workflow.query
    def state(self) -> AppointmentStateView:
        return self._view()

    @workflow.update
    async def await_conference(self, req: AwaitConference) -> ConferenceResult:
        s = self._s
        rid = req.after_request_id
        # Without a request ID: everything received up to now (frozen at the time of the call).
        target = s.next_seq - 1

        def settled() -> bool:
            if rid is None:
                return s.done_seq >= target
            record = s.requests.get(rid)
            return record is not None and (record.outcome == "rejected" or record.seq <= s.done_seq)

        timeout = min(max(float(req.timeout_seconds), 0.0), UPDATE_MAX_WAIT_SECONDS)
        try:
            await workflow.wait_condition(settled, timeout=timeout)
        except TimeoutError:
            return ConferenceResult(conference=self._conference(), applied=False, request_outcome="pending",
                                    reason="timed out waiting for the request to be applied")
        outcome = None
        reason = None
        if rid is not None:
            record = s.requests[rid]
            outcome = record.outcome
            if outcome == "rejected":
                reason = next((r.reason for r in reversed(s.rejected) if r.request_id == rid), None)
        return ConferenceResult(conference=self._conference(), applied=True, request_outcome=outcome, reason=reason)

    @await_conference.validator
    def _validate_await(self, req: AwaitConference) -> None:
        if req.timeout_seconds != req.timeout_seconds or req.timeout_seconds < 0:
            raise ValueError("timeout_seconds must be a non-negative number")

    # -- request bookkeeping -------------------------------------------------------------------------------

    def _accept(
        self, kind: str, request_id: str, payload: dict, reason: str | None, *, allowed_after_cancel: bool = False
    ) -> None:
        s = self._s
        id_problem = validation.check_request_id(request_id)
        if id_problem is not None:
            self._reject(kind, request_id if isinstance(request_id, str) else "", id_problem, record=False)
            return
        if request_id in s.requests:
            # Retries by the core app are expected: the first occurrence stands, nothing changes.
            self._reject(kind, request_id, "duplicate request_id; the first request with this ID stands", record=False)
            return
        if s.status != "scheduled" and not allowed_after_cancel:
            reason = f"the appointment is {s.status}; {kind} is no longer possible"
        if reason is not None:
            self._reject(kind, request_id, reason)
            return
        seq = s.next_seq
        s.next_seq += 1
        s.requests[request_id] = RequestRecord(seq=seq, kind=kind, outcome="queued")
        s.queue.append(QueuedRequest(seq=seq, request_id=request_id, kind=kind, payload=payload))
        self._wake = True

    def _reject(self, kind: str, request_id: str, reason: str, *, record: bool = True) -> None:
        s = self._s
        if record and request_id:
            s.requests[request_id] = RequestRecord(seq=0, kind=kind, outcome="rejected")
        s.rejection_count += 1
        s.rejected.append(RejectedRequest(request_id=request_id, kind=kind, reason=reason, at=_utc_z(workflow.now())))
        del s.rejected[:-MAX_REJECTIONS_KEPT]
        info = workflow.info()
        s.outbox_audit.append(act.AuditNote(
            workspace_id=s.appointment.workspace_id,
            appointment_id=s.appointment.appointment_id,
            event="request.rejected",
            actor="system",
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            details={"kind": kind, "request_id": request_id[:128], "reason": reason},
            dedupe_key=f"{info.workflow_id}:rejected:{s.rejection_count}",
        ))
        self._wake = True

    def _audit_once(self, event: str, key: str, details: dict[str, object]) -> None:
        s = self._s
        info = workflow.info()
        s.outbox_audit.append(act.AuditNote(
            workspace_id=s.appointment.workspace_id, appointment_id=s.appointment.appointment_id, event=event,
            actor="system", workflow_id=info.workflow_id, run_id=info.run_id, details=details,
            dedupe_key=f"{info.workflow_id}:{key}"))

    def _apply_queue(self) -> int:
        """Apply queued requests to the desired appointment; return the highest applied sequence number."""
        s = self._s
        applied_through = s.next_seq - 1
        while s.queue:
            item = s.queue.pop(0)
            if s.status != "scheduled":
                # Accepted before the run knew better (e.g. signal-with-start of a new run for an appointment
                # the database says was cancelled): refuse it now, visibly.
                self._reject(item.kind, item.request_id, f"the appointment is {s.status}; {item.kind} is no longer possible")
                continue
            handler = {
                "reschedule": self._apply_reschedule,
                "cancel": self._apply_cancel,
                "update_details": self._apply_update,
                "consent": self._apply_consent,
            }[item.kind]
            handler(item)
            s.requests[item.request_id].outcome = "applied"
            s.last_applied_request_id = item.request_id
        return applied_through

    def _apply_reschedule(self, item: QueuedRequest) -> None:
        msg = Reschedule.model_validate(item.payload)
        a = self._s.appointment
        a.start_time = msg.start_time
        a.duration_minutes = msg.duration_minutes
        if msg.timezone:
            a.timezone = msg.timezone
        self._s.booking_valid = self._s.booking_valid or self._now_valid()
        self._s.pre_start_checked_for = None

    def _apply_cancel(self, item: QueuedRequest) -> None:
        msg = Cancel.model_validate(item.payload)
        s = self._s
        s.status = "cancelled"
        s.cancel_actor = msg.actor
        s.cancel_reason = msg.reason

    def _apply_update(self, item: QueuedRequest) -> None:
        msg = UpdateDetails.model_validate(item.payload)
        a = self._s.appointment
        if msg.title is not None:
            a.title = msg.title
        if msg.description is not None:
            a.description = msg.description
        if msg.attendees is not None:
            a.attendees = msg.attendees
        if msg.conference_provider is not None:
            a.conference_provider = msg.conference_provider
        self._s.booking_valid = self._s.booking_valid or self._now_valid()

    def _apply_consent(self, item: QueuedRequest) -> None:
        msg = Consent.model_validate(item.payload)
        s = self._s
        s.consent = ConsentView(granted=msg.granted, actor=msg.actor, channel=msg.channel,
                                consent_text_version=msg.consent_text_version, occurred_at=msg.occurred_at)
        s.outbox_consent.append(act.ConsentLogEntry(
            appointment_id=s.appointment.appointment_id, workspace_id=s.appointment.workspace_id,
            request_id=item.request_id, granted=msg.granted, actor=msg.actor, subject=msg.subject,
            channel=msg.channel, consent_text_version=msg.consent_text_version, occurred_at=msg.occurred_at,
            note_taking_enabled=s.appointment.note_taking_enabled,
        ))

    def _now_valid(self) -> bool:
        a = self._s.appointment
        booking = AppointmentInput(**a.model_dump())
        if validation.check_booking(booking, workflow.now()) is None:
            self._s.conference_reason = None
            if self._s.conference_status == "failed":
                self._s.conference_status = "pending"
            return True
        return False

    # -- reconciling Zoom with the desired appointment --------------------------------------------------------

    def _wants_meeting(self) -> bool:
        s = self._s
        return s.booking_valid and s.status == "scheduled" and s.appointment.conference_provider == "zoom"

    def _desired_spec(self) -> act.MeetingSpec:
        a = self._s.appointment
        start = validation.parse_rfc3339(a.start_time)
        assert start is not None  # booking_valid guarantees it
        agenda = (a.description or "")[: AGENDA_MAX - MARKER_RESERVE]
        return act.MeetingSpec(topic=a.title[:200], agenda=agenda, start_time=_utc_z(start),
                               duration=a.duration_minutes, timezone=a.timezone)

    def _fingerprint(self) -> str:
        s = self._s
        return hashlib.sha256(
            f"{s.status}|{s.booking_valid}|{s.appointment.model_dump_json()}".encode()
        ).hexdigest()[:16]

    def _pre_start_check_due(self) -> bool:
        s = self._s
        if s.zoom_meeting_id is None or s.pre_start_checked_for == s.appointment.start_time:
            return False
        return self._in_pre_start_window()

    def _in_pre_start_window(self) -> bool:
        s = self._s
        start = validation.parse_rfc3339(s.appointment.start_time)
        if start is None:
            return False
        return workflow.now() >= start - timedelta(minutes=s.policy.pre_start_check_minutes)

    async def _reconcile(self) -> None:
        s = self._s
        for _ in range(8):  # each step makes progress; the bound only guards against a logic loop
            if self._parked():
                self._set_parked_status()
                return
            if s.failed_fingerprint is not None and s.failed_fingerprint == self._fingerprint():
                return
            step = self._next_step()
            if step is None:
                self._settle_status()
                return
            try:
                await step()
                s.zoom_link = "ok"
                s.last_error = None
                s.failed_fingerprint = None
            except ActivityError as err:
                if not self._handle_zoom_failure(err):
                    raise

    def _next_step(self):  # type: ignore[no-untyped-def]
        s = self._s
        has_meeting = s.zoom_meeting_id is not None
        if s.zoom_link == "detached" and s.parked_epoch == s.connection_epoch:
            return None
        if self._wants_meeting():
            if not has_meeting:
                return self._create
            if s.synced is None or self._pre_start_check_due():
                return self._check
            changes = self._diff(self._desired_spec(), s.synced)
            if changes:
                return lambda: self._update(changes)
            return None
        if self._must_delete():
            return self._delete
        return None

    def _must_delete(self) -> bool:
        """Cancelled, or switched to another provider. A *completed* appointment keeps its meeting."""
        s = self._s
        if s.zoom_meeting_id is None or s.conference_status == "deleted":
            return False
        return s.status == "cancelled" or (s.status == "scheduled" and s.appointment.conference_provider != "zoom")

    @staticmethod
    def _diff(want: act.MeetingSpec, have: act.MeetingSpec) -> dict[str, object]:
        return {k: v for k, v in want.model_dump().items() if getattr(have, k) != v}

    def _ctx(self) -> act.OpContext:
        s = self._s
        s.op_seq += 1
        info = workflow.info()
        return act.OpContext(workflow_id=info.workflow_id, run_id=info.run_id,
                             appointment_id=s.appointment.appointment_id, workspace_id=s.appointment.workspace_id,
                             op_id=f"{info.workflow_id}:op:{s.op_seq}", actor=s.cancel_actor or "system")

    async def _create(self) -> None:
        s = self._s
        spec = self._desired_spec()
        reason = s.recreate_reason or "created"
        result = await workflow.execute_activity(
            act.CREATE_MEETING,
            act.CreateMeetingArgs(ctx=self._ctx(), spec=spec, reason=reason),
            result_type=act.MeetingResult,
            start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT,
            heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT,
            retry_policy=ZOOM_RETRY,
            summary=f"create Zoom meeting ({reason})",
        )
        s.zoom_meeting_id = result.zoom_meeting_id
        s.join_url = result.join_url
        s.synced = result.spec
        s.recreate_reason = None
        if self._in_pre_start_window():
            s.pre_start_checked_for = s.appointment.start_time  # just created: nothing to check
        s.conference_status = "ready"
        self._row_written = "ready|scheduled"  # the create activity wrote this to the conference row

    async def _update(self, changes: dict[str, object]) -> None:
        s = self._s
        assert s.zoom_meeting_id is not None and s.synced is not None
        result = await workflow.execute_activity(
            act.UPDATE_MEETING,
            act.UpdateMeetingArgs(ctx=self._ctx(), zoom_meeting_id=s.zoom_meeting_id, changes=changes),
            result_type=act.UpdateMeetingResult,
            start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT,
            heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT,
            retry_policy=ZOOM_RETRY,
            summary=f"patch Zoom meeting {s.zoom_meeting_id}: {', '.join(sorted(changes))}",
        )
        if result.outcome == "updated":
            s.synced = s.synced.model_copy(update=changes)
        elif result.outcome in ("not_found", "owner_changed"):
            self._forget_meeting("recreated" if result.outcome == "not_found" else "account_changed")
        else:  # in_progress: Zoom will not change a meeting that has started; say so, do not retry forever
            s.synced = s.synced.model_copy(update=changes)
            s.last_error = "Zoom refused the change because the meeting has already started or ended"

    async def _delete(self) -> None:
        s = self._s
        assert s.zoom_meeting_id is not None
        reason = "cancelled" if s.status == "cancelled" else "provider_switched"
        result = await workflow.execute_activity(
            act.DELETE_MEETING,
            act.DeleteMeetingArgs(ctx=self._ctx(), zoom_meeting_id=s.zoom_meeting_id, reason=reason),
            result_type=act.DeleteMeetingResult,
            start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT,
            heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT,
            retry_policy=ZOOM_RETRY,
            summary=f"delete Zoom meeting {s.zoom_meeting_id} ({reason})",
        )
        if result.outcome == "in_progress":
            s.conference_status = "failed"
            s.conference_reason = "Zoom refused to delete the meeting because it has already started or ended"
            s.last_error = s.conference_reason
            s.failed_fingerprint = self._fingerprint()
            return
        s.conference_status = "deleted"
        self._row_written = f"deleted|{s.status}"  # the delete activity wrote this to the conference row
        s.conference_reason = (
            "the meeting belongs to a previously connected Zoom account and was left there"
            if result.outcome == "owner_changed" else None
        )
        s.synced = None

    async def _check(self) -> None:
        s = self._s
        assert s.zoom_meeting_id is not None
        start_checked = s.appointment.start_time
        result = await workflow.execute_activity(
            act.CHECK_MEETING,
            act.CheckMeetingArgs(ctx=self._ctx(), zoom_meeting_id=s.zoom_meeting_id),
            result_type=act.CheckMeetingResult,
            start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT,
            heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT,
            retry_policy=ZOOM_RETRY,
            summary=f"check Zoom meeting {s.zoom_meeting_id} for changes made inside Zoom",
        )
        s.pre_start_checked_for = start_checked
        if not result.exists or result.actual is None:
            self._forget_meeting("account_changed" if result.owner_changed else "recreated")
            return
        s.synced = result.actual
        if result.join_url and result.join_url != s.join_url:
            s.join_url = result.join_url

    def _forget_meeting(self, reason: str) -> None:
        s = self._s
        s.zoom_meeting_id = None
        s.join_url = None
        s.synced = None
        s.recreate_reason = reason
        s.conference_status = "pending"

    def _handle_zoom_failure(self, err: ActivityError) -> bool:
        """Park or fail on a typed Zoom error. Returns False for errors that are not ours to handle."""
        s = self._s
        cause = err.cause
        if not isinstance(cause, ApplicationError):
            return False
        now = workflow.now()
        if cause.type in PARK_REASONS:
            link, reason = PARK_REASONS[cause.type]
            s.zoom_link = link
            s.parked_epoch = s.connection_epoch
            s.parked_until = _utc_z(now + timedelta(minutes=s.policy.reconnect_recheck_minutes))
            s.last_error = reason
            # Replay-safe counter (the SDK skips it while replaying): how often Zoom work parks, and why.
            workflow.metric_meter().create_counter(
                "ratio_zoom_workflows_parked", "Zoom work parked by reason").add(1, {"reason": cause.type})
            if cause.type == act.ERR_DETACHED and s.zoom_meeting_id is not None:
                self._audit_once("meeting.detached", f"detached:{s.zoom_meeting_id}",
                                 {"zoom_meeting_id": s.zoom_meeting_id, "reason": "zoom_disconnected"})
            self._set_parked_status()
            return True
        if cause.type == act.ERR_DAILY_LIMIT:
            retry_at = now + timedelta(hours=1)
            if cause.details and isinstance(cause.details[0], str):
                parsed = validation.parse_rfc3339(cause.details[0])
                retry_at = parsed or retry_at
            s.parked_until = _utc_z(retry_at)
            s.parked_epoch = s.connection_epoch
            s.zoom_link = "daily_limit"
            workflow.metric_meter().create_counter(
                "ratio_zoom_workflows_parked", "Zoom work parked by reason").add(1, {"reason": cause.type})
            s.last_error = f"Zoom's daily limit of meeting create/update requests is reached; waiting until {s.parked_until}"
            self._set_parked_status()
            return True
        # Permanent: Zoom rejected what we asked. Record it and wait for the next change of the appointment.
        s.last_error = f"Zoom rejected the request: {cause.message}"
        s.conference_status = "failed"
        s.conference_reason = s.last_error
        s.failed_fingerprint = self._fingerprint()
        return True

    def _parked(self) -> bool:
        s = self._s
        if s.zoom_link not in ("waiting", "detached", "daily_limit"):
            return False
        if not self._zoom_work_needed():
            return False
        if s.connection_epoch != s.parked_epoch:
            self._unpark()
            return False
        until = validation.parse_rfc3339(s.parked_until or "")
        if until is None or workflow.now() >= until:
            self._unpark()
            return False
        return True

    def _unpark(self) -> None:
        s = self._s
        s.zoom_link = "unknown"
        s.parked_until = None

    def _zoom_work_needed(self) -> bool:
        return self._wants_meeting() or self._must_delete()

    def _set_parked_status(self) -> None:
        s = self._s
        if s.zoom_link == "detached":
            s.conference_status = "detached"
        elif s.zoom_link in ("waiting", "daily_limit"):
            s.conference_status = "waiting_for_zoom"
        s.conference_reason = s.last_error

    def _settle_status(self) -> None:
        s = self._s
        if self._wants_meeting() and s.zoom_meeting_id is not None:
            s.conference_status = "ready"
            s.conference_reason = None
        elif s.appointment.conference_provider != "zoom" and s.zoom_meeting_id is None:
            if s.conference_status != "deleted":
                s.conference_status = "detached"
                s.conference_reason = f"the conference provider is {s.appointment.conference_provider}; Zoom is not used"
        elif not s.booking_valid:
            s.conference_status = "failed"

    # -- recording bot ---------------------------------------------------------------------------------------------

    def _bot_wanted(self) -> bool:
        s = self._s
        return (s.appointment.note_taking_enabled and s.consent.granted is True and s.status == "scheduled"
                and s.conference_status == "ready" and s.join_url is not None and self._wants_meeting())

    def _bot_live(self) -> bool:
        bot = self._s.recording_bot
        return bot.bot_id is not None and bot.status not in ("ended", "failed", "cancelled", "none")

    async def _reconcile_bot(self) -> None:
        """Both gates (note-taking on, latest consent granted) and a ready meeting -> one bot that follows the
        meeting; otherwise none. Withdrawal always wins."""
        s = self._s
        bot = s.recording_bot
        wanted = self._bot_wanted()
        if wanted and not s.policy.bots_enabled:
            bot.note = "a recording bot is wanted but no provider is configured (RECORDING_BOT_API_URL)"
            return
        if not s.policy.bots_enabled:
            return
        start = validation.parse_rfc3339(s.appointment.start_time)
        join_at = _utc_z(start) if start is not None else None
        try:
            if wanted and not self._bot_live():
                await self._schedule_bot(join_at or "")
            elif wanted and (s.bot_join_at != join_at or s.bot_meeting_id != s.zoom_meeting_id):
                assert bot.bot_id is not None and s.join_url is not None
                moved = await workflow.execute_activity(
                    act.MOVE_BOT, act.MoveBotArgs(ctx=self._ctx(), bot_id=bot.bot_id, dispatch_key=self._dispatch_key(),
                                                  generation=bot.generation, join_at=join_at or "", meeting_url=s.join_url),
                    result_type=act.BotResult, start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT,
                    heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT, retry_policy=BOT_RETRY,
                    summary=f"move recording bot {bot.bot_id}")
                if moved.outcome == "too_late":  # inside the 10-minute window: replace it
                    await self._cancel_bot("replaced")
                    await self._schedule_bot(join_at or "")
                else:
                    s.bot_join_at, s.bot_meeting_id = join_at, s.zoom_meeting_id
            elif not wanted and self._bot_live():
                await self._cancel_bot("consent withdrawn or appointment no longer needs it")
        except ActivityError as err:
            cause = err.cause
            bot.note = f"recording bot provider problem: {cause.message if isinstance(cause, ApplicationError) else err}"

    def _dispatch_key(self) -> str:
        s = self._s
        return f"{s.appointment.appointment_id}:recbot:{s.recording_bot.generation}"

    async def _schedule_bot(self, join_at: str) -> None:
        s = self._s
        s.recording_bot.generation += 1  # a new bot is needed: a new generation, a new dispatch key
        assert s.join_url is not None
        result = await workflow.execute_activity(
            act.SCHEDULE_BOT,
            act.ScheduleBotArgs(ctx=self._ctx(), generation=s.recording_bot.generation, dispatch_key=self._dispatch_key(),
                                meeting_url=s.join_url, join_at=join_at, duration_minutes=s.appointment.duration_minutes),
            result_type=act.BotResult, start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT,
            heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT, retry_policy=BOT_RETRY,
            summary=f"schedule recording bot (generation {s.recording_bot.generation})")
        if result.outcome == "refused":
            s.recording_bot.note = result.note
            return
        s.recording_bot.bot_id = result.bot_id
        s.recording_bot.status = result.status
        s.recording_bot.sub_code = result.sub_code
        s.recording_bot.note = result.note
        s.bot_join_at, s.bot_meeting_id = join_at, s.zoom_meeting_id

    async def _cancel_bot(self, reason: str) -> None:
        s = self._s
        assert s.recording_bot.bot_id is not None
        result = await workflow.execute_activity(
            act.CANCEL_BOT, act.CancelBotArgs(ctx=self._ctx(), bot_id=s.recording_bot.bot_id, reason=reason),
            result_type=act.BotResult, start_to_close_timeout=ZOOM_ACTIVITY_TIMEOUT,
            heartbeat_timeout=ZOOM_HEARTBEAT_TIMEOUT, retry_policy=BOT_RETRY,
            summary=f"remove recording bot {s.recording_bot.bot_id}")
        s.recording_bot.status = result.status
        s.recording_bot.sub_code = result.sub_code

    # -- attendee confirmations ---------------------------------------------------------------------------------

    async def _notify_attendees(self) -> None:
        """Tell attendees what changed: a confirmation when the meeting is ready, an update (same UID, higher
        SEQUENCE) when its time, title or join URL changed, a cancellation when the appointment is cancelled."""
        s = self._s
        if not s.policy.emails_enabled or not s.appointment.attendees:
            return
        a = s.appointment
        if s.status == "cancelled":
            if s.email_revision == 0 or s.email_cancel_sent:
                return
            s.email_revision += 1
            await self._send_emails("cancellation", join_url=None)
            s.email_cancel_sent = True
            return
        if s.status != "scheduled" or s.conference_status != "ready" or not s.join_url:
            return
        facts = hashlib.sha256(f"{a.title}|{a.description}|{a.start_time}|{a.duration_minutes}|{a.timezone}|{s.join_url}".encode()).hexdigest()[:16]
        everything = hashlib.sha256(f"{facts}|{[x.model_dump_json() for x in a.attendees]}".encode()).hexdigest()[:16]
        if everything == s.email_fingerprint:
            return
        if s.email_revision == 0:
            s.email_revision, kind = 1, "confirmation"
        elif facts != s.email_facts_fingerprint:
            s.email_revision, kind = s.email_revision + 1, "update"
        else:
            kind = s.email_kind or "confirmation"  # only attendees changed: newcomers get the current revision
        await self._send_emails(kind, join_url=s.join_url)
        s.email_kind = kind
        s.email_fingerprint = everything
        s.email_facts_fingerprint = facts

    async def _send_emails(self, kind: str, *, join_url: str | None) -> None:
        s = self._s
        a = s.appointment
        start = validation.parse_rfc3339(a.start_time)
        assert start is not None
        await workflow.execute_activity(
            act.SEND_CONFIRMATIONS,
            act.SendConfirmationsArgs(
                ctx=self._ctx(), kind=kind, revision=s.email_revision, title=a.title, description=a.description,  # type: ignore[arg-type]
                start_time=_utc_z(start), duration_minutes=a.duration_minutes, timezone=a.timezone, join_url=join_url,
                attendees=[act.EmailAttendee(name=x.name, email=x.email, timezone=x.timezone) for x in a.attendees]),
            result_type=act.SendConfirmationsResult,
            # heartbeats once per attendee; one SMTP exchange is bounded by a 20 s timeout
            start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10)),
            summary=f"email attendees: {kind} (revision {s.email_revision})",
        )

    # -- waiting, finishing, outboxes ------------------------------------------------------------------------------

    def _deadlines(self) -> list[datetime]:
        s = self._s
        out: list[datetime] = []
        start = validation.parse_rfc3339(s.appointment.start_time)
        if start is not None:
            out.append(start + timedelta(minutes=max(s.appointment.duration_minutes, 0))
                       + timedelta(hours=s.policy.grace_hours))
            if s.zoom_meeting_id is not None and s.pre_start_checked_for != s.appointment.start_time:
                out.append(start - timedelta(minutes=s.policy.pre_start_check_minutes))
        else:
            out.append(workflow.now() + timedelta(days=7))
        if s.parked_until and self._zoom_work_needed():
            until = validation.parse_rfc3339(s.parked_until)
            if until is not None:
                out.append(until)
        return out

    async def _sleep_until_something_happens(self) -> None:
        s = self._s
        now = workflow.now()
        nearest = min(self._deadlines())
        timeout = max((nearest - now).total_seconds(), 0.001)
        # Wake on queued work too, not only on the flag: a message that arrived while the loop was busy
        # must not wait for the next timer.
        try:
            await workflow.wait_condition(
                lambda: self._wake or bool(s.queue) or bool(s.outbox_audit) or bool(s.outbox_consent),
                timeout=timeout,
            )
        except TimeoutError:
            pass
        self._wake = False
        self._end_if_over()

    def _end_if_over(self) -> None:
        """After the appointment's end + grace the workflow closes, whatever is still parked."""
        s = self._s
        start = validation.parse_rfc3339(s.appointment.start_time)
        if start is None:
            return
        end = start + timedelta(minutes=max(s.appointment.duration_minutes, 0)) + timedelta(hours=s.policy.grace_hours)
        if workflow.now() >= end:
            self._over = True
            if s.status == "scheduled":
                s.status = "completed"

    def _finished(self) -> bool:
        s = self._s
        if s.queue:
            return False
        if s.status == "completed" or self._over:
            return True
        if s.status != "cancelled":
            return False
        if s.zoom_meeting_id is None or s.conference_status in ("deleted", "failed", "detached"):
            return True
        return False

    async def _flush_outboxes(self) -> None:
        s = self._s
        if s.outbox_consent:
            batch = list(s.outbox_consent)
            await workflow.execute_activity(
                act.RECORD_CONSENT, batch, start_to_close_timeout=DB_ACTIVITY_TIMEOUT, retry_policy=DB_RETRY,
                summary="record consent in the consent log",
            )
            del s.outbox_consent[: len(batch)]
        if s.outbox_audit:
            batch_a = list(s.outbox_audit)
            await workflow.execute_activity(
                act.WRITE_AUDIT_EVENTS, batch_a, start_to_close_timeout=DB_ACTIVITY_TIMEOUT, retry_policy=DB_RETRY,
                summary="write rejected requests to the audit trail",
            )
            del s.outbox_audit[: len(batch_a)]
        await self._save_status_if_changed()

    async def _save_status_if_changed(self) -> None:
        s = self._s
        key = f"{s.conference_status}|{s.status}"
        if self._saved_status == key:
            return
        if self._row_written == key:  # already in the row: no extra activity (and history) for it
            self._saved_status = key
            return
        await workflow.execute_activity(
            act.SAVE_CONFERENCE_STATUS,
            act.SaveConferenceStatusArgs(appointment_id=s.appointment.appointment_id,
                                         workspace_id=s.appointment.workspace_id,
                                         status=s.conference_status, appointment_status=s.status),
            start_to_close_timeout=DB_ACTIVITY_TIMEOUT, retry_policy=DB_RETRY,
            summary=f"save conference status {s.conference_status}",
        )
        self._saved_status = key

    def _publish(self) -> None:
        """Search attributes (no personal data) and the UI's current details, for ops."""
        s = self._s
        pairs: list[SearchAttributePair] = [
            SearchAttributePair(APPOINTMENT_ID, s.appointment.appointment_id),
            SearchAttributePair(WORKSPACE_ID, s.appointment.workspace_id),
            SearchAttributePair(CONFERENCE_STATUS, s.conference_status),
        ]
        start = validation.parse_rfc3339(s.appointment.start_time)
        if start is not None:
            pairs.append(SearchAttributePair(APPOINTMENT_START, start.astimezone(timezone.utc)))
        wanted = {p.key.name: p.value for p in pairs}
        if wanted != self._published:
            workflow.upsert_search_attributes([p.key.value_set(p.value) for p in pairs])
            self._published = wanted
        lines = [
            f"**Appointment** {s.appointment.appointment_id} ({s.status}) in workspace {s.appointment.workspace_id}",
            f"**Conference** {s.appointment.conference_provider}: {s.conference_status}"
            + (f", Zoom meeting {s.zoom_meeting_id}" if s.zoom_meeting_id else ""),
            f"**Starts** {s.appointment.start_time} for {s.appointment.duration_minutes} min",
        ]
        if s.last_error:
            lines.append(f"**Last error** {s.last_error}")
        if s.queue:
            lines.append(f"**Pending** {len(s.queue)} request(s)")
        workflow.set_current_details("\n\n".join(lines))

    # -- projections --------------------------------------------------------------------------------------------

    def _conference(self) -> ConferenceView:
        s = self._s
        return ConferenceView(provider=s.appointment.conference_provider, status=s.conference_status,  # type: ignore[arg-type]
                              zoom_meeting_id=s.zoom_meeting_id, join_url=s.join_url,
                              reason=s.conference_reason)

    def _view(self) -> AppointmentStateView:
        s = self._s
        pending = [f"{q.kind} {q.request_id}" for q in s.queue]
        if s.zoom_link in ("waiting", "detached", "daily_limit") and self._zoom_work_needed():
            pending.append("zoom sync (parked)")
        return AppointmentStateView(
            status=s.status,  # type: ignore[arg-type]
            appointment=s.appointment,
            conference=self._conference(),
            last_applied_request_id=s.last_applied_request_id,
            rejected_requests=list(s.rejected),
            pending_operations=pending,
            last_error=s.last_error,
            consent=s.consent,
            recording_bot=s.recording_bot,
        )


def _view_of(booking: AppointmentInput) -> AppointmentView:
    return AppointmentView(
        appointment_id=booking.appointment_id, workspace_id=booking.workspace_id,
        booking_type_id=booking.booking_type_id, title=booking.title, description=booking.description,
        start_time=booking.start_time, duration_minutes=booking.duration_minutes, timezone=booking.timezone,
        conference_provider=booking.conference_provider, attendees=booking.attendees,
        note_taking_enabled=booking.note_taking_enabled,
    )


__all__ = ["AppointmentWorkflow", "SEARCH_ATTRIBUTE_KEYS", "TypedSearchAttributes"]
