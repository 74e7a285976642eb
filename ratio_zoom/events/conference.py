"""Which conference event (if any) a change of an appointment's conference record means for the core app.

Called in the transaction that changes `appointment_conferences`, with the record as it was and as it is:
the events follow the database, so they say what Ratio's record now holds, exactly once per change.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratio_zoom.contract.events import ConferenceEventType
from ratio_zoom.storage.models import AppointmentConference


@dataclass(frozen=True)
class ConferenceSnapshot:
    status: str
    meeting_id: int | None
    join_url: str | None


def snapshot(row: AppointmentConference | None) -> ConferenceSnapshot | None:
    if row is None:
        return None
    return ConferenceSnapshot(status=row.status, meeting_id=row.zoom_meeting_id, join_url=row.join_url)


def event_type(before: ConferenceSnapshot | None, after: ConferenceSnapshot) -> ConferenceEventType | None:
    """None when nothing the core app shows changed (a status it does not surface, or no change at all)."""
    if before == after:
        return None
    new_link = before is not None and before.join_url is not None and before.join_url != after.join_url
    if after.status == "ready":
        if before is not None and before.status == "ready":
            return "conference.updated" if new_link else None  # same link: nothing the core app shows changed
        # (Re)usable: a link seen before that changed meanwhile is an update, otherwise the meeting is ready.
        return "conference.updated" if new_link else "conference.ready"
    if before is not None and before.status == after.status:
        return None
    surfaced: dict[str, ConferenceEventType] = {
        "waiting_for_zoom": "conference.waiting",
        "detached": "conference.detached",
        "deleted": "conference.deleted",
        "failed": "conference.needs_attention",
    }
    return surfaced.get(after.status)  # "pending" is not surfaced
