"""The decision core with plain pytest: no Temporal server, each test runs in milliseconds.

Every test drives `workflows.core.decide` the way the workflow shell does: one event at a time."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from activities import schemas as act
from ratio_zoom.contract import validation
from workflows import core
from workflows.state import REQUEST_MEMORY, WorkflowState

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
START = NOW + timedelta(days=2)


def env(now: datetime = NOW) -> core.Env:
    return core.Env(now=now, workflow_id="appointment-a1", run_id="run-1")


def booking(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"appointment_id": "a1", "workspace_id": "w1", "title": "Intro call",
                           "start_time": START.isoformat(), "duration_minutes": 30, "timezone": "Europe/Berlin",
                           "attendees": [{"name": "Ada", "email": "ada@example.com"}], "note_taking_enabled": True}
    raw.update(overrides)
    return raw


def booked(emails: bool = True, bots: bool = True, **overrides: Any) -> WorkflowState:
    raw = booking(**overrides)
    s, fresh = core.initial_state(raw, "appointment-a1")
    assert fresh
    policy = act.Policy(emails_enabled=emails, bots_enabled=bots)
    core.decide(s, core.Booked(raw=raw, loaded=act.LoadConferenceResult(policy=policy)), env())
    return s


def run(s: WorkflowState, command: core.Command, result: Any, now: datetime = NOW) -> core.Decision:
    core.decide(s, core.Started(command), env(now))
    return core.decide(s, core.Succeeded(command, result), env(now))


def created(s: WorkflowState) -> None:
    cmd = core.next_zoom_command(s, NOW)
    assert isinstance(cmd, core.CreateMeeting)
    run(s, cmd, act.MeetingResult(outcome="created", zoom_meeting_id=42, join_url="https://zoom.example/j/42?pwd=x",
                                  spec=cmd.spec))


def msg(s: WorkflowState, kind: str, raw: Any, now: datetime = NOW) -> core.Decision:
    return core.decide(s, core.MessageReceived(kind, raw), env(now))


def consent(granted: bool, rid: str) -> dict[str, Any]:
    return {"request_id": rid, "granted": granted, "actor": "client", "subject": "c", "channel": "web",
            "consent_text_version": "v1", "occurred_at": NOW.isoformat()}


def test_a_booking_creates_one_meeting_then_confirms_the_attendees() -> None:
    s = booked()
    first = core.pending(s, env())
    assert isinstance(first.zoom, core.CreateMeeting) and first.email is None and first.bot is None
    created(s)
    after = core.pending(s, env())
    assert after.zoom is None and s.conference_status == "ready"
    assert isinstance(after.email, core.SendEmails) and after.email.kind == "confirmation" and after.email.revision == 1


def test_a_cancel_supersedes_an_in_flight_patch_and_leads_to_delete() -> None:
    s = booked(emails=False)
    created(s)
    msg(s, "reschedule", {"request_id": "r1", "start_time": (START + timedelta(hours=1)).isoformat(), "duration_minutes": 45})
    patch = core.next_zoom_command(s, NOW)
    assert isinstance(patch, core.PatchMeeting) and dict(patch.changes)["duration"] == 45
    core.decide(s, core.Started(patch), env())
    msg(s, "cancel", {"request_id": "c1", "actor": "u"})
    assert core.is_superseded(s, patch, NOW)  # the stale PATCH is cancelled, not waited for
    decision = core.decide(s, core.Superseded(patch), env())
    assert decision.pending.zoom == core.DeleteMeeting(zoom_meeting_id=42, reason="cancelled")


def test_a_newer_reschedule_replaces_the_pending_patch_and_resends_what_zoom_may_have_applied() -> None:
    s = booked(emails=False)
    created(s)
    msg(s, "reschedule", {"request_id": "r1", "start_time": (START + timedelta(hours=1)).isoformat(), "duration_minutes": 45})
    first = core.next_zoom_command(s, NOW)
    assert isinstance(first, core.PatchMeeting)
    core.decide(s, core.Started(first), env())
    msg(s, "update_details", {"request_id": "u1", "title": "Renamed"})
    assert core.is_superseded(s, first, NOW)
    core.decide(s, core.Superseded(first), env())
    second = core.next_zoom_command(s, NOW)
    assert isinstance(second, core.PatchMeeting)
    assert {"duration", "start_time", "topic"} <= set(second.change_dict)


def test_withdrawal_cancels_an_in_flight_bot_schedule_and_removes_what_it_may_have_created() -> None:
    s = booked(emails=False)
    created(s)
    msg(s, "consent", consent(True, "k1"))
    assert core.next_bot_command(s, NOW) is None  # the grant must reach the consent log first
    s.outbox_consent.clear()  # the records lane wrote it
    schedule = core.next_bot_command(s, NOW)
    assert isinstance(schedule, core.ScheduleBot) and schedule.dispatch_key == "a1:recbot:1"
    core.decide(s, core.Started(schedule), env())
    msg(s, "consent", consent(False, "k2"))
    assert core.is_superseded(s, schedule, NOW)
    decision = core.decide(s, core.Superseded(schedule), env())
    assert decision.pending.bot == core.CancelBot(bot_id=None, dispatch_key="a1:recbot:1",
                                                  reason="consent withdrawn or appointment no longer needs it")


def test_withdrawal_removes_a_live_bot_whatever_zoom_and_smtp_are_doing() -> None:
    s = booked()
    created(s)
    msg(s, "consent", consent(True, "k1"))
    s.outbox_consent.clear()
    schedule = core.next_bot_command(s, NOW)
    assert isinstance(schedule, core.ScheduleBot)
    run(s, schedule, act.BotResult(outcome="scheduled", bot_id="bot-1", status="scheduled"))
    # Zoom and SMTP are failing: their lanes are parked on escalations.
    msg(s, "reschedule", {"request_id": "r1", "start_time": (START + timedelta(hours=2)).isoformat(), "duration_minutes": 30})
    patch = core.next_zoom_command(s, NOW)
    assert patch is not None
    core.decide(s, core.Started(patch), env())
    core.decide(s, core.Failed(patch, core.Failure(type=act.ERR_UNAVAILABLE, message="HTTP 503")), env())
    msg(s, "consent", consent(False, "k2"))
    assert core.next_bot_command(s, NOW) == core.CancelBot(
        bot_id="bot-1", dispatch_key="a1:recbot:1", reason="consent withdrawn or appointment no longer needs it")


def test_a_429_waits_out_retry_after_without_counting_as_a_failure() -> None:
    s = booked(emails=False)
    cmd = core.next_zoom_command(s, NOW)
    assert cmd is not None
    core.decide(s, core.Started(cmd), env())
    decision = core.decide(s, core.Failed(cmd, core.Failure(type=act.ERR_RATE_LIMITED, retry_after=timedelta(seconds=7))), env())
    assert s.zoom_lane.failures == 0 and s.zoom_lane.attention is None and decision.metrics == []
    assert core.next_zoom_command(s, NOW + timedelta(seconds=6)) is None  # Retry-After, never earlier
    assert core.next_zoom_command(s, NOW + timedelta(seconds=11)) == cmd  # a fresh chain, attempt 1 (<= 50% spread)


def test_429s_without_retry_after_back_off_and_reset_on_success() -> None:
    s = booked(emails=False)
    cmd = core.next_zoom_command(s, NOW)
    assert cmd is not None
    waits = []
    now = NOW
    for _ in range(8):
        core.decide(s, core.Started(cmd), env(now))
        core.decide(s, core.Failed(cmd, core.Failure(type=act.ERR_RATE_LIMITED)), env(now))
        until = validation.parse_rfc3339(s.zoom_lane.parked_until or "")
        assert until is not None
        waits.append((until - now).total_seconds())
        now = until
    assert waits[0] < waits[2] < waits[4] and max(waits) <= 90  # doubling from 2 s, capped at a minute (+ spread)
    assert s.zoom_lane.failures == 0  # 429s are not failures: a later 5xx chain starts from attempt 1
    created_at = now
    core.decide(s, core.Started(cmd), env(created_at))
    core.decide(s, core.Succeeded(cmd, act.MeetingResult(outcome="created", zoom_meeting_id=1, join_url="https://zoom.example/j/1",
                                                          spec=cmd.spec)), env(created_at))  # type: ignore[union-attr]
    assert s.zoom_lane.rate_limited == 0


def test_an_exhausted_zoom_chain_escalates_once_and_recovers_promptly() -> None:
    s = booked(emails=False)
    created(s)
    msg(s, "cancel", {"request_id": "c1", "actor": "u"})
    delete = core.next_zoom_command(s, NOW)
    assert isinstance(delete, core.DeleteMeeting)
    core.decide(s, core.Started(delete), env())
    first = core.decide(s, core.Failed(delete, core.Failure(type=act.ERR_UNAVAILABLE, message="HTTP 503")), env())
    assert first.metrics == [("ratio_zoom_lane_escalations", {"lane": "zoom"})]
    assert s.zoom_lane.attention and "503" in s.zoom_lane.attention
    assert s.conference_status == "waiting_for_zoom"
    assert [n.event for n in s.outbox_audit] == ["lane.needs_attention"]
    assert not core.finished(s, env())  # the delete is still owed
    later = NOW + core.ZOOM_PARK
    assert core.next_deadline(s, NOW) == later  # Zoom is tried again within a minute, not after 5 minutes
    core.decide(s, core.Started(delete), env(later))
    again = core.decide(s, core.Failed(delete, core.Failure(type=act.ERR_UNAVAILABLE, message="HTTP 503")), env(later))
    assert again.metrics == [] and s.zoom_lane.failures == 2  # one audit row and metric per episode
    run(s, delete, act.DeleteMeetingResult(outcome="deleted"), later + core.ZOOM_PARK)
    assert s.zoom_lane.attention is None and s.conference_status == "deleted"
    assert core.finished(s, env(later + core.ZOOM_PARK)) is False  # the audit rows are still to be written
    s.outbox_audit.clear()
    assert core.finished(s, env(later + core.ZOOM_PARK))


def test_a_superseded_revision_is_never_sent() -> None:
    s = booked()
    created(s)
    confirmation = core.next_email_command(s, NOW)
    assert confirmation is not None and confirmation.revision == 1
    core.decide(s, core.Started(confirmation), env())
    msg(s, "reschedule", {"request_id": "r1", "start_time": (START + timedelta(hours=3)).isoformat(), "duration_minutes": 30})
    assert core.is_superseded(s, confirmation, NOW)
    core.decide(s, core.Superseded(confirmation), env())
    newer = core.next_email_command(s, NOW)
    assert newer is not None and newer.revision == 2 and newer.kind == "confirmation"
    assert newer.start_time == core.utc_z(START + timedelta(hours=3))


def test_no_cancellation_email_when_nothing_was_ever_sent() -> None:
    s = booked()
    msg(s, "cancel", {"request_id": "c1", "actor": "u"})
    assert core.next_email_command(s, NOW) is None


@pytest.mark.parametrize("field,value", [("duration_minutes", "abc"), ("start_time", 5), ("timezone", ["x"]),
                                         ("request_id", {"a": 1})])
def test_a_wrongly_typed_field_becomes_a_rejection_in_state(field: str, value: Any) -> None:
    s = booked(emails=False)
    raw = {"request_id": "r-bad", "start_time": START.isoformat(), "duration_minutes": 30, field: value}
    msg(s, "reschedule", raw)
    assert s.rejected, "the message left no trace"
    last = s.rejected[-1]
    if field == "request_id":
        assert last.reason == "request_id is missing"
    else:
        assert field in last.reason and last.request_id == "r-bad"
        assert s.requests["r-bad"].outcome == "rejected"  # await_conference(after_request_id) answers
    assert s.appointment.duration_minutes == 30


def test_a_start_input_with_wrong_types_is_rejected_with_the_reason() -> None:
    raw = booking(duration_minutes="abc", attendees="nobody")
    s, _ = core.initial_state(raw, "appointment-a1")
    core.decide(s, core.Booked(raw=raw, loaded=act.LoadConferenceResult(policy=act.Policy())), env())
    assert s.booking_valid is False and s.conference_status == "failed"
    assert "duration_minutes" in (s.conference_reason or "")
    assert core.next_zoom_command(s, NOW) is None
    assert s.appointment.title == "Intro call"  # the well-typed fields still stand


def test_a_start_input_that_is_not_an_object_still_starts() -> None:
    s, _ = core.initial_state([1, 2], "appointment-a9")
    core.decide(s, core.Booked(raw=[1, 2], loaded=act.LoadConferenceResult(policy=act.Policy())), env())
    assert s.appointment.appointment_id == "a9" and s.booking_valid is False


def test_duplicates_change_nothing_and_request_memory_is_bounded() -> None:
    s = booked(emails=False)
    msg(s, "reschedule", {"request_id": "r0", "start_time": (START + timedelta(hours=1)).isoformat(), "duration_minutes": 45})
    msg(s, "reschedule", {"request_id": "r0", "start_time": (START + timedelta(hours=5)).isoformat(), "duration_minutes": 90})
    assert s.appointment.duration_minutes == 45 and "duplicate" in s.rejected[-1].reason
    for i in range(REQUEST_MEMORY + 200):
        msg(s, "update_details", {"request_id": f"u{i}", "title": f"T{i}"})
    assert len(s.requests) == REQUEST_MEMORY
    # The guarantee: every one of the last REQUEST_MEMORY request IDs is still recognised.
    title = s.appointment.title
    msg(s, "update_details", {"request_id": f"u{200}", "title": "again"})
    assert s.appointment.title == title and "duplicate" in s.rejected[-1].reason


def test_fingerprints_cover_explicit_fields_only() -> None:
    s = booked(emails=True)
    created(s)
    before = (core.desired_fingerprint(s), core.next_email_command(s, NOW))
    s.appointment.note_taking_enabled = not s.appointment.note_taking_enabled  # not part of either
    s.appointment.booking_type_id = "bt-2"  # a model field that is not a fact of the meeting or the invite
    assert (core.desired_fingerprint(s), core.next_email_command(s, NOW)) == before
    s.appointment.title = "Changed"
    assert core.desired_fingerprint(s) != before[0]


def test_time_zones_come_from_the_pinned_tzdata_package(monkeypatch: pytest.MonkeyPatch) -> None:
    validation.load_zone.cache_clear()
    monkeypatch.setattr(zoneinfo, "TZPATH", ())  # no host tz database at all
    zone = validation.load_zone("America/New_York")
    assert zone is not None and zone.key == "America/New_York"
    assert validation.check_timezone("Mars/Base") is not None
    validation.load_zone.cache_clear()


def test_a_meeting_vanished_in_zoom_is_recreated_and_the_bot_follows_it_without_being_removed() -> None:
    s = booked(emails=False)
    created(s)
    msg(s, "consent", consent(True, "k1"))
    s.outbox_consent.clear()
    schedule = core.next_bot_command(s, NOW)
    assert isinstance(schedule, core.ScheduleBot)
    run(s, schedule, act.BotResult(outcome="scheduled", bot_id="bot-1", status="scheduled"))
    msg(s, "reschedule", {"request_id": "r1", "start_time": (START + timedelta(hours=1)).isoformat(), "duration_minutes": 30})
    patch = core.next_zoom_command(s, NOW)
    assert isinstance(patch, core.PatchMeeting)
    run(s, patch, act.UpdateMeetingResult(outcome="not_found"))
    assert core.next_bot_command(s, NOW) is None  # waits for the new meeting, keeps the bot
    create = core.next_zoom_command(s, NOW)
    assert isinstance(create, core.CreateMeeting) and create.reason == "recreated"
    run(s, create, act.MeetingResult(outcome="created", zoom_meeting_id=43, join_url="https://zoom.example/j/43?pwd=y",
                                     spec=create.spec))
    move = core.next_bot_command(s, NOW)
    assert isinstance(move, core.MoveBot) and move.meeting_url.endswith("/43?pwd=y") and move.bot_id == "bot-1"


def test_a_cancelled_appointment_whose_create_hit_the_daily_limit_waits_for_midnight_instead_of_spinning() -> None:
    s = booked(emails=False)
    create = core.next_zoom_command(s, NOW)
    assert isinstance(create, core.CreateMeeting)
    s.create_op_id = "appointment-a1:op:1"  # what the shell records when it starts the create
    core.decide(s, core.Started(create), env())
    midnight = "2026-12-03T00:00:00Z"
    core.decide(s, core.Failed(create, core.Failure(type=act.ERR_DAILY_LIMIT, details=(midnight,))), env())
    msg(s, "cancel", {"request_id": "c1", "actor": "u"})
    # The create's outcome is unknown (an earlier attempt may have made the meeting): it is resolved, then
    # deleted, but only once the quota is back, never in a loop against the exhausted one.
    assert core.next_zoom_command(s, NOW) is None
    assert core.next_deadline(s, NOW) == datetime(2026, 12, 3, tzinfo=timezone.utc)
    assert isinstance(core.next_zoom_command(s, datetime(2026, 12, 3, tzinfo=timezone.utc)), core.CreateMeeting)


def test_a_cancelled_appointment_is_not_finished_while_its_cancellation_email_is_owed() -> None:
    """Found by the worker_kills chaos scenario: the confirmation round's worker was killed, the appointment
    was cancelled meanwhile (the shell asked to cancel the round and waited), the round then ended in a
    heartbeat timeout that parked the email lane, and the workflow completed without the cancellation."""
    s = booked()
    created(s)
    round_ = core.next_email_command(s, NOW)
    assert round_ is not None
    core.decide(s, core.Started(round_), env())
    msg(s, "cancel", {"request_id": "c1", "actor": "u"})
    delete = core.next_zoom_command(s, NOW)
    assert isinstance(delete, core.DeleteMeeting)
    run(s, delete, act.DeleteMeetingResult(outcome="deleted"))
    # The superseded round does not come back cancelled: its worker is dead, it times out.
    core.decide(s, core.Failed(round_, core.Failure(type="timeout", message="heartbeat timeout")), env())
    s.outbox_audit.clear()
    assert not core.finished(s, env())  # the cancellation is still owed, parked lane or not
    later = NOW + timedelta(minutes=5)
    cancellation = core.next_email_command(s, later)
    assert cancellation is not None and cancellation.kind == "cancellation"
    run(s, cancellation, act.SendConfirmationsResult(sent=1, already_sent=0, failed=[]), now=later)
    s.outbox_audit.clear()
    assert core.finished(s, env(later))
