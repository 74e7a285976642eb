"""The recording-bot emulator: Recall's bot API with its real rules, plus `/_emulator/` control.

- A bot is *scheduled* only when `join_at` is more than 10 minutes away; otherwise it joins at once.
- PATCH and DELETE are refused inside that window, and so is a PATCH that would move the bot into it (HTTP
  409, `{"code": "too_late_to_modify"}`): leave the call (`POST /api/v1/bot/{id}/leave_call/`) or replace it.
- `Idempotency-Key` on POST/PATCH is honoured for one hour: same key and body replays the first answer; the
  same key with another body is a 409.
- `GET /api/v1/bot/?metadata__<key>=<value>` filters on metadata.
- PATCH may replace `zoom` (a scheduled bot's `obf_token_url`, re-issued with a later expiry on a move).
- Injected 429 / 507 / 5xx answers carry `Retry-After`; status changes go out as signed webhooks.
Control: `GET /_emulator/bots`, `GET /_emulator/calls`, `POST /_emulator/faults {"status","count","retry_after"}`,
`POST /_emulator/advance {"bot_id","code","sub_code"}` (appends a status and delivers the webhook),
`POST /_emulator/clock {"advance_seconds"}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ratio_zoom.recording_bot.webhooks import sign

SCHEDULE_WINDOW = timedelta(minutes=10)
IDEMPOTENCY_TTL = 3600.0


@dataclass
class BotEmulatorConfig:
    api_key: str = "dev-recall-key"
    webhook_secret: str = "dev-recall-webhook-secret"
    webhook_url: str | None = None


@dataclass
class State:
    bots: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[float, str, int, dict[str, Any]]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    fault: dict[str, Any] = field(default_factory=dict)
    offset: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.offset, timezone.utc)


def create_app(config: BotEmulatorConfig) -> Starlette:
    st = State()

    def authorised(request: Request) -> bool:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return scheme == "Token" and hmac.compare_digest(key.encode(), config.api_key.encode())

    def injected() -> Response | None:
        if st.fault.get("count", 0) > 0:
            st.fault["count"] -= 1
            status = int(st.fault.get("status", 503))
            return JSONResponse({"detail": "emulated"}, status_code=status,
                                headers={"Retry-After": str(st.fault.get("retry_after", 1))})
        return None

    def view(bot: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in bot.items() if not k.startswith("_")}

    def inside_window(bot: dict[str, Any]) -> bool:
        join_at = datetime.fromisoformat(bot["join_at"].replace("Z", "+00:00"))
        return join_at - st.now() <= SCHEDULE_WINDOW

    async def guarded(request: Request, handler) -> Response:  # type: ignore[no-untyped-def]
        st.calls.append({"method": request.method, "path": request.url.path, "at": st.now().isoformat()})
        if not authorised(request):
            return JSONResponse({"detail": "Invalid token."}, status_code=401)
        fault = injected()
        if fault is not None:
            return fault
        async with st.lock:
            return await handler(request)

    async def replay_or(request: Request, body: dict[str, Any], make) -> Response:  # type: ignore[no-untyped-def]
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if key:
            seen = st.idempotency.get(f"{request.method}:{request.url.path}:{key}")
            if seen and time.time() - seen[0] < IDEMPOTENCY_TTL:
                if seen[1] != fingerprint:
                    return JSONResponse({"code": "idempotency_key_reused"}, status_code=409)
                return JSONResponse(seen[3], status_code=seen[2])
        status, payload = make()
        if key and status < 500:
            st.idempotency[f"{request.method}:{request.url.path}:{key}"] = (time.time(), fingerprint, status, payload)
        return JSONResponse(payload, status_code=status)

    async def bots(request: Request) -> Response:
        async def handler(request: Request) -> Response:
            if request.method == "GET":
                filters = {k[len("metadata__"):]: v for k, v in request.query_params.items() if k.startswith("metadata__")}
                found = [view(b) for b in st.bots.values() if not b["_deleted"]
                         and all(b["metadata"].get(k) == v for k, v in filters.items())]
                return JSONResponse({"results": found, "next": None})
            body = await request.json()

            def make() -> tuple[int, dict[str, Any]]:
                if not body.get("meeting_url") or not body.get("join_at"):
                    return 400, {"meeting_url": ["required"], "join_at": ["required"]}
                bot_id = str(uuid.uuid4())
                bot = {"id": bot_id, "meeting_url": body["meeting_url"], "join_at": body["join_at"],
                       "bot_name": body.get("bot_name", "Bot"), "metadata": body.get("metadata") or {},
                       "automatic_leave": body.get("automatic_leave") or {}, "zoom": body.get("zoom") or {},
                       "status_changes": [], "_deleted": False}
                scheduled = not inside_window(bot)
                bot["status_changes"].append({"code": "ready" if scheduled else "joining_call", "sub_code": None,
                                              "created_at": st.now().isoformat()})
                st.bots[bot_id] = bot
                return 201, view(bot)

            return await replay_or(request, body, make)

        return await guarded(request, handler)

    async def one(request: Request) -> Response:
        async def handler(request: Request) -> Response:
            bot = st.bots.get(request.path_params["bot_id"])
            if bot is None or bot["_deleted"]:
                return JSONResponse({"detail": "Not found."}, status_code=404)
            if request.method == "GET":
                return JSONResponse(view(bot))
            body = await request.json() if request.method == "PATCH" else {}
            moving_close = "join_at" in body and inside_window({"join_at": body["join_at"]})
            if inside_window(bot) or moving_close:
                # Inside the window (now, or where the change would put it) the bot is no longer a scheduled
                # bot: the caller must leave the call or replace the bot.
                return JSONResponse({"code": "too_late_to_modify",
                                     "detail": "bots cannot be changed within 10 minutes of join_at"}, status_code=409)
            if request.method == "DELETE":
                bot["_deleted"] = True
                bot["status_changes"].append({"code": "deleted", "sub_code": None, "created_at": st.now().isoformat()})
                return Response(status_code=204)

            def make() -> tuple[int, dict[str, Any]]:
                for key in ("join_at", "meeting_url", "bot_name", "zoom"):  # zoom: a new obf_token_url
                    if key in body:
                        bot[key] = body[key]
                return 200, view(bot)

            return await replay_or(request, body, make)

        return await guarded(request, handler)

    async def leave(request: Request) -> Response:
        async def handler(request: Request) -> Response:
            bot = st.bots.get(request.path_params["bot_id"])
            if bot is None or bot["_deleted"]:
                return JSONResponse({"detail": "Not found."}, status_code=404)
            bot["status_changes"].append({"code": "call_ended", "sub_code": "bot_received_leave_call",
                                          "created_at": st.now().isoformat()})
            bot["_left"] = True
            return JSONResponse(view(bot))

        return await guarded(request, handler)

    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        body = await request.json() if request.method == "POST" else {}
        if action == "bots":
            return JSONResponse([{**view(b), "deleted": b["_deleted"], "left": b.get("_left", False)} for b in st.bots.values()])
        if action == "calls":
            return JSONResponse(st.calls)
        if action == "faults":
            st.fault = dict(body)
            return JSONResponse(st.fault)
        if action == "clock":
            st.offset += float(body.get("advance_seconds", 0))
            return JSONResponse({"now": st.now().isoformat()})
        if action == "advance":
            bot = st.bots[body["bot_id"]]
            change = {"code": body["code"], "sub_code": body.get("sub_code"), "created_at": st.now().isoformat()}
            bot["status_changes"].append(change)
            return JSONResponse(await deliver(bot, change, body.get("url")))
        return JSONResponse({"error": f"unknown action {action}"}, status_code=404)

    async def deliver(bot: dict[str, Any], change: dict[str, Any], url: str | None) -> dict[str, Any]:
        target = url or config.webhook_url
        if not target:
            return {"delivered": False}
        raw = json.dumps({"event": f"bot.{change['code']}", "data": {
            "data": {"code": change["code"], "sub_code": change["sub_code"], "updated_at": change["created_at"]},
            "bot": {"id": bot["id"], "metadata": bot["metadata"]}}}).encode()
        delivery_id = f"msg_{uuid.uuid4().hex}"
        stamp = str(int(time.time()))
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(target, content=raw, headers={
                "content-type": "application/json", "webhook-id": delivery_id, "webhook-timestamp": stamp,
                "webhook-signature": sign(config.webhook_secret, delivery_id, stamp, raw)})
        return {"delivered": True, "status": response.status_code, "webhook_id": delivery_id}

    return Starlette(routes=[
        Route("/api/v1/bot/", bots, methods=["GET", "POST"]),
        Route("/api/v1/bot/{bot_id}/", one, methods=["GET", "PATCH", "DELETE"]),
        Route("/api/v1/bot/{bot_id}/leave_call/", leave, methods=["POST"]),
        Route("/_emulator/{action}", control, methods=["GET", "POST"]),
    ])


def config_from_env() -> BotEmulatorConfig:
    return BotEmulatorConfig(api_key=os.environ.get("RECORDING_BOT_API_KEY") or "dev-recall-key",
                             webhook_secret=os.environ.get("RECORDING_BOT_WEBHOOK_SECRET") or "dev-recall-webhook-secret",
                             webhook_url=os.environ.get("RECORDING_BOT_EMULATOR_WEBHOOK_URL") or None)


def serve(host: str, port: int, config: BotEmulatorConfig) -> None:
    import uvicorn

    print(f"recording-bot emulator on http://{host}:{port} (API /api/v1/bot/, inspection /_emulator/bots)", flush=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
