"""Events to the core app: the durable outbox and its delivery, over real HTTP to the example receiver.

The database is real (SQLite and PostgreSQL), the receiver is `starter/example_receiver.py` (it verifies
Standard Webhooks signatures with `starter.webhooks`), and the dispatcher runs on a clock the test moves,
so "the core app was down for an hour" takes milliseconds and no test waits on wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from ratio_zoom.contract.events import (
    ConferenceEventData,
    ConnectionEventData,
    appointment_stream,
    workspace_stream,
)
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.emulators.zoom_server.testing import free_port
from ratio_zoom.events.dispatcher import EventDispatcher
from ratio_zoom.events.outbox import enqueue
from ratio_zoom.events.signing import EventSigner, generate_secret
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import CoreAppEventRow
from starter.example_receiver import Inbox, make_app
from starter.webhooks import EventVerifier, InvalidEvent

SECRET = generate_secret()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class Switchable:
    """Wraps the receiver: while `down` (or for refused streams) it answers 503 like a core app in trouble."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.down = False
        self.refuse_streams: set[str] = set()
        self.posts = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.posts += 1
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            stream = json.loads(body or b"{}").get("stream")
            if self.down or stream in self.refuse_streams:
                await send({"type": "http.response.start", "status": 503, "headers": [(b"retry-after", b"30")]})
                await send({"type": "http.response.body", "body": b"down"})
                return
            replay = [{"type": "http.request", "body": body, "more_body": False}]

            async def again() -> dict[str, Any]:
                return replay.pop() if replay else {"type": "http.disconnect"}

            await self.app(scope, again, send)
            return
        await self.app(scope, receive, send)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Switchable, Inbox]]:
    inbox = Inbox()
    app = Switchable(make_app(SECRET, inbox))
    with serving(app, free_port(), name="core-app") as base:
        yield f"{base}/ratio-zoom/events", app, inbox


async def _enqueue_conference(db: Database, appointment_id: str, n: int, clock: Clock, *, type: str = "conference.updated") -> None:
    async with db.transaction() as session:
        await enqueue(session, event_id=f"{appointment_id}:conference:{n}", type=type,  # type: ignore[arg-type]
                      stream=appointment_stream(appointment_id), workspace_id="ws-1", appointment_id=appointment_id,
                      data=ConferenceEventData(appointment_id=appointment_id, status="ready", meeting_id=1000 + n,
                                               join_url=f"https://zoom.example/j/{1000 + n}?pwd=x"),
                      now=clock())


def _dispatcher(db: Database, url: str, clock: Clock, **kwargs: Any) -> EventDispatcher:
    return EventDispatcher(db, url, EventSigner(SECRET), clock=clock, **kwargs)


async def _drain(dispatcher: EventDispatcher, clock: Clock, *, step: timedelta = timedelta(seconds=31), rounds: int = 60) -> None:
    for _ in range(rounds):
        while await dispatcher.deliver_due():
            pass
        clock.now += step


async def test_sequences_per_stream_and_idempotent_ids(database_url: str) -> None:
    db = Database(database_url)
    clock = Clock()
    try:
        for n in (1, 2, 3):
            await _enqueue_conference(db, "a-1", n, clock)
        await _enqueue_conference(db, "a-1", 2, clock)  # an activity retried: nothing new
        async with db.transaction() as session:
            assert await enqueue(session, event_id="ws-1:connection:1", type="connection.connected",
                                 stream=workspace_stream("ws-1"), workspace_id="ws-1",
                                 data=ConnectionEventData(status="connected"), now=clock())
            rows = (await session.execute(CoreAppEventRow.__table__.select().order_by("stream", "sequence"))).all()
        assert [(r.stream, r.sequence) for r in rows] == [
            ("appointment:a-1", 1), ("appointment:a-1", 2), ("appointment:a-1", 3), ("workspace:ws-1", 1)]
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_concurrent_writers_get_gapless_sequences(pg_database_url: str) -> None:
    engines = [Database(pg_database_url) for _ in range(3)]
    clock = Clock()
    appointment = f"a-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.gather(*(_enqueue_conference(engines[n % 3], appointment, n, clock) for n in range(1, 31)))
        async with engines[0].transaction() as session:
            rows = (await session.execute(CoreAppEventRow.__table__.select()
                                          .where(CoreAppEventRow.stream == appointment_stream(appointment)))).all()
        assert sorted(r.sequence for r in rows) == list(range(1, 31))
    finally:
        for db in engines:
            await db.dispose()


