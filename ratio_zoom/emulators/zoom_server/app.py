"""The Zoom emulator's HTTP app: Zoom-compatible OAuth (`/oauth/...`) and REST (`/v2/...`) surfaces, plus
a clearly separate control and inspection surface under `/_emulator/` (see emulators/zoom_server/README.md).

Behaviour follows Zoom's documentation: error bodies `{"code", "message"}`, 401/124 for bad tokens,
404/3001 for unknown meetings, 400/300 for invalid bodies (validated against Zoom's OpenAPI spec), 400/3000
for started meetings, 429 with Zoom's rate-limit headers, refresh-token rotation, PKCE, one live grant per
user, forced waiting room without a passcode.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ratio_zoom.emulators.zoom_server import spec
from ratio_zoom.emulators.zoom_server.state import Code, Grant, Meeting, User, World, iso, next_utc_midnight
from ratio_zoom.emulators.zoom_server.events import MeetingEventSender, meeting_deleted, meeting_updated, post_signed, snapshot
from ratio_zoom.zoom import rate_limits

PRO = rate_limits.PLAN_RATES["pro"]


@dataclass
class EmulatorConfig:
    client_id: str = "dev-client-id"
    client_secret: str = "dev-client-secret"
    webhook_secret_token: str = "dev-webhook-secret"
    webhook_url: str | None = None
    # Send meeting.updated / meeting.deleted to webhook_url when a meeting changes (Zoom does so for apps
    # subscribed to the Meetings events, whether the host or an app made the change).
    meeting_events: bool = True
    # Per-account, per-category requests per second (Zoom's Pro plan by default; 0 = unlimited). Every
    # endpoint is charged to the category Zoom's spec labels it with (zoom/rate_limits.py).
    light_per_second: int = PRO["light"]
    medium_per_second: int = PRO["medium"]
    heavy_per_second: int = PRO["heavy"]
    daily_create_update_limit: int = rate_limits.DAILY_CREATE_UPDATE_LIMIT
    # What /oauth/token's `expires_in` says (the token is honoured one second longer, as Zoom's 3599 is).
    access_token_seconds: int = 3599
    seed: int = 7


@dataclass
class FaultRule:
    path: re.Pattern[str]
    kind: str  # error | lost | latency
    method: str | None = None
    rate: float = 1.0
    count: int | None = None  # fire at most this many times (deterministic mode)
    status: int = 503
    latency_ms: int = 0


@dataclass
class Limits:
    light_per_second: int
    medium_per_second: int
    daily: int
    retry_after_format: str = "seconds"  # seconds | date | none
    heavy_per_second: int = PRO["heavy"]

    def per_second(self, category: str) -> int:
        return {"light": self.light_per_second, "medium": self.medium_per_second,
                "heavy": self.heavy_per_second}[category]

    @classmethod
    def of(cls, config: EmulatorConfig) -> Limits:
        return cls(config.light_per_second, config.medium_per_second, config.daily_create_update_limit,
                   heavy_per_second=config.heavy_per_second)


@dataclass
class Emulator:
    config: EmulatorConfig
    world: World = field(default_factory=World)
    faults: list[FaultRule] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    windows: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    daily: dict[tuple[str, str], int] = field(default_factory=dict)
    limits: Limits = field(init=False)
    rng: random.Random = field(init=False)

    events: MeetingEventSender = field(init=False)

    def __post_init__(self) -> None:
        self.events = MeetingEventSender(self.config.webhook_url if self.config.meeting_events else None,
                                         self.config.webhook_secret_token)
        self.limits = Limits.of(self.config)
        self.world.access_token_seconds = self.config.access_token_seconds
        self.rng = random.Random(self.config.seed)


def zoom_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


class LostResponse(Response):
    """Send the status line and headers, then drop the connection before the body: the effect happened,
    the client never learns the result (httpx raises RemoteProtocolError)."""

    def __init__(self) -> None:
        super().__init__(content=b'{"truncated": true, "padding": "' + b"x" * 64 + b'"}', status_code=201,
                         media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[:10], "more_body": True})
        raise ConnectionAbortedError("emulated lost response")


def create_app(config: EmulatorConfig) -> Starlette:
    emu = Emulator(config)

    # -- helpers ----------------------------------------------------------------------------------------

    def log_call(request: Request, operation: str, status: int, user_id: str | None) -> None:
        auth = request.headers.get("authorization", "")
        fingerprint = hashlib.sha256(auth.encode()).hexdigest()[:12] if auth else None
        # token_owner names the user even when the token is dead: "no call with a revoked token" is checkable.
        emu.world.calls.append({"at": iso(emu.world.clock.utcnow()), "method": request.method,
                                "path": request.url.path, "operation": operation, "status": status,
                                "user_id": user_id, "token_fingerprint": fingerprint,
                                "token_owner": emu.world.token_owner(auth.partition(" ")[2])})
        emu.world.count(f"{operation}:{status}")

    async def apply_faults(request: Request) -> Response | str | None:
        """Latency and error faults answer here; 'lost' is returned as a marker to apply after the effect."""
        outcome: Response | str | None = None
        for rule in emu.faults:
            if rule.method and rule.method != request.method:
                continue
            if not rule.path.search(request.url.path):
                continue
            if rule.count is not None and rule.count <= 0:
                continue
            if emu.rng.random() >= rule.rate:
                continue
            if rule.count is not None:
                rule.count -= 1
            emu.world.count(f"fault:{rule.kind}")
            if rule.kind == "delay_after":
                continue  # applied after the effect, see api()
            if rule.kind == "latency":
                await asyncio.sleep(rule.latency_ms / 1000)
            elif rule.kind == "error" and outcome is None:
                outcome = zoom_error(rule.status, rule.status, "Internal Error (emulated)") if rule.status != 502 \
                    else Response(b"<html>Bad Gateway</html>", status_code=502, media_type="text/html")
            elif rule.kind == "lost" and outcome is None:
                outcome = "lost"
        return outcome

    def rate_limited(user: User, operation: str) -> Response | None:
        now = emu.world.clock.now()
        # One budget per (account, category): the create and the list both spend the account's Medium budget.
        category = rate_limits.category(operation)
        per_second = emu.limits.per_second(category)
        window = emu.windows.setdefault((user.account_id, category), deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if per_second > 0 and len(window) >= per_second:
            emu.world.count("429:per_second")
            return zoom_error(429, 429, "You have reached the maximum per-second rate limit for this API. Try again later.",
                              _limit_headers(category.capitalize(), "QPS", per_second, 0, retry_seconds=1))
        if operation in ("create_meeting", "update_meeting") and emu.limits.daily > 0:
            day = emu.world.clock.utcnow().strftime("%Y-%m-%d")
            used = emu.daily.get((user.id, day), 0)
            if used >= emu.limits.daily:
                emu.world.count("429:daily")
                reset = next_utc_midnight(emu.world.clock.utcnow())
                return zoom_error(
                    429, 429, f"You have exceeded the daily rate limit of ({emu.limits.daily}) for Create/Update "
                    "meeting API requests for the user.",
                    _limit_headers("Medium", "Daily-limit", emu.limits.daily, 0, retry_at=reset))
            emu.daily[(user.id, day)] = used + 1
        if per_second > 0:
            window.append(now)
        return None

    def _limit_headers(category: str, kind: str, limit: int, remaining: int, *, retry_seconds: int | None = None,
                       retry_at: datetime | None = None) -> dict[str, str]:
        headers = {"X-RateLimit-Category": category, "X-RateLimit-Type": kind, "X-RateLimit-Limit": str(limit),
                   "X-RateLimit-Remaining": str(remaining)}
        fmt = emu.limits.retry_after_format
        if fmt != "none":
            if retry_at is None:
                retry_at = datetime.fromtimestamp(emu.world.clock.now() + (retry_seconds or 1), tz=emu.world.clock.utcnow().tzinfo)
            if fmt == "date":
                headers["Retry-After"] = retry_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            else:
                headers["Retry-After"] = str(max(1, int(retry_at.timestamp() - emu.world.clock.now() + 0.999)))
        return headers

    def api(operation: str, handler: Callable[[Request, Grant, User], Awaitable[Response]]):  # type: ignore[no-untyped-def]
        async def endpoint(request: Request) -> Response:
            fault = await apply_faults(request)
            if isinstance(fault, Response):
                log_call(request, operation, fault.status_code, None)
                return fault
            async with emu.lock:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                grant = emu.world.grant_for_access(token) if scheme.lower() == "bearer" else None
                if grant is None:
                    response: Response = zoom_error(401, 124, "Invalid access token.")
                    log_call(request, operation, 401, None)
                    return response
                user = emu.world.users[grant.user_id]
                limited = rate_limited(user, operation)
                if limited is not None:
                    log_call(request, operation, 429, user.id)
                    return limited
                response = await handler(request, grant, user)
                delay_after = next((r for r in emu.faults if r.kind == "delay_after" and r.path.search(request.url.path)
                                    and (r.method is None or r.method == request.method)), None)
                if fault == "lost":
                    log_call(request, operation, 0, user.id)
                    return LostResponse()
                log_call(request, operation, response.status_code, user.id)
            if delay_after is not None:
                # The effect is done; hold the answer back (a worker killed now has lost the result).
                await asyncio.sleep(delay_after.latency_ms / 1000)
            return response

        return endpoint

    def meeting_json(m: Meeting) -> dict[str, Any]:
        return {"id": m.id, "uuid": m.uuid, "host_id": m.host_id, "host_email": emu.world.users[m.host_id].email,
                "topic": m.topic, "type": 2, "status": "started" if m.started else "waiting",
                "start_time": m.start_time, "duration": m.duration, "timezone": m.timezone, "agenda": m.agenda,
                "created_at": m.created_at, "start_url": f"https://zoom.example/s/{m.id}?zak=host-secret",
                "join_url": m.join_url, "password": m.password, "h323_password": m.password,
                "pre_schedule": False, "settings": m.settings}

    def owned(meeting_id: str, user: User) -> Meeting | None:
        try:
            m = emu.world.meetings.get(int(meeting_id))
        except ValueError:
            return None
        if m is None or m.deleted_at is not None or m.host_id != user.id:
            return None
        return m

    def has_scope(grant: Grant, *needed: str) -> bool:
        granted = set(grant.scopes.split())
        return any(scope in granted for scope in needed)

    def scope_error(scope: str) -> Response:
        return zoom_error(400, 4711, f"Invalid access token, does not contain scopes:[{scope}].")

    async def form_body(request: Request) -> dict[str, str]:
        # application/x-www-form-urlencoded, parsed here so the emulator needs no multipart library
        return {k: v[0] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        return json.loads(raw)

    # -- REST ---------------------------------------------------------------------------------------------

    async def get_me(request: Request, grant: Grant, user: User) -> Response:
        if not has_scope(grant, "user:read:user", "user:read"):
            return scope_error("user:read:user")
        return JSONResponse({"id": user.id, "email": user.email, "first_name": user.first_name,
                             "last_name": user.last_name, "type": 2, "account_id": user.account_id,
                             "timezone": "UTC", "status": "active", "verified": 1, "role_name": "Owner",
                             "created_at": "2024-01-01T00:00:00Z"})

    async def create_meeting(request: Request, grant: Grant, user: User) -> Response:
        if not has_scope(grant, "meeting:write:meeting", "meeting:write"):
            return scope_error("meeting:write:meeting")
        try:
            body = await json_body(request)
        except ValueError:
            return zoom_error(400, 300, "Request Body should be a valid JSON object.")
        problems = spec.request_errors("create_meeting", body) if isinstance(body, dict) else [{"field": "body", "message": "not an object"}]
        if isinstance(body, dict):
            if len(body.get("topic", "")) > 200:
                problems.append({"field": "topic", "message": "Topic must be at most 200 characters."})
            if len(body.get("agenda", "")) > 2000:
                problems.append({"field": "agenda", "message": "Agenda must be at most 2000 characters."})
        if problems:
            return JSONResponse({"code": 300, "message": "Validation Failed.", "errors": problems}, status_code=400)
        settings = dict(body.get("settings") or {})
        password = body.get("password") or (f"{secrets.randbelow(10**6):06d}" if body.get("default_password", True) else "")
        # Zoom forces a waiting room on meetings with neither passcode nor authentication.
        waiting_room = bool(settings.get("waiting_room", False)) or not password
        meeting_id = emu.world.new_meeting_id()
        pwd = base64.urlsafe_b64encode(hashlib.sha256(f"{meeting_id}{password}".encode()).digest()[:16]).decode().rstrip("=")
        m = Meeting(
            id=meeting_id, uuid=base64.b64encode(uuid.uuid4().bytes).decode(), host_id=user.id,
            topic=body.get("topic", "Zoom Meeting"), agenda=body.get("agenda", ""),
            start_time=_utc(body.get("start_time")) or iso(emu.world.clock.utcnow()),
            duration=int(body.get("duration", 60)), timezone=body.get("timezone", "UTC"), password=password,
            settings={"join_before_host": bool(settings.get("join_before_host", False)), "waiting_room": waiting_room,
                      "auto_recording": settings.get("auto_recording", "local"), "jbh_time": 0,
                      "host_video": False, "participant_video": False},
            created_at=iso(emu.world.clock.utcnow()),
            join_url=f"https://zoom.example/j/{meeting_id}" + (f"?pwd={pwd}" if password else ""),
        )
        emu.world.meetings[m.id] = m
        return JSONResponse(meeting_json(m), status_code=201)

    async def get_meeting(request: Request, grant: Grant, user: User) -> Response:
        if not has_scope(grant, "meeting:read:meeting", "meeting:read"):
            return scope_error("meeting:read:meeting")
        m = owned(request.path_params["meeting_id"], user)
        if m is None:
            return zoom_error(404, 3001, f"Meeting does not exist: {request.path_params['meeting_id']}.")
        return JSONResponse(meeting_json(m))

    async def update_meeting(request: Request, grant: Grant, user: User) -> Response:
        if not has_scope(grant, "meeting:update:meeting", "meeting:write"):
            return scope_error("meeting:update:meeting")
        m = owned(request.path_params["meeting_id"], user)
        if m is None:
            return zoom_error(404, 3001, f"Meeting does not exist: {request.path_params['meeting_id']}.")
        try:
            body = await json_body(request)
        except ValueError:
            return zoom_error(400, 300, "Request Body should be a valid JSON object.")
        problems = spec.request_errors("update_meeting", body) if isinstance(body, dict) else [{"field": "body", "message": "not an object"}]
        if isinstance(body, dict) and (len(body.get("topic", "")) > 200 or len(body.get("agenda", "")) > 2000):
            problems.append({"field": "topic/agenda", "message": "too long"})
        if problems:
            return JSONResponse({"code": 300, "message": "Validation Failed.", "errors": problems}, status_code=400)
        if m.started:
            return zoom_error(400, 3000, "Cannot update or delete a meeting that has started.")
        before = snapshot(m)
        for key in ("topic", "agenda", "duration", "timezone"):
            if key in body:
                setattr(m, key, body[key])
        if "start_time" in body:
            m.start_time = _utc(body["start_time"]) or m.start_time
        if "settings" in body:
            m.settings.update(body["settings"])
        emu.events.send(meeting_updated(m, before, user, user.account_id, int(emu.world.clock.now() * 1000)))
        return Response(status_code=204)

    async def delete_meeting(request: Request, grant: Grant, user: User) -> Response:
        if not has_scope(grant, "meeting:delete:meeting", "meeting:write"):
            return scope_error("meeting:delete:meeting")
        m = owned(request.path_params["meeting_id"], user)
        if m is None:
            return zoom_error(404, 3001, f"Meeting does not exist: {request.path_params['meeting_id']}.")
        if m.started:
            return zoom_error(400, 3000, "Cannot update or delete a meeting that has started.")
        m.deleted_at = iso(emu.world.clock.utcnow())
        emu.events.send(meeting_deleted(m, user, user.account_id, int(emu.world.clock.now() * 1000)))
        return Response(status_code=204)

    async def list_meetings(request: Request, grant: Grant, user: User) -> Response:
        if not has_scope(grant, "meeting:read:list_meetings", "meeting:read"):
            return scope_error("meeting:read:list_meetings")
        try:
            page_size = min(max(int(request.query_params.get("page_size", "30")), 1), 300)
            offset = int(request.query_params.get("next_page_token") or "0", 36) if request.query_params.get("next_page_token") else 0
        except ValueError:
            return zoom_error(400, 300, "Invalid page_size or next_page_token.")
        kind = request.query_params.get("type", "scheduled")
        now = iso(emu.world.clock.utcnow())
        mine = [m for m in sorted(emu.world.meetings.values(), key=lambda m: m.id)
                if m.host_id == user.id and m.deleted_at is None and (kind != "upcoming" or m.start_time >= now[:16])]
        page = mine[offset: offset + page_size]
        more = offset + page_size < len(mine)
        body: dict[str, Any] = {
            "page_size": page_size, "total_records": len(mine), "next_page_token": _b36(offset + page_size) if more else "",
            "meetings": [{"id": m.id, "uuid": m.uuid, "host_id": m.host_id, "topic": m.topic, "type": 2,
                          "start_time": m.start_time, "duration": m.duration, "timezone": m.timezone,
                          "created_at": m.created_at, "join_url": m.join_url, "agenda": m.agenda[:250]} for m in page],
        }
        return JSONResponse(body)

    async def user_token(request: Request, grant: Grant, user: User) -> Response:
        if request.query_params.get("type") != "onbehalf":
            return zoom_error(400, 300, "Invalid token type.")
        if not has_scope(grant, "user:read:token"):
            return scope_error("user:read:token")
        return JSONResponse({"token": f"obf.{secrets.token_urlsafe(24)}"})

    # -- OAuth ----------------------------------------------------------------------------------------------

    async def authorize(request: Request) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") != config.client_id or not redirect_uri:
            return JSONResponse({"error": "invalid_client", "reason": "Invalid client_id or redirect_uri"}, status_code=400)
        if emu.world.deny_next:
            emu.world.deny_next = False
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': q.get('state', '')})}", 302)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "reason": "PKCE S256 required by this app"}, status_code=400)
        code = secrets.token_urlsafe(24)
        emu.world.codes[code] = Code(user_id=emu.world.next_user, redirect_uri=redirect_uri,
                                     code_challenge=q["code_challenge"], scopes=emu.world.next_scopes,
                                     expires_at=emu.world.clock.now() + 300)
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': q.get('state', '')})}", 302)

    def client_ok(request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(client_id, config.client_id) and hmac.compare_digest(secret, config.client_secret)

    async def token(request: Request) -> Response:
        fault = await apply_faults(request)
        if isinstance(fault, Response):
            emu.world.count("oauth_token:fault")
            return fault
        if not client_ok(request):
            return JSONResponse({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}, status_code=401)
        form = await form_body(request)
        async with emu.lock:
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                code = emu.world.codes.get(str(form.get("code", "")))
                if code is None or code.used or code.expires_at < emu.world.clock.now():
                    return JSONResponse({"reason": "Invalid authorization code", "error": "invalid_grant"}, status_code=400)
                code.used = True
                if code.redirect_uri != form.get("redirect_uri"):
                    return JSONResponse({"reason": "Redirect URI mismatch.", "error": "invalid_request"}, status_code=400)
                verifier = str(form.get("code_verifier", ""))
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not hmac.compare_digest(challenge, code.code_challenge):
                    return JSONResponse({"reason": "Invalid code_verifier", "error": "invalid_grant"}, status_code=400)
                grant = emu.world.issue_grant(code.user_id, code.scopes)
                emu.world.count("oauth_token:authorization_code")
            elif grant_type == "refresh_token":
                found = emu.world.grant_for_refresh(str(form.get("refresh_token", "")))
                if found is None:
                    emu.world.count("oauth_token:invalid_grant")
                    return JSONResponse({"reason": "Invalid Token!", "error": "invalid_grant"}, status_code=400)
                # Rotation: the old refresh token dies now; the response carries the only copy of the new one.
                found.refresh_token = f"rt.{secrets.token_urlsafe(32)}"
                found.access_token = f"at.{secrets.token_urlsafe(32)}"
                found.access_expires_at = emu.world.clock.now() + emu.world.access_token_seconds + 1
                found.refreshes += 1
                grant = found
                emu.world.count("oauth_token:refresh")
            else:
                return JSONResponse({"reason": "Unsupported grant type", "error": "unsupported_grant_type"}, status_code=400)
            body = {"access_token": grant.access_token, "token_type": "bearer", "refresh_token": grant.refresh_token,
                    "expires_in": emu.world.access_token_seconds, "scope": grant.scopes}
        if fault == "lost":
            return LostResponse()
        return JSONResponse(body)

    async def revoke(request: Request) -> Response:
        if not client_ok(request):
            return JSONResponse({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}, status_code=401)
        form = await form_body(request)
        value = str(form.get("token") or request.query_params.get("token") or "")
        async with emu.lock:
            for grant in emu.world.grants:
                if value and value in (grant.access_token, grant.refresh_token):
                    grant.alive = False
            emu.world.count("oauth_revoke")
        return JSONResponse({"status": "success"})

    # -- control and inspection -----------------------------------------------------------------------------

    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        body = await json_body(request) if request.method == "POST" else {}
        world = emu.world
        if action == "meetings":
            return JSONResponse([{**meeting_json(m), "deleted": m.deleted_at is not None, "deleted_at": m.deleted_at,
                                  "started": m.started} for m in world.meetings.values()])
        if action == "calls":
            return JSONResponse(world.calls)
        if action == "grants":
            # Which authorizations are still alive (after revokes, deauthorizations, re-authorizations);
            # fingerprints, never the tokens.
            return JSONResponse([{"user_id": g.user_id, "alive": g.alive, "scopes": g.scopes,
                                  "access_fingerprint": hashlib.sha256(g.access_token.encode()).hexdigest()[:12]}
                                 for g in world.grants])
        if action == "webhook-deliveries":
            return JSONResponse(emu.events.delivered)
        if action == "counters":
            refreshes = sum(g.refreshes for g in world.grants)
            return JSONResponse({**world.counters, "token_refreshes": refreshes})
        if action == "reset":
            emu.world = World(access_token_seconds=config.access_token_seconds)
            emu.faults.clear()
            emu.windows.clear()
            emu.daily.clear()
            emu.events.delivered.clear()
            emu.limits = Limits.of(config)
            return JSONResponse({"status": "reset"})
        if action == "clock":
            world.clock.offset += float(body.get("advance_seconds", 0))
            return JSONResponse({"now": iso(world.clock.utcnow())})
        if action == "users":
            world.add_user(User(id=body["id"], email=body["email"], account_id=body.get("account_id", body["id"])))
            return JSONResponse({"status": "added"})
        if action == "consent":
            world.next_user = body.get("user_id", world.next_user)
            world.next_scopes = body.get("scopes", world.next_scopes)
            world.deny_next = bool(body.get("deny", False))
            return JSONResponse({"next_user": world.next_user, "scopes": world.next_scopes, "deny": world.deny_next})
        if action == "faults":
            emu.faults = [FaultRule(path=re.compile(r.get("path", ".*")), kind=r["kind"], method=r.get("method"),
                                    rate=float(r.get("rate", 1.0)), count=r.get("count"), status=int(r.get("status", 503)),
                                    latency_ms=int(r.get("latency_ms", 0))) for r in body.get("rules", [])]
            if "seed" in body:
                emu.rng = random.Random(body["seed"])
            return JSONResponse({"rules": len(emu.faults)})
        if action == "limits":
            emu.limits = Limits(int(body.get("light_per_second", emu.limits.light_per_second)),
                                int(body.get("medium_per_second", emu.limits.medium_per_second)),
                                int(body.get("daily", emu.limits.daily)),
                                body.get("retry_after_format", emu.limits.retry_after_format),
                                heavy_per_second=int(body.get("heavy_per_second", emu.limits.heavy_per_second)))
            if "access_token_seconds" in body:
                # Tokens issued from now on (code exchange and refresh) say and live this long.
                world.access_token_seconds = int(body["access_token_seconds"])
            return JSONResponse({**vars(emu.limits), "access_token_seconds": world.access_token_seconds})
        if action == "edit-meeting":
            m = world.meetings.get(int(body["id"]))
            if m is None:
                return JSONResponse({"error": "unknown meeting"}, status_code=404)
            host = world.users.get(m.host_id)
            account_id = host.account_id if host else m.host_id
            now_ms = int(world.clock.now() * 1000)
            before = snapshot(m)
            was_deleted = m.deleted_at is not None
            if body.get("delete"):
                m.deleted_at = iso(world.clock.utcnow())
            for key in ("topic", "start_time", "duration", "started"):
                if key in body:
                    setattr(m, key, body[key])
            if body.get("regenerate_join_url"):
                m.join_url = f"https://zoom.example/j/{m.id}?pwd={secrets.token_urlsafe(12)}"
            if body.get("notify", True):  # "notify": false edits silently, as if the webhook were lost
                if m.deleted_at is not None and not was_deleted:
                    emu.events.send(meeting_deleted(m, host, account_id, now_ms))
                elif m.deleted_at is None:
                    emu.events.send(meeting_updated(m, before, host, account_id, now_ms))
            return JSONResponse({"status": "edited"})
        if action == "webhooks":
            return await send_webhook(body)
        return JSONResponse({"error": f"unknown control action {action}"}, status_code=404)

    async def send_webhook(body: dict[str, Any]) -> Response:
        url = body.get("url") or config.webhook_url
        if not url:
            return JSONResponse({"error": "no webhook URL configured"}, status_code=400)
        event = body.get("event", "app_deauthorized")
        now_ms = int(emu.world.clock.now() * 1000)
        if event == "app_deauthorized":
            user_id = body.get("user_id") or emu.world.next_user
            user = emu.world.users.get(user_id)
            async with emu.lock:
                for grant in emu.world.grants:
                    if grant.user_id == user_id:
                        grant.alive = False
            payload = {"account_id": user.account_id if user else "unknown", "user_id": user_id,
                       "signature": hashlib.sha256(f"{user_id}{now_ms}".encode()).hexdigest(),
                       "deauthorization_time": iso(emu.world.clock.utcnow()), "client_id": config.client_id}
        else:
            payload = {"account_id": "acct-1", "operator": "host@example.com",
                       "object": {"id": body.get("meeting_id"), "uuid": "x", "host_id": emu.world.next_user, "topic": "", "type": 2}}
        timestamp = str(int(body.get("timestamp") or time.time()))
        secret = body.get("secret") or config.webhook_secret_token
        response = await post_signed(url, secret, {"event": event, "event_ts": now_ms, "payload": payload},
                                     timestamp=timestamp)
        return JSONResponse({"status": response.status_code, "body": response.text[:500]})

    routes = [
        Route("/oauth/authorize", authorize, methods=["GET"]),
        Route("/oauth/token", token, methods=["POST"]),
        Route("/oauth/revoke", revoke, methods=["POST"]),
        Route("/v2/users/me", api("get_user", get_me), methods=["GET"]),
        Route("/v2/users/me/meetings", api("create_meeting", create_meeting), methods=["POST"]),
        Route("/v2/users/me/meetings", api("list_meetings", list_meetings), methods=["GET"]),
        Route("/v2/users/me/token", api("get_user_token", user_token), methods=["GET"]),
        Route("/v2/meetings/{meeting_id}", api("get_meeting", get_meeting), methods=["GET"]),
        Route("/v2/meetings/{meeting_id}", api("update_meeting", update_meeting), methods=["PATCH"]),
        Route("/v2/meetings/{meeting_id}", api("delete_meeting", delete_meeting), methods=["DELETE"]),
        Route("/_emulator/{action}", control, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emu
    return app


def _utc(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # wall-clock time in `timezone`; the product always sends UTC with Z
    return iso(parsed)


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if number == 0:
            return out


def config_from_env() -> EmulatorConfig:
    return EmulatorConfig(
        client_id=os.environ.get("ZOOM_CLIENT_ID") or "dev-client-id",
        client_secret=os.environ.get("ZOOM_CLIENT_SECRET") or "dev-client-secret",
        webhook_secret_token=os.environ.get("ZOOM_WEBHOOK_SECRET_TOKEN") or "dev-webhook-secret",
        webhook_url=os.environ.get("ZOOM_EMULATOR_WEBHOOK_URL") or None,
    )


def serve(host: str, port: int, config: EmulatorConfig) -> None:
    import uvicorn

    print(f"Zoom emulator on http://{host}:{port} (API /v2, OAuth /oauth, inspection /_emulator)", flush=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
