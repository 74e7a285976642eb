"""Zoom meeting activities: create (exactly once), patch, delete, check for drift.

Exactly-once create. Zoom has no idempotency key for meeting create, so the window between "Zoom created
the meeting" and "we recorded it" (worker killed, response lost) is closed like this:
1. Before calling Zoom, the activity writes a *create marker* (a hash of the operation ID, stable across
   retries) to the appointment's conference row, in its own committed transaction.
2. The marker travels in the meeting's agenda (a last line `ratio-ref:<marker>`).
3. When an attempt finds its marker written *and the earlier outcome unknown* (`create_intent_at` still
   set), an earlier attempt may have created the meeting: it lists the host's upcoming meetings, GETs those
   with the same topic and start time, and adopts the one whose agenda carries the marker. Only when none
   does, it creates.
4. An answer that proves nothing was created (429, 4xx, 401, our own limiter refusing to send, a lost
   connection before the request left) clears `create_intent_at`, so the retry creates without spending a
   list: the list is charged to the same per-account Medium budget as the create, and listing after every
   429 is how a burst of bookings once spent 82% of its calls on 429s. Lost responses, timeouts and 5xx
   keep it: there the meeting may exist.
So a meeting is created at most once per operation, and recorded exactly once. See docs/exactly-once.md.
"""

from __future__ import annotations

import hashlib
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import AsyncIterator, TypeVar

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity

from activities import schemas as act
from activities.heartbeat import keep_alive
from activities.zoom_failures import ZOOM_FAILURES, as_application_error
from ratio_zoom.connections.broker import Lease, TokenBroker
from ratio_zoom.connections.errors import Detached, NeedsReconnect, NotConnected, RefreshUnavailable
from ratio_zoom.connections.repository import load_connection, utcnow
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.events.conference import snapshot
from ratio_zoom.events.outbox import Outbox, record_conference_change
from ratio_zoom.storage.models import AppointmentConference
from ratio_zoom.zoom import errors as z
from ratio_zoom.zoom.client import ZoomClient
from ratio_zoom.zoom.models import Meeting, MeetingPage, MeetingSettings, MeetingWrite

T = TypeVar("T")
MARKER_PREFIX = "ratio-ref:"


def create_marker(op_id: str) -> str:
    return hashlib.sha256(op_id.encode()).hexdigest()[:24]


def agenda_with_marker(agenda: str, marker: str) -> str:
    return f"{agenda}\n\n{MARKER_PREFIX}{marker}" if agenda else f"{MARKER_PREFIX}{marker}"


def strip_marker(agenda: str | None) -> str:
    """The agenda as the appointment knows it: without our marker line."""
    if not agenda:
        return ""
    head, sep, tail = agenda.rpartition(MARKER_PREFIX)
    if sep and "\n" not in tail.strip() and len(tail.strip()) <= 64:
        return head.rstrip("\n")
    return agenda


