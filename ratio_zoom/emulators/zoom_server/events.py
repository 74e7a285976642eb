"""Zoom's signed webhook deliveries, as the emulator sends them: `meeting.updated` / `meeting.deleted` when a
meeting changes (by the host inside Zoom, through `/_emulator/edit-meeting`, or by an app through the API,
as real Zoom does for subscribed apps), and the deliveries `/_emulator/webhooks` asks for.

Payload shapes follow Zoom's Meetings events reference (`payload.account_id`, `operator`, `operator_id`,
`operation`, `object`; `meeting.updated` adds `old_object` with the previous values of the changed fields
and `time_stamp`). Signing: `x-zm-signature: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from ratio_zoom.emulators.zoom_server.state import Meeting, User

log = logging.getLogger("ratio_zoom.emulators.zoom")

# Fields of a meeting whose change Zoom reports in meeting.updated (the ones the emulator can change).
REPORTED_FIELDS = ("topic", "agenda", "start_time", "duration", "timezone", "settings")


def sign(secret: str, timestamp: str, raw: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + raw, hashlib.sha256).hexdigest()


async def post_signed(url: str, secret: str, envelope: dict[str, Any], *, timestamp: str | None = None) -> httpx.Response:
    raw = json.dumps(envelope).encode()
    stamp = timestamp or str(int(time.time()))
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, content=raw, headers={
            "content-type": "application/json", "x-zm-request-timestamp": stamp, "x-zm-signature": sign(secret, stamp, raw)})


def snapshot(m: Meeting) -> dict[str, Any]:
    return {key: (dict(getattr(m, key)) if key == "settings" else getattr(m, key)) for key in REPORTED_FIELDS}


def meeting_deleted(m: Meeting, operator: User | None, account_id: str, now_ms: int) -> dict[str, Any]:
    return {"event": "meeting.deleted", "event_ts": now_ms, "payload": {
        "account_id": account_id, "operator": operator.email if operator else "",
        "operator_id": operator.id if operator else "", "operation": "single",
        "object": {"uuid": m.uuid, "id": m.id, "host_id": m.host_id, "topic": m.topic, "type": 2,
                   "start_time": m.start_time, "duration": m.duration, "timezone": m.timezone}}}


def meeting_updated(m: Meeting, before: dict[str, Any], operator: User | None, account_id: str,
                    now_ms: int) -> dict[str, Any] | None:
    """None when nothing Zoom reports changed (Zoom sends no event for a no-op update)."""
    after = snapshot(m)
    changed = [key for key in REPORTED_FIELDS if after[key] != before[key]]
    if not changed:
        return None
    return {"event": "meeting.updated", "event_ts": now_ms, "payload": {
        "account_id": account_id, "operator": operator.email if operator else "",
        "operator_id": operator.id if operator else "", "operation": "single", "time_stamp": now_ms,
        "object": {"id": m.id, "uuid": m.uuid, **{key: after[key] for key in changed}},
        "old_object": {"id": m.id, "uuid": m.uuid, **{key: before[key] for key in changed}}}}


class MeetingEventSender:
    """Sends meeting events in the background, in the order they happened, like Zoom's delivery service:
    the API call that caused one never waits for it. Failures are logged (Zoom would retry 5xx; the
    emulator records the outcome in `delivered` for tests to inspect)."""

    def __init__(self, url: str | None, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.delivered: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None

    def send(self, envelope: dict[str, Any] | None) -> None:
        if envelope is None or not self.url:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="zoom-emulator-webhooks")
        self._queue.put_nowait(envelope)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            envelope = await self._queue.get()
            record = {"event": envelope["event"], "meeting_id": envelope["payload"]["object"]["id"]}
            try:
                response = await post_signed(str(self.url), self.secret, envelope)
                record["status"] = response.status_code
            except httpx.HTTPError as exc:
                record["status"] = 0
                log.warning("emulator webhook %s not delivered: %s", envelope["event"], type(exc).__name__)
            self.delivered.append(record)
