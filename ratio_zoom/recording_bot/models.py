"""Provider-neutral bot models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ratio_zoom.contract.bot_status import TERMINAL, BotStatus, BotStatusEvent


class AutomaticLeave(BaseModel):
    """Timeouts (seconds) chosen by the caller so that a bot never outlives the appointment."""

    waiting_room_timeout: int = 600
    noone_joined_timeout: int = 600
    everyone_left_timeout: int = 120
    in_call_recording_timeout: int = 3600


class BotSpec(BaseModel):
    meeting_url: str = Field(repr=False)  # a join URL embeds the passcode
    join_at: datetime
    bot_name: str = "Ratio Notetaker"
    dispatch_key: str
    appointment_id: str
    automatic_leave: AutomaticLeave = AutomaticLeave()
    # Where the bot fetches a Zoom on-behalf-of token at launch (carries a per-bot secret): None = no OBF.
    obf_token_url: str | None = Field(default=None, repr=False)


class BotRecord(BaseModel):
    bot_id: str
    status: BotStatus
    sub_code: str | None = None
    dispatch_key: str | None = None
    join_at: datetime | None = None
    meeting_url: str | None = Field(default=None, repr=False)


__all__ = ["TERMINAL", "AutomaticLeave", "BotRecord", "BotSpec", "BotStatus", "BotStatusEvent"]
