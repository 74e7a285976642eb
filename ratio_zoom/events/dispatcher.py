"""Delivering the outbox to the core app: at least once, in order per stream, never one stream behind another.

How a delivery is claimed, so that any number of worker processes can run this loop side by side:
- Only the *head* of a stream (its lowest pending sequence) is ever a candidate, so event N+1 of an
  appointment is never sent before event N was acknowledged.
- A claim is one conditional UPDATE (`... WHERE id = :id AND status = 'pending' AND next_attempt_at <= now`)
  that pushes `next_attempt_at` a lease ahead. Exactly one process wins it; nobody holds a database lock
  during the HTTP call; a process that dies mid-call leaves a lease that simply runs out, and the event is
  sent again (at least once: receivers de-duplicate on `id`).
- Failures back off per event (1 s, 2 s, 4 s ... capped at 10 minutes, Retry-After honoured), so a core app
  that is down for an hour is retried every 10 minutes and gets everything, in order, when it is back; the
  other streams' heads keep flowing while one stream waits.
- The ceiling: an event that still fails `expire_after` (3 days) after it was written is marked `expired`
  with the last reason, logged at ERROR and counted, and its stream moves on. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import aliased

from ratio_zoom.events.signing import EventSigner
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import CoreAppEventRow

log = logging.getLogger("ratio_zoom.events")

LEASE = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=10)
EXPIRE_AFTER = timedelta(days=3)
REQUEST_TIMEOUT_SECONDS = 10.0
Clock = Callable[[], datetime]
# outcome: "delivered" | "retry" | "expired"; status: the HTTP status or None for a transport error
Observer = Callable[[str, int | None], None]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """The wait before the next attempt: exponential with jitter, capped at 10 minutes. A receiver's
    Retry-After lengthens it (never shortens it: a struggling core app is not hammered every 30 s)."""
    base = min(2.0 ** max(attempts - 1, 0), MAX_BACKOFF.total_seconds()) * random.uniform(0.8, 1.2)
    if retry_after is not None:
        base = max(base, retry_after)
    return min(timedelta(seconds=base), MAX_BACKOFF)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return float(value) if value else None
    except ValueError:
        return None


class EventDispatcher:
    def __init__(self, db: Database, url: str, signer: EventSigner, *, http: httpx.AsyncClient | None = None,
                 concurrency: int = 4, poll_interval: float = 0.5, expire_after: timedelta = EXPIRE_AFTER,
                 clock: Clock = utcnow, observer: Observer | None = None) -> None:
        self._db = db
        self._url = url
        self._signer = signer
        self._http = http or httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS, follow_redirects=False)
        self._owns_http = http is None
        self._concurrency = concurrency
        self._poll = poll_interval
        self._expire_after = expire_after
        self._clock = clock
        self._observer = observer or (lambda outcome, status: None)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set. A database hiccup is logged and retried, never fatal to the worker."""
        try:
            while not stop.is_set():
                try:
                    sent = await self.deliver_due()
                except Exception:  # the loop must outlive a database restart; the reason is logged
                    log.exception("core app event delivery pass failed; retrying")
                    sent = 0
                if sent == 0:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=self._poll)
                    except asyncio.TimeoutError:
                        pass
        finally:
            if self._owns_http:
                await self._http.aclose()

    async def deliver_due(self) -> int:
        """One pass: claim and send the due head of up to `concurrency` streams. Returns how many were tried."""
        now = self._clock()
        later = aliased(CoreAppEventRow)
        lower_pending = select(func.min(later.sequence)).where(
            and_(later.stream == CoreAppEventRow.stream, later.status == "pending")).scalar_subquery()
        async with self._db.transaction() as session:
            heads = list((await session.execute(
                select(CoreAppEventRow.id)
                .where(CoreAppEventRow.status == "pending", CoreAppEventRow.next_attempt_at <= now,
                       CoreAppEventRow.sequence == lower_pending)
                .order_by(CoreAppEventRow.next_attempt_at)
                .limit(self._concurrency)
            )).scalars())
        if not heads:
            return 0
        results = await asyncio.gather(*(self._deliver_one(event_id) for event_id in heads))
        return sum(results)

    async def _claim(self, event_id: str) -> CoreAppEventRow | None:
        now = self._clock()
        async with self._db.transaction() as session:
            claimed = await session.execute(
                update(CoreAppEventRow)
                .where(CoreAppEventRow.id == event_id, CoreAppEventRow.status == "pending",
                       CoreAppEventRow.next_attempt_at <= now)
                .values(next_attempt_at=now + LEASE, attempts=CoreAppEventRow.attempts + 1)
            )
            if claimed.rowcount != 1:
                return None  # another process won it, or it was delivered meanwhile
            return await session.get(CoreAppEventRow, event_id)

    async def _deliver_one(self, event_id: str) -> int:
        row = await self._claim(event_id)
        if row is None:
            return 0
        status: int | None = None
        retry_after: float | None = None
        try:
            response = await self._http.post(self._url, content=row.body.encode(),
                                             headers=self._signer.headers(row.id, row.body))  # signed at the real send time
            status = response.status_code
            retry_after = _retry_after(response)
            ok = 200 <= status < 300
            reason = None if ok else f"the core app answered HTTP {status}"
        except httpx.HTTPError as exc:
            ok = False
            # the exception class only: its text can carry the URL, and the URL may carry a token
            reason = f"could not reach the core app ({type(exc).__name__})"
        now = self._clock()
        async with self._db.transaction() as session:
            if ok:
                await session.execute(update(CoreAppEventRow).where(CoreAppEventRow.id == row.id)
                                      .values(status="delivered", delivered_at=now, last_error=None))
                self._observer("delivered", status)
                return 1
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
            if now - created >= self._expire_after:
                await session.execute(update(CoreAppEventRow).where(CoreAppEventRow.id == row.id)
                                      .values(status="expired", last_error=reason))
                log.error("core app event %s (%s, %s #%d) expired after %d attempts: %s", row.id, row.type,
                          row.stream, row.sequence, row.attempts, reason)
                self._observer("expired", status)
                return 1
            await session.execute(update(CoreAppEventRow).where(CoreAppEventRow.id == row.id)
                                  .values(next_attempt_at=now + backoff(row.attempts, retry_after), last_error=reason))
        log.warning("core app event %s (%s #%d) not delivered (attempt %d): %s", row.id, row.stream, row.sequence,
                    row.attempts, reason)
        self._observer("retry", status)
        return 1
