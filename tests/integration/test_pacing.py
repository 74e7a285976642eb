"""Pacing Zoom end to end: a short-lived token still makes calls go out, a refused create is retried without
the exactly-once list (an unknown outcome still gets it), and the worker's calls go through the shared limiter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ratio_zoom.connections.broker import TokenBroker
from ratio_zoom.connections.repository import utcnow
from tests.integration.conftest import Stack, ws
from tests.integration.test_appointment_lifecycle import booking


async def _counter(stack: Stack, key: str) -> int:
    return int((await stack.emulator.counters()).get(key, 0))


async def test_a_15_second_token_is_fresh_when_issued_and_refreshed_once_near_its_end(stack: Stack) -> None:
    workspace = ws()
    await stack.emulator.set_limits(access_token_seconds=15)
    try:
        await stack.connect_workspace(workspace)
        services = stack.services
        refreshes = await _counter(stack, "oauth_token:refresh")
        # Just issued: the call goes out with the token as it is (no refresh), and so does a booking.
        me = await services.broker.call(workspace, lambda lease: services.zoom.get_me(lease.token))
        assert me.email and await _counter(stack, "oauth_token:refresh") == refreshes
        booked = await stack.appointments.book(booking(workspace))
        assert booked.conference.status == "ready"
        assert await _counter(stack, "oauth_token:refresh") == refreshes
        # 10 s into its 15 s life it is inside its margin (7.5 s, half its life): one refresh, then the call.
        later = TokenBroker(services.db, services.vault, services.oauth, clock=lambda: utcnow() + timedelta(seconds=10))
        for _ in range(3):
            await later.call(workspace, lambda lease: services.zoom.get_me(lease.token))
        assert later.stats.refreshes == 1 and later.stats.refresh_failures == 0
        assert await _counter(stack, "oauth_token:refresh") == refreshes + 1
    finally:
        await stack.emulator.set_limits(access_token_seconds=3599)


@pytest.mark.parametrize(("status", "lists"), [(429, 0), (503, 1)])
async def test_a_create_retried_after_a_refusal_lists_nothing_after_an_unknown_outcome_lists_once(
        stack: Stack, status: int, lists: int) -> None:
    """A 429 proves nothing was created: the retry creates straight away (the list would spend the same
    Medium budget). A 5xx may hide a created meeting: the retry looks for it first."""
    workspace = ws()
    await stack.connect_workspace(workspace)
    first_call = len(await stack.emulator.calls())  # tests run one at a time: later calls are this test's
    await stack.emulator.set_faults([{"path": "^/v2/users/me/meetings$", "method": "POST", "kind": "error",
                                      "status": status, "count": 1}])
    try:
        booked = await stack.appointments.book(booking(workspace))
    finally:
        await stack.emulator.set_faults([])
    assert booked.conference.status == "ready"
    calls = [c["operation"] for c in (await stack.emulator.calls())[first_call:]]
    assert calls.count("create_meeting") == 2
    assert calls.count("list_meetings") == lists
    live = [m for m in await stack.emulator.meetings() if m["id"] == booked.conference.zoom_meeting_id]
    assert len(live) == 1 and not live[0]["deleted"]


async def test_the_worker_paces_its_zoom_calls_through_the_shared_limiter(stack: Stack) -> None:
    from sqlalchemy import select

    from ratio_zoom.storage.models import ZoomDailyUsage, ZoomRateBucket

    workspace = ws()
    await stack.connect_workspace(workspace)
    assert stack.services.limiter is not None  # on by default (ZOOM_RATE_LIMITER)
    booked = await stack.appointments.book(booking(workspace))
    assert booked.conference.status == "ready"
    async with stack.services.db.sessions() as session:
        buckets = (await session.execute(select(ZoomRateBucket.category))).scalars().all()
        used = (await session.execute(select(ZoomDailyUsage.used))).scalars().all()
    assert "medium" in buckets and sum(used) >= 1  # the create booked a Medium slot and a daily count


async def test_a_paced_wait_holds_no_database_connection_and_a_429_reaches_the_shared_limiter(stack: Stack) -> None:
    """The wait for a slot comes before the token lease: on PostgreSQL the lease holds a connection (and the
    FOR SHARE lock disconnect waits for), so waiting inside it would starve the pool and stall disconnects."""
    import asyncio

    from ratio_zoom.connections.limiter import LimiterConfig, ZoomLimiter
    from ratio_zoom.zoom import errors as z

    workspace = ws()
    await stack.connect_workspace(workspace)
    services = stack.services
    held_while_waiting: list[int] = []

    async def sleep(seconds: float) -> None:
        held_while_waiting.append(services.db.engine.pool.checkedout())  # type: ignore[attr-defined]
        await asyncio.sleep(seconds)

    limiter = ZoomLimiter(services.db, LimiterConfig(per_second={"light": 5.0, "medium": 5.0, "heavy": 5.0},
                                                     headroom=1.0), sleep=sleep)
    broker = TokenBroker(services.db, services.vault, services.oauth, limiter=limiter)
    for _ in range(2):  # the second call waits ~0.2 s for its slot
        await broker.call(workspace, lambda lease: services.zoom.get_me(lease.token), pace="get_me")
    assert held_while_waiting and held_while_waiting == [0] * len(held_while_waiting)

    await stack.emulator.set_limits(light_per_second=1)
    try:
        with pytest.raises(z.RateLimited):
            for _ in range(3):
                await broker.call(workspace, lambda lease: services.zoom.get_me(lease.token), pace="get_me")
    finally:
        await stack.emulator.set_limits(light_per_second=30)
    assert limiter.stats.zoom_429s == 1
    from sqlalchemy import select

    from ratio_zoom.storage.models import ZoomRateBucket

    async with services.db.sessions() as session:
        blocked_until = (await session.execute(select(ZoomRateBucket.blocked_until).where(
            ZoomRateBucket.account_key == (await broker.pace_keys(workspace)).account,
            ZoomRateBucket.category == "light"))).scalar_one()
    assert blocked_until > 0  # everyone sharing the account now waits for Zoom's Retry-After


async def test_a_create_waiting_for_its_slot_heartbeats_and_succeeds_in_one_attempt(stack: Stack) -> None:
    """The wait happens inside the activity, which heartbeats all along (every 2 s; Temporal's heartbeat
    timeout is 10 s), so a paced create costs no retry."""
    import uuid
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update
    from temporalio.testing import ActivityEnvironment

    from activities import schemas as act
    from activities.meetings import MeetingActivities
    from ratio_zoom.connections.limiter import ZoomLimiter
    from ratio_zoom.storage.models import ZoomRateBucket

    workspace = ws()
    await stack.connect_workspace(workspace)
    services = stack.services
    limiter = ZoomLimiter(services.db)
    broker = TokenBroker(services.db, services.vault, services.oauth, limiter=limiter)
    keys = await broker.pace_keys(workspace)
    await limiter.acquire(keys, "create_meeting")  # creates the account's Medium row
    async with services.db.transaction() as session:  # other processes have booked the next 3 s
        await session.execute(update(ZoomRateBucket).where(ZoomRateBucket.account_key == keys.account,
                                                           ZoomRateBucket.category == "medium")
                              .values(next_slot_at=datetime.now(timezone.utc).timestamp() + 3.0))
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    appointment_id = f"a-{uuid.uuid4().hex[:10]}"
    start = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = act.CreateMeetingArgs(
        ctx=act.OpContext(workflow_id=f"appointment-{appointment_id}", run_id="r1", appointment_id=appointment_id,
                          workspace_id=workspace, op_id=f"appointment-{appointment_id}:op:1"),
        spec=act.MeetingSpec(topic="Paced", agenda="", start_time=start, duration=30, timezone="UTC"))
    result = await env.run(MeetingActivities(services.db, broker, services.zoom).create_meeting, args)
    assert result.outcome == "created" and limiter.stats.waited == 1 and limiter.stats.waited_seconds > 2
    assert len(beats) >= 2  # the first beat at the start, more while it waited


async def test_a_zoom_outage_does_not_spend_the_hosts_day(stack: Stack) -> None:
    """Creates/updates Zoom refused (5xx, 4xx) are given back to the daily budget: otherwise a few minutes of
    503s would spend the host's 100 a day and park every appointment until midnight. A success counts."""
    from ratio_zoom.connections.limiter import LimiterConfig, ZoomLimiter
    from ratio_zoom.zoom import errors as z
    from ratio_zoom.zoom.models import MeetingWrite

    workspace = ws()
    await stack.connect_workspace(workspace)
    services = stack.services
    limiter = ZoomLimiter(services.db, LimiterConfig(per_second={"light": 50.0, "medium": 50.0, "heavy": 50.0},
                                                     headroom=1.0, daily_budget=3))
    broker = TokenBroker(services.db, services.vault, services.oauth, limiter=limiter)
    user_key = (await broker.pace_keys(workspace)).user
    body = MeetingWrite(topic="Outage", type=2, duration=30, timezone="UTC", default_password=True)

    await stack.emulator.set_faults([{"path": "/v2/users/me/meetings$", "method": "POST", "kind": "error",
                                      "status": 503}])
    try:
        for _ in range(5):  # more refused creates than the day allows
            with pytest.raises(z.ZoomServerError):
                await broker.call(workspace, lambda lease: services.zoom.create_meeting(lease.token, body),
                                  pace="create_meeting")
    finally:
        await stack.emulator.set_faults([])
    assert await limiter.daily_used(user_key) == 0
    meeting = await broker.call(workspace, lambda lease: services.zoom.create_meeting(lease.token, body),
                                pace="create_meeting")
    assert meeting.id and await limiter.daily_used(user_key) == 1