async def test_delivered_in_order_and_verified(database_url: str, receiver: tuple[str, Switchable, Inbox]) -> None:
    url, _, inbox = receiver
    db = Database(database_url)
    clock = Clock()
    try:
        for n in range(1, 6):
            await _enqueue_conference(db, "a-1", n, clock, type="conference.ready" if n == 1 else "conference.updated")
            await _enqueue_conference(db, "a-2", n, clock)
        await _drain(_dispatcher(db, url, clock), clock, rounds=8)
        by_stream: dict[str, list[int]] = {}
        for event in inbox.applied:
            by_stream.setdefault(event.stream, []).append(event.sequence)
        assert by_stream == {"appointment:a-1": [1, 2, 3, 4, 5], "appointment:a-2": [1, 2, 3, 4, 5]}
        assert inbox.refused == inbox.duplicates == inbox.stale == 0
        assert inbox.applied[0].data.join_url  # type: ignore[union-attr]  # the record's link travels
        async with db.transaction() as session:
            statuses = set((await session.execute(CoreAppEventRow.__table__.select())).scalars())
            rows = (await session.execute(CoreAppEventRow.__table__.select())).all()
        assert statuses and {r.status for r in rows} == {"delivered"}
    finally:
        await db.dispose()


async def test_receiver_down_then_everything_arrives_in_order(database_url: str,
                                                              receiver: tuple[str, Switchable, Inbox]) -> None:
    url, app, inbox = receiver
    db = Database(database_url)
    clock = Clock()
    dispatcher = _dispatcher(db, url, clock)
    try:
        app.down = True
        for n in range(1, 4):
            await _enqueue_conference(db, "a-1", n, clock)
        # An hour of outage, with events still being written meanwhile.
        for minute in range(60):
            while await dispatcher.deliver_due():
                pass
            if minute == 30:
                await _enqueue_conference(db, "a-1", 4, clock)
            clock.advance(minutes=1)
        assert inbox.applied == []
        async with db.transaction() as session:
            head = await session.get(CoreAppEventRow, "a-1:conference:1")
            assert head is not None and head.last_error == "the core app answered HTTP 503"
            # Backoff is capped (10 minutes) and Retry-After (30 s) honoured: not thousands of attempts.
            assert 3 <= head.attempts <= 40
            later = await session.get(CoreAppEventRow, "a-1:conference:2")
            assert later is not None and later.attempts == 0  # never sent before its predecessor
        app.down = False
        await _drain(dispatcher, clock, step=timedelta(minutes=1), rounds=15)
        assert [e.sequence for e in inbox.applied] == [1, 2, 3, 4]
        assert inbox.duplicates == inbox.stale == 0
    finally:
        await db.dispose()


async def test_one_stream_in_trouble_does_not_hold_another(database_url: str,
                                                           receiver: tuple[str, Switchable, Inbox]) -> None:
    url, app, inbox = receiver
    db = Database(database_url)
    clock = Clock()
    try:
        app.refuse_streams = {"appointment:stuck"}
        for n in (1, 2):
            await _enqueue_conference(db, "stuck", n, clock)
            await _enqueue_conference(db, "fine", n, clock)
        await _drain(_dispatcher(db, url, clock), clock, rounds=4)
        assert [(e.stream, e.sequence) for e in inbox.applied] == [("appointment:fine", 1), ("appointment:fine", 2)]
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_two_dispatchers_never_send_one_event_twice_or_out_of_order(
        pg_database_url: str, receiver: tuple[str, Switchable, Inbox]) -> None:
    url, _, inbox = receiver
    writers = Database(pg_database_url)
    clock = Clock()
    tag = uuid.uuid4().hex[:8]
    engines = [Database(pg_database_url), Database(pg_database_url)]
    try:
        for n in range(1, 11):
            for appointment in (f"x-{tag}", f"y-{tag}", f"z-{tag}"):
                await _enqueue_conference(writers, appointment, n, clock)
        dispatchers = [_dispatcher(db, url, clock, concurrency=3) for db in engines]
        for _ in range(40):
            await asyncio.gather(*(d.deliver_due() for d in dispatchers))
        ours = [e for e in inbox.applied if tag in e.stream]
        assert len(ours) == 30
        for appointment in (f"x-{tag}", f"y-{tag}", f"z-{tag}"):
            assert [e.sequence for e in ours if e.appointment_id == appointment] == list(range(1, 11))
        assert inbox.duplicates == inbox.stale == 0
    finally:
        for db in (writers, *engines):
            await db.dispose()


async def test_the_ceiling_expires_an_event_with_its_reason_and_the_stream_moves_on(
        sqlite_url: str, receiver: tuple[str, Switchable, Inbox]) -> None:
    url, app, inbox = receiver
    db = Database(sqlite_url)
    clock = Clock()
    outcomes: list[str] = []
    dispatcher = _dispatcher(db, url, clock, expire_after=timedelta(hours=2),
                             observer=lambda outcome, status: outcomes.append(outcome))
    try:
        app.down = True
        await _enqueue_conference(db, "a-1", 1, clock)
        await _drain(dispatcher, clock, step=timedelta(minutes=10), rounds=14)
        await _enqueue_conference(db, "a-1", 2, clock)
        app.down = False
        await _drain(dispatcher, clock, rounds=3)
        async with db.transaction() as session:
            first = await session.get(CoreAppEventRow, "a-1:conference:1")
        assert first is not None and first.status == "expired" and first.last_error == "the core app answered HTTP 503"
        assert "expired" in outcomes
        assert [e.sequence for e in inbox.applied] == [2]
    finally:
        await db.dispose()


