"""Reading and writing `zoom_connections` rows, with the vault binding each secret to its row and column."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ratio_zoom.storage.models import ZoomConnection
from ratio_zoom.storage.vault import Vault

TABLE = "zoom_connections"
USER_HASH_PURPOSE = "zoom-user-id"
ACCOUNT_HASH_PURPOSE = "zoom-account-id"


async def load_connection(
    session: AsyncSession, workspace_id: str, *, lock: Literal["share", "update"] | None = None
) -> ZoomConnection | None:
    query = select(ZoomConnection).where(ZoomConnection.workspace_id == workspace_id)
    if lock == "share":
        query = query.with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite ignores it
    elif lock == "update":
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def load_account_hash(session: AsyncSession, workspace_id: str) -> tuple[str | None, int | None]:
    """The Zoom account's keyed hash and the token generation it goes with (None, None without a row): two
    columns, no lock and nothing to decrypt, for the limiter's account key (connections/broker.py)."""
    found = (await session.execute(
        select(ZoomConnection.zoom_account_hash, ZoomConnection.token_generation)
        .where(ZoomConnection.workspace_id == workspace_id))).one_or_none()
    return (found.zoom_account_hash, found.token_generation) if found is not None else (None, None)


@dataclass(frozen=True)
class ConnectionSecrets:
    """Decrypted secrets of one row. Never logged: the repr hides everything but the workspace."""

    workspace_id: str
    access_token: str | None
    refresh_token: str | None
    zoom_user_id: str | None
    zoom_email: str | None
    zoom_account_id: str | None

    def __repr__(self) -> str:
        return f"ConnectionSecrets(workspace_id={self.workspace_id!r}, <redacted>)"


def _decrypt(vault: Vault, row: ZoomConnection, column: str) -> str | None:
    stored = getattr(row, column)
    if stored is None:
        return None
    return vault.decrypt(stored, table=TABLE, row_key=row.workspace_id, column=column)


def read_secrets(vault: Vault, row: ZoomConnection) -> ConnectionSecrets:
    return ConnectionSecrets(
        workspace_id=row.workspace_id,
        access_token=_decrypt(vault, row, "access_token_enc"),
        refresh_token=_decrypt(vault, row, "refresh_token_enc"),
        zoom_user_id=_decrypt(vault, row, "zoom_user_id_enc"),
        zoom_email=_decrypt(vault, row, "zoom_email_enc"),
        zoom_account_id=_decrypt(vault, row, "zoom_account_id_enc"),
    )


def write_tokens(vault: Vault, row: ZoomConnection, access_token: str, refresh_token: str, expires_in: int,
                 now: datetime) -> None:
    row.access_token_enc = vault.encrypt(access_token, table=TABLE, row_key=row.workspace_id, column="access_token_enc")
    row.refresh_token_enc = vault.encrypt(refresh_token, table=TABLE, row_key=row.workspace_id, column="refresh_token_enc")
    row.access_token_expires_at = now + timedelta(seconds=max(expires_in, 0))
    row.access_token_issued_at = now  # with the expiry: the token's own lifetime (broker refresh margin)
    row.token_generation = (row.token_generation or 0) + 1
    row.updated_at = now


def write_identity(vault: Vault, row: ZoomConnection, zoom_user_id: str, zoom_email: str, *,
                   zoom_account_id: str | None) -> None:
    """`zoom_account_id` is optional in Zoom's /users/me: without it the account columns are cleared, so a
    reconnect never keeps the previous user's account (the limiter then paces the workspace per user)."""
    row.zoom_user_id_enc = vault.encrypt(zoom_user_id, table=TABLE, row_key=row.workspace_id, column="zoom_user_id_enc")
    row.zoom_email_enc = vault.encrypt(zoom_email, table=TABLE, row_key=row.workspace_id, column="zoom_email_enc")
    row.zoom_user_id_hash = vault.lookup_hash(zoom_user_id, USER_HASH_PURPOSE)
    if zoom_account_id:
        row.zoom_account_id_enc = vault.encrypt(zoom_account_id, table=TABLE, row_key=row.workspace_id,
                                                column="zoom_account_id_enc")
        row.zoom_account_hash = vault.lookup_hash(zoom_account_id, ACCOUNT_HASH_PURPOSE)
    else:
        row.zoom_account_id_enc = None
        row.zoom_account_hash = None


def purge_secrets(row: ZoomConnection, now: datetime) -> None:
    """Disconnect/deauthorize: tokens, Zoom user ID, email, Zoom account ID and both hashes go, in this
    transaction."""
    row.access_token_enc = None
    row.refresh_token_enc = None
    row.access_token_expires_at = None
    row.access_token_issued_at = None
    row.zoom_user_id_enc = None
    row.zoom_email_enc = None
    row.zoom_user_id_hash = None
    row.zoom_account_id_enc = None
    row.zoom_account_hash = None
    row.token_generation = (row.token_generation or 0) + 1
    row.updated_at = now


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes even for timezone=True columns; they were written as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