# -- one pace per Zoom account ------------------------------------------------------------------------------

DEFAULT_ZOOM_USER = "z8yCxjabR7qYD9Yc7ScTLA"  # the emulator's own user (account acct-1), who consents by default


async def _connect_as(stack: Stack, workspace: str, zoom_user: str) -> None:
    await stack.emulator.set_next_consent(user_id=zoom_user)
    try:
        assert "zoom=connected" in await stack.connect_workspace(workspace)
    finally:
        await stack.emulator.set_next_consent(user_id=DEFAULT_ZOOM_USER)


async def test_workspaces_of_one_zoom_account_book_their_slots_in_one_bucket(stack: Stack) -> None:
    """Zoom's per-second limits are per account, shared by all its users: two workspaces connected to two
    users of one account are paced in one bucket row (the second call waits for the first one's slot), and a
    user of another account has a row of its own. The daily budget stays per user (per workspace)."""
    import asyncio
    import uuid

    from sqlalchemy import select

    from ratio_zoom.connections.limiter import LimiterConfig, ZoomLimiter
    from ratio_zoom.connections.repository import ACCOUNT_HASH_PURPOSE
    from ratio_zoom.storage.models import ZoomRateBucket

    tag = uuid.uuid4().hex[:8]
    shared, other = f"acct-{tag}-a", f"acct-{tag}-b"
    zoom_users = {f"zu-{tag}-1": shared, f"zu-{tag}-2": shared, f"zu-{tag}-3": other}
    workspaces = [ws() for _ in zoom_users]
    for workspace, (zoom_user, account) in zip(workspaces, zoom_users.items()):
        await stack.emulator.add_user(zoom_user, f"{zoom_user}@example.com", account_id=account)
        await _connect_as(stack, workspace, zoom_user)
    services = stack.services
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    limiter = ZoomLimiter(services.db, LimiterConfig(per_second={"light": 1.0, "medium": 1.0, "heavy": 1.0},
                                                     headroom=1.0), sleep=sleep)
    broker = TokenBroker(services.db, services.vault, services.oauth, limiter=limiter)

    def get_me(workspace: str):  # type: ignore[no-untyped-def]
        return broker.call(workspace, lambda lease: services.zoom.get_me(lease.token), pace="get_me")

    first, second = await asyncio.gather(get_me(workspaces[0]), get_me(workspaces[1]))
    assert {first.id, second.id} == set(list(zoom_users)[:2])
    # At 1/s for the account, one of the two waited for the other's slot: they booked in one row.
    assert len(waits) == 1 and 0.5 < waits[0] <= 1.0
    third = await get_me(workspaces[2])
    assert third.account_id == other and len(waits) == 1  # another account: a row of its own, no wait

    keys = [await broker.pace_keys(workspace) for workspace in workspaces]
    assert keys[0].account == keys[1].account != keys[2].account
    assert len({k.user for k in keys}) == 3  # each workspace's daily budget is its own user's
    async with services.db.sessions() as session:
        rows = (await session.execute(select(ZoomRateBucket.account_key).where(
            ZoomRateBucket.account_key.in_([k.account for k in keys] + [k.user for k in keys]),
            ZoomRateBucket.category == "light"))).scalars().all()
    assert sorted(rows) == sorted({keys[0].account, keys[2].account})
    # The bucket's key is a keyed hash of its own: neither the account ID nor the hash stored on the connection.
    assert not {shared, other, services.vault.lookup_hash(shared, ACCOUNT_HASH_PURPOSE)} & set(rows)


