"""Webhook deliveries already processed (`webhook_deliveries`), so a redelivery changes nothing.

A delivery is remembered only once its effect is done (or known to be nothing): a failure answers 5xx and
the sender's redelivery must get through, never "duplicate delivery ignored"."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from ratio_zoom.connections.repository import utcnow
from ratio_zoom.storage.db import Database
from ratio_zoom.storage.models import WebhookDelivery


async def seen(db: Database, key: str) -> bool:
    async with db.sessions() as session:
        return await session.get(WebhookDelivery, key) is not None


async def remember(db: Database, key: str) -> None:
    try:
        async with db.transaction() as session:
            if await session.get(WebhookDelivery, key) is None:
                session.add(WebhookDelivery(delivery_key=key, source=key.split(":", 1)[0], received_at=utcnow()))
    except IntegrityError:
        pass  # a concurrent redelivery remembered it first: the same fact


async def first(db: Database, key: str) -> bool:
    """Remember `key` now; False when it was already remembered (claim-then-process deliveries)."""
    try:
        async with db.transaction() as session:
            if await session.get(WebhookDelivery, key) is not None:
                return False
            session.add(WebhookDelivery(delivery_key=key, source=key.split(":", 1)[0], received_at=utcnow()))
    except IntegrityError:
        return False
    return True


async def forget(db: Database, key: str) -> None:
    """Undo `first` when processing failed, so the redelivery gets through."""
    async with db.transaction() as session:
        row = await session.get(WebhookDelivery, key)
        if row is not None:
            await session.delete(row)
