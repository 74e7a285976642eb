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


async def zoom_calls(emu: Any, *, workspace_meetings: set[int]) -> list[dict[str, Any]]:
    """Calls that concern the given meetings (create calls are matched through their result later)."""
    out = []
    for call in await emu.calls():
        path = call["path"]
        if path.startswith("/v2/meetings/") and int(path.rsplit("/", 1)[1]) in workspace_meetings:
            out.append(call)
        elif path == "/v2/users/me/meetings" and call["method"] == "POST" and call["status"] == 201:
            out.append(call)
    return out
