"""`ratio-zoom keys rotate`: re-encrypt every vault ciphertext (and re-key look-up hashes) under the
active key, so an old key can then be removed from TOKEN_ENCRYPTION_KEYS."""

from __future__ import annotations

from sqlalchemy import select

from ratio_zoom.connections.repository import ACCOUNT_HASH_PURPOSE, TABLE, USER_HASH_PURPOSE
from ratio_zoom.core.settings import Settings
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import OAuthState, ZoomConnection
from ratio_zoom.storage.vault import Vault

CONNECTION_COLUMNS = (
    "access_token_enc", "refresh_token_enc", "zoom_user_id_enc", "zoom_email_enc", "zoom_account_id_enc")
# The look-up hash kept beside an encrypted column: re-keyed with it, so it stays findable without the old key.
HASHED_COLUMNS: dict[str, tuple[str, str]] = {
    "zoom_user_id_enc": ("zoom_user_id_hash", USER_HASH_PURPOSE),
    "zoom_account_id_enc": ("zoom_account_hash", ACCOUNT_HASH_PURPOSE),
}


async def rotate_keys(settings: Settings) -> dict[str, int]:
    vault = Vault(settings.token_keyring())
    db = Database(settings.database_url)
    counts = {"zoom_connections": 0, "oauth_states": 0}
    try:
        async with db.transaction() as session:
            for row in (await session.execute(select(ZoomConnection).with_for_update())).scalars():
                changed = False
                for column in CONNECTION_COLUMNS:
                    stored = getattr(row, column)
                    if stored is not None and vault.needs_rotation(stored):
                        plain = vault.decrypt(stored, table=TABLE, row_key=row.workspace_id, column=column)
                        setattr(row, column, vault.encrypt(plain, table=TABLE, row_key=row.workspace_id, column=column))
                        changed = True
                        if column in HASHED_COLUMNS:
                            hash_column, purpose = HASHED_COLUMNS[column]
                            setattr(row, hash_column, vault.lookup_hash(plain, purpose))
                counts["zoom_connections"] += changed
            for state in (await session.execute(select(OAuthState).with_for_update())).scalars():
                if vault.needs_rotation(state.pkce_verifier_enc):
                    plain = vault.decrypt(state.pkce_verifier_enc, table="oauth_states", row_key=state.state_hash,
                                          column="pkce_verifier_enc")
                    state.pkce_verifier_enc = vault.encrypt(plain, table="oauth_states", row_key=state.state_hash,
                                                            column="pkce_verifier_enc")
                    counts["oauth_states"] += 1
    finally:
        await db.dispose()
    return counts