def _utc_z(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_of(meeting: Meeting, fallback_timezone: str) -> act.MeetingSpec:
    return act.MeetingSpec(topic=meeting.topic, agenda=strip_marker(meeting.agenda),
                           start_time=_utc_z(meeting.start_time), duration=meeting.duration or 0,
                           timezone=meeting.timezone or fallback_timezone)


def proves_nothing_created(exc: BaseException) -> bool:
    """True when a failed create attempt certainly left no meeting in Zoom.

    Zoom answered with a refusal (429, 4xx, 401: it checks before it creates), or the request never left
    (our limiter paced it out, the connection is unusable, the refresh failed). A transport error (the
    response may be lost after Zoom acted), a 5xx (Zoom may have acted) or a cancellation mid-request leave
    the outcome unknown.
    """
    if isinstance(exc, z.ZoomHTTPError):
        return not isinstance(exc, z.ZoomServerError)
    return isinstance(exc, (NotConnected, NeedsReconnect, Detached, RefreshUnavailable))


def _write_body(changes: dict[str, object]) -> MeetingWrite:
    data = dict(changes)
    if "start_time" in data and isinstance(data["start_time"], str):
        data["start_time"] = datetime.fromisoformat(str(data["start_time"]).replace("Z", "+00:00"))
    return MeetingWrite(**data)  # type: ignore[arg-type]


class MeetingActivities:
    def __init__(self, db: Database, broker: TokenBroker, zoom: ZoomClient, outbox: Outbox | None = None) -> None:
        self._db = db
        self._broker = broker
        self._zoom = zoom
        # Conference events for the core app are written in the transaction that changes the record.
        self._outbox = outbox or Outbox(enabled=False)

    # -- create ---------------------------------------------------------------------------------------------

    @activity.defn(name=act.CREATE_MEETING)
    async def create_meeting(self, args: act.CreateMeetingArgs) -> act.MeetingResult:
        async with keep_alive():
            return await self._create_meeting(args)

    async def _create_meeting(self, args: act.CreateMeetingArgs) -> act.MeetingResult:
        ctx, spec = args.ctx, args.spec
        marker = create_marker(ctx.op_id)
        outcome_unknown, recorded = await self._write_create_intent(ctx, marker, spec)
        if recorded is not None:
            return recorded  # an earlier attempt created *and* recorded it, then lost the completion
        async with self._zoom_failures(ctx.workspace_id):
            found: tuple[Meeting, Lease] | None = None
            if outcome_unknown:
                found = await self._find(ctx.workspace_id, spec, marker)
            outcome = "adopted" if found else "created"
            if found is None:
                body = MeetingWrite(
                    topic=spec.topic, agenda=agenda_with_marker(spec.agenda, marker), type=2,
                    start_time=datetime.fromisoformat(spec.start_time.replace("Z", "+00:00")),
                    duration=spec.duration, timezone=spec.timezone,
                    # Zoom forces a waiting room on meetings with no passcode, so "waiting room off" needs one:
                    # let Zoom generate it. Recording is always sent explicitly as off (never inherited).
                    default_password=True,
                    settings=MeetingSettings(join_before_host=True, waiting_room=False, auto_recording="none"),
                )

                async def _create(lease: Lease) -> tuple[Meeting, Lease]:
                    return await self._zoom.create_meeting(lease.token, body), lease

                try:
                    found = await self._broker.call(ctx.workspace_id, _create, pace="create_meeting")
                except BaseException as exc:
                    if proves_nothing_created(exc):
                        await self._clear_create_intent(ctx, marker)
                    raise
        meeting, lease = found
        result = act.MeetingResult(outcome=outcome, zoom_meeting_id=meeting.id, join_url=meeting.join_url,
                                   spec=_spec_of(meeting, spec.timezone))
        await self._record_created(ctx, args, marker, result, lease.owner_hash)
        activity.logger.info("zoom meeting %s (%s) for %s", outcome, args.reason, ctx.appointment_id,
                             extra={"zoom_meeting_id": meeting.id, "appointment_id": ctx.appointment_id})
        return result

    async def _write_create_intent(
        self, ctx: act.OpContext, marker: str, spec: act.MeetingSpec
    ) -> tuple[bool, act.MeetingResult | None]:
        """Commit the create marker before calling Zoom.

        Returns (an earlier attempt of this operation may have created the meeting, that attempt's recorded
        result when it got as far as recording it)."""
        now = utcnow()
        async with self._db.transaction() as session:
            row = await session.get(AppointmentConference, ctx.appointment_id, with_for_update=True)
            if row is None:
                row = AppointmentConference(appointment_id=ctx.appointment_id, workspace_id=ctx.workspace_id,
                                            status="pending", appointment_status="scheduled",
                                            created_at=now, updated_at=now)
                session.add(row)
            same_operation = row.create_marker == marker
            if same_operation and row.status == "ready" and row.zoom_meeting_id is not None and row.join_url:
                return True, act.MeetingResult(outcome="adopted", zoom_meeting_id=row.zoom_meeting_id,
                                               join_url=row.join_url, spec=spec)
            # An earlier attempt's intent still set = its outcome is unknown; cleared = Zoom refused it.
            outcome_unknown = same_operation and row.create_intent_at is not None
            row.create_marker = marker
            row.create_intent_at = now
            row.updated_at = now
        return outcome_unknown, None

    async def _clear_create_intent(self, ctx: act.OpContext, marker: str) -> None:
        """Record that this attempt's create certainly created nothing, so the retry need not list."""
        try:
            async with self._db.transaction() as session:
                await session.execute(
                    update(AppointmentConference)
                    .where(AppointmentConference.appointment_id == ctx.appointment_id,
                           AppointmentConference.create_marker == marker,
                           AppointmentConference.status != "ready")
                    .values(create_intent_at=None, updated_at=utcnow()))
        except SQLAlchemyError:
            # Safe to lose: the intent stays set and the retry lists once. Zoom's answer (Retry-After and
            # all) is what the caller must see, not this write's failure.
            activity.logger.warning("could not clear the create intent of %s", ctx.appointment_id, exc_info=True)

    async def _find(self, workspace_id: str, spec: act.MeetingSpec, marker: str) -> tuple[Meeting, Lease] | None:
        """Look for the meeting an earlier attempt may have created (response lost, worker killed).

        One paced broker call per request: the list is charged to the account's Medium budget like the
        create, each GET to Light."""
        page_token: str | None = None
        while True:
            async def _page(lease: Lease, token: str | None = page_token) -> MeetingPage:
                return await self._zoom.list_meetings_page(lease.token, meeting_type="upcoming", next_page_token=token)

            page = await self._broker.call(workspace_id, _page, pace="list_meetings")
            for summary in page.meetings:
                # The marker identifies the operation; topic and start only narrow the candidates when the
                # list's agenda (cut to 250 characters by Zoom) hides it. They may have changed since the
                # earlier attempt (a reschedule between two retry chains of one create), so a marker seen in
                # the list wins over them.
                marker_seen = bool(summary.agenda) and (MARKER_PREFIX + marker) in str(summary.agenda)
                if not marker_seen and (summary.topic != spec.topic or _utc_z(summary.start_time) != spec.start_time):
                    continue

                async def _get(lease: Lease, meeting_id: int = summary.id) -> tuple[Meeting, Lease] | None:
                    try:
                        return await self._zoom.get_meeting(lease.token, meeting_id), lease
                    except z.MeetingNotFound:
                        return None

                got = await self._broker.call(workspace_id, _get, pace="get_meeting")
                if got is not None and got[0].agenda and got[0].agenda.rstrip().endswith(MARKER_PREFIX + marker):
                    return got
            if not page.next_page_token:
                return None
            page_token = page.next_page_token

    async def _record_created(self, ctx: act.OpContext, args: act.CreateMeetingArgs, marker: str,
                              result: act.MeetingResult, owner_hash: str) -> None:
        now = utcnow()
        async with self._db.transaction() as session:
            row = await session.get(AppointmentConference, ctx.appointment_id, with_for_update=True)
            assert row is not None  # written by _write_create_intent
            before = snapshot(row)
            row.zoom_meeting_id = result.zoom_meeting_id
            row.join_url = result.join_url
            row.zoom_owner_hash = owner_hash
            row.status = "ready"
            row.deleted_at = None
            row.updated_at = now
            event = "meeting.created" if args.reason == "created" else "meeting.recreated"
            await audit.append(session, audit.AuditFact(
                workspace_id=ctx.workspace_id, appointment_id=ctx.appointment_id, event=event, actor=ctx.actor,
                workflow_id=ctx.workflow_id, run_id=ctx.run_id, dedupe_key=f"{ctx.op_id}:{event}",
                details={"zoom_meeting_id": result.zoom_meeting_id, "reason": args.reason,
                         "adopted_after_retry": result.outcome == "adopted",
                         "start_time": result.spec.start_time, "duration": result.spec.duration},
            ))
            await record_conference_change(self._outbox, session, row=row, before=before,
                                           event_key=f"{ctx.op_id}:conference")

    # -- update ---------------------------------------------------------------------------------------------

    @activity.defn(name=act.UPDATE_MEETING)
    async def update_meeting(self, args: act.UpdateMeetingArgs) -> act.UpdateMeetingResult:
        async with keep_alive():
            return await self._update_meeting(args)

    async def _update_meeting(self, args: act.UpdateMeetingArgs) -> act.UpdateMeetingResult:
        ctx = args.ctx
        if not args.changes:
            raise ValueError("update_meeting called with no changes")
        body = _write_body(args.changes)
        owner = await self._owner_hash(ctx.appointment_id)

        async def _patch(lease: Lease) -> str:
            if owner is not None and owner not in lease.owner_hashes:
                return "owner_changed"  # the meeting belongs to the previously connected Zoom account
            try:
                await self._zoom.update_meeting(lease.token, args.zoom_meeting_id, body)
            except z.MeetingNotFound:
                return "not_found"
            except z.MeetingInProgress:
                return "in_progress"
            return "updated"

        async with self._zoom_failures(ctx.workspace_id):
            outcome = await self._broker.call(ctx.workspace_id, _patch, pace="update_meeting")
        event = {"updated": "meeting.updated", "not_found": "meeting.vanished",
                 "in_progress": "meeting.update_refused", "owner_changed": "meeting.account_changed"}[outcome]
        await self._audit(ctx, event, {"zoom_meeting_id": args.zoom_meeting_id, "fields": sorted(args.changes)})
        return act.UpdateMeetingResult(outcome=outcome)  # type: ignore[arg-type]

    # -- delete ---------------------------------------------------------------------------------------------

    @activity.defn(name=act.DELETE_MEETING)
    async def delete_meeting(self, args: act.DeleteMeetingArgs) -> act.DeleteMeetingResult:
        async with keep_alive():
            return await self._delete_meeting(args)

    async def _delete_meeting(self, args: act.DeleteMeetingArgs) -> act.DeleteMeetingResult:
        ctx = args.ctx
        owner = await self._owner_hash(ctx.appointment_id)

        async def _delete(lease: Lease) -> str:
            if owner is not None and owner not in lease.owner_hashes:
                return "owner_changed"
            try:
                await self._zoom.delete_meeting(lease.token, args.zoom_meeting_id)
            except z.MeetingNotFound:
                return "already_gone"  # deleting is idempotent: gone is done
            except z.MeetingInProgress:
                return "in_progress"
            return "deleted"

        async with self._zoom_failures(ctx.workspace_id):
            outcome = await self._broker.call(ctx.workspace_id, _delete, pace="delete_meeting")
        now = utcnow()
        async with self._db.transaction() as session:
            row = await session.get(AppointmentConference, ctx.appointment_id, with_for_update=True)
            before = snapshot(row)
            if row is not None and outcome in ("deleted", "already_gone", "owner_changed"):
                row.status = "deleted"
                row.deleted_at = now
                row.updated_at = now
                if args.reason == "cancelled":
                    row.appointment_status = "cancelled"  # saves the workflow a separate status write
                await record_conference_change(self._outbox, session, row=row, before=before,
                                               event_key=f"{ctx.op_id}:conference")
            event = "meeting.deleted" if outcome != "in_progress" else "meeting.delete_refused"
            await audit.append(session, audit.AuditFact(
                workspace_id=ctx.workspace_id, appointment_id=ctx.appointment_id, event=event, actor=ctx.actor,
                workflow_id=ctx.workflow_id, run_id=ctx.run_id, dedupe_key=f"{ctx.op_id}:{event}",
                details={"zoom_meeting_id": args.zoom_meeting_id, "reason": args.reason, "outcome": outcome},
            ))
        return act.DeleteMeetingResult(outcome=outcome)  # type: ignore[arg-type]

    # -- check ----------------------------------------------------------------------------------------------

    @activity.defn(name=act.CHECK_MEETING)
    async def check_meeting(self, args: act.CheckMeetingArgs) -> act.CheckMeetingResult:
        async with keep_alive():
            return await self._check_meeting(args)

    async def _check_meeting(self, args: act.CheckMeetingArgs) -> act.CheckMeetingResult:
        ctx = args.ctx
        owner = await self._owner_hash(ctx.appointment_id)

        async def _get(lease: Lease) -> act.CheckMeetingResult:
            if owner is not None and owner not in lease.owner_hashes:
                return act.CheckMeetingResult(exists=False, owner_changed=True)
            try:
                meeting = await self._zoom.get_meeting(lease.token, args.zoom_meeting_id)
            except z.MeetingNotFound:
                return act.CheckMeetingResult(exists=False)
            return act.CheckMeetingResult(exists=True, actual=_spec_of(meeting, meeting.timezone or "UTC"),
                                          join_url=meeting.join_url)

        async with self._zoom_failures(ctx.workspace_id):
            result = await self._broker.call(ctx.workspace_id, _get, pace="get_meeting")
        if result.join_url:
            async with self._db.transaction() as session:
                row = await session.get(AppointmentConference, ctx.appointment_id, with_for_update=True)
                if row is not None and row.join_url != result.join_url:
                    before = snapshot(row)
                    row.join_url = result.join_url  # the host regenerated it inside Zoom: keep ours correct
                    row.updated_at = utcnow()
                    await record_conference_change(self._outbox, session, row=row, before=before,
                                                   event_key=f"{ctx.op_id}:conference")
                    await audit.append(session, audit.AuditFact(
                        workspace_id=ctx.workspace_id, appointment_id=ctx.appointment_id,
                        event="meeting.join_url_changed", actor="system", workflow_id=ctx.workflow_id,
                        run_id=ctx.run_id, dedupe_key=f"{ctx.op_id}:join_url_changed",
                        details={"zoom_meeting_id": args.zoom_meeting_id},
                    ))
        return result

    # -- plumbing -------------------------------------------------------------------------------------------

    async def _owner_hash(self, appointment_id: str) -> str | None:
        async with self._db.sessions() as session:
            row = await session.get(AppointmentConference, appointment_id)
            return row.zoom_owner_hash if row is not None else None

    async def _audit(self, ctx: act.OpContext, event: str, details: dict[str, object]) -> None:
        async with self._db.transaction() as session:
            await audit.append(session, audit.AuditFact(
                workspace_id=ctx.workspace_id, appointment_id=ctx.appointment_id, event=event, actor=ctx.actor,
                workflow_id=ctx.workflow_id, run_id=ctx.run_id, dedupe_key=f"{ctx.op_id}:{event}", details=details,
            ))

    @asynccontextmanager
    async def _zoom_failures(self, workspace_id: str) -> AsyncIterator[None]:
        try:
            yield
        except z.PermissionProblem as exc:
            await mark_needs_reconnect(self._db, workspace_id, f"Zoom refused access ({exc.status}, code {exc.code})")
            raise as_application_error(exc) from None
        except ZOOM_FAILURES as exc:
            raise as_application_error(exc) from None


async def mark_needs_reconnect(db: Database, workspace_id: str, reason: str) -> None:
    async with db.transaction() as session:
        row = await load_connection(session, workspace_id, lock="update")
        if row is None or row.status != "connected":
            return
        row.status = "needs_reconnect"
        row.status_reason = reason
        row.updated_at = utcnow()
        await audit.append(session, audit.AuditFact(
            workspace_id=workspace_id, event="connection.needs_reconnect", actor="system",
            dedupe_key=f"conn:{workspace_id}:needs_reconnect:{row.token_generation}", details={"reason": reason},
        ))


__all__ = ["MeetingActivities", "create_marker", "strip_marker", "mark_needs_reconnect"]
