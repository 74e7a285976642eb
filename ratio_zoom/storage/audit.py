"""The append-only, hash-chained audit trail (the lasting compliance record; Temporal histories expire).

Each row's `row_hash` = SHA-256 over the previous row's hash (same workspace) and a canonical JSON of the
row, so editing, deleting or reordering any row breaks every later link. Rows are written by the activity
that caused the fact, with a `dedupe_key` that is the same on every retry, so a fact is recorded once.
Details never hold tokens, passcodes, start URLs or join URLs: `sanitise_details` enforces it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ratio_zoom.storage.models import AuditEvent

GENESIS = "0" * 64
# Detail keys that must never reach the audit trail (secrets, URLs with passcodes, personal data).
_FORBIDDEN_KEYS = ("token", "secret", "password", "passcode", "pwd", "start_url", "join_url", "email",  # never
                   "code_verifier")


class AuditDetailsError(ValueError):
    """A details object tried to carry something that must never reach the audit trail."""


def sanitise_details(details: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in details.items():
        lowered = key.lower()
        if any(word in lowered for word in _FORBIDDEN_KEYS):
            raise AuditDetailsError(f"audit details may not carry {key!r}")
        if isinstance(value, str) and ("pwd=" in value or "zak=" in value or "/s/" in value and "zoom" in value):
            raise AuditDetailsError(f"audit detail {key!r} looks like a meeting URL")
        clean[key] = value
    return clean


def _canonical(row: dict[str, Any]) -> bytes:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_hash(prev_hash: str, *, workspace_id: str, seq: int, appointment_id: str | None, event: str,
                 actor: str, workflow_id: str | None, run_id: str | None, details: str,
                 occurred_at: datetime) -> str:
    body = _canonical({
        "workspace_id": workspace_id, "seq": seq, "appointment_id": appointment_id, "event": event,
        "actor": actor, "workflow_id": workflow_id, "run_id": run_id, "details": details,
        "occurred_at": _iso(occurred_at),
    })
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


@dataclass(frozen=True)
class AuditFact:
    workspace_id: str
    event: str
    actor: str
    dedupe_key: str
    appointment_id: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    details: dict[str, Any] | None = None


async def append(session: AsyncSession, fact: AuditFact, *, now: datetime | None = None) -> bool:
    """Append one fact inside the caller's transaction. Returns False when it was already recorded.

    The chain is serialised per workspace: PostgreSQL takes a transaction-scoped advisory lock on the
    workspace; SQLite transactions are BEGIN IMMEDIATE (storage/db.py), which serialises all writers.
    """
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Lock first, then look: a retry that finds its fact already written is rare, so checking before
        # the lock as well would cost every append one more round trip for nothing.
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"),
                              {"k": f"audit:{fact.workspace_id}"})
    existing = await session.scalar(select(AuditEvent.id).where(AuditEvent.dedupe_key == fact.dedupe_key))
    if existing is not None:
        return False
    last = (await session.execute(
        select(AuditEvent.seq, AuditEvent.row_hash)
        .where(AuditEvent.workspace_id == fact.workspace_id)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    )).first()
    seq = (last.seq + 1) if last else 1
    prev_hash = last.row_hash if last else GENESIS
    occurred_at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    details = json.dumps(sanitise_details(fact.details or {}), sort_keys=True, separators=(",", ":"))
    row_hash = compute_hash(prev_hash, workspace_id=fact.workspace_id, seq=seq, appointment_id=fact.appointment_id,
                            event=fact.event, actor=fact.actor, workflow_id=fact.workflow_id, run_id=fact.run_id,
                            details=details, occurred_at=occurred_at)
    session.add(AuditEvent(
        workspace_id=fact.workspace_id, seq=seq, appointment_id=fact.appointment_id, event=fact.event,
        actor=fact.actor, workflow_id=fact.workflow_id, run_id=fact.run_id, details=details,
        occurred_at=occurred_at, dedupe_key=fact.dedupe_key, prev_hash=prev_hash, row_hash=row_hash,
    ))
    await session.flush()
    return True


@dataclass(frozen=True)
class ChainReport:
    workspace_id: str
    rows: int
    ok: bool
    first_broken_id: int | None = None
    problem: str | None = None


def verify_rows(workspace_id: str, rows: Iterable[AuditEvent]) -> ChainReport:
    """Walk one workspace's rows in seq order; name the first row whose link or content is wrong."""
    prev_hash = GENESIS
    expected_seq = 1
    count = 0
    for row in rows:
        count += 1
        if row.seq != expected_seq:
            return ChainReport(workspace_id, count, False, row.id, f"sequence gap: expected {expected_seq}, found {row.seq}")
        if row.prev_hash != prev_hash:
            return ChainReport(workspace_id, count, False, row.id, "prev_hash does not match the previous row")
        recomputed = compute_hash(prev_hash, workspace_id=row.workspace_id, seq=row.seq,
                                  appointment_id=row.appointment_id, event=row.event, actor=row.actor,
                                  workflow_id=row.workflow_id, run_id=row.run_id, details=row.details,
                                  occurred_at=row.occurred_at)
        if recomputed != row.row_hash:
            return ChainReport(workspace_id, count, False, row.id, "row content does not match its hash")
        prev_hash = row.row_hash
        expected_seq += 1
    return ChainReport(workspace_id, count, True)


async def verify_workspace(session: AsyncSession, workspace_id: str) -> ChainReport:
    rows = (await session.execute(
        select(AuditEvent).where(AuditEvent.workspace_id == workspace_id).order_by(AuditEvent.seq, AuditEvent.id)
    )).scalars()
    return verify_rows(workspace_id, rows)


async def workspaces(session: AsyncSession) -> list[str]:
    return list((await session.execute(select(AuditEvent.workspace_id).distinct())).scalars())


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(AuditEvent.id))) or 0)
