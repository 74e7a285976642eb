"""Zoom account identity on the connection: pace per Zoom account, not per workspace

Revision ID: 0004
Revises: 0003

- `zoom_connections.zoom_account_id_enc`: the connected user's Zoom account ID, a vault ciphertext like the
  user ID beside it.
- `zoom_connections.zoom_account_hash`: its keyed hash (HMAC). Zoom's per-second limits are per account and
  shared by all its users, so the shared limiter's per-second buckets are keyed from it
  (connections/limiter.py). Rows connected before this migration have neither and are paced per user until
  they reconnect.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot alter a table in place; on PostgreSQL it is a plain ALTER TABLE.
    with op.batch_alter_table("zoom_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("zoom_account_id_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("zoom_account_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("zoom_connections", schema=None) as batch_op:
        batch_op.drop_column("zoom_account_hash")
        batch_op.drop_column("zoom_account_id_enc")
