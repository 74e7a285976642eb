"""Recording-bot activities: schedule (exactly once per dispatch key), move, cancel, and the orphan sweep.

Idempotency: the dispatch key `{appointment_id}:recbot:{generation}` (generation kept in workflow state,
bumped only when a new bot is needed) is written to `bot_dispatches` before the provider call, sent as the
`Idempotency-Key` and in the bot's metadata. A retry first finds the bot at the provider by that key. Every
successful schedule sweeps the appointment's bots of older generations, so no crash leaves two live bots.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import schemas as act
from activities.heartbeat import keep_alive
from ratio_zoom.connections.repository import load_connection, utcnow
from ratio_zoom.recording_bot.errors import BotAuthError, BotError, BotRateLimited, BotTooLateToModify
from ratio_zoom.recording_bot.models import TERMINAL, AutomaticLeave, BotSpec
from ratio_zoom.recording_bot.recall import RecallProvider
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import BotDispatch, ConsentRecord
from ratio_zoom.storage.vault import Vault
from ratio_zoom.zoom.oauth import OBF_TOKEN_SCOPE


def _generation_of(dispatch_key: str | None) -> int:
    try:
        return int(str(dispatch_key).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1


def _as_application_error(exc: BotError) -> ApplicationError:
    if isinstance(exc, BotRateLimited):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
        return ApplicationError(str(exc), type="BotRateLimited", next_retry_delay=delay,
                                category=ApplicationErrorCategory.BENIGN)
    if isinstance(exc, BotAuthError):
        return ApplicationError(str(exc), type=act.ERR_BOT_AUTH, non_retryable=True)
    if not exc.retryable:
        # A 400/404 answer will not change on retry: fail the step with the reason (shown in state).
        return ApplicationError(str(exc), type="BotProviderRefused", non_retryable=True)
    return ApplicationError(str(exc), type="BotProviderUnavailable")


# v2: the secret covers an expiry (v1 covered the dispatch key alone and never expired).
OBF_SECRET_PURPOSE = "recording-bot-obf/v2"
OBF_SECRET_HEADER = "X-Ratio-Bot-Secret"
# A move does not carry the appointment's duration: its URL then covers the longest appointment the contract
# accepts (24 h). The API's live-bot and appointment checks still close it as soon as the bot or appointment ends.
LONGEST_APPOINTMENT = timedelta(hours=24)


def obf_secret(vault: Vault, dispatch_key: str, expires: int) -> str:
    """The per-bot secret the provider presents when it asks for an OBF token: an HMAC (keyed from the token
    key ring, purpose-separated) of the dispatch key and the expiry (Unix seconds). Derived, never stored."""
    return vault.lookup_hash(f"{dispatch_key}|{expires}", OBF_SECRET_PURPOSE)


def obf_secret_candidates(vault: Vault, dispatch_key: str, expires: int) -> list[str]:
    """The secret under every key of the ring (a URL issued before `keys rotate` stays valid until it expires)."""
    return vault.lookup_hashes(f"{dispatch_key}|{expires}", OBF_SECRET_PURPOSE)


def obf_expiry(join_at: datetime, length: timedelta, grace: timedelta) -> int:
    """The URL expires with the appointment: its planned end plus a grace for a late start or overrun."""
    return int((join_at + length + grace).timestamp())


class BotActivities:
    def __init__(self, db: Database, provider: RecallProvider, vault: Vault, public_base_url: str,
                 obf_grace: timedelta = timedelta(minutes=30)) -> None:
        self._db = db
        self._provider = provider
        self._vault = vault
        self._public = public_base_url.rstrip("/")
        self._obf_grace = obf_grace

    async def _obf_url(self, workspace_id: str, dispatch_key: str, join_at: datetime, length: timedelta) -> str | None:
        """Only when the grant includes `user:read:token` (beyond the minimal scopes; see the README).

        Recall calls this URL with a plain GET that carries no custom header and keeps the query string
        (its documented callback contract), so the secret has to travel in the query: the API's access log
        redacts it, and it expires with the appointment (`expires`, covered by the HMAC)."""
        async with self._db.sessions() as session:
            row = await load_connection(session, workspace_id)
        if row is None or OBF_TOKEN_SCOPE not in row.scopes.split() or not self._public:
            return None
        expires = obf_expiry(join_at, length, self._obf_grace)
        query = urlencode({"dispatch_key": dispatch_key, "expires": str(expires),
                           "secret": obf_secret(self._vault, dispatch_key, expires)})
        return f"{self._public}/v1/recording-bot/zoom-obf-token?{query}"

    @activity.defn(name=act.SCHEDULE_BOT)
    async def schedule_bot(self, args: act.ScheduleBotArgs) -> act.BotResult:
        async with keep_alive():
            try:
                return await self._schedule(args)
            except BotError as exc:
                raise _as_application_error(exc) from None

    async def _schedule(self, args: act.ScheduleBotArgs) -> act.BotResult:
        ctx = args.ctx
        if not await self._consent_still_granted(ctx.appointment_id):
            return act.BotResult(outcome="refused", note="consent is no longer granted (consent log)")
        async with self._db.transaction() as session:
            row = await session.get(BotDispatch, args.dispatch_key, with_for_update=True)
            if row is None:
                now = utcnow()
                row = BotDispatch(dispatch_key=args.dispatch_key, appointment_id=ctx.appointment_id,
                                  generation=args.generation, status="dispatching", created_at=now, updated_at=now)
                session.add(row)
            known_bot = row.bot_id
        outcome = "adopted"
        record = None
        if known_bot is not None:
            record = await self._provider.status(known_bot)
        else:
            found = await self._provider.find_by_dispatch_key(args.dispatch_key)
            record = found[0] if found else None
        if record is None:
            join_at = datetime.fromisoformat(args.join_at.replace("Z", "+00:00"))
            leave = AutomaticLeave(in_call_recording_timeout=args.duration_minutes * 60 + 300,
                                   waiting_room_timeout=900, noone_joined_timeout=900, everyone_left_timeout=120)
            obf_url = await self._obf_url(ctx.workspace_id, args.dispatch_key, join_at,
                                          timedelta(minutes=args.duration_minutes))
            record = await self._provider.schedule(BotSpec(
                meeting_url=args.meeting_url, join_at=join_at, dispatch_key=args.dispatch_key,
                appointment_id=ctx.appointment_id, automatic_leave=leave, obf_token_url=obf_url),
                idempotency_key=args.dispatch_key)
            outcome = "scheduled"
        async with self._db.transaction() as session:
            row = await session.get(BotDispatch, args.dispatch_key, with_for_update=True)
            assert row is not None
            row.bot_id = record.bot_id
            row.status = record.status
            row.updated_at = utcnow()
            await audit.append(session, audit.AuditFact(
                workspace_id=ctx.workspace_id, appointment_id=ctx.appointment_id, event="bot.scheduled", actor="system",
                workflow_id=ctx.workflow_id, run_id=ctx.run_id, dedupe_key=f"bot:{args.dispatch_key}:scheduled",
                details={"generation": args.generation, "bot_id": record.bot_id, "join_at": args.join_at}))
        activity.metric_meter().create_counter(
            "ratio_zoom_bot_dispatches", "recording-bot dispatches by outcome").add(1, {"outcome": outcome})
        await self._sweep(ctx, args.generation)
        note = None if await self._obf_scope_granted(ctx.workspace_id) else (
            "the Zoom grant has no user:read:token scope: the host must admit the bot and allow recording")
        return act.BotResult(outcome=outcome, bot_id=record.bot_id, status=record.status, sub_code=record.sub_code,
                             note=note)

    async def _obf_scope_granted(self, workspace_id: str) -> bool:
        async with self._db.sessions() as session:
            row = await load_connection(session, workspace_id)
        return row is not None and OBF_TOKEN_SCOPE in row.scopes.split() and bool(self._public)

    async def _consent_still_granted(self, appointment_id: str) -> bool:
        async with self._db.sessions() as session:
            latest = (await session.execute(select(ConsentRecord).where(ConsentRecord.appointment_id == appointment_id)
                                            .order_by(ConsentRecord.occurred_at.desc(), ConsentRecord.id.desc())
                                            .limit(1))).scalar_one_or_none()
        return latest is not None and latest.granted

    async def _sweep(self, ctx: act.OpContext, generation: int) -> None:
        """Remove every live bot of this appointment from an older generation (orphans of a crash)."""
        for bot in await self._provider.find_by_appointment(ctx.appointment_id):
            if _generation_of(bot.dispatch_key) < generation and bot.status not in TERMINAL:
                await self._provider.cancel(bot.bot_id)
                await self._mark_dispatch(bot.bot_id, "cancelled")
                await self._audit(ctx, "bot.removed", f"bot:{bot.bot_id}:removed",
                                  {"bot_id": bot.bot_id, "reason": "orphan_of_older_generation"})

    @activity.defn(name=act.MOVE_BOT)
    async def move_bot(self, args: act.MoveBotArgs) -> act.BotResult:
        async with keep_alive():
            # Same target, same key: a retried move replays instead of moving twice.
            target = hashlib.sha256(f"{args.join_at}|{args.meeting_url}".encode()).hexdigest()[:16]
            join_at = datetime.fromisoformat(args.join_at.replace("Z", "+00:00"))
            # The OBF URL's expiry follows the appointment: a later start needs a URL that lives longer.
            obf_url = await self._obf_url(args.ctx.workspace_id, args.dispatch_key, join_at, LONGEST_APPOINTMENT)
            try:
                try:
                    record = await self._provider.reschedule(
                        args.bot_id, join_at=join_at, meeting_url=args.meeting_url,
                        idempotency_key=f"{args.dispatch_key}:move:{target}", obf_token_url=obf_url)
                except BotTooLateToModify:
                    return act.BotResult(outcome="too_late", bot_id=args.bot_id)
            except BotError as exc:
                raise _as_application_error(exc) from None
        await self._audit(args.ctx, "bot.moved", f"bot:{args.bot_id}:moved:{args.join_at}",
                          {"bot_id": args.bot_id, "join_at": args.join_at})
        return act.BotResult(outcome="moved", bot_id=record.bot_id, status=record.status)

    @activity.defn(name=act.CANCEL_BOT)
    async def cancel_bot(self, args: act.CancelBotArgs) -> act.BotResult:
        async with keep_alive():
            try:
                if args.bot_id is None:
                    # A schedule superseded mid-flight: whatever it created carries the dispatch key.
                    found = await self._provider.find_by_dispatch_key(args.dispatch_key or "")
                    bot_ids = [b.bot_id for b in found if b.status not in TERMINAL]
                else:
                    bot_ids = [args.bot_id]
                records = [await self._provider.cancel(bot_id) for bot_id in bot_ids]
            except BotError as exc:
                raise _as_application_error(exc) from None
        for record in records:
            if record.status not in TERMINAL:
                # Retry until the provider confirms the bot is gone or has left.
                raise ApplicationError(f"bot still {record.status}", type="BotNotYetRemoved")
        for record in records:
            await self._mark_dispatch(record.bot_id, record.status)
            await self._audit(args.ctx, "bot.removed", f"bot:{record.bot_id}:removed",
                              {"bot_id": record.bot_id, "reason": args.reason})
        last = records[-1] if records else None
        return act.BotResult(outcome="removed", bot_id=args.bot_id or (last.bot_id if last else None),
                             status=last.status if last else "cancelled", sub_code=last.sub_code if last else None)

    async def _mark_dispatch(self, bot_id: str, status: str) -> None:
        """Record that the bot is gone: the OBF endpoint mints tokens only for a live dispatch."""
        async with self._db.transaction() as session:
            for row in (await session.execute(select(BotDispatch).where(BotDispatch.bot_id == bot_id)
                                              .with_for_update())).scalars():
                row.status = status
                row.updated_at = utcnow()

    async def _audit(self, ctx: act.OpContext, event: str, key: str, details: dict[str, Any]) -> None:
        async with self._db.transaction() as session:
            await audit.append(session, audit.AuditFact(
                workspace_id=ctx.workspace_id, appointment_id=ctx.appointment_id, event=event, actor="system",
                workflow_id=ctx.workflow_id, run_id=ctx.run_id, dedupe_key=key, details=details))
