"""Attendee confirmation emails through an outbox: (appointment, revision, attendee, kind) is one row,
written before sending.

- A row already `sent` (or permanently `failed`) is skipped: retries and new runs never send it again.
- A message the SMTP server accepted but we could not record (the database went away) is remembered in the
  activity's heartbeat details; the retry records it instead of sending it again.
- A row left `sending` by a worker *killed* between the server's final "250" and our commit is sent again
  *with the same Message-ID* (SMTP has no idempotency key), which mail clients collapse into one message.
  Nothing is ever skipped. (docs/exactly-once.md)
- 4xx / connection trouble: the attendee stays `pending` and the activity retries after the others were
  handled; 5xx for one attendee is recorded for that attendee and never blocks the others.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import schemas as act
from ratio_zoom.confirmations.models import InviteFacts, Recipient
from ratio_zoom.confirmations.render import build_message
from ratio_zoom.confirmations.smtp import SmtpPermanentError, SmtpSender, SmtpTemporaryError
from ratio_zoom.connections.repository import utcnow
from ratio_zoom.core.logs import redact
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import EmailOutbox
from ratio_zoom.storage.vault import Vault

RECIPIENT_PURPOSE = "outbox-recipient"


class EmailActivities:
    def __init__(self, db: Database, vault: Vault, sender: SmtpSender, email_from: str) -> None:
        self._db = db
        self._vault = vault
        self._sender = sender
        self._from = email_from

    @activity.defn(name=act.SEND_CONFIRMATIONS)
    async def send_confirmations(self, args: act.SendConfirmationsArgs) -> act.SendConfirmationsResult:
        ctx = args.ctx
        facts = InviteFacts(
            appointment_id=ctx.appointment_id, title=args.title, description=args.description,
            start=datetime.fromisoformat(args.start_time.replace("Z", "+00:00")), duration_minutes=args.duration_minutes,
            host_timezone=args.timezone, join_url=args.join_url, sequence=args.revision, kind=args.kind,
            organizer_email=self._from.split("<")[-1].rstrip(">").strip(),
        )
        sent = already = 0
        failed: list[str] = []
        temporary: list[str] = []
        # Rows an earlier attempt sent but could not record (database down): the heartbeat remembers them,
        # so the retry records them instead of sending again.
        details = activity.info().heartbeat_details
        delivered: list[int] = list(details[0].get("delivered", [])) if details and isinstance(details[0], dict) else []
        for index, attendee in enumerate(args.attendees, start=1):
            activity.heartbeat({"delivered": delivered})
            recipient_hash = self._vault.lookup_hash(attendee.email.lower(), RECIPIENT_PURPOSE)
            message_id = f"<{ctx.appointment_id}.{args.revision}.{args.kind}.{recipient_hash[:20]}@ratio-zoom>"
            row_id = await self._claim(ctx, args, recipient_hash, message_id)
            if row_id is None:
                already += 1
                continue
            if row_id in delivered:
                await self._finish(ctx, row_id, "sent", None, args, index)
                already += 1
                continue
            message = build_message(facts, Recipient(name=attendee.name, email=attendee.email, timezone=attendee.timezone),
                                    sender=self._from, message_id=message_id)
            try:
                await self._sender.send(message, attendee.email)
            except SmtpPermanentError as exc:
                await self._finish(ctx, row_id, "failed", str(exc), args, index)
                failed.append(f"attendee {index}: {exc}")
                continue
            except SmtpTemporaryError as exc:
                await self._finish(ctx, row_id, "pending", str(exc), args, index)
                temporary.append(f"attendee {index}: {exc}")
                continue
            delivered.append(row_id)
            activity.heartbeat({"delivered": delivered})
            await self._finish(ctx, row_id, "sent", None, args, index)
            sent += 1
        if temporary:
            # Retry only what is still pending; everything sent or failed above stays as recorded.
            raise ApplicationError(f"{len(temporary)} confirmation(s) to retry: {temporary[0]}", type="SmtpTemporary")
        return act.SendConfirmationsResult(sent=sent, already_sent=already, failed=failed)

    async def _claim(self, ctx: act.OpContext, args: act.SendConfirmationsArgs, recipient_hash: str,
                     message_id: str) -> int | None:
        """The outbox row for this email, marked `sending`; None when it was already sent or failed."""
        async with self._db.transaction() as session:
            row = (await session.execute(select(EmailOutbox).where(
                EmailOutbox.appointment_id == ctx.appointment_id, EmailOutbox.revision == args.revision,
                EmailOutbox.recipient_hash == recipient_hash, EmailOutbox.kind == args.kind,
            ).with_for_update())).scalar_one_or_none()
            if row is None:
                row = EmailOutbox(appointment_id=ctx.appointment_id, revision=args.revision, recipient_hash=recipient_hash,
                                  kind=args.kind, status="sending", message_id=message_id, created_at=utcnow())
                session.add(row)
                await session.flush()
                return row.id
            if row.status in ("sent", "failed"):
                return None
            row.status = "sending"
            return row.id

    async def _finish(self, ctx: act.OpContext, row_id: int, status: str, error: str | None,
                      args: act.SendConfirmationsArgs, index: int) -> None:
        async with self._db.transaction() as session:
            row = await session.get(EmailOutbox, row_id, with_for_update=True)
            assert row is not None
            row.status = status
            row.last_error = error
            if status == "sent":
                row.sent_at = utcnow()
            if status in ("sent", "failed"):
                activity.metric_meter().create_counter(
                    "ratio_zoom_emails", "attendee emails by kind and outcome").add(1, {"kind": args.kind, "outcome": status})
                await audit.append(session, audit.AuditFact(
                    workspace_id=ctx.workspace_id, appointment_id=ctx.appointment_id,
                    event="confirmation.sent" if status == "sent" else "confirmation.failed", actor="system",
                    workflow_id=ctx.workflow_id, run_id=ctx.run_id, dedupe_key=f"outbox:{row_id}:{status}",
                    details={"kind": args.kind, "revision": args.revision, "attendee": index,
                             **({"reason": redact(error)[:120]} if error else {})}))