def _signed(body: str, event_id: str, secret: str = SECRET, when: datetime | None = None) -> dict[str, str]:
    return EventSigner(secret).headers(event_id, body, when)


def _body(event_id: str = "e-1") -> str:
    return json.dumps({"id": event_id, "type": "connection.disconnected", "stream": "workspace:ws-1", "sequence": 1,
                       "occurred_at": "2026-12-02T12:00:00Z", "workspace_id": "ws-1", "appointment_id": None,
                       "data": {"status": "disconnected", "reason": None}})


@pytest.mark.parametrize("attack", ["tampered", "foreign_secret", "stale", "id_swapped", "unsigned", "not_an_event"])
def test_the_verifier_refuses_forged_and_replayed_events(attack: str) -> None:
    verifier = EventVerifier(SECRET)
    body = _body()
    headers = _signed(body, "e-1")
    if attack == "tampered":
        body = body.replace("ws-1", "ws-2")
    elif attack == "foreign_secret":
        headers = _signed(body, "e-1", secret=generate_secret())
    elif attack == "stale":
        headers = _signed(body, "e-1", when=datetime.now(timezone.utc) - timedelta(minutes=10))
    elif attack == "id_swapped":
        headers = _signed(body, "e-2")  # a valid signature for another delivery ID
    elif attack == "unsigned":
        headers = {"content-type": "application/json"}
    elif attack == "not_an_event":
        body = json.dumps({"hello": "world"})
        headers = _signed(body, "e-1")
    with pytest.raises(InvalidEvent):
        verifier.verify(body.encode(), headers)
    assert verifier.verify(_body().encode(), _signed(_body(), "e-1")).type == "connection.disconnected"


def test_the_example_receiver_refuses_a_forgery_over_http(receiver: tuple[str, Switchable, Inbox]) -> None:
    url, _, inbox = receiver
    body = _body("forged")
    response = httpx.post(url, content=body, headers=_signed(body, "forged", secret=generate_secret()))
    assert response.status_code == 400 and inbox.refused == 1 and inbox.applied == []



async def test_connection_changes_reach_the_core_app_in_order(
        fresh_pg_url: str, zoom_emulator: Any, receiver: tuple[str, Switchable, Inbox]) -> None:
    """Connect (real OAuth against the emulator), disconnect, connect again: three events, in order."""
    from ratio_zoom.connections.service import ConnectionService
    from ratio_zoom.connections.services import Services
    from tests.conftest import make_settings

    url, _, inbox = receiver
    settings = make_settings(fresh_pg_url, ZOOM_API_BASE_URL=zoom_emulator.api_base_url,
                             ZOOM_OAUTH_BASE_URL=zoom_emulator.oauth_base_url, CORE_APP_WEBHOOK_URL=url,
                             CORE_APP_WEBHOOK_SECRET=SECRET)
    services = Services.create(settings)
    connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom,
                                    outbox=services.outbox)
    workspace = f"w-{uuid.uuid4().hex[:8]}"

    async def connect() -> None:
        start = await connections.start_connect(workspace, "u-admin", "owner", "https://ratio.example/settings")
        async with httpx.AsyncClient(follow_redirects=False) as http:
            response = await http.get(start)
        callback = httpx.URL(response.headers["location"])
        await connections.complete_connect(callback.params.get("code"), callback.params.get("state"), None)

    try:
        await zoom_emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA",
                                             scopes="meeting:write:meeting meeting:update:meeting meeting:delete:meeting "
                                                    "meeting:read:meeting meeting:read:list_meetings user:read:user")
        await connect()
        await connections.disconnect(workspace, "u-admin", "owner")
        await connections.disconnect(workspace, "u-admin", "owner")  # idempotent: no second event
        await zoom_emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA",
                                             scopes="meeting:write:meeting meeting:update:meeting meeting:delete:meeting "
                                                    "meeting:read:meeting meeting:read:list_meetings user:read:user")
        await connect()
        dispatcher = EventDispatcher(services.db, url, EventSigner(SECRET))
        for _ in range(10):
            await dispatcher.deliver_due()
        ours = [e for e in inbox.applied if e.workspace_id == workspace]
        assert [(e.type, e.sequence) for e in ours] == [
            ("connection.connected", 1), ("connection.disconnected", 2), ("connection.connected", 3)]
        for event in ours:
            body = event.model_dump_json()
            assert "token" not in body.lower() and "@" not in body  # no token, no Zoom email in any event
    finally:
        await services.aclose()
