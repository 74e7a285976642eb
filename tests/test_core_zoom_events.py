"""Zoom's meeting events in the decision core: the host deletes or moves the meeting inside Zoom, Ratio puts
it back; the echoes of our own changes change nothing (no repair loop). Plain pytest, no server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from activities import schemas as act
from tests.test_core import NOW, START, booked, created, env, msg, run
from workflows import core




def relay(s: Any, event: str, meeting_id: int = 42, delivery: str = "d1", **changed: Any) -> core.Decision:
    raw = {"delivery_id": delivery, "event": event, "meeting_id": meeting_id, "changed": changed, "operator": "host"}
    return core.decide(s, core.ZoomMeetingChangedReceived(raw), env())


def audits(s: Any, name: str) -> list[act.AuditNote]:
    return [note for note in s.outbox_audit if note.event == name]


def test_a_meeting_the_host_deleted_is_recreated_and_the_attendees_get_the_new_link() -> None:
    s = booked()
    created(s)
    first_round = core.next_email_command(s, NOW)
    assert first_round is not None and first_round.kind == "confirmation"
    run(s, first_round, None)
    decision = relay(s, "meeting.deleted")
    assert isinstance(decision.pending.zoom, core.CreateMeeting)
    assert len(audits(s, "meeting.deleted_in_zoom")) == 1
    run(s, decision.pending.zoom, act.MeetingResult(outcome="created", zoom_meeting_id=43,
                                                    join_url="https://zoom.example/j/43?pwd=y",
                                                    spec=decision.pending.zoom.spec))
    assert s.zoom_meeting_id == 43 and s.join_url == "https://zoom.example/j/43?pwd=y"
    update = core.next_email_command(s, NOW)
    assert update is not None and update.kind == "update" and update.join_url == s.join_url


def test_a_moved_or_retitled_meeting_is_patched_back_with_one_audit_row() -> None:
    s = booked(emails=False)
    created(s)
    moved = (START + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    decision = relay(s, "meeting.updated", start_time=moved, topic="Host's title")
    patch = decision.pending.zoom
    assert isinstance(patch, core.PatchMeeting)
    assert patch.change_dict["start_time"] == core.desired_spec(s).start_time
    assert patch.change_dict["topic"] == "Intro call"
    notes = audits(s, "meeting.changed_in_zoom")
    assert len(notes) == 1 and notes[0].details["fields"] == ["start_time", "topic"]
    relay(s, "meeting.updated", start_time=moved, topic="Host's title")  # Zoom's redelivery of the same event
    assert len(audits(s, "meeting.changed_in_zoom")) == 1
    run(s, patch, act.UpdateMeetingResult(outcome="updated"))
    assert core.next_zoom_command(s, NOW) is None


def test_the_echo_of_our_own_patch_changes_nothing() -> None:
    s = booked(emails=False)
    created(s)
    msg(s, "reschedule", {"request_id": "r1", "start_time": (START + timedelta(hours=1)).isoformat(),
                          "duration_minutes": 45})
    patch = core.next_zoom_command(s, NOW)
    assert isinstance(patch, core.PatchMeeting)
    core.decide(s, core.Started(patch), env())
    # Zoom announces our own PATCH before the activity's answer is in: not a host change, not a new PATCH.
    decision = relay(s, "meeting.updated", duration=45, start_time=patch.change_dict["start_time"])
    assert decision.pending.zoom is None and not core.is_superseded(s, patch, NOW)
    assert audits(s, "meeting.changed_in_zoom") == []
    run(s, patch, act.UpdateMeetingResult(outcome="updated"))
    assert core.next_zoom_command(s, NOW) is None


def test_events_for_another_meeting_or_a_cancelled_appointment_are_ignored() -> None:
    s = booked(emails=False)
    created(s)
    assert relay(s, "meeting.deleted", meeting_id=7).pending.zoom is None  # an older meeting of ours, or not ours
    msg(s, "cancel", {"request_id": "c1", "actor": "u"})
    decision = relay(s, "meeting.deleted")
    assert decision.pending.zoom == core.DeleteMeeting(zoom_meeting_id=42, reason="cancelled")
    assert audits(s, "meeting.deleted_in_zoom") == []


def test_a_malformed_relay_changes_nothing() -> None:
    s = booked(emails=False)
    created(s)
    for raw in (None, "x", {"event": "meeting.deleted"}, {"delivery_id": "d", "event": "meeting.exploded",
                                                         "meeting_id": 42}):
        decision = core.decide(s, core.ZoomMeetingChangedReceived(raw), env())
        assert decision.pending.zoom is None and s.zoom_meeting_id == 42


def test_a_disconnect_detaches_an_idle_appointment_at_once_and_a_reconnect_makes_it_ready_again() -> None:
    s = booked(emails=False)
    created(s)
    decision = core.decide(s, core.ConnectionChanged({"status": "disconnected"}), env())
    assert s.conference_status == "detached" and s.conference_reason and decision.pending.zoom is None
    assert len(audits(s, "meeting.detached")) == 1
    decision = core.decide(s, core.ConnectionChanged({"status": "connected"}), env())
    # Reconnected: the meeting (still in Zoom) is the appointment's again; no Zoom call until the next change
    # or the pre-start check (README: reconnecting with a different Zoom account).
    assert s.conference_status == "ready" and decision.pending.zoom is None
