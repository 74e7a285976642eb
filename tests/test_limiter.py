"""The shared Zoom limiter on a real database (SQLite and PostgreSQL), two engines standing for two worker
processes: one pace per account and category (shared by the account's users), Retry-After for everyone,
AIMD, the daily budget per user, metrics without identifiers. Time is a fake clock: nothing here depends on how busy the machine is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from alembic.migration import MigrationContext
from alembic.autogenerate import compare_metadata
from sqlalchemy import create_engine

from ratio_zoom.connections.limiter import LimiterConfig, PaceKeys, ZoomLimiter
from ratio_zoom.storage.db import Database, sync_url
from ratio_zoom.storage.models import Base
from ratio_zoom.zoom.errors import PacedOut, RateLimited

ACCOUNT = "a3f1c2" * 10 + "beef"  # keyed hashes, as TokenBroker.pace_keys makes them
KEYS = PaceKeys(account=ACCOUNT, user="b4e2d3" * 10 + "cafe")
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc).timestamp()


@dataclass
class FakeTime:
    now: float = T0
    advance_on_sleep: bool = True
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.advance_on_sleep:
            self.now += seconds
        await asyncio.sleep(0)


@dataclass
class RecordingMetrics:
    rates: list[tuple[str, str, float]] = field(default_factory=list)
    waits: list[tuple[str, float]] = field(default_factory=list)
    paced_out: list[tuple[str, str]] = field(default_factory=list)
    limited: list[tuple[str, str]] = field(default_factory=list)

    def limiter_waited(self, category: str, seconds: float) -> None:
        self.waits.append((category, seconds))

    def limiter_paced_out(self, category: str, limit_type: str) -> None:
        self.paced_out.append((category, limit_type))

    def zoom_rate_limited(self, category: str, limit_type: str) -> None:
        self.limited.append((category, limit_type))

    def limiter_rate(self, account: str, category: str, rate: float) -> None:
        self.rates.append((account, category, rate))


def config(**overrides: object) -> LimiterConfig:
    values: dict[str, object] = {"per_second": {"light": 30.0, "medium": 10.0, "heavy": 10.0}, "headroom": 1.0}
    values.update(overrides)
    return LimiterConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def two_engines(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database(database_url), Database(database_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


def zoom_429(retry_after: float | None, limit_type: str = "per_second") -> RateLimited:
    return RateLimited(429, 429, "rate limited", "create_meeting", retry_after=retry_after,
                       limit_type=limit_type, category="Medium")  # type: ignore[arg-type]


async def test_two_processes_share_one_even_pace_per_account_and_category(two_engines: tuple[Database, Database]) -> None:
    time = FakeTime(advance_on_sleep=False)  # every call arrives at T0: the bucket hands out future slots
    a, b = (ZoomLimiter(db, config(), clock=time.clock, sleep=time.sleep) for db in two_engines)
    await asyncio.gather(*(limiter.acquire(KEYS, "create_meeting") for limiter in (a, b) for _ in range(10)))
    # 20 Medium calls at 10/s from two engines: slots 0, 0.1, ... 1.9 s, each handed out once.
    assert sorted(time.slept) == pytest.approx([i / 10 for i in range(1, 20)], abs=1e-5)
    assert a.stats.acquired + b.stats.acquired == 20
    # The list is Medium too (Zoom's label): it queues behind the creates. Light has its own pace.
    await a.acquire(KEYS, "list_meetings")
    assert time.slept[-1] == pytest.approx(2.0, abs=1e-5)
    slept_before = len(time.slept)
    await b.acquire(KEYS, "get_meeting")
    assert len(time.slept) == slept_before  # no wait: a different category
    await b.acquire(PaceKeys(account="another-account-key", user="another-user-key"), "create_meeting")
    assert len(time.slept) == slept_before  # no wait: a different account


async def test_a_429_blocks_everyone_sharing_the_account_until_retry_after_then_slows_the_rate(
        two_engines: tuple[Database, Database]) -> None:
    time = FakeTime()
    metrics = RecordingMetrics()
    a = ZoomLimiter(two_engines[0], config(), clock=time.clock, sleep=time.sleep, metrics=metrics)
    b = ZoomLimiter(two_engines[1], config(), clock=time.clock, sleep=time.sleep)
    await a.acquire(KEYS, "create_meeting")
    await a.rate_limited(KEYS, "create_meeting", zoom_429(retry_after=5))
    await b.rate_limited(KEYS, "create_meeting", zoom_429(retry_after=5))  # the same burst: no second decrease
    await b.acquire(KEYS, "create_meeting")  # the other process honours the Retry-After a got
    assert time.slept == [pytest.approx(5.0)]
    await b.acquire(KEYS, "create_meeting")
    # Multiplicative decrease: 10/s became 8/s, so the next slot is 0.125 s after the first, not 0.1 s.
    assert time.slept[-1] == pytest.approx(0.125, abs=1e-5)
    assert metrics.limited == [("medium", "per_second")]  # a's metrics; b reported its own
    # Additive increase: a minute later the rate is back at the plan's.
    time.now += 60
    await b.acquire(KEYS, "create_meeting")
    await b.acquire(KEYS, "create_meeting")
    assert time.slept[-1] == pytest.approx(0.1)


async def test_a_429_without_retry_after_still_blocks_for_one_window(two_engines: tuple[Database, Database]) -> None:
    time = FakeTime()
    a, b = (ZoomLimiter(db, config(), clock=time.clock, sleep=time.sleep) for db in two_engines)
    await a.rate_limited(KEYS, "get_meeting", zoom_429(retry_after=None))
    await b.acquire(KEYS, "get_meeting")
    assert time.slept == [pytest.approx(1.0)]


async def test_users_of_one_account_share_its_pace_and_its_429s_but_each_has_a_day_of_their_own(
        two_engines: tuple[Database, Database]) -> None:
    """Zoom counts its per-second limits per account (all its users together) and the 100 creates/updates a
    day per user: two users of one account, each booking from another process."""
    time = FakeTime(advance_on_sleep=False)
    alice, bob = PaceKeys(account=ACCOUNT, user="a1" * 32), PaceKeys(account=ACCOUNT, user="b2" * 32)
    a, b = (ZoomLimiter(db, config(daily_budget=3), clock=time.clock, sleep=time.sleep) for db in two_engines)
    for limiter, keys in ((a, alice), (b, bob), (a, alice), (b, bob), (a, alice)):
        await limiter.acquire(keys, "create_meeting")
    # Five Medium calls at the account's 10/s, whoever makes them: one bucket, slots 0, 0.1, ... 0.4 s.
    assert time.slept == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=1e-5)
    # Alice has spent her day (3 of 3); Bob's day is his own.
    with pytest.raises(PacedOut) as parked:
        await b.acquire(alice, "update_meeting")
    assert parked.value.limit_type == "daily"
    await a.acquire(bob, "update_meeting")
    assert (await a.daily_used(alice.user), await a.daily_used(bob.user)) == (3, 3)
    await b.refund(bob, "update_meeting")  # Zoom refused Bob's update: his count comes back, not hers
    assert (await a.daily_used(alice.user), await a.daily_used(bob.user)) == (3, 2)

    # A per-second 429 Alice got blocks the account's bucket: Bob waits for its Retry-After too.
    time.advance_on_sleep = True
    time.now += 60  # the slots booked above are past
    await a.rate_limited(alice, "get_meeting", zoom_429(retry_after=5))
    slept = len(time.slept)
    await b.acquire(bob, "get_meeting")
    assert time.slept[slept:] == [pytest.approx(5.0)]

    # A daily 429 is Alice's alone: on a new UTC day it parks her creates, not Bob's.
    time.now = datetime(2026, 12, 3, 0, 0, 1, tzinfo=timezone.utc).timestamp()
    await a.rate_limited(alice, "create_meeting", zoom_429(retry_after=3600, limit_type="daily"))
    with pytest.raises(PacedOut) as spent:
        await b.acquire(alice, "create_meeting")
    assert spent.value.limit_type == "daily" and spent.value.retry_after == pytest.approx(3600)
    await b.acquire(bob, "create_meeting")
    assert (await b.daily_used(alice.user), await b.daily_used(bob.user)) == (0, 1)


async def test_a_wait_longer_than_the_bound_is_paced_out_without_booking(two_engines: tuple[Database, Database]) -> None:
    time = FakeTime(advance_on_sleep=False)
    metrics = RecordingMetrics()
    limiter = ZoomLimiter(two_engines[0], config(max_wait_seconds=1.0), clock=time.clock, sleep=time.sleep,
                          metrics=metrics)
    for _ in range(11):  # slots 0 .. 1.0 s: within the bound
        await limiter.acquire(KEYS, "create_meeting")
    with pytest.raises(PacedOut) as paced:
        await limiter.acquire(KEYS, "create_meeting")
    assert paced.value.limit_type == "per_second" and paced.value.retry_after == pytest.approx(1.1)
    with pytest.raises(PacedOut) as again:
        await limiter.acquire(KEYS, "create_meeting")
    assert again.value.retry_after == pytest.approx(1.1)  # the refused call booked nothing
    assert metrics.paced_out == [("medium", "per_second")] * 2


async def test_the_daily_create_update_budget_parks_before_zoom_refuses(two_engines: tuple[Database, Database]) -> None:
    time = FakeTime()
    a, b = (ZoomLimiter(db, config(daily_budget=3), clock=time.clock, sleep=time.sleep) for db in two_engines)
    await a.acquire(KEYS, "create_meeting")
    await b.acquire(KEYS, "update_meeting")
    await a.acquire(KEYS, "create_meeting")
    with pytest.raises(PacedOut) as parked:
        await b.acquire(KEYS, "update_meeting")
    midnight = datetime(2026, 12, 3, tzinfo=timezone.utc).timestamp()
    assert parked.value.limit_type == "daily" and parked.value.retry_after == pytest.approx(midnight - time.now)
    await b.acquire(KEYS, "delete_meeting")  # not a create/update: not counted, not refused
    await b.acquire(KEYS, "get_meeting")
    assert await a.daily_used(KEYS.user) == 3
    time.now = midnight + 1  # a new UTC day: a fresh budget
    await a.acquire(KEYS, "create_meeting")
    assert await b.daily_used(KEYS.user) == 1


async def test_zoom_saying_the_day_is_spent_parks_every_process(two_engines: tuple[Database, Database]) -> None:
    time = FakeTime()
    a, b = (ZoomLimiter(db, config(), clock=time.clock, sleep=time.sleep) for db in two_engines)
    await a.acquire(KEYS, "create_meeting")
    # Other apps of the same Zoom user spent the quota: Zoom refuses the day before our count reaches 100.
    await a.rate_limited(KEYS, "create_meeting", zoom_429(retry_after=3600, limit_type="daily"))
    with pytest.raises(PacedOut) as parked:
        await b.acquire(KEYS, "update_meeting")
    assert parked.value.limit_type == "daily" and parked.value.retry_after == pytest.approx(3600)
    # Until Zoom's own reset (its Retry-After), not ours: the clocks may disagree about midnight.
    time.now += 3601
    await b.acquire(KEYS, "update_meeting")


async def test_rate_metrics_carry_no_identifier(two_engines: tuple[Database, Database]) -> None:
    time = FakeTime()
    metrics = RecordingMetrics()
    limiter = ZoomLimiter(two_engines[0], config(), clock=time.clock, sleep=time.sleep, metrics=metrics)
    await limiter.acquire(KEYS, "create_meeting")
    assert metrics.rates == [(ACCOUNT[:12], "medium", 10.0)]


def test_plan_rates_and_overrides() -> None:
    pro = LimiterConfig.for_plan("pro", headroom=1.0)
    assert (pro.ceiling("light"), pro.ceiling("medium")) == (30.0, 20.0)
    free = LimiterConfig.for_plan("free", overrides={"medium": 1.5}, headroom=0.5)
    assert (free.ceiling("light"), free.ceiling("medium")) == (2.0, 0.75)
    with pytest.raises(ValueError):
        LimiterConfig.for_plan("enterprise-ish")


def test_the_models_match_the_migrations(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_a_paced_out_call_is_retried_or_parked_like_zooms_own_429() -> None:
    from activities import schemas as act
    from activities.zoom_failures import as_application_error

    per_second = as_application_error(PacedOut("create_meeting", retry_after=3.0, limit_type="per_second",
                                               category="medium"))
    assert per_second.type == act.ERR_RATE_LIMITED and not per_second.non_retryable
    assert per_second.next_retry_delay is not None and per_second.next_retry_delay.total_seconds() == 3.0
    daily = as_application_error(PacedOut("update_meeting", retry_after=600.0, limit_type="daily", category="light"))
    assert daily.type == act.ERR_DAILY_LIMIT and daily.non_retryable  # the workflow parks until 00:00 UTC


@dataclass
class LateTime(FakeTime):
    """Wake-ups that come `late` seconds after the slot (a busy event loop), `times` times."""

    late: float = 0.0
    times: int = 0

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + (self.late if self.times > 0 else 0.0)
        self.times -= 1
        await asyncio.sleep(0)


async def test_a_call_woken_too_late_gives_its_slot_up_instead_of_bunching(two_engines: tuple[Database, Database]) -> None:
    cfg = config(headroom=0.95)  # slots 1/9.5 s apart; a call may be 26 ms late (cfg.late_tolerance())
    assert cfg.late_tolerance() == pytest.approx((1 / 0.95 - 1) / 2)
    time = LateTime(late=0.05, times=1)
    limiter = ZoomLimiter(two_engines[0], cfg, clock=time.clock, sleep=time.sleep)
    await limiter.acquire(KEYS, "create_meeting")  # slot 0: sent at once
    await limiter.acquire(KEYS, "create_meeting")  # slot 1/9.5 s, woken 50 ms late: books the next slot
    assert limiter.stats.rebooked == 1
    assert time.slept == [pytest.approx(1 / 9.5, abs=1e-5), pytest.approx(1 / 9.5 - 0.05, abs=1e-5)]
    # On time (within the tolerance): sent, nothing given up.
    time.late, time.times = 0.02, 1
    await limiter.acquire(KEYS, "create_meeting")
    assert limiter.stats.rebooked == 1
    # Always late: gives up a few slots, then sends anyway (a slow machine must still make progress).
    time.late, time.times = 0.05, 100
    await limiter.acquire(KEYS, "create_meeting")
    assert limiter.stats.rebooked == 1 + 3
    assert limiter.stats.acquired == 4