async def test_a_connection_without_an_account_hash_is_paced_under_its_user_key(stack: Stack) -> None:
    """Rows connected before migration 0004 (or when Zoom named no account) have no account hash: the
    workspace's per-second slots are booked under its user key, as if it were alone in its account."""
    from sqlalchemy import select, update

    from ratio_zoom.connections.broker import PACING_PURPOSE
    from ratio_zoom.connections.limiter import LimiterConfig, ZoomLimiter
    from ratio_zoom.storage.models import ZoomConnection, ZoomRateBucket

    workspace = ws()
    await stack.connect_workspace(workspace)
    services = stack.services
    async with services.db.transaction() as session:
        await session.execute(update(ZoomConnection).where(ZoomConnection.workspace_id == workspace)
                              .values(zoom_account_id_enc=None, zoom_account_hash=None))
    limiter = ZoomLimiter(services.db, LimiterConfig(per_second={"light": 50.0, "medium": 50.0, "heavy": 50.0},
                                                     headroom=1.0))
    broker = TokenBroker(services.db, services.vault, services.oauth, limiter=limiter)
    await broker.call(workspace, lambda lease: services.zoom.get_me(lease.token), pace="get_me")
    keys = await broker.pace_keys(workspace)
    assert keys.account == keys.user == services.vault.lookup_hash(workspace, PACING_PURPOSE)
    async with services.db.sessions() as session:
        booked = (await session.execute(select(ZoomRateBucket.next_slot_at).where(
            ZoomRateBucket.account_key == keys.user, ZoomRateBucket.category == "light"))).scalar_one()
    assert booked > 0


