"""Recall.ai implementation of `RecordingBotProvider` on one pooled `httpx.AsyncClient`.

`POST /api/v1/bot/` (with `Idempotency-Key`; the dispatch key also travels in `metadata` so a retry can
find the bot), `GET|PATCH|DELETE /api/v1/bot/{id}/`, `POST /api/v1/bot/{id}/leave_call/`,
`GET /api/v1/bot/?metadata__dispatch_key=...`. Header `Authorization: Token <key>`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import httpx
from pydantic import SecretStr

from ratio_zoom.recording_bot.errors import (
    BotAuthError,
    BotBadRequest,
    BotNotFound,
    BotRateLimited,
    BotServerError,
    BotTooLateToModify,
    BotTransportError,
)
from ratio_zoom.recording_bot.models import BotRecord, BotSpec, BotStatus

# Recall status codes -> our neutral statuses.
STATUS_MAP: dict[str, BotStatus] = {
    "ready": "scheduled", "scheduled": "scheduled", "joining_call": "joining", "in_waiting_room": "joining",
    "in_call_not_recording": "waiting_for_host_permission", "recording_permission_denied": "waiting_for_host_permission",
    "recording_permission_allowed": "recording", "in_call_recording": "recording", "call_ended": "ended",
    "done": "ended", "analysis_done": "ended", "fatal": "failed", "deleted": "cancelled", "left_call": "ended",
}


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_from(body: dict[str, Any]) -> BotRecord:
    changes = body.get("status_changes") or []
    last = changes[-1] if changes else {"code": body.get("status", "ready")}
    join_at = body.get("join_at")
    return BotRecord(
        bot_id=str(body["id"]), status=STATUS_MAP.get(str(last.get("code")), "unknown"),
        sub_code=last.get("sub_code"), dispatch_key=(body.get("metadata") or {}).get("dispatch_key"),
        join_at=datetime.fromisoformat(join_at.replace("Z", "+00:00")) if join_at else None,
        meeting_url=body.get("meeting_url") if isinstance(body.get("meeting_url"), str) else None,
    )


class RecallProvider:
    def __init__(self, base_url: str, api_key: SecretStr, http: httpx.AsyncClient | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))

    def __repr__(self) -> str:
        return f"RecallProvider({self._base!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def schedule(self, spec: BotSpec, *, idempotency_key: str) -> BotRecord:
        body = {
            "meeting_url": spec.meeting_url, "join_at": _iso(spec.join_at), "bot_name": spec.bot_name,
            "metadata": {"dispatch_key": spec.dispatch_key, "appointment_id": spec.appointment_id},
            "automatic_leave": spec.automatic_leave.model_dump(),
            "recording_config": {"transcript": {"provider": {"meeting_captions": {}}}},
        }
        if spec.obf_token_url:
            body["zoom"] = {"obf_token_url": spec.obf_token_url}
        return record_from(await self._call("POST", "/api/v1/bot/", json_body=body, idempotency_key=idempotency_key))

    async def reschedule(self, bot_id: str, *, join_at: datetime, meeting_url: str | None,
                         idempotency_key: str, obf_token_url: str | None = None) -> BotRecord:
        body: dict[str, Any] = {"join_at": _iso(join_at)}
        if meeting_url:
            body["meeting_url"] = meeting_url
        if obf_token_url:
            body["zoom"] = {"obf_token_url": obf_token_url}  # its expiry follows the new start
        return record_from(await self._call("PATCH", f"/api/v1/bot/{bot_id}/", json_body=body,
                                            idempotency_key=idempotency_key))

    async def cancel(self, bot_id: str) -> BotRecord:
        try:
            await self._call("DELETE", f"/api/v1/bot/{bot_id}/")
            return BotRecord(bot_id=bot_id, status="cancelled")
        except BotNotFound:
            return BotRecord(bot_id=bot_id, status="cancelled")
        except BotTooLateToModify:
            # Inside the join window the bot can no longer be deleted: make it leave instead.
            return record_from(await self._call("POST", f"/api/v1/bot/{bot_id}/leave_call/"))

    async def status(self, bot_id: str) -> BotRecord:
        return record_from(await self._call("GET", f"/api/v1/bot/{bot_id}/"))

    async def find_by_dispatch_key(self, dispatch_key: str) -> list[BotRecord]:
        body = await self._call("GET", "/api/v1/bot/", params={"metadata__dispatch_key": dispatch_key})
        return [record_from(item) for item in body.get("results", [])]

    async def find_by_appointment(self, appointment_id: str) -> list[BotRecord]:
        body = await self._call("GET", "/api/v1/bot/", params={"metadata__appointment_id": appointment_id})
        return [record_from(item) for item in body.get("results", [])]

    async def _call(self, method: str, path: str, *, json_body: dict[str, Any] | None = None,
                    idempotency_key: str | None = None, params: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Token {self._key.get_secret_value()}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self._http.request(method, self._base + path, json=json_body, headers=headers, params=params)
        except httpx.TransportError as exc:
            raise BotTransportError(f"recording-bot provider {method} {path.split('/')[3] if path.count('/') > 3 else path}: "
                                    f"{type(exc).__name__}") from None
        if response.is_success:
            return response.json() if response.content else {}
        try:
            detail = json.dumps(response.json())[:300]
        except ValueError:
            detail = response.reason_phrase
        status = response.status_code
        if status in (429, 507):
            retry = response.headers.get("Retry-After")
            raise BotRateLimited(f"provider answered {status}", float(retry) if retry and retry.isdigit() else None)
        if status in (401, 403):
            raise BotAuthError(f"provider refused the API key ({status})")
        if status == 404:
            raise BotNotFound(f"bot not found ({status})")
        if status in (400, 409) and "too_late" in detail:
            raise BotTooLateToModify(f"provider refuses changes inside the join window: {detail}")
        if status >= 500:
            raise BotServerError(f"provider answered {status}")
        raise BotBadRequest(f"provider answered {status}: {detail}")
