"""`ratio-zoom keys rotate` re-encrypts every stored secret under the active key, so the old key can go."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import datetime, timezone

from sqlalchemy import select

from ratio_zoom.connections.repository import (
    ACCOUNT_HASH_PURPOSE,
    USER_HASH_PURPOSE,
    read_secrets,
    write_identity,
    write_tokens,
)
from ratio_zoom.core.keyring import KeyRing
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import ZoomConnection
from ratio_zoom.storage.vault import Vault

OLD = "old:" + base64.b64encode(b"\x07" * 32).decode()
NEW = "new:" + base64.b64encode(b"\x08" * 32).decode()


async def test_rotate_re_encrypts_everything_and_the_old_key_can_be_removed(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    old_vault = Vault(KeyRing.parse(OLD))
    async with db.transaction() as session:
        row = ZoomConnection(workspace_id="w-rot", status="connected", scopes="", token_generation=0,
                             updated_at=datetime.now(timezone.utc))
        write_tokens(old_vault, row, "access-1", "refresh-1", 3600, datetime.now(timezone.utc))
        write_identity(old_vault, row, "zoom-user-7", "host@example.com", zoom_account_id="acct-7")
        session.add(row)
    env = {**os.environ, "DATABASE_URL": sqlite_url, "TOKEN_ENCRYPTION_KEYS": f"{NEW},{OLD}"}
    proc = subprocess.run([sys.executable, "-m", "ratio_zoom.cli.main", "keys", "rotate"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "'zoom_connections': 1" in proc.stdout, proc.stderr
    new_only = Vault(KeyRing.parse(NEW))
    async with db.sessions() as session:
        row = (await session.execute(select(ZoomConnection))).scalar_one()
    assert all(value is not None and value.startswith("v1:new:") for value in (
        row.access_token_enc, row.refresh_token_enc, row.zoom_user_id_enc, row.zoom_email_enc, row.zoom_account_id_enc))
    secrets = read_secrets(new_only, row)  # readable without the old key
    assert (secrets.access_token, secrets.zoom_email, secrets.zoom_account_id) == ("access-1", "host@example.com",
                                                                                   "acct-7")
    # The look-up hashes are re-keyed with their ciphertexts: still findable once the old key is gone (the
    # account hash is what the limiter's per-account key is derived from).
    assert row.zoom_user_id_hash == new_only.lookup_hash("zoom-user-7", USER_HASH_PURPOSE)
    assert row.zoom_account_hash == new_only.lookup_hash("acct-7", ACCOUNT_HASH_PURPOSE)
    assert row.zoom_account_hash != old_vault.lookup_hash("acct-7", ACCOUNT_HASH_PURPOSE)
    await db.dispose()
