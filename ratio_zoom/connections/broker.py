"""The token broker: the one way activities get a Zoom access token and make a Zoom call.

- Refreshes ahead of expiry, by a margin read from the token's own lifetime: the smaller of 5 minutes and
  half of what `expires_in` granted. A fixed 5-minute margin would make a short-lived token (a 15 s grant)
  stale from the instant it is issued, so every lease would refresh three times and give up.
- Zoom rotates refresh tokens, so two processes refreshing at once would kill each other's grant:
  refreshes of one workspace are serialised across processes and machines by a row lock (PostgreSQL
  `SELECT ... FOR UPDATE`; SQLite `BEGIN IMMEDIATE`), the row is re-read inside the lock, and the new pair
  is committed before anyone uses it. Inside one process an asyncio lock per workspace keeps the other
  coroutines off the database while one refreshes.
- A 401/124 triggers one refresh and one retry of the call.
- Pacing: with a `pace=` endpoint, each attempt first waits for its slot in the shared Zoom limiter
  (connections/limiter.py) *before* it takes the lease, so a paced wait never holds a database connection
  or the row lock that disconnect waits for; a 429 is reported to the limiter after the lease is released.
  The limiter's keys (`pace_keys`): the user key is a keyed hash of the workspace ID; the account key is
  derived from the Zoom account's hash stored at connect, read without a lock and released before the wait,
  and cached per workspace in this process until a lease shows another token generation (every reconnect
  and refresh bumps it) or `ACCOUNT_KEY_TTL` passes.
- `invalid_grant` turns the connection into `needs_reconnect` (audited); callers then park.
- On PostgreSQL each call runs while holding `FOR SHARE` on the connection row, and disconnect takes
  `FOR UPDATE` before deleting the tokens: so once a disconnect returns, no call is in flight and none can
  start. SQLite has no shared row lock: holding its only lock (the database's write lock) across a Zoom call
  would stall every writer of every process for the call's duration, so there the row is only re-checked
  right before each call, and a disconnect can return while a call leased a moment earlier in another
  process still goes out. That breaks the promise, so production refuses SQLite (`ratio_zoom.core.mode`);
  dev mode (one machine, emulated Zoom) accepts it and says so at start-up.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from ratio_zoom.connections.errors import Detached, NeedsReconnect, NotConnected, RefreshUnavailable
from ratio_zoom.connections.limiter import PaceKeys, ZoomLimiter
from ratio_zoom.connections.repository import (
    USER_HASH_PURPOSE,
    as_utc,
    load_account_hash,
    load_connection,
    read_secrets,
    utcnow,
    write_tokens,
)
from ratio_zoom.events.outbox import Outbox
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import ZoomConnection
from ratio_zoom.storage.vault import Vault
from ratio_zoom.zoom.errors import (
    AccessTokenInvalid,
    InvalidGrant,
    OAuthError,
    OAuthServerError,
    RateLimited,
    ZoomHTTPError,
    ZoomTransportError,
)
from ratio_zoom.zoom.oauth import ZoomOAuth

T = TypeVar("T")
REFRESH_MARGIN = timedelta(minutes=5)
PACING_PURPOSE = "zoom-pacing"  # the user key: of the workspace ID
# The account key: of the stored account hash. Its own purpose, so a bucket's key cannot be matched against
# `zoom_connections.zoom_account_hash` without the vault's keys.
ACCOUNT_PACING_PURPOSE = "zoom-account-pacing"
# How long a process may pace a workspace under an account key it read earlier. A reconnect is normally
# noticed sooner (its new token generation shows at the next lease), but a call that never reaches a lease
# (paced out, or failing before it) and `keys rotate` (it re-keys the stored hash without a new generation)
# are only caught by this. Short: for at most this long after a reconnect to another Zoom account, a
# workspace may still book in the old account's buckets.
ACCOUNT_KEY_TTL = 30.0  # seconds


@dataclass(frozen=True)
class Lease:
    """A usable access token and who it belongs to. The repr never shows the token."""

    workspace_id: str
    token: str = field(repr=False)
    generation: int
    owner_hashes: tuple[str, ...] = field(repr=False)

    @property
    def owner_hash(self) -> str:
        return self.owner_hashes[0]


@dataclass(frozen=True)
class _AccountKey:
    """The account key read for a workspace, the token generation of the row it was read from, and when
    (`time.monotonic`, immune to wall-clock steps)."""

    key: str
    generation: int | None
    read_at: float


@dataclass
class BrokerStats:
    refreshes: int = 0
    refresh_failures: int = 0
    invalid_grants: int = 0


class TokenBroker:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        oauth: ZoomOAuth,
        *,
        refresh_margin: timedelta = REFRESH_MARGIN,
        clock: Callable[[], datetime] = utcnow,
        on_refresh: Callable[[str], None] | None = None,
        outbox: Outbox | None = None,
        limiter: ZoomLimiter | None = None,
        account_key_ttl: float = ACCOUNT_KEY_TTL,
    ) -> None:
        self._outbox = outbox or Outbox(enabled=False)
        self._db = db
        self._vault = vault
        self._oauth = oauth
        self._margin = refresh_margin
        self._clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._hold_share_lock = not db.is_sqlite
        self._on_refresh = on_refresh
        self._limiter = limiter
        # One entry per workspace this process paces: bounded by the number of workspaces, like `_locks`.
        self._account_keys: dict[str, _AccountKey] = {}
        self._account_key_ttl = account_key_ttl
        self.stats = BrokerStats()

    async def call(self, workspace_id: str, fn: Callable[[Lease], Awaitable[T]], *, pace: str | None = None) -> T:
        """Run `fn` with a valid token; on 401/124 refresh once and run it once more.

        `pace`: the Zoom endpoint `fn` calls (one request per call when paced): each attempt waits for its
        slot in the shared limiter first, and a 429 is reported back to it."""
        stale: int | None = None
        # Resolved before the wait and outside the lease: no connection or lock is held while paced.
        keys = await self.pace_keys(workspace_id) if pace is not None and self._limiter is not None else None
        for attempt in (1, 2):
            if keys is not None:
                assert self._limiter is not None and pace is not None
                await self._limiter.acquire(keys, pace)
            try:
                async with self.lease(workspace_id, stale_generation=stale) as lease:
                    if keys is not None:
                        self._forget_account_key_if_stale(workspace_id, lease.generation)
                    try:
                        return await fn(lease)
                    except AccessTokenInvalid:
                        if attempt == 2:
                            raise
                        stale = lease.generation
                if keys is not None:
                    assert self._limiter is not None and pace is not None
                    await self._limiter.refund(keys, pace)  # Zoom refused the stale token: nothing was done
            except BaseException as exc:
                if keys is not None:
                    assert self._limiter is not None and pace is not None
                    if isinstance(exc, RateLimited) and exc.status == 429:
                        await self._limiter.rate_limited(keys, pace, exc)
                    if not_processed(exc):
                        await self._limiter.refund(keys, pace)
                raise
        raise AssertionError("unreachable")

    async def pace_keys(self, workspace_id: str) -> PaceKeys:
        """The shared limiter's keys for this workspace: keyed hashes, never an identifier.

        user: of the workspace ID (one workspace holds one Zoom grant, one Zoom user backs one live grant
        of the app). account: of the Zoom account's hash stored at connect, so workspaces connected to users
        of one Zoom account share its per-second rate; the user key when the row has none (connected before
        migration 0004, or Zoom named no account), which paces the workspace as alone in its account."""
        user = self._vault.lookup_hash(workspace_id, PACING_PURPOSE)
        cached = self._account_keys.get(workspace_id)
        if cached is None or time.monotonic() - cached.read_at >= self._account_key_ttl:
            # A plain read in its own short session (no lock): the connection is back in the pool before the
            # limiter makes the caller wait, which is why this is not read inside the lease.
            async with self._db.sessions() as session:
                account_hash, generation = await load_account_hash(session, workspace_id)
            account = self._vault.lookup_hash(account_hash, ACCOUNT_PACING_PURPOSE) if account_hash else user
            cached = _AccountKey(key=account, generation=generation, read_at=time.monotonic())
            self._account_keys[workspace_id] = cached
        return PaceKeys(account=cached.key, user=user)

    def _forget_account_key_if_stale(self, workspace_id: str, generation: int) -> None:
        """The lease saw another token generation than the row the account key was read from: the workspace
        may have reconnected to another Zoom account. This call already booked under the old key; the next
        one reads the row again (a refresh bumps the generation too, costing one extra read an hour)."""
        cached = self._account_keys.get(workspace_id)
        if cached is not None and cached.generation != generation:
            del self._account_keys[workspace_id]

    @asynccontextmanager
    async def lease(self, workspace_id: str, *, stale_generation: int | None = None) -> AsyncIterator[Lease]:
        for _ in range(3):
            if self._hold_share_lock:
                async with self._db.transaction() as session:
                    row = await load_connection(session, workspace_id, lock="share")
                    verdict = self._verdict(row, stale_generation)
                    if isinstance(verdict, Lease):
                        yield verdict
                        return
            else:
                async with self._db.sessions() as session:
                    row = await load_connection(session, workspace_id)
                    verdict = self._verdict(row, stale_generation)
                if isinstance(verdict, Lease):
                    yield verdict
                    return
            await self.refresh(workspace_id, seen_generation=verdict)
            stale_generation = None
        raise RefreshUnavailable("could not obtain a fresh Zoom access token after three refreshes")

    def _verdict(self, row: ZoomConnection | None, stale_generation: int | None) -> Lease | int:
        """A lease, or the generation that needs refreshing. Raises when the connection is unusable."""
        _raise_if_unusable(row)
        assert row is not None
        if (stale_generation is not None and row.token_generation == stale_generation) or not self._fresh(row):
            return row.token_generation
        secrets = read_secrets(self._vault, row)
        assert secrets.access_token is not None and secrets.zoom_user_id is not None
        return Lease(workspace_id=row.workspace_id, token=secrets.access_token, generation=row.token_generation,
                     owner_hashes=tuple(self._vault.lookup_hashes(secrets.zoom_user_id, USER_HASH_PURPOSE)))

    def margin_for(self, row: ZoomConnection) -> timedelta:
        """How long before expiry a token counts as stale: the configured margin, capped at half its life."""
        issued, expires = as_utc(row.access_token_issued_at), as_utc(row.access_token_expires_at)
        if issued is None or expires is None:
            return self._margin  # stored before its issue time was kept (Zoom's tokens live an hour)
        return min(self._margin, max(expires - issued, timedelta(0)) / 2)

    def _fresh(self, row: ZoomConnection) -> bool:
        expires_at = as_utc(row.access_token_expires_at)
        return expires_at is not None and expires_at - self._clock() > self.margin_for(row)

    async def refresh(self, workspace_id: str, *, seen_generation: int) -> None:
        """Refresh unless someone else already did since `seen_generation`."""
        async with self._locks[workspace_id]:
            dead: InvalidGrant | None = None
            failed: str | None = None
            generation = seen_generation
            async with self._db.transaction() as session:
                row = await load_connection(session, workspace_id, lock="update")
                _raise_if_unusable(row)
                assert row is not None
                generation = row.token_generation
                if row.token_generation != seen_generation and self._fresh(row):
                    return  # another process refreshed while we waited for the lock
                secrets = read_secrets(self._vault, row)
                assert secrets.refresh_token is not None
                try:
                    tokens = await self._oauth.refresh(secrets.refresh_token)
                except InvalidGrant as exc:
                    dead = exc
                    row.status = "needs_reconnect"
                    row.status_reason = "Zoom refused the refresh token (invalid_grant); an Owner or Admin must reconnect"
                    row.updated_at = self._clock()
                    await audit.append(session, audit.AuditFact(
                        workspace_id=workspace_id, event="connection.needs_reconnect", actor="system",
                        dedupe_key=f"conn:{workspace_id}:needs_reconnect:{row.token_generation}",
                        details={"reason": "invalid_grant"},
                    ))
                    await self._outbox.connection_changed(
                        session, workspace_id=workspace_id, type="connection.needs_reconnect",
                        reason=row.status_reason, dedupe_key=f"conn:{workspace_id}:needs_reconnect:{row.token_generation}")
                except (ZoomTransportError, OAuthServerError) as exc:
                    # The response may be lost after Zoom rotated the pair; the retry will tell (a dead old
                    # refresh token then answers invalid_grant and we ask for a reconnect).
                    failed = f"Zoom token refresh failed: {exc}"
                except OAuthError as exc:
                    failed = f"Zoom token refresh refused: {exc}"
                else:
                    write_tokens(self._vault, row, tokens.access_token.get_secret_value(),
                                 tokens.refresh_token.get_secret_value(), tokens.expires_in, self._clock())
                    self.stats.refreshes += 1
                    if self._on_refresh is not None:
                        self._on_refresh(workspace_id)
            if failed is not None:
                self.stats.refresh_failures += 1
                # Audited once per token generation, however often the activity retries.
                async with self._db.transaction() as session:
                    await audit.append(session, audit.AuditFact(
                        workspace_id=workspace_id, event="connection.refresh_failed", actor="system",
                        dedupe_key=f"conn:{workspace_id}:refresh_failed:{generation}",
                        details={"reason": failed.split(":", 1)[0]}))
                raise RefreshUnavailable(failed)
            if dead is not None:
                self.stats.invalid_grants += 1
                raise NeedsReconnect("the Zoom connection needs to be re-authorized (invalid_grant)")


def not_processed(exc: BaseException) -> bool:
    """Zoom answered with an error (4xx, 429, 5xx: the work was not done) or the request never left (the
    connection is unusable, the refresh failed). A transport error leaves it unknown: the response may be
    lost after Zoom acted."""
    return isinstance(exc, (ZoomHTTPError, NotConnected, NeedsReconnect, Detached, RefreshUnavailable))


def _raise_if_unusable(row: ZoomConnection | None) -> None:
    if row is None:
        raise NotConnected("Zoom is not connected for this workspace")
    if row.status == "disconnected":
        raise Detached("Zoom was disconnected from this workspace")
    if row.status == "needs_reconnect":
        raise NeedsReconnect(row.status_reason or "the Zoom connection needs to be re-authorized")
    if row.access_token_enc is None or row.refresh_token_enc is None:
        raise NotConnected("the Zoom connection has no tokens")
