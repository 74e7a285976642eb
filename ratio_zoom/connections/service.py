"""The Zoom connection lifecycle: connect (OAuth + PKCE), status, disconnect, Marketplace deauthorization.

Disconnect and deauthorization purge tokens, Zoom user ID, email and account ID in the same transaction that
flips the status, holding the row's `FOR UPDATE` lock, which waits for every in-flight Zoom call (they hold
`FOR SHARE`, see connections/broker.py). Then the workspace's open appointment workflows are told.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

from sqlalchemy import select

from ratio_zoom.connections.repository import (
    USER_HASH_PURPOSE,
    as_utc,
    load_connection,
    purge_secrets,
    read_secrets,
    utcnow,
    write_identity,
    write_tokens,
)
from ratio_zoom.core.origins import origin_of
from ratio_zoom.events.outbox import Outbox
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import OAuthState, ZoomConnection
from ratio_zoom.storage.vault import Vault
from ratio_zoom.zoom.client import ZoomClient
from ratio_zoom.zoom.errors import OAuthError, RateLimited, ZoomError, ZoomServerError, ZoomTransportError
from ratio_zoom.zoom.models import ZoomUser
from ratio_zoom.zoom.oauth import ZoomOAuth, missing_scopes, new_pkce_pair

log = logging.getLogger("ratio_zoom.connections")
STATE_TTL = timedelta(minutes=10)
ADMIN_ROLES = ("owner", "admin")
STATES_TABLE = "oauth_states"

# Tells a workspace's open workflows that the connection changed: (workspace_id, status, reason).
ConnectionNotifier = Callable[[str, str, str | None], Awaitable[int]]


class ConnectionRefused(Exception):
    """The caller may not do this (role), or the request is malformed. `reason` is safe to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ConnectionStatus:
    status: str  # connected | needs_reconnect | disconnected
    zoom_email: str | None = None
    zoom_user_id: str | None = None
    connected_by: str | None = None
    connected_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    reason: str | None = None


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class ConnectionService:
    def __init__(self, db: Database, vault: Vault, oauth: ZoomOAuth, zoom: ZoomClient,
                 notify: ConnectionNotifier | None = None, outbox: Outbox | None = None) -> None:
        self._outbox = outbox or Outbox(enabled=False)
        self._db = db
        self._vault = vault
        self._oauth = oauth
        self._zoom = zoom
        self._notify = notify

    # -- connect --------------------------------------------------------------------------------------------

    async def start_connect(self, workspace_id: str, actor_id: str, actor_role: str, return_url: str, *,
                            allowed_origins: Collection[str] | None = None) -> str:
        """`allowed_origins` (normalised, see core/origins.py) is the allow-list for `return_url`: the HTTP
        API always passes RETURN_URL_ORIGINS, because the callback redirects a browser there (an open
        redirect otherwise). In-process callers (tests, benchmarks) that pass None get the syntax check only."""
        _require_admin(actor_role, "connect")
        check_return_url(return_url, allowed_origins)
        state = secrets.token_urlsafe(32)
        verifier, challenge = new_pkce_pair()
        state_hash = _hash_state(state)
        now = utcnow()
        async with self._db.transaction() as session:
            session.add(OAuthState(
                state_hash=state_hash, workspace_id=workspace_id, actor_id=actor_id, actor_role=actor_role,
                return_url=return_url,
                pkce_verifier_enc=self._vault.encrypt(verifier, table=STATES_TABLE, row_key=state_hash,
                                                      column="pkce_verifier_enc"),
                created_at=now, expires_at=now + STATE_TTL,
            ))
        return self._oauth.authorize_url(state, challenge)

    async def complete_connect(self, code: str | None, state: str | None, error: str | None) -> str:
        """Handle the OAuth callback; return where to redirect the browser (always the return URL when
        the state is valid, with `zoom=connected` or `zoom=error&reason=...`)."""
        if not state:
            raise ConnectionRefused(400, "missing_state")
        pending = await self._consume_state(state)
        if isinstance(pending, str):
            raise ConnectionRefused(400, pending)
        if error or not code:
            return with_query(pending.return_url, zoom="error", reason="access_denied" if error else "missing_code")
        verifier = self._vault.decrypt(pending.pkce_verifier_enc, table=STATES_TABLE, row_key=pending.state_hash,
                                       column="pkce_verifier_enc")
        try:
            tokens = await self._oauth.exchange_code(code, verifier)
        except OAuthError as exc:
            log.warning("zoom code exchange refused: %s", exc.error)
            return with_query(pending.return_url, zoom="error", reason="code_rejected")
        except ZoomError:
            return with_query(pending.return_url, zoom="error", reason="zoom_unavailable")
        missing = missing_scopes(tokens.scopes)
        if missing:
            await self._revoke_quietly(tokens.access_token.get_secret_value())
            return with_query(pending.return_url, zoom="error", reason="missing_scope")
        try:
            me = await self._get_me_patiently(tokens.access_token.get_secret_value())
        except ZoomError:
            # The new grant is live at Zoom but we will never store it: end it there too.
            await self._revoke_quietly(tokens.access_token.get_secret_value())
            return with_query(pending.return_url, zoom="error", reason="zoom_unavailable")
        try:
            displaced = await self._store_connection(pending, tokens.access_token.get_secret_value(),
                                                     tokens.refresh_token.get_secret_value(), tokens.expires_in,
                                                     tokens.scope, me.id, me.email, me.account_id)
        except Exception:
            await self._revoke_quietly(tokens.access_token.get_secret_value())  # not stored: not left alive
            raise
        await self._tell(pending.workspace_id, "connected", None)
        for other in displaced:
            await self._tell(other, "needs_reconnect", "the same Zoom user authorized another workspace")
        return with_query(pending.return_url, zoom="connected")

    async def _get_me_patiently(self, access_token: str) -> ZoomUser:
        """A browser is waiting: ride out a short per-second 429 or a 5xx blip, then give up clearly."""
        for attempt in range(3):
            try:
                return await self._zoom.get_me(access_token)
            except RateLimited as exc:
                if exc.limit_type != "per_second" or attempt == 2:
                    raise
                await asyncio.sleep(min(exc.retry_after or 1.0, 2.0))
            except (ZoomServerError, ZoomTransportError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _consume_state(self, state: str) -> OAuthState | str:
        state_hash = _hash_state(state)
        async with self._db.transaction() as session:
            row = await session.get(OAuthState, state_hash, with_for_update=True)
            if row is None:
                return "unknown_state"
            if row.used_at is not None:
                return "reused_state"
            row.used_at = utcnow()
            expires_at = as_utc(row.expires_at)
            if expires_at is None or expires_at <= utcnow():
                return "expired_state"
            await session.flush()  # persist used_at before detaching the row from the session
            session.expunge(row)
            return row

    async def _store_connection(self, pending: OAuthState, access: str, refresh: str, expires_in: int, scope: str,
                                zoom_user_id: str, zoom_email: str, zoom_account_id: str | None) -> list[str]:
        """Upsert the workspace's row. Returns other workspaces whose grant this authorization killed
        (Zoom keeps one live grant per user per app: error 4741 for the older one)."""
        now = utcnow()
        displaced: list[str] = []
        async with self._db.transaction() as session:
            hashes = self._vault.lookup_hashes(zoom_user_id, USER_HASH_PURPOSE)
            others = (await session.execute(select(ZoomConnection).where(
                ZoomConnection.zoom_user_id_hash.in_(hashes),
                ZoomConnection.workspace_id != pending.workspace_id,
                ZoomConnection.status == "connected",
            ).with_for_update())).scalars()
            for other in others:
                other.status = "needs_reconnect"
                other.status_reason = ("the same Zoom user authorized Ratio for another workspace, which ended "
                                       "this workspace's grant (Zoom error 4741)")
                other.updated_at = now
                displaced.append(other.workspace_id)
                await audit.append(session, audit.AuditFact(
                    workspace_id=other.workspace_id, event="connection.needs_reconnect", actor="system",
                    dedupe_key=f"conn:{other.workspace_id}:displaced:{pending.state_hash}",
                    details={"reason": "grant_replaced_by_other_workspace"}))
                await self._outbox.connection_changed(
                    session, workspace_id=other.workspace_id, type="connection.needs_reconnect",
                    reason=other.status_reason, dedupe_key=f"conn:{other.workspace_id}:displaced:{pending.state_hash}")
            row = await load_connection(session, pending.workspace_id, lock="update")
            previous_revoke = "none"
            if row is None:
                row = ZoomConnection(workspace_id=pending.workspace_id, status="connected", scopes="",
                                     token_generation=0, updated_at=now)
                session.add(row)
            else:
                previous_revoke = await self._revoke_previous_grant(row, zoom_user_id)
            row.status = "connected"
            row.status_reason = None
            row.scopes = scope
            row.connected_by = pending.actor_id
            row.connected_at = now
            row.disconnected_at = None
            write_tokens(self._vault, row, access, refresh, expires_in, now)
            write_identity(self._vault, row, zoom_user_id, zoom_email, zoom_account_id=zoom_account_id)
            await audit.append(session, audit.AuditFact(
                workspace_id=pending.workspace_id, event="connection.connected", actor=pending.actor_id,
                dedupe_key=f"conn:{pending.workspace_id}:connected:{pending.state_hash}",
                details={"scopes": sorted(scope.split()), "actor_role": pending.actor_role,
                         "previous_grant_revoke": previous_revoke}))
            await self._outbox.connection_changed(
                session, workspace_id=pending.workspace_id, type="connection.connected", reason=None,
                dedupe_key=f"conn:{pending.workspace_id}:connected:{pending.state_hash}")
        return displaced

    async def _revoke_previous_grant(self, row: ZoomConnection, new_zoom_user_id: str) -> str:
        """A reconnect replaces the workspace's tokens: end the grant they belong to at Zoom, so it does not
        outlive our copy. Only when it is another Zoom user's grant: when the same user authorized again,
        Zoom has already ended the old grant (one live grant per user per app), and a revoke is a per-user
        de-authorization of the app that could take the new grant with it."""
        if row.access_token_enc is None:
            return "none"
        if row.zoom_user_id_hash in self._vault.lookup_hashes(new_zoom_user_id, USER_HASH_PURPOSE):
            return "skipped_same_user"
        token = read_secrets(self._vault, row).access_token
        assert token is not None
        error = await self._revoke_quietly(token)
        return f"failed:{error}" if error else "ok"

    # -- status ---------------------------------------------------------------------------------------------

    async def status(self, workspace_id: str) -> ConnectionStatus:
        async with self._db.sessions() as session:
            row = await load_connection(session, workspace_id)
        if row is None:
            return ConnectionStatus(status="disconnected")
        scopes = tuple(sorted(row.scopes.split()))
        if row.status != "connected":
            return ConnectionStatus(status=row.status, connected_by=row.connected_by, connected_at=row.connected_at,
                                    scopes=scopes if row.status == "needs_reconnect" else (),
                                    reason=row.status_reason)
        secrets_ = read_secrets(self._vault, row)
        return ConnectionStatus(status="connected", zoom_email=secrets_.zoom_email, zoom_user_id=secrets_.zoom_user_id,
                                connected_by=row.connected_by, connected_at=row.connected_at, scopes=scopes)

    # -- disconnect / deauthorize ---------------------------------------------------------------------------

    async def disconnect(self, workspace_id: str, actor_id: str, actor_role: str) -> ConnectionStatus:
        _require_admin(actor_role, "disconnect")
        await self._purge(workspace_id, actor_id, event="connection.disconnected", revoke=True)
        return await self.status(workspace_id)

    async def deauthorize(self, zoom_user_id: str, delivery_key: str) -> list[str]:
        """Zoom's `app_deauthorized`: purge every workspace connected through this Zoom user."""
        hashes = self._vault.lookup_hashes(zoom_user_id, USER_HASH_PURPOSE)
        async with self._db.sessions() as session:
            workspaces = list((await session.execute(
                select(ZoomConnection.workspace_id).where(ZoomConnection.zoom_user_id_hash.in_(hashes))
            )).scalars())
        for workspace_id in workspaces:
            await self._purge(workspace_id, "zoom", event="connection.deauthorized", revoke=False,
                              dedupe=f"deauth:{delivery_key}:{workspace_id}")
        return workspaces

    async def _purge(self, workspace_id: str, actor: str, *, event: str, revoke: bool, dedupe: str | None = None) -> None:
        now = utcnow()
        revoke_error: str | None = None
        changed = False
        async with self._db.transaction() as session:
            # FOR UPDATE waits for in-flight Zoom calls (they hold FOR SHARE) and blocks new ones.
            row = await load_connection(session, workspace_id, lock="update")
            if row is None or row.status == "disconnected":
                return  # idempotent: nothing left to purge
            if revoke and row.access_token_enc is not None:
                token = read_secrets(self._vault, row).access_token
                assert token is not None
                revoke_error = await self._revoke_quietly(token)
            purge_secrets(row, now)
            row.status = "disconnected"
            row.status_reason = "deauthorized in the Zoom Marketplace" if event.endswith("deauthorized") else None
            row.disconnected_at = now
            changed = True
            await audit.append(session, audit.AuditFact(
                workspace_id=workspace_id, event=event, actor=actor,
                dedupe_key=dedupe or f"conn:{workspace_id}:{event}:{row.token_generation}",
                details={"revoke": "skipped" if not revoke else ("failed" if revoke_error else "ok"),
                         **({"revoke_error": revoke_error} if revoke_error else {})}))
            await self._outbox.connection_changed(
                session, workspace_id=workspace_id, type=event, reason=row.status_reason,  # type: ignore[arg-type]
                dedupe_key=dedupe or f"conn:{workspace_id}:{event}:{row.token_generation}")
        if changed:
            await self._tell(workspace_id, "disconnected", None)

    async def _revoke_quietly(self, token: str) -> str | None:
        """Best effort with a short bound: a failure is recorded by the caller, never fatal."""
        try:
            await self._oauth.revoke(token, timeout=5.0)
        except ZoomError as exc:
            return type(exc).__name__
        return None

    async def _tell(self, workspace_id: str, status: str, reason: str | None) -> None:
        if self._notify is None:
            return
        try:
            count = await self._notify(workspace_id, status, reason)
            log.info("told %d open workflows of workspace %s: zoom %s", count, workspace_id, status)
        except Exception:  # noqa: BLE001 - the database change stands; workflows re-check hourly anyway
            log.exception("could not signal the workflows of workspace %s (they re-check within the hour)", workspace_id)


def check_return_url(return_url: str, allowed_origins: Collection[str] | None) -> None:
    """Refuse anything but an absolute http(s) URL, and, with an allow-list, any origin not on it."""
    parts = urlsplit(return_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConnectionRefused(422, "return_url must be an absolute http(s) URL")
    if allowed_origins is None:
        return
    origin = origin_of(return_url)
    if origin is None or origin not in allowed_origins:
        raise ConnectionRefused(422, "return_url is not on an allowed origin (RETURN_URL_ORIGINS; https only, "
                                     "http only for localhost)")


def _require_admin(role: str, action: str) -> None:
    if role not in ADMIN_ROLES:
        raise ConnectionRefused(403, f"only a workspace owner or admin may {action} Zoom (role: {role or 'none'})")


__all__ = ["ConnectionService", "ConnectionRefused", "ConnectionStatus"]
