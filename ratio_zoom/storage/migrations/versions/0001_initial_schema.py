"""initial schema: connections, OAuth states, conferences, audit trail, consent, webhooks, bots, outbox

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 03:35:26.850154
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appointment_conferences',
    sa.Column('appointment_id', sa.String(length=128), nullable=False),
    sa.Column('workspace_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('appointment_status', sa.String(length=16), nullable=False, server_default='scheduled'),
    sa.Column('zoom_meeting_id', sa.BigInteger(), nullable=True),
    sa.Column('join_url', sa.Text(), nullable=True),
    sa.Column('zoom_owner_hash', sa.String(length=64), nullable=True),
    sa.Column('create_marker', sa.String(length=64), nullable=True),
    sa.Column('create_intent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('appointment_id')
    )
    with op.batch_alter_table('appointment_conferences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointment_conferences_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.String(length=128), nullable=True),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('workflow_id', sa.String(length=255), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key'),
    sa.UniqueConstraint('workspace_id', 'seq', name='uq_audit_workspace_seq')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_appointment_id'), ['appointment_id'], unique=False)

    op.create_table('bot_dispatches',
    sa.Column('dispatch_key', sa.String(length=255), nullable=False),
    sa.Column('appointment_id', sa.String(length=128), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('bot_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dispatch_key')
    )
    with op.batch_alter_table('bot_dispatches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bot_dispatches_appointment_id'), ['appointment_id'], unique=False)

    op.create_table('consent_records',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('appointment_id', sa.String(length=128), nullable=False),
    sa.Column('workspace_id', sa.String(length=128), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('consent_text_version', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note_taking_enabled', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('appointment_id', 'request_id', name='uq_consent_request')
    )
    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_records_appointment_id'), ['appointment_id'], unique=False)

    op.create_table('email_outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('appointment_id', sa.String(length=128), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('recipient_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('appointment_id', 'revision', 'recipient_hash', 'kind', name='uq_outbox_message')
    )
    with op.batch_alter_table('email_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_appointment', ['appointment_id'], unique=False)

    op.create_table('oauth_states',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('workspace_id', sa.String(length=128), nullable=False),
    sa.Column('actor_id', sa.String(length=128), nullable=False),
    sa.Column('actor_role', sa.String(length=16), nullable=False),
    sa.Column('return_url', sa.Text(), nullable=False),
    sa.Column('pkce_verifier_enc', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('state_hash')
    )
    op.create_table('webhook_deliveries',
    sa.Column('delivery_key', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('delivery_key')
    )
    op.create_table('zoom_connections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('access_token_enc', sa.Text(), nullable=True),
    sa.Column('refresh_token_enc', sa.Text(), nullable=True),
    sa.Column('access_token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('token_generation', sa.Integer(), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('zoom_user_id_enc', sa.Text(), nullable=True),
    sa.Column('zoom_email_enc', sa.Text(), nullable=True),
    sa.Column('zoom_user_id_hash', sa.String(length=64), nullable=True),
    sa.Column('connected_by', sa.String(length=128), nullable=True),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disconnected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_id')
    )
    with op.batch_alter_table('zoom_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zoom_connections_zoom_user_id_hash'), ['zoom_user_id_hash'], unique=False)


    if op.get_bind().dialect.name == "postgresql":
        # Append-only audit trail: even the table owner cannot rewrite history. The service role is also
        # granted only INSERT/SELECT (docs/operations.md); this trigger is the belt to those braces.
        op.execute(
            """
            CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END $$;
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    with op.batch_alter_table('zoom_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_zoom_connections_zoom_user_id_hash'))

    op.drop_table('zoom_connections')
    op.drop_table('webhook_deliveries')
    op.drop_table('oauth_states')
    with op.batch_alter_table('email_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_appointment')

    op.drop_table('email_outbox')
    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_records_appointment_id'))

    op.drop_table('consent_records')
    with op.batch_alter_table('bot_dispatches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bot_dispatches_appointment_id'))

    op.drop_table('bot_dispatches')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_appointment_id'))

    op.drop_table('audit_events')
    with op.batch_alter_table('appointment_conferences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointment_conferences_workspace_id'))

    op.drop_table('appointment_conferences')
