"""core app events: the durable outbox of events POSTed to the core app; meeting-ID look-ups for Zoom's events

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_app_events",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=128), nullable=False),
        sa.Column("appointment_id", sa.String(length=128), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream", "sequence", name="uq_core_app_events_stream_sequence"),
    )
    op.create_index("ix_core_app_events_due", "core_app_events", ["status", "next_attempt_at"])
    with op.batch_alter_table("appointment_conferences") as batch_op:
        batch_op.create_index("ix_appointment_conferences_zoom_meeting_id", ["zoom_meeting_id"])


def downgrade() -> None:
    with op.batch_alter_table("appointment_conferences") as batch_op:
        batch_op.drop_index("ix_appointment_conferences_zoom_meeting_id")
    op.drop_index("ix_core_app_events_due", table_name="core_app_events")
    op.drop_table("core_app_events")
