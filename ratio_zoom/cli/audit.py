"""`ratio-zoom audit verify` and `ratio-zoom audit export`."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timezone

from sqlalchemy import select

from ratio_zoom.core.settings import ConfigurationError, Settings
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import AuditEvent

EXPORT_FIELDS = ("id", "workspace_id", "seq", "occurred_at", "appointment_id", "event", "actor", "workflow_id",
                 "run_id", "details", "row_hash")


async def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.database_url)
    try:
        if args.audit_command == "verify":
            return await _verify(db)
        return await _export(db, args)
    finally:
        await db.dispose()


async def _verify(db: Database) -> int:
    broken = 0
    async with db.sessions() as session:
        for workspace_id in sorted(await audit.workspaces(session)):
            report = await audit.verify_workspace(session, workspace_id)
            if report.ok:
                print(f"ok      workspace {workspace_id}: {report.rows} rows, chain intact")
            else:
                broken += 1
                print(f"BROKEN  workspace {workspace_id}: first broken row id {report.first_broken_id}: {report.problem}")
    return 1 if broken else 0


async def _export(db: Database, args: argparse.Namespace) -> int:
    query = select(AuditEvent)
    if args.appointment:
        query = query.where(AuditEvent.appointment_id == args.appointment)
    else:
        query = query.where(AuditEvent.workspace_id == args.workspace)
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError("--since must be an ISO 8601 date or date-time") from None
        query = query.where(AuditEvent.occurred_at >= (since if since.tzinfo else since.replace(tzinfo=timezone.utc)))
    query = query.order_by(AuditEvent.occurred_at, AuditEvent.workspace_id, AuditEvent.seq)
    async with db.sessions() as session:
        rows = list((await session.execute(query)).scalars())
    writer = csv.DictWriter(sys.stdout, fieldnames=EXPORT_FIELDS) if args.format == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in rows:
        record = {f: getattr(row, f) for f in EXPORT_FIELDS}
        occurred = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=timezone.utc)
        record["occurred_at"] = occurred.isoformat()
        if writer is not None:
            writer.writerow(record)
        else:
            record["details"] = json.loads(row.details)
            print(json.dumps(record, sort_keys=True))
    return 0
