"""Zoom pacing: the shared rate-limit buckets, the per-user daily create/update budget, the token's lifetime

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 14:00:00

- `zoom_rate_buckets`: one paced bucket (the next free send slot, the current rate, Zoom's last Retry-After)
  per (Zoom account key, rate-limit category), shared by every worker process through the service's
  database (connections/limiter.py).
- `zoom_daily_usage`: meeting create/update requests sent per (Zoom user key, UTC day); Zoom allows 100.
- `zoom_connections.access_token_issued_at`: with `access_token_expires_at` it gives the token's own
  lifetime, from which the broker derives its refresh margin (a 15 s token is not "always stale").
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'zoom_rate_buckets',
        sa.Column('account_key', sa.String(length=64), nullable=False),
        sa.Column('category', sa.String(length=16), nullable=False),
        sa.Column('next_slot_at', sa.Float(), nullable=False),
        sa.Column('rate', sa.Float(), nullable=False),
        sa.Column('rate_updated_at', sa.Float(), nullable=False),
        sa.Column('blocked_until', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('account_key', 'category'),
    )
    op.create_table(
        'zoom_daily_usage',
        sa.Column('user_key', sa.String(length=64), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('used', sa.Integer(), nullable=False),
        sa.Column('spent_until', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('user_key', 'day'),
    )
    with op.batch_alter_table('zoom_connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_token_issued_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('zoom_connections', schema=None) as batch_op:
        batch_op.drop_column('access_token_issued_at')
    op.drop_table('zoom_daily_usage')
    op.drop_table('zoom_rate_buckets')
