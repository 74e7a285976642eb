"""`ratio-zoom audit verify` proves a chain or names the first broken row; `audit export` gives the
lifecycle of one appointment in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import text

from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "ratio_zoom.cli.main", "audit", *args], env=env,
                          capture_output=True, text=True, timeout=60)


async def test_verify_and_export(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    for i, event in enumerate(["meeting.created", "meeting.updated", "meeting.deleted"]):
        async with db.transaction() as session:
            await audit.append(session, audit.AuditFact(
                workspace_id="w1", appointment_id="a1", event=event, actor="u1", dedupe_key=f"k{i}",
                workflow_id="appointment-a1", run_id="r1", details={"zoom_meeting_id": 42}))
    async with db.transaction() as session:
        await audit.append(session, audit.AuditFact(workspace_id="w2", event="connection.connected", actor="u2",
                                                    dedupe_key="k-w2"))
    ok = _cli(sqlite_url, "verify")
    assert ok.returncode == 0 and "w1: 3 rows, chain intact" in ok.stdout

    exported = _cli(sqlite_url, "export", "--appointment", "a1", "--format", "jsonl")
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["event"] for r in rows] == ["meeting.created", "meeting.updated", "meeting.deleted"]
    assert rows[0]["workflow_id"] == "appointment-a1" and rows[0]["run_id"] == "r1"
    csv_out = _cli(sqlite_url, "export", "--workspace", "w1", "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("id,workspace_id,seq") and len(csv_out.stdout.splitlines()) == 4

    async with db.transaction() as session:  # SQLite has no trigger: an attacker with file access edits a row
        await session.execute(text("UPDATE audit_events SET actor='mallory' WHERE dedupe_key='k1'"))
        broken_id = (await session.execute(text("SELECT id FROM audit_events WHERE dedupe_key='k1'"))).scalar_one()
    await db.dispose()
    broken = _cli(sqlite_url, "verify")
    assert broken.returncode == 1
    assert f"BROKEN  workspace w1: first broken row id {broken_id}" in broken.stdout
    assert "w2: 1 rows, chain intact" in broken.stdout
