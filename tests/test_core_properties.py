"""Property-based stateful tests of the decision core (Hypothesis `RuleBasedStateMachine`).

Hypothesis generates long random histories of messages (reschedules, detail changes, consent flips,
cancels, duplicates, wrong types) and activity outcomes in every lane (success, 5xx chains that run out,
lost responses, 404s, 429s, disconnects, superseded work), runs them through `core.decide` with a model of
the shell (one command in flight per lane, superseded work cancelled) and of the outside world (Zoom's
meetings, the bot provider's bots, the attendee's mailbox), and checks the invariants after every step.
No Temporal server: a few hundred histories run in seconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from activities import schemas as act
from workflows import core
from workflows.state import WorkflowState

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
FAILURES = [
    core.Failure(type=act.ERR_UNAVAILABLE, message="HTTP 503"),
    core.Failure(type="timeout", message="the activity timed out"),
    core.Failure(type=act.ERR_RATE_LIMITED, retry_after=timedelta(seconds=3)),
    core.Failure(type=act.ERR_RATE_LIMITED),
    core.Failure(type=act.ERR_NOT_CONNECTED, message="not connected"),
    core.Failure(type=act.ERR_DAILY_LIMIT, details=("2026-12-03T00:00:00Z",)),
]
LANES = ("zoom", "bot", "email")


class AppointmentMachine(RuleBasedStateMachine):
    """One appointment, its shell and its outside world."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.s: WorkflowState
        self.in_flight: dict[str, core.Command] = {}
        self.zoom_live: dict[int, bool] = {}  # meeting id -> not deleted
        self.adoptable: dict[str, int] = {}  # create operation ID -> meeting made by an attempt whose answer was lost
        self.next_meeting = 100
        self.bots: dict[str, bool] = {}  # bot id -> live
        self.bot_keys: dict[str, str] = {}  # dispatch key -> bot id
        self.mailbox: list[tuple[int, str, str]] = []  # (revision, kind, fingerprint) delivered
        self.ids = 0
        self.applied: list[str] = []

    def env(self) -> core.Env:
        return core.Env(now=self.now, workflow_id="appointment-p1", run_id="r1")

    def decide(self, event: core.Event) -> core.Decision:
        decision = core.decide(self.s, event, self.env())
        # The shell re-checks its lanes after every event: superseded work is cancelled at once.
        for lane, command in list(self.in_flight.items()):
            if core.is_superseded(self.s, command, self.now):
                del self.in_flight[lane]
                decision = core.decide(self.s, core.Superseded(command), self.env())
        return decision

    @initialize(emails=st.booleans(), bots=st.booleans(), note_taking=st.booleans())
    def book(self, emails: bool, bots: bool, note_taking: bool) -> None:
        raw = {"appointment_id": "p1", "workspace_id": "w1", "title": "Call", "duration_minutes": 30,
               "start_time": (T0 + timedelta(days=3)).isoformat(), "timezone": "Europe/Madrid",
               "attendees": [{"name": "A", "email": "a@example.com"}], "note_taking_enabled": note_taking}
        self.s, _ = core.initial_state(raw, "appointment-p1")
        policy = act.Policy(emails_enabled=emails, bots_enabled=bots)
        self.decide(core.Booked(raw=raw, loaded=act.LoadConferenceResult(policy=policy)))

    # -- messages --------------------------------------------------------------------------------------------

    def _rid(self) -> str:
        self.ids += 1
        return f"q{self.ids}"

    def _send(self, kind: str, raw: dict[str, Any]) -> None:
        before = self.s.appointment.model_copy(deep=True)
        known = raw.get("request_id") in self.s.requests
        self.decide(core.MessageReceived(kind, raw))
        if known:  # nothing applied twice: a duplicate changes nothing
            assert self.s.appointment == before
        elif self.s.last_applied_request_id == raw.get("request_id"):
            self.applied.append(str(raw["request_id"]))
        self._drain_outboxes()

    @rule(kind=st.sampled_from(["reschedule", "reschedule", "rename", "consent_yes", "consent_no", "cancel",
                                "duplicate", "wrong_type"]),
          hours=st.integers(min_value=-80, max_value=200), duration=st.sampled_from([0, 15, 30, 45, 90]),
          title=st.sampled_from(["Call", "Review", "Plan", ""]),
          field=st.sampled_from(["duration_minutes", "start_time", "timezone"]),
          value=st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.none()))
    def message(self, kind: str, hours: int, duration: int, title: str, field: str, value: Any) -> None:
        start = T0 + timedelta(days=2, hours=hours)
        if kind == "reschedule":
            self._send("reschedule", {"request_id": self._rid(), "start_time": start.isoformat(), "duration_minutes": duration})
        elif kind == "rename":
            self._send("update_details", {"request_id": self._rid(), "title": title})
        elif kind.startswith("consent"):
            self._send("consent", {"request_id": self._rid(), "granted": kind == "consent_yes", "actor": "c",
                                   "subject": "c", "channel": "web", "consent_text_version": "v1",
                                   "occurred_at": self.now.isoformat()})
        elif kind == "cancel":
            self._send("cancel", {"request_id": self._rid(), "actor": "u"})
        elif kind == "duplicate" and self.applied:
            self._send("reschedule", {"request_id": self.applied[0], "start_time": start.isoformat(), "duration_minutes": 60})
        elif kind == "wrong_type":
            count = self.s.rejection_count
            self._send("reschedule", {"request_id": self._rid(), "start_time": start.isoformat(),
                                      "duration_minutes": 30, field: value})
            assert self.s.rejection_count in (count, count + 1)

    @rule(lane=st.sampled_from(LANES),
          outcome=st.sampled_from(["ok", "ok", "ok", "lost", *range(len(FAILURES))]))
    def step(self, lane: str, outcome: Any) -> None:
        """One lane moves: it starts its next command, or its command in flight ends with `outcome`."""
        if lane not in self.in_flight:
            self.start(lane)
        elif outcome in ("ok", "lost"):
            self.succeed(lane, lost=outcome == "lost")
        else:
            self.fail(lane, FAILURES[outcome])

    @rule()
    def connection_changed(self) -> None:
        self.decide(core.ConnectionChanged({"status": "connected"}))

    @rule(minutes=st.sampled_from([1, 5, 30, 120]))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        self.decide(core.TimerFired())

    # -- the shell: start, supersede, resolve ------------------------------------------------------------

    def start(self, lane: str) -> None:
        if lane in self.in_flight:
            return
        command = getattr(self.decide(core.TimerFired()).pending, lane)
        if command is None:
            return
        if isinstance(command, core.ScheduleBot):
            assert core.bot_gates_open(self.s), "a bot only with both gates"
        if isinstance(command, core.CreateMeeting):
            assert self.s.zoom_meeting_id is None, "at most one meeting wanted"
            self.s.create_op_id = self.s.create_op_id or f"op-{self.ids}-{self.now.timestamp()}"
        self.in_flight[lane] = command
        self.decide(core.Started(command))

    @rule()
    def healthy_round(self) -> None:
        """Every dependency answers: each lane starts its next step and it succeeds."""
        for lane in LANES:
            self.start(lane)
            self.succeed(lane, lost=False)

    def succeed(self, lane: str, lost: bool) -> None:
        command = self.in_flight.pop(lane, None)
        if command is None:
            return
        result = self._world(command)
        if lost and lane != "email":  # the effect happened, the answer was lost: the chain fails
            self.decide(core.Failed(command, core.Failure(type="timeout", message="response lost")))
        else:
            self.decide(core.Succeeded(command, result))

    def fail(self, lane: str, failure: core.Failure) -> None:
        command = self.in_flight.pop(lane, None)
        if command is None:
            return
        if lane == "bot" and failure.type == act.ERR_RATE_LIMITED:
            failure = core.Failure(type="BotRateLimited", retry_after=failure.retry_after)
        self.decide(core.Failed(command, failure))

    @rule()
    def meeting_deleted_inside_zoom(self) -> None:
        for meeting in self.zoom_live:
            self.zoom_live[meeting] = False

    @rule()
    def host_deletes_and_zoom_says_so(self) -> None:
        """The host deletes the meeting inside Zoom and Zoom's meeting.deleted reaches the workflow."""
        for meeting in [m for m, alive in self.zoom_live.items() if alive]:
            self.zoom_live[meeting] = False
            self.decide(core.ZoomMeetingChangedReceived({"delivery_id": f"del-{meeting}", "event": "meeting.deleted",
                                                         "meeting_id": meeting, "operator": "host"}))

    @rule(duration=st.integers(min_value=5, max_value=240))
    def host_moves_and_zoom_says_so(self, duration: int) -> None:
        """The host changes the meeting inside Zoom; meeting.updated reaches the workflow (perhaps an echo)."""
        for meeting in [m for m, alive in self.zoom_live.items() if alive]:
            self.decide(core.ZoomMeetingChangedReceived({"delivery_id": f"upd-{meeting}-{duration}",
                                                         "event": "meeting.updated", "meeting_id": meeting,
                                                         "changed": {"duration": duration}, "operator": "host"}))

    # -- the outside world ----------------------------------------------------------------------------------

    def _world(self, c: core.Command) -> Any:
        if isinstance(c, core.CreateMeeting):
            op = self.s.create_op_id or "?"
            meeting = self.adoptable.get(op)
            if meeting is None:
                meeting = self.next_meeting
                self.next_meeting += 1
                self.zoom_live[meeting] = True
                self.adoptable[op] = meeting  # a lost answer is adopted by the next attempt (by its marker)
            return act.MeetingResult(outcome="created", zoom_meeting_id=meeting,
                                     join_url=f"https://zoom.example/j/{meeting}", spec=c.spec)
        if isinstance(c, core.PatchMeeting):
            # No stale PATCH: a cancel (or a provider switch) supersedes it before it reaches Zoom.
            assert core.wants_meeting(self.s), "a PATCH reached Zoom after the appointment stopped wanting it"
            return act.UpdateMeetingResult(outcome="updated" if self.zoom_live.get(c.zoom_meeting_id) else "not_found")
        if isinstance(c, core.DeleteMeeting):
            was = self.zoom_live.get(c.zoom_meeting_id, False)
            self.zoom_live[c.zoom_meeting_id] = False
            return act.DeleteMeetingResult(outcome="deleted" if was else "already_gone")
        if isinstance(c, core.CheckMeeting):
            alive = self.zoom_live.get(c.zoom_meeting_id, False)
            return act.CheckMeetingResult(exists=alive, actual=core.desired_spec(self.s) if alive else None,
                                          join_url=f"https://zoom.example/j/{c.zoom_meeting_id}" if alive else None)
        if isinstance(c, core.ScheduleBot):
            bot = self.bot_keys.setdefault(c.dispatch_key, f"bot-{c.dispatch_key}")
            self.bots[bot] = True
            return act.BotResult(outcome="scheduled", bot_id=bot, status="scheduled")
        if isinstance(c, core.MoveBot):
            return act.BotResult(outcome="moved", bot_id=c.bot_id, status="scheduled")
        if isinstance(c, core.CancelBot):
            ids = [c.bot_id] if c.bot_id else [b for k, b in self.bot_keys.items() if k == c.dispatch_key]
            for bot in ids:
                self.bots[bot] = False
            return act.BotResult(outcome="removed", bot_id=c.bot_id, status="cancelled")
        assert isinstance(c, core.SendEmails)
        # No email for a superseded revision: what is delivered is what the appointment says at that moment.
        if c.kind == "cancellation":
            assert self.s.status == "cancelled"
        else:
            assert self.s.status == "scheduled" and c.fingerprint == core._email_facts(self.s)[1], \
                "an email for a superseded revision was delivered"
        self.mailbox.append((c.revision, c.kind, c.fingerprint))
        return act.SendConfirmationsResult(sent=1, already_sent=0, failed=[])

    def _drain_outboxes(self) -> None:
        self.s.outbox_consent.clear()  # the records lane writes them (its own lane, not modelled)

    # -- invariants ------------------------------------------------------------------------------------------

    @invariant()
    def one_meeting_at_most(self) -> None:
        assert sum(self.zoom_live.values()) <= 1, self.zoom_live

    @invariant()
    def bot_commands_respect_both_gates(self) -> None:
        if not hasattr(self, "s"):
            return
        command = core.next_bot_command(self.s, self.now)
        if isinstance(command, (core.ScheduleBot, core.MoveBot)):
            assert core.bot_gates_open(self.s)

    @invariant()
    def withdrawal_leads_to_cancel_bot(self) -> None:
        if not hasattr(self, "s") or not self.s.policy.bots_enabled or core.bot_gates_open(self.s):
            return
        owes_removal = core.bot_live(self.s) or self.s.bot_unsure_key is not None
        flying = self.in_flight.get("bot")
        if owes_removal and not (self.s.bot_lane.parked_until and core._parked(self.s.bot_lane, self.now)):
            assert isinstance(flying, core.CancelBot) or (flying is not None and core.is_superseded(self.s, flying, self.now)) \
                or isinstance(core.next_bot_command(self.s, self.now), core.CancelBot)

    @invariant()
    def emails_only_move_forward(self) -> None:
        revisions = [r for r, _, _ in self.mailbox]
        assert revisions == sorted(revisions), "an older revision was delivered after a newer one"

    def teardown(self) -> None:
        """Let every dependency recover and every lane run to quiet: the promises must then hold."""
        if not hasattr(self, "s"):
            return
        for lane in list(self.in_flight):
            # Resolving one lane's command can supersede another's (decide() drops it): skip those.
            command = self.in_flight.pop(lane, None)
            if command is not None:
                self.decide(core.Succeeded(command, self._world(command)))
        self.decide(core.ConnectionChanged({"status": "connected"}))
        for _ in range(60):
            self.now += timedelta(minutes=10)
            pending = self.decide(core.TimerFired()).pending
            self._drain_outboxes()
            started = False
            for lane in LANES:
                command = getattr(pending, lane)
                if command is None:
                    continue
                if isinstance(command, core.CreateMeeting):
                    self.s.create_op_id = self.s.create_op_id or f"op-final-{self.now.timestamp()}"
                self.decide(core.Started(command))
                self.decide(core.Succeeded(command, self._world(command)))
                started = True
                break
            if not started:
                break
        if self.s.status == "completed":
            return
        live_meetings = [m for m, alive in self.zoom_live.items() if alive]
        if self.s.status == "cancelled":
            # A cancel always ends in delete, or a recorded reason why not.
            assert not live_meetings or (self.s.conference_status in ("failed", "detached") and self.s.conference_reason), \
                (live_meetings, self.s.conference_status)
            assert not any(self.bots.values()), "a cancelled appointment kept a live bot"
            if self.mailbox and self.s.policy.emails_enabled:
                assert self.mailbox[-1][1] == "cancellation"
            return
        assert len(live_meetings) <= 1
        wanted_bot = core.bot_gates_open(self.s) and self.s.policy.bots_enabled and core.bot_wanted(self.s)
        assert sum(self.bots.values()) == (1 if wanted_bot else 0), (self.bots, wanted_bot)
        if self.mailbox and core.next_email_command(self.s, self.now) is None and self.s.conference_status == "ready":
            # The last email delivered carries what the appointment says now: nothing superseded came last.
            assert self.mailbox[-1][2] == self.s.email_fingerprint


AppointmentMachine.TestCase.settings = settings(
    max_examples=500, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestAppointmentCore = AppointmentMachine.TestCase
