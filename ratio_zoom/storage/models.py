"""SQLAlchemy 2 models. The schema itself is owned by Alembic migrations (`storage/migrations/`).

Secrets live only as vault ciphertexts (`*_enc` columns, see `storage/vault.py`). The host start URL has no
column anywhere: it is dropped at the Zoom client's edge.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ZoomConnection(Base):
    """One Zoom grant per workspace (enforced by the unique workspace_id)."""

    __tablename__ = "zoom_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    # connected | needs_reconnect | disconnected
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text)
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the current access token was issued: with the expiry it gives the token's own lifetime, from which
    # the broker derives its refresh margin (migration 0002; NULL for tokens stored before it).
    access_token_issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped by every successful refresh: lets a waiter see that someone else refreshed meanwhile.
    token_generation: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    scopes: Mapped[str] = mapped_column(Text, nullable=False, default="")
    zoom_user_id_enc: Mapped[str | None] = mapped_column(Text)
    zoom_email_enc: Mapped[str | None] = mapped_column(Text)
    # Keyed hash (HMAC) of the Zoom user ID: AES-GCM ciphertext is not searchable, webhooks need look-ups.
    zoom_user_id_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # The Zoom account the connected user belongs to (migration 0004; NULL for rows connected before it, or
    # when Zoom's /users/me named no account). Zoom's per-second limits are per account, so the shared
    # limiter paces every workspace whose user is in one account in one bucket (connections/broker.py). The
    # keyed hash is what the broker derives that bucket's key from; it is read by workspace, never searched,
    # hence no index.
    zoom_account_id_enc: Mapped[str | None] = mapped_column(Text)
    zoom_account_hash: Mapped[str | None] = mapped_column(String(64))
    connected_by: Mapped[str | None] = mapped_column(String(128))
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disconnected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class OAuthState(Base):
    """A pending OAuth authorization: single use, short-lived, stored hashed."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(128), nullable=False)
    actor_id: Mapped[str] = mapped_column(String(128), nullable=False)
    actor_role: Mapped[str] = mapped_column(String(16), nullable=False)
    return_url: Mapped[str] = mapped_column(Text, nullable=False)
    pkce_verifier_enc: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AppointmentConference(Base):
    """The single source of truth for an appointment's Zoom meeting (the workflow state mirrors it)."""

    __tablename__ = "appointment_conferences"

    appointment_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    # pending | ready | waiting_for_zoom | detached | deleted | failed
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    # scheduled | cancelled | completed: lets a new run (signal-with-start after completion) refuse
    # to resurrect a cancelled appointment's meeting.
    appointment_status: Mapped[str] = mapped_column(String(16), nullable=False, default="scheduled")
    # Indexed: Zoom's meeting events are routed to their appointment by meeting ID (migration 0003).
    zoom_meeting_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    join_url: Mapped[str | None] = mapped_column(Text)
    # Hash of the Zoom account that owns the meeting: after a reconnect with another account it cannot be
    # touched any more and the next change creates a new meeting.
    zoom_owner_hash: Mapped[str | None] = mapped_column(String(64))
    # Exactly-once create: the marker is written before the create call and put into the agenda, so a retry
    # after a lost response finds the meeting instead of creating a second one.
    create_marker: Mapped[str | None] = mapped_column(String(64))
    create_intent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """Append-only, hash-chained per workspace. The service's role may only INSERT and SELECT here."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("workspace_id", "seq", name="uq_audit_workspace_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(128), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    appointment_id: Mapped[str | None] = mapped_column(String(128), index=True)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Retries of the activity that writes a fact carry the same key, so the fact is recorded once.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class ConsentRecord(Base):
    """Append-only consent log: who consented or withdrew, for which appointment, when, how, to what text."""

    __tablename__ = "consent_records"
    __table_args__ = (UniqueConstraint("appointment_id", "request_id", name="uq_consent_request"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appointment_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    workspace_id: Mapped[str] = mapped_column(String(128), nullable=False)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False)
    granted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    channel: Mapped[str] = mapped_column(String(64), nullable=False)
    consent_text_version: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    note_taking_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class WebhookDelivery(Base):
    """Webhook deliveries already processed, so a redelivery changes nothing."""

    __tablename__ = "webhook_deliveries"

    delivery_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class BotDispatch(Base):
    """Recording-bot dispatch intents, written before the provider call (key = appointment:recbot:gen)."""

    __tablename__ = "bot_dispatches"

    dispatch_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    appointment_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    bot_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class EmailOutbox(Base):
    """One row per (appointment, revision, attendee, kind), written before sending: exactly-once emails."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        UniqueConstraint("appointment_id", "revision", "recipient_hash", "kind", name="uq_outbox_message"),
        Index("ix_outbox_appointment", "appointment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appointment_id: Mapped[str] = mapped_column(String(128), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    recipient_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # pending | sent | failed
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CoreAppEventRow(Base):
    """The durable outbox of events for the core app (ratio_zoom/events/): written in the transaction that
    decided the event, delivered in `sequence` order per stream, kept after delivery for the record."""

    __tablename__ = "core_app_events"
    __table_args__ = (
        UniqueConstraint("stream", "sequence", name="uq_core_app_events_stream_sequence"),
        Index("ix_core_app_events_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    stream: Mapped[str] = mapped_column(String(200), nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    workspace_id: Mapped[str] = mapped_column(String(128), nullable=False)
    appointment_id: Mapped[str | None] = mapped_column(String(128))
    # The exact JSON body POSTed (signed as is); conference.ready/updated carry the join URL, nothing secret.
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # pending | delivered | expired (the retry ceiling passed; `last_error` says why)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
class ZoomRateBucket(Base):
    """The pace of one (Zoom account key, rate-limit category), shared by every worker process.

    A token bucket of depth one kept as its next free send slot (GCRA): each call books the slot and moves
    it on by 1/rate, so calls leave evenly spaced whichever process sends them. Times are epoch seconds
    (float) so that PostgreSQL and SQLite do the same arithmetic. `rate` is the current adaptive rate (at
    most the plan's), `blocked_until` the Retry-After Zoom last gave anyone sharing the account.
    See connections/limiter.py."""

    __tablename__ = "zoom_rate_buckets"

    account_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_slot_at: Mapped[float] = mapped_column(Float, nullable=False)
    rate: Mapped[float] = mapped_column(Float, nullable=False)
    rate_updated_at: Mapped[float] = mapped_column(Float, nullable=False)
    blocked_until: Mapped[float] = mapped_column(Float, nullable=False)


class ZoomDailyUsage(Base):
    """Meeting create/update requests sent per (Zoom user key, UTC day): Zoom allows 100 per user per day."""

    __tablename__ = "zoom_daily_usage"

    user_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, nullable=False)
    # Epoch seconds until which Zoom said the day is spent (its daily 429's Retry-After), 0 when it has not.
    spent_until: Mapped[float] = mapped_column(Float, nullable=False)


__all__ = [
    "Base",
    "ZoomConnection",
    "OAuthState",
    "AppointmentConference",
    "AuditEvent",
    "ConsentRecord",
    "WebhookDelivery",
    "BotDispatch",
    "EmailOutbox",
    "CoreAppEventRow",
    "ZoomRateBucket",
    "ZoomDailyUsage",
]
