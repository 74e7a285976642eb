"""Database-only activities: restore a conference record, save its status, audit and consent logs."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from temporalio import activity

from activities import schemas as act
from ratio_zoom.connections.repository import utcnow
from ratio_zoom.events.conference import snapshot
from ratio_zoom.events.outbox import Outbox, record_conference_change
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import AppointmentConference, ConsentRecord


def activity_key() -> str:
    """The same on every retry of one activity execution, different for every other: an event's identity."""
    info = activity.info()
    return f"{info.workflow_id}:{info.workflow_run_id}:{info.activity_id}"


class RecordActivities:
    def __init__(self, db: Database, policy: act.Policy, outbox: Outbox | None = None) -> None:
        self._db = db
        self._policy = policy
        self._outbox = outbox or Outbox(enabled=False)

    @activity.defn(name=act.LOAD_CONFERENCE)
    async def load_conference(self, args: act.LoadConferenceArgs) -> act.LoadConferenceResult:
        async with self._db.sessions() as session:
            row = await session.get(AppointmentConference, args.appointment_id)
        record = None
        if row is not None:
            record = act.ConferenceRecord(zoom_meeting_id=row.zoom_meeting_id, join_url=row.join_url,
                                          status=row.status, appointment_status=row.appointment_status)
        return act.LoadConferenceResult(policy=self._policy, record=record)

    @activity.defn(name=act.SAVE_CONFERENCE_STATUS)
    async def save_conference_status(self, args: act.SaveConferenceStatusArgs) -> None:
        now = utcnow()
        async with self._db.transaction() as session:
            row = await session.get(AppointmentConference, args.appointment_id, with_for_update=True)
            if row is None:
                session.add(AppointmentConference(
                    appointment_id=args.appointment_id, workspace_id=args.workspace_id, status=args.status,
                    appointment_status=args.appointment_status, created_at=now, updated_at=now,
                ))
                return
            if row.status != args.status or row.appointment_status != args.appointment_status:
                before = snapshot(row)
                row.status = args.status
                row.appointment_status = args.appointment_status
                row.updated_at = now
                await record_conference_change(self._outbox, session, row=row, before=before,
                                               event_key=activity_key(), reason=args.reason)

    @activity.defn(name=act.WRITE_AUDIT_EVENTS)
    async def write_audit_events(self, notes: list[act.AuditNote]) -> int:
        written = 0
        async with self._db.transaction() as session:
            for note in notes:
                written += await audit.append(session, audit.AuditFact(
                    workspace_id=note.workspace_id, appointment_id=note.appointment_id, event=note.event,
                    actor=note.actor, workflow_id=note.workflow_id, run_id=note.run_id,
                    dedupe_key=note.dedupe_key, details=note.details,
                ))
        return written

    @activity.defn(name=act.RECORD_CONSENT)
    async def record_consent(self, entries: list[act.ConsentLogEntry]) -> int:
        """Append to the consent log once per request ID (retries are no-ops), and audit each fact."""
        info = activity.info()
        written = 0
        async with self._db.transaction() as session:
            for entry in entries:
                exists = await session.scalar(select(ConsentRecord.id).where(
                    ConsentRecord.appointment_id == entry.appointment_id,
                    ConsentRecord.request_id == entry.request_id))
                if exists is not None:
                    continue
                occurred = datetime.fromisoformat(entry.occurred_at.replace("Z", "+00:00")).astimezone(timezone.utc)
                session.add(ConsentRecord(
                    appointment_id=entry.appointment_id, workspace_id=entry.workspace_id,
                    request_id=entry.request_id, granted=entry.granted, actor=entry.actor, subject=entry.subject,
                    channel=entry.channel, consent_text_version=entry.consent_text_version, occurred_at=occurred,
                    note_taking_enabled=entry.note_taking_enabled, recorded_at=utcnow(),
                ))
                event = "consent.granted" if entry.granted else "consent.withdrawn"
                await audit.append(session, audit.AuditFact(
                    workspace_id=entry.workspace_id, appointment_id=entry.appointment_id, event=event,
                    actor=entry.actor, workflow_id=info.workflow_id, run_id=info.workflow_run_id,
                    dedupe_key=f"consent:{entry.appointment_id}:{entry.request_id}",
                    details={"channel": entry.channel, "consent_text_version": entry.consent_text_version,
                             "note_taking_enabled": entry.note_taking_enabled, "request_id": entry.request_id},
                ))
                written += 1
        return written
