"""The recording bot's status, as the API relays it to the appointment workflow (signal `bot_status`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

BotStatus = Literal["scheduled", "joining", "waiting_for_host_permission", "recording", "ended", "failed",
                    "cancelled", "unknown"]
TERMINAL = {"ended", "failed", "cancelled"}


class BotStatusEvent(BaseModel):
    delivery_id: str
    event: str
    bot_id: str
    status: BotStatus
    sub_code: str | None = None
    metadata: dict[str, str] = {}
