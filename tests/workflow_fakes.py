"""Same-named fake activities for time-skipping workflow tests (timers, parking, input handling).

Only the activity layer is faked; the workflow under test is the real one. An in-memory "Zoom" records
every effect so tests can assert on exactly what the workflow asked for.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import schemas as act


@dataclass
class FakeZoom:
    meetings: dict[int, act.MeetingSpec] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    audit: list[act.AuditNote] = field(default_factory=list)
    consents: list[act.ConsentLogEntry] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    fail_next: list[ApplicationError] = field(default_factory=list)
    policy: act.Policy = field(default_factory=act.Policy)
    record: act.ConferenceRecord | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(81000000001))

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def activities(self) -> list:  # type: ignore[type-arg]
        zoom = self

        @activity.defn(name=act.LOAD_CONFERENCE)
        async def load_conference(args: act.LoadConferenceArgs) -> act.LoadConferenceResult:
            return act.LoadConferenceResult(policy=zoom.policy, record=zoom.record)

        @activity.defn(name=act.CREATE_MEETING)
        async def create_meeting(args: act.CreateMeetingArgs) -> act.MeetingResult:
            zoom.calls.append("create")
            zoom._maybe_fail()
            meeting_id = next(zoom._ids)
            zoom.meetings[meeting_id] = args.spec
            return act.MeetingResult(outcome="created", zoom_meeting_id=meeting_id,
                                     join_url=f"https://zoom.example/j/{meeting_id}?pwd=x", spec=args.spec)

        @activity.defn(name=act.UPDATE_MEETING)
        async def update_meeting(args: act.UpdateMeetingArgs) -> act.UpdateMeetingResult:
            zoom.calls.append("update:" + ",".join(sorted(args.changes)))
            zoom._maybe_fail()
            if args.zoom_meeting_id not in zoom.meetings:
                return act.UpdateMeetingResult(outcome="not_found")
            zoom.meetings[args.zoom_meeting_id] = zoom.meetings[args.zoom_meeting_id].model_copy(update=args.changes)
            return act.UpdateMeetingResult(outcome="updated")

        @activity.defn(name=act.DELETE_MEETING)
        async def delete_meeting(args: act.DeleteMeetingArgs) -> act.DeleteMeetingResult:
            zoom.calls.append("delete")
            zoom._maybe_fail()
            gone = zoom.meetings.pop(args.zoom_meeting_id, None)
            return act.DeleteMeetingResult(outcome="deleted" if gone else "already_gone")

        @activity.defn(name=act.CHECK_MEETING)
        async def check_meeting(args: act.CheckMeetingArgs) -> act.CheckMeetingResult:
            zoom.calls.append("check")
            zoom._maybe_fail()
            spec = zoom.meetings.get(args.zoom_meeting_id)
            if spec is None:
                return act.CheckMeetingResult(exists=False)
            return act.CheckMeetingResult(exists=True, actual=spec, join_url=f"https://zoom.example/j/{args.zoom_meeting_id}?pwd=x")

        @activity.defn(name=act.SAVE_CONFERENCE_STATUS)
        async def save_conference_status(args: act.SaveConferenceStatusArgs) -> None:
            zoom.statuses.append(args.status)

        @activity.defn(name=act.WRITE_AUDIT_EVENTS)
        async def write_audit_events(notes: list[act.AuditNote]) -> int:
            zoom.audit.extend(notes)
            return len(notes)

        @activity.defn(name=act.RECORD_CONSENT)
        async def record_consent(entries: list[act.ConsentLogEntry]) -> int:
            zoom.consents.extend(entries)
            return len(entries)

        return [load_conference, create_meeting, update_meeting, delete_meeting, check_meeting,
                save_conference_status, write_audit_events, record_consent]
