"""Reading the Zoom emulator's inspection endpoint in assertions."""

from __future__ import annotations

from typing import Any


async def live_meetings(emu: Any) -> list[dict[str, Any]]:
    return [m for m in await emu.meetings() if not m["deleted"]]


async def meeting_by_id(emu: Any, meeting_id: int | None) -> dict[str, Any]:
    for meeting in await emu.meetings():
        if meeting["id"] == meeting_id:
            return meeting
    raise AssertionError(f"meeting {meeting_id} is not in the emulator")