async def test_a_workspace_reconnected_to_another_zoom_account_moves_to_that_accounts_buckets(stack: Stack) -> None:
    """A process caches the account key per workspace; a reconnect bumps the token generation, which the next
    lease shows, so the call after it is paced in the new account's buckets (ACCOUNT_KEY_TTL bounds the rest)."""
    import uuid

    from ratio_zoom.connections.limiter import LimiterConfig, ZoomLimiter

    tag = uuid.uuid4().hex[:8]
    before_user, after_user = f"zu-{tag}-old", f"zu-{tag}-new"
    await stack.emulator.add_user(before_user, f"{before_user}@example.com", account_id=f"acct-{tag}-old")
    await stack.emulator.add_user(after_user, f"{after_user}@example.com", account_id=f"acct-{tag}-new")
    workspace = ws()
    await _connect_as(stack, workspace, before_user)
    services = stack.services
    limiter = ZoomLimiter(services.db, LimiterConfig(per_second={"light": 50.0, "medium": 50.0, "heavy": 50.0},
                                                     headroom=1.0))
    broker = TokenBroker(services.db, services.vault, services.oauth, limiter=limiter)

    async def get_me() -> str:
        return (await broker.call(workspace, lambda lease: services.zoom.get_me(lease.token), pace="get_me")).id

    assert await get_me() == before_user
    before = await broker.pace_keys(workspace)
    await _connect_as(stack, workspace, after_user)
    assert await get_me() == after_user
    after = await broker.pace_keys(workspace)
    assert after.account != before.account and after.user == before.user
    fresh = TokenBroker(services.db, services.vault, services.oauth, limiter=limiter)  # another process
    assert after == await fresh.pace_keys(workspace)
