"""Writing events for the core app: one row per event, in the caller's transaction.

`enqueue` is idempotent on the event ID (an activity retried after a crash writes nothing new) and gives
each event the next `sequence` of its stream under a per-stream lock (PostgreSQL: a transaction-scoped
advisory lock; SQLite: every transaction is BEGIN IMMEDIATE, which serialises writers), so sequences have
no gaps and no duplicates even with many worker processes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ratio_zoom.contract.events import (
    ConferenceEventData,
    ConnectionEventData,
    ConnectionEventType,
    CoreAppEvent,
    EventType,
    appointment_stream,
    workspace_stream,
)
from ratio_zoom.events.conference import ConferenceSnapshot, event_type, snapshot
from ratio_zoom.storage.models import AppointmentConference, CoreAppEventRow


async def enqueue(session: AsyncSession, *, event_id: str, type: EventType, stream: str, workspace_id: str,
                  data: ConferenceEventData | ConnectionEventData, appointment_id: str | None = None,
                  now: datetime | None = None) -> bool:
    """Record one event for delivery. Returns False when this event ID was already recorded."""
    if await session.get(CoreAppEventRow, event_id) is not None:
        return False
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 11))"), {"k": f"events:{stream}"})
        if await session.get(CoreAppEventRow, event_id) is not None:
            return False
    last = await session.scalar(select(func.max(CoreAppEventRow.sequence)).where(CoreAppEventRow.stream == stream))
    sequence = int(last or 0) + 1
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    event = CoreAppEvent(id=event_id, type=type, stream=stream, sequence=sequence, occurred_at=moment,
                         workspace_id=workspace_id, appointment_id=appointment_id, data=data)
    session.add(CoreAppEventRow(
        id=event_id, stream=stream, sequence=sequence, type=type, workspace_id=workspace_id,
        appointment_id=appointment_id, body=event.model_dump_json(), status="pending", attempts=0,
        next_attempt_at=moment, created_at=moment,
    ))
    await session.flush()
    return True


class Outbox:
    """What the rest of the service holds: records events when the core app takes them, else nothing.

    (With no `CORE_APP_WEBHOOK_URL` nobody would ever read the rows, so none are written.)
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    async def connection_changed(self, session: AsyncSession, *, workspace_id: str, type: ConnectionEventType,
                                 reason: str | None, dedupe_key: str, now: datetime | None = None) -> None:
        """A workspace's Zoom connection changed: one event on the workspace's stream, in this transaction."""
        if not self.enabled:
            return
        status = CONNECTION_STATUS[type]
        await enqueue(session, event_id=f"evt:{dedupe_key}", type=type, stream=workspace_stream(workspace_id),
                      workspace_id=workspace_id, data=ConnectionEventData(status=status, reason=reason), now=now)


CONNECTION_STATUS: dict[str, Literal["connected", "needs_reconnect", "disconnected"]] = {
    "connection.connected": "connected",
    "connection.needs_reconnect": "needs_reconnect",
    "connection.disconnected": "disconnected",
    "connection.deauthorized": "disconnected",
}


async def record_conference_change(outbox: Outbox, session: AsyncSession, *, row: AppointmentConference,
                                   before: ConferenceSnapshot | None, event_key: str, reason: str | None = None,
                                   now: datetime | None = None) -> bool:
    """After `row` changed in this transaction: the conference event it means, if any, on the appointment's
    stream. `event_key` must be the same on every retry of the step that made the change (an activity's
    workflow run + activity ID), so a retried step writes no second event."""
    if not outbox.enabled:
        return False
    after = snapshot(row)
    assert after is not None
    kind = event_type(before, after)
    if kind is None:
        return False
    link = after.join_url if kind in ("conference.ready", "conference.updated") else None
    data = ConferenceEventData(appointment_id=row.appointment_id, status=after.status, meeting_id=after.meeting_id,
                               join_url=link, reason=reason)
    return await enqueue(session, event_id=f"evt:{event_key}", type=kind, stream=appointment_stream(row.appointment_id),
                         workspace_id=row.workspace_id, appointment_id=row.appointment_id, data=data, now=now)
