"""Pacing Zoom calls per Zoom account, shared by every worker process through the service's database.

Zoom limits each *account* per second and per API category (Light, Medium, Heavy; the values depend on the
plan), shared by all apps of the account, and each *user* to 100 meeting create/update requests per UTC
day. Without pacing, every worker fires as fast as Temporal schedules activities and learns the limit from
429s; more workers make it worse. So every Zoom call the activities make (`TokenBroker.call(..., pace=
endpoint)`) first books a slot here, before it takes its token lease, so a wait holds no database
connection and no row lock:

- **Per second**: one row per (account key, category) in `zoom_rate_buckets` holds the next free send slot
  (a token bucket of depth one, i.e. GCRA). A call books `max(now, next_slot, blocked_until)` and moves the
  slot on by `1/rate`, in one short transaction (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite serialises
  writers with `BEGIN IMMEDIATE`). Calls leave evenly spaced whichever process sends them, so Zoom's
  one-second windows never see more than the rate. The rate is the plan's documented limit times a
  headroom (other apps of the account share the budget; clocks and networks jitter).
- **Adaptive**: a 429 from Zoom blocks the bucket until its Retry-After (everyone sharing the account waits,
  not only the caller that got it), and cuts the bucket's rate to 80%; the rate then grows back linearly
  by a tenth of the plan's rate per second (AIMD). A caller that had already booked a slot re-books when it wakes up inside a block.
- **Waiting heartbeats**: a call sleeps for its slot inside the activity, which heartbeats all along
  (activities/heartbeat.py), so waiting never burns an attempt. A wait longer than `max_wait_seconds`
  raises `PacedOut` instead (nothing booked, nothing sent): the activity fails with Zoom's usual
  `next_retry_delay`, and Temporal retries it when the slot is near.
- **Daily budget**: creates and updates are counted per (user key, UTC day) in `zoom_daily_usage` before
  they are sent. At the budget the call is not sent: `PacedOut(limit_type="daily")`, which the workflow
  treats like Zoom's daily 429 (it parks until 00:00 UTC). A daily 429 from Zoom (other apps of the same
  user spend the same quota) marks the day spent for every process.

Keys (`PaceKeys`, resolved by `TokenBroker.pace_keys`), each a keyed hash (HMAC), never an identifier:
- **user**: of the workspace ID. A workspace holds one Zoom grant and one Zoom user backs one live grant of
  the app, so it stands for the connected Zoom user: the daily budget is counted under it. A workspace
  reconnected to another Zoom user mid-day keeps the day's count (it may park early, never late).
- **account**: of the Zoom account's keyed hash stored at connect (`zoom_connections.zoom_account_hash`,
  from the `account_id` of Zoom's /users/me). The per-second buckets are keyed by it, so workspaces connected
  to different users of one Zoom account share that account's rate, as Zoom counts it. A row without it
  (connected before migration 0004, or Zoom named no account) falls back to the user key: such a workspace is
  paced as if it were alone in its account until it reconnects. The broker caches the account key per
  workspace, forgets it as soon as a lease shows another token generation (a reconnect bumps it) and after
  `ACCOUNT_KEY_TTL` (30 s) at the latest: a workspace reconnected to another account moves to that account's
  buckets within that time. During a key rotation, rows whose account hash is still under the old key (until
  `ratio-zoom keys rotate` re-keys them) are paced apart from rows of the same account under the new key.
Metric labels carry at most the first 12 hex digits of the account key, never an identifier in clear.

Why not `pyrate-limiter`'s PostgresBucket (4.5, read before writing this): it is synchronous (it would block
the worker's event loop), creates its tables at run time outside our migrations, stores one row per request
(a sliding log), fails fast under contention (`LOCK TABLE ... NOWAIT` returns "no" instead of a wait time),
has no Retry-After or adaptive rate, and its SQLite bucket is a different implementation. One small table
and one transaction per call do what we need on both databases.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import ZoomDailyUsage, ZoomRateBucket
from ratio_zoom.zoom import rate_limits
from ratio_zoom.zoom.errors import PacedOut, RateLimited
from ratio_zoom.zoom.rate_limits import Category

logger = logging.getLogger(__name__)

# Slots are booked before the token lease; a late wake-up (busy event loop) or the lease's own database
# round trip delays a send, which bunches calls in Zoom's one-second windows. 5% headroom leaves 26 ms of
# lateness before a call gives its slot up (`late_tolerance`), and keeps the pace within 1.1x Zoom's limit
# (at 90% the floor itself was 1.11x the limit's).
DEFAULT_HEADROOM = 0.95
MIN_LATE_TOLERANCE = 0.01  # seconds: a wake-up this close to its slot is on time, whatever the headroom
MAX_REBOOKS = 3  # a call woken late gives its slot up at most this often, then goes anyway
DEFAULT_MAX_WAIT_SECONDS = 20.0  # Zoom activities time out after 60 s; leave the call most of it
RETRY_AFTER_WHEN_ABSENT = 1.0  # Zoom's per-second windows are one second long
# AIMD. A 429 already costs everyone the Retry-After (Zoom's windows are one second), so the decrease is
# gentle: halving made the paced run twice as slow as the unpaced one for a handful of 429s (bench, 300
# bookings at Medium 10/s: 60 s vs 42 s).
DECREASE_FACTOR = 0.8
MIN_RATE_FRACTION = 0.1  # multiplicative decrease never goes below a tenth of the plan's rate
RECOVERY_FRACTION_PER_SECOND = 0.1  # additive increase: back from 80% to the full rate in ~2 s


@dataclass(frozen=True)
class PaceKeys:
    """Whose limits a Zoom call spends: keyed hashes (64 hex digits), never identifiers in clear. `account`
    keys the per-second buckets (Zoom counts them per account and category), `user` the daily create/update
    budget (Zoom counts it per user). Equal when the Zoom account is not known."""

    account: str
    user: str


@dataclass(frozen=True)
class LimiterConfig:
    """Per-second limits per account and category (the plan's documented values), and the daily budget."""

    per_second: dict[Category, float] = field(default_factory=lambda: {
        c: float(r) for c, r in rate_limits.plan_rates(rate_limits.DEFAULT_PLAN).items()})
    headroom: float = DEFAULT_HEADROOM
    daily_budget: int = rate_limits.DAILY_CREATE_UPDATE_LIMIT
    max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS

    def ceiling(self, category: Category) -> float:
        return max(self.per_second[category] * self.headroom, 0.1)

    def late_tolerance(self) -> float:
        """How late after its slot a call may still be sent. Slots are 1/(headroom x rate) apart, so the
        rate+1 calls that would overrun a one-second window span 1/headroom seconds: sends must bunch by
        (1/headroom - 1) s to be refused. Half of that is allowed between the wake-up and this check; the
        other half is left for the token lease and the request's own way to Zoom."""
        if self.headroom >= 1.0:
            return float("inf")  # aiming at Zoom's exact limit leaves no slack that re-booking could protect
        return max(MIN_LATE_TOLERANCE, (1.0 / self.headroom - 1.0) / 2)

    @classmethod
    def for_plan(cls, plan: str, *, overrides: dict[Category, float] | None = None, headroom: float = DEFAULT_HEADROOM,
                 daily_budget: int = rate_limits.DAILY_CREATE_UPDATE_LIMIT) -> LimiterConfig:
        rates: dict[Category, float] = {c: float(r) for c, r in rate_limits.plan_rates(plan).items()}
        rates.update(overrides or {})
        return cls(per_second=rates, headroom=headroom, daily_budget=daily_budget)


class LimiterMetrics(Protocol):
    """What the limiter reports (ratio_zoom/core/metrics.py implements it). `account` is a hash prefix."""

    def limiter_waited(self, category: str, seconds: float) -> None: ...

    def limiter_paced_out(self, category: str, limit_type: str) -> None: ...

    def zoom_rate_limited(self, category: str, limit_type: str) -> None: ...

    def limiter_rate(self, account: str, category: str, rate: float) -> None: ...


@dataclass
class LimiterStats:
    """Counters for tests and the benchmark (metrics go to `LimiterMetrics`)."""

    acquired: int = 0
    waited: int = 0
    waited_seconds: float = 0.0
    paced_out: int = 0
    zoom_429s: int = 0
    rebooked: int = 0  # slots given up because the call woke too late to use them


class ZoomLimiter:
    """The pace every worker process shares through the database. `TokenBroker.call(..., pace=endpoint)`
    calls `acquire` before each attempt and `rate_limited` after each 429 Zoom answers."""

    def __init__(
        self,
        db: Database,
        config: LimiterConfig | None = None,
        *,
        metrics: LimiterMetrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._db = db
        self._config = config or LimiterConfig()
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self.stats = LimiterStats()
        # One entry per (account key, category) this process has paced: bounded by the accounts it serves.
        self._local_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    # -- what the broker calls -----------------------------------------------------------------------

    async def acquire(self, keys: PaceKeys, endpoint: str) -> None:
        category = rate_limits.category(endpoint)
        count_daily = endpoint in rate_limits.DAILY_LIMITED
        waited = 0.0
        rebooked = 0
        while True:
            wait, slot = await self._book(keys, category, endpoint, count_daily=count_daily)
            count_daily = False  # counted once, with the first booking
            if wait <= 0:
                break
            waited += wait
            await self._sleep(wait)
            late = self._clock() - slot
            # A 429 that reached someone else while we slept blocks the account for everyone: look again.
            blocked_until = await self._blocked_until(keys.account, category)
            if blocked_until > self._clock():
                continue
            # Woken too late (a busy event loop): sending now would bunch this call with the ones booked
            # after it and overrun Zoom's one-second window. Give the slot up and book the next free one; a
            # few times at most, so a machine that is always late still sends.
            if late > self._config.late_tolerance() and rebooked < MAX_REBOOKS:
                rebooked += 1
                self.stats.rebooked += 1
                continue
            break
        self.stats.acquired += 1
        if waited > 0:
            self.stats.waited += 1
            self.stats.waited_seconds += waited
            if self._metrics is not None:
                self._metrics.limiter_waited(category, waited)

    async def rate_limited(self, keys: PaceKeys, endpoint: str, answer: RateLimited) -> None:
        """A daily 429 spends the user's day (Zoom's create/update quota is per user); any other 429 blocks the
        account's bucket of that category for everyone sharing the account."""
        category = rate_limits.category(endpoint)
        self.stats.zoom_429s += 1
        if self._metrics is not None:
            self._metrics.zoom_rate_limited(category, answer.limit_type)
        try:
            if answer.limit_type == "daily":
                await self._mark_day_spent(keys.user, answer.retry_after)
            else:
                await self._slow_down(keys.account, category, answer)
        except SQLAlchemyError:
            # The caller still honours Zoom's answer (Retry-After through Temporal); only telling the other
            # processes failed, and their own 429s will tell them. Zoom's answer must reach the caller.
            logger.warning("could not share a Zoom 429 through the limiter", exc_info=True)

    async def refund(self, keys: PaceKeys, endpoint: str) -> None:
        """Give back a create/update counted for a request Zoom did not process (it answered with an error, or
        the request never left). Without this a Zoom outage answering 503 for minutes would spend the host's
        day and park every appointment until midnight. If Zoom did count such a request after all, we
        under-count by one and Zoom's own daily 429 corrects us (it blocks everyone until its reset)."""
        if endpoint not in rate_limits.DAILY_LIMITED:
            return
        day, _ = self._today()
        try:
            async with self._db.transaction() as session:
                row = await self._locked_day(session, keys.user, day)
                row.used = max(0, row.used - 1)
        except SQLAlchemyError:
            # The caller's own error must reach it; an over-count only ever parks a little early.
            logger.warning("could not give back a daily create/update count", exc_info=True)

    async def _slow_down(self, account_key: str, category: Category, answer: RateLimited) -> None:
        now = self._clock()
        retry_after = answer.retry_after if answer.retry_after is not None else RETRY_AFTER_WHEN_ABSENT
        ceiling = self._config.ceiling(category)
        async with self._db.transaction() as session:
            row = await self._locked_bucket(session, account_key, category, now)
            if row.blocked_until <= now:
                # One decrease per block: the calls already in flight when Zoom started refusing all come
                # back 429 together, and a decrease per answer would floor the rate for one burst.
                row.rate = max(ceiling * MIN_RATE_FRACTION, self._current_rate(row, ceiling, now) * DECREASE_FACTOR)
                row.rate_updated_at = now
            row.blocked_until = max(row.blocked_until, now + retry_after)
            row.next_slot_at = max(row.next_slot_at, row.blocked_until)
            rate = row.rate
        if self._metrics is not None:
            self._metrics.limiter_rate(account_key[:12], category, rate)

    # -- per second -----------------------------------------------------------------------------------

    async def _book(self, keys: PaceKeys, category: Category, endpoint: str, *,
                    count_daily: bool) -> tuple[float, float]:
        """Book the next slot in the account's bucket (and count a create/update against the user's day, in
        the same transaction); return (how long to wait for it, the slot's time). PacedOut when the wait is
        too long or the day is spent. Locks are always taken day row first, then bucket row: two users of
        one account booking at once queue on the bucket and never deadlock.

        Inside one process the bookings of one account and category queue on an asyncio lock first: a
        burst of a hundred activities then holds one database connection and one row lock between them,
        instead of a hundred connections queued on the row (which emptied the pool and starved the event
        loop in the 10,000-booking benchmark). Other processes still meet at the row lock."""
        async with self._local_locks[(keys.account, category)]:
            return await self._book_locked(keys, category, endpoint, count_daily=count_daily)

    async def _book_locked(self, keys: PaceKeys, category: Category, endpoint: str, *,
                           count_daily: bool) -> tuple[float, float]:
        ceiling = self._config.ceiling(category)
        async with self._db.transaction() as session:
            if count_daily:
                # Counted when booked, not when sent: a worker killed while waiting over-counts by one,
                # which only ever parks a little early.
                day, until_midnight = self._today()
                usage = await self._locked_day(session, keys.user, day)
                now = self._clock()  # read under the lock: a wait for the row must not date the booking
                if usage.spent_until > now or usage.used >= self._config.daily_budget:
                    self.stats.paced_out += 1
                    if self._metrics is not None:
                        self._metrics.limiter_paced_out(category, "daily")
                    wait = usage.spent_until - now if usage.spent_until > now else until_midnight
                    raise PacedOut(endpoint, retry_after=wait, limit_type="daily", category=category)
            row = await self._locked_bucket(session, keys.account, category, self._clock())
            now = self._clock()
            rate = self._current_rate(row, ceiling, now)
            if rate != row.rate:
                row.rate, row.rate_updated_at = rate, now
            slot = max(now, row.next_slot_at, row.blocked_until)
            wait = slot - now
            if wait > self._config.max_wait_seconds:
                booked = False  # nothing booked (nor counted): the retry books when it comes back
            else:
                row.next_slot_at = slot + 1.0 / rate
                booked = True
                if count_daily:
                    usage.used += 1
        if self._metrics is not None:
            self._metrics.limiter_rate(keys.account[:12], category, rate)
        if not booked:
            self.stats.paced_out += 1
            if self._metrics is not None:
                self._metrics.limiter_paced_out(category, "per_second")
            raise PacedOut(endpoint, retry_after=wait, limit_type="per_second", category=category)
        return wait, slot

    @staticmethod
    def _current_rate(row: ZoomRateBucket, ceiling: float, now: float) -> float:
        """Additive increase, computed when read: the rate climbs back towards the ceiling with time."""
        grown = row.rate + ceiling * RECOVERY_FRACTION_PER_SECOND * max(0.0, now - row.rate_updated_at)
        return min(ceiling, grown)

    async def _locked_bucket(self, session: AsyncSession, account_key: str, category: Category,
                             now: float) -> ZoomRateBucket:
        query = (select(ZoomRateBucket)
                 .where(ZoomRateBucket.account_key == account_key, ZoomRateBucket.category == category)
                 .with_for_update())
        row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            # Two processes may create the first row at once: insert-or-ignore, then lock whichever won.
            values = {"account_key": account_key, "category": category, "next_slot_at": now,
                      "rate": self._config.ceiling(category), "rate_updated_at": now, "blocked_until": 0.0}
            insert = sqlite_insert if self._db.is_sqlite else pg_insert
            await session.execute(insert(ZoomRateBucket).values(**values).on_conflict_do_nothing())
            row = (await session.execute(query)).scalar_one()
        return row

    async def _blocked_until(self, account_key: str, category: Category) -> float:
        async with self._db.sessions() as session:
            value = (await session.execute(select(ZoomRateBucket.blocked_until).where(
                ZoomRateBucket.account_key == account_key, ZoomRateBucket.category == category))).scalar_one_or_none()
        return float(value or 0.0)

    # -- per user and day -----------------------------------------------------------------------------

    def _today(self) -> tuple[str, float]:
        """The UTC day (as Zoom counts it) and the seconds until it ends."""
        now = datetime.fromtimestamp(self._clock(), timezone.utc)
        midnight = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
        return now.strftime("%Y-%m-%d"), (midnight - now).total_seconds()

    async def _mark_day_spent(self, user_key: str, retry_after: float | None) -> None:
        """Zoom says the user's day is spent (other apps of the user share the quota): nobody sends a
        create/update until Zoom's own reset, which its Retry-After names (our midnight when it names none)."""
        day, until_midnight = self._today()
        now = self._clock()
        async with self._db.transaction() as session:
            row = await self._locked_day(session, user_key, day)
            row.spent_until = max(row.spent_until, now + (retry_after if retry_after is not None else until_midnight))

    async def _locked_day(self, session: AsyncSession, user_key: str, day: str) -> ZoomDailyUsage:
        query = (select(ZoomDailyUsage).where(ZoomDailyUsage.user_key == user_key, ZoomDailyUsage.day == day)
                 .with_for_update())
        row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            # The first count of a new day: earlier days of this user are history, drop them.
            await session.execute(delete(ZoomDailyUsage).where(ZoomDailyUsage.user_key == user_key,
                                                               ZoomDailyUsage.day < day))
            insert = sqlite_insert if self._db.is_sqlite else pg_insert
            await session.execute(insert(ZoomDailyUsage).values(user_key=user_key, day=day, used=0, spent_until=0.0)
                                  .on_conflict_do_nothing())
            row = (await session.execute(query)).scalar_one()
        return row

    async def daily_used(self, user_key: str) -> int:
        """Create/update requests counted today for a user key (`PaceKeys.user`; for operators and tests)."""
        day, _ = self._today()
        async with self._db.sessions() as session:
            value = (await session.execute(select(ZoomDailyUsage.used).where(
                ZoomDailyUsage.user_key == user_key, ZoomDailyUsage.day == day))).scalar_one_or_none()
        return int(value or 0)
