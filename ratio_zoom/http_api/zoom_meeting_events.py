"""Routing Zoom's `meeting.deleted` / `meeting.updated` to the appointment that owns the meeting.

The delivery is already verified (signature and timestamp window) by the webhook route. Here:
- De-duplicated by a hash of the signed body: Zoom redelivers after a 5xx or a timeout.
- Looked up by meeting ID in `appointment_conferences`. A meeting we do not own, or one of a cancelled
  appointment, is recorded (the delivery row, a log line) and ignored with 200: Zoom must not redeliver it.
- Relayed to the workflow as the `zoom_meeting_changed` signal (the workflow decides: recreate, patch back,
  or nothing when the change is its own). The delivery is remembered only after the signal was accepted,
  so a Temporal outage answers 503 and Zoom's redelivery gets through.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from ratio_zoom.contract.zoom_events import ZoomMeetingChanged
from ratio_zoom.http_api import deliveries
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import AppointmentConference

log = logging.getLogger("ratio_zoom.api.zoom_events")

MeetingSignaller = Callable[[str, ZoomMeetingChanged], Awaitable[None]]
REPORTED = ("topic", "start_time", "duration", "timezone", "agenda", "settings")


class WorkflowGone(Exception):
    """The appointment's workflow is no longer running (it closed after the appointment and its grace period)."""


def parse(name: str, payload: dict[str, Any], delivery_id: str) -> ZoomMeetingChanged | None:
    """The relayed message, or None when the payload carries no usable meeting ID."""
    obj = payload.get("object")
    if not isinstance(obj, dict):
        return None
    try:
        meeting_id = int(obj.get("id"))  # Zoom sends it as a number (some older payloads as a string)
    except (TypeError, ValueError):
        return None
    changed = {key: obj[key] for key in REPORTED if key in obj} if name == "meeting.updated" else {}
    host = isinstance(payload.get("operator_id"), str) and payload.get("operator_id") == obj.get("host_id")
    return ZoomMeetingChanged(delivery_id=delivery_id, event=name, meeting_id=meeting_id,  # type: ignore[arg-type]
                              changed=changed, operator="host" if host else "other")


async def route(db: Database, signal: MeetingSignaller | None, name: str, payload: dict[str, Any],
                delivery_id: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for one verified meeting event."""
    message = parse(name, payload, delivery_id)
    if message is None:
        return 400, {"detail": "meeting id missing"}
    key = f"zoom:{delivery_id}"
    if await deliveries.seen(db, key):
        return 200, {"status": "duplicate delivery ignored"}
    async with db.sessions() as session:
        owner = (await session.execute(
            select(AppointmentConference.appointment_id, AppointmentConference.appointment_status)
            .where(AppointmentConference.zoom_meeting_id == message.meeting_id)
            .order_by(AppointmentConference.updated_at.desc()).limit(1)
        )).first()
    if owner is None:
        await deliveries.remember(db, key)
        log.info("zoom %s for a meeting this service does not own: ignored", name)
        return 200, {"status": "ignored", "reason": "not our meeting"}
    if owner.appointment_status == "cancelled":
        await deliveries.remember(db, key)
        log.info("zoom %s for the meeting of cancelled appointment %s: ignored", name, owner.appointment_id)
        return 200, {"status": "ignored", "reason": "appointment cancelled"}
    if signal is None:
        return 503, {"detail": "not connected to Temporal; redeliver"}
    try:
        await signal(owner.appointment_id, message)
    except WorkflowGone:
        await deliveries.remember(db, key)
        log.info("zoom %s for appointment %s whose workflow has closed: ignored", name, owner.appointment_id)
        return 200, {"status": "ignored", "reason": "appointment closed"}
    except Exception as exc:  # noqa: BLE001 - 503 makes Zoom redeliver; the type only (no payload data)
        log.error("could not relay zoom %s to appointment %s (%s); answered 503", name, owner.appointment_id,
                  type(exc).__name__)
        return 503, {"detail": "temporarily unable to relay; redeliver"}
    await deliveries.remember(db, key)
    return 200, {"status": "relayed"}

