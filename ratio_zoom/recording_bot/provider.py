"""The interface the workflow's activities code against; `recall.RecallProvider` implements it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ratio_zoom.recording_bot.models import BotRecord, BotSpec


class RecordingBotProvider(Protocol):
    async def schedule(self, spec: BotSpec, *, idempotency_key: str) -> BotRecord: ...

    async def reschedule(self, bot_id: str, *, join_at: datetime, meeting_url: str | None,
                         idempotency_key: str) -> BotRecord: ...

    async def cancel(self, bot_id: str) -> BotRecord:
        """Remove the bot: DELETE while it is still scheduled, else make it leave the call."""
        ...

    async def status(self, bot_id: str) -> BotRecord: ...

    async def find_by_dispatch_key(self, dispatch_key: str) -> list[BotRecord]: ...
