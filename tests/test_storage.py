"""Storage on SQLite and PostgreSQL: migrations, constraints, the audit chain, append-only audit on PG."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ratio_zoom.connections.repository import read_secrets, write_identity, write_tokens
from ratio_zoom.core.keyring import KeyRing
from ratio_zoom.storage import audit
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.migrate import current_revision
from ratio_zoom.storage.models import AuditEvent, ZoomConnection
from ratio_zoom.storage.vault import Vault
from tests.conftest import TEST_TOKEN_KEYS

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def _connection(workspace_id: str) -> ZoomConnection:
    return ZoomConnection(workspace_id=workspace_id, status="connected", scopes="", updated_at=NOW, token_generation=0)


async def test_migrations_reach_head(database_url: str) -> None:
    from alembic.script import ScriptDirectory

    from ratio_zoom.storage.migrate import alembic_config

    # One linear chain (a second head would mean two migrations were written against the same parent).
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert len(heads) == 1, heads
    assert current_revision(database_url) == heads[0]


async def test_tokens_are_stored_encrypted_and_bound_to_their_row(database_url: str) -> None:
    db = Database(database_url)
    vault = Vault(KeyRing.parse(TEST_TOKEN_KEYS))
    try:
        async with db.transaction() as session:
            row = _connection("w-enc")
            write_tokens(vault, row, "access-XYZ", "refresh-XYZ", 3600, NOW)
            write_identity(vault, row, "zoom-user-1", "host@example.com", zoom_account_id="acct-XYZ")
            session.add(row)
        async with db.sessions() as session:
            raw = (await session.execute(text(
                "SELECT access_token_enc, refresh_token_enc, zoom_email_enc, zoom_account_id_enc, zoom_account_hash "
                "FROM zoom_connections"))).one()
            assert all("XYZ" not in value and "example.com" not in value for value in raw)
            loaded = (await session.execute(select(ZoomConnection))).scalar_one()
            secrets = read_secrets(vault, loaded)
            assert (secrets.access_token, secrets.refresh_token, secrets.zoom_email, secrets.zoom_account_id) == (
                "access-XYZ", "refresh-XYZ", "host@example.com", "acct-XYZ")
            assert "access-XYZ" not in repr(secrets)
    finally:
        await db.dispose()


async def test_one_connection_per_workspace(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            session.add(_connection("w-dup"))
        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                session.add(_connection("w-dup"))
    finally:
        await db.dispose()


async def _write_chain(db: Database, workspace_id: str, n: int) -> None:
    for i in range(n):
        async with db.transaction() as session:
            await audit.append(session, audit.AuditFact(
                workspace_id=workspace_id, event="meeting.created", actor="system", dedupe_key=f"{workspace_id}:{i}",
                appointment_id=f"a{i}", details={"zoom_meeting_id": 100 + i}))


async def test_audit_chain_is_written_once_and_verifies(database_url: str) -> None:
    db = Database(database_url)
    try:
        await _write_chain(db, "w-audit", 4)
        async with db.transaction() as session:  # a retry with the same dedupe key writes nothing
            assert not await audit.append(session, audit.AuditFact(
                workspace_id="w-audit", event="meeting.created", actor="system", dedupe_key="w-audit:0"))
        async with db.sessions() as session:
            report = await audit.verify_workspace(session, "w-audit")
        assert report.ok and report.rows == 4
    finally:
        await db.dispose()


def test_audit_details_refuse_secrets_and_urls() -> None:
    with pytest.raises(audit.AuditDetailsError):
        audit.sanitise_details({"access_token": "x"})
    with pytest.raises(audit.AuditDetailsError):
        audit.sanitise_details({"link": "https://zoom.us/j/1?pwd=abc"})


async def test_audit_verify_names_edited_deleted_and_reordered_rows(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        await _write_chain(db, "w-t", 5)
        async with db.sessions() as session:
            rows = list((await session.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars())
        edited = [r for r in rows]
        original = edited[2].details
        edited[2].details = '{"zoom_meeting_id":999}'
        report = audit.verify_rows("w-t", edited)
        assert not report.ok and report.first_broken_id == rows[2].id and "content" in (report.problem or "")
        edited[2].details = original
        report = audit.verify_rows("w-t", rows[:1] + rows[2:])
        assert not report.ok and report.first_broken_id == rows[2].id
        report = audit.verify_rows("w-t", [rows[0], rows[2], rows[1], rows[3], rows[4]])
        assert not report.ok and report.first_broken_id == rows[2].id
        assert audit.verify_rows("w-t", rows).ok
    finally:
        await db.dispose()


async def test_audit_rows_cannot_be_updated_or_deleted_on_postgresql(fresh_pg_url: str) -> None:
    db = Database(fresh_pg_url)
    try:
        await _write_chain(db, "w-pg", 2)
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(update(AuditEvent).values(actor="mallory"))
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(text("DELETE FROM audit_events"))
        async with db.sessions() as session:
            assert (await audit.verify_workspace(session, "w-pg")).ok
    finally:
        await db.dispose()
