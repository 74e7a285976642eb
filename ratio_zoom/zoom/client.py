"""A small typed async client for the Zoom REST API v2 (the meetings and profile endpoints we use).

One pooled `httpx.AsyncClient` with explicit timeouts. The caller passes the access token per call (the
token broker in `activities/` owns tokens); the client never stores, logs or echoes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from ratio_zoom.zoom.errors import (
    DAILY_LIMIT_TYPES,
    AccessTokenInvalid,
    BadRequest,
    MeetingInProgress,
    MeetingNotFound,
    PermissionProblem,
    RateLimited,
    ZoomHTTPError,
    ZoomServerError,
    ZoomTransportError,
    parse_retry_after,
)
from ratio_zoom.zoom.models import Meeting, MeetingPage, MeetingSummary, MeetingWrite, OnBehalfToken, ZoomUser

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=10.0)
MEETING_IN_PROGRESS_CODES = {3000, 3002, 3007}
MISSING_SCOPE_CODE = 4711

# Called after every response (endpoint label, HTTP status or 0 for a transport error): metrics hook.
ResponseObserver = Callable[[str, int], None]


def new_http_client(timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        headers={"User-Agent": "ratio-zoom/0.1"},
    )


def classify_response(response: httpx.Response, endpoint: str, now: datetime | None = None) -> None:
    """Raise the typed error a non-2xx response means; return quietly on 2xx."""
    if response.is_success:
        return
    status = response.status_code
    code, message = _error_body(response)
    if status == 429:
        now = now or datetime.now(timezone.utc)
        limit_type_header = (response.headers.get("X-RateLimit-Type") or "").strip().lower()
        daily = limit_type_header in DAILY_LIMIT_TYPES or "daily" in message.lower()
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        if daily and retry_after is None:
            # The per-user daily create/update quota resets at 00:00 UTC: wait for it, do not spin.
            retry_after = (_next_utc_midnight(now) - now).total_seconds()
        raise RateLimited(
            status, code, message, endpoint,
            retry_after=retry_after,
            limit_type="daily" if daily else "per_second",
            category=response.headers.get("X-RateLimit-Category"),
        )
    if status == 401:
        cls: type[ZoomHTTPError] = AccessTokenInvalid if code in (124, None) else PermissionProblem
        raise cls(status, code, message, endpoint)
    if status == 403 or code == MISSING_SCOPE_CODE:
        raise PermissionProblem(status, code, message, endpoint)
    if code in MEETING_IN_PROGRESS_CODES:
        raise MeetingInProgress(status, code, message, endpoint)
    if status == 404 or code == 3001:
        if "meeting" in endpoint:
            raise MeetingNotFound(status, code, message, endpoint)
        raise PermissionProblem(status, code, message, endpoint)
    if status >= 500:
        raise ZoomServerError(status, code, message, endpoint)
    raise BadRequest(status, code, message, endpoint)


def _error_body(response: httpx.Response) -> tuple[int | None, str]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, (response.reason_phrase or "no error body")
    if not isinstance(body, dict):
        return None, "unexpected error body"
    code = body.get("code")
    message = str(body.get("message") or response.reason_phrase or "")
    return (code if isinstance(code, int) else None), message[:500]


def _next_utc_midnight(now: datetime) -> datetime:
    tomorrow = (now.astimezone(timezone.utc) + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=timezone.utc)


class ZoomClient:
    def __init__(
        self,
        api_base_url: str,
        http: httpx.AsyncClient | None = None,
        *,
        observer: ResponseObserver | None = None,
    ) -> None:
        self._base = api_base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http or new_http_client()
        self._observer = observer

    async def aclose(self) -> None:
        # The shared pool is closed by whoever built it (Services closes it through this client).
        await self._http.aclose()

    async def __aenter__(self) -> ZoomClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- endpoints ------------------------------------------------------------------------------------

    async def get_me(self, token: str) -> ZoomUser:
        response = await self._request("get_me", "GET", "/users/me", token)
        return ZoomUser.model_validate(response.json())

    async def create_meeting(self, token: str, body: MeetingWrite) -> Meeting:
        response = await self._request("create_meeting", "POST", "/users/me/meetings", token, json=body.to_json())
        return Meeting.model_validate(response.json())

    async def get_meeting(self, token: str, meeting_id: int) -> Meeting:
        response = await self._request("get_meeting", "GET", f"/meetings/{int(meeting_id)}", token)
        return Meeting.model_validate(response.json())

    async def update_meeting(self, token: str, meeting_id: int, body: MeetingWrite) -> None:
        payload = body.to_json()
        if not payload:
            raise ValueError("refusing to PATCH a meeting with nothing to change (the daily quota is precious)")
        await self._request("update_meeting", "PATCH", f"/meetings/{int(meeting_id)}", token, json=payload)

    async def delete_meeting(self, token: str, meeting_id: int) -> None:
        """Delete; raises MeetingNotFound when it is already gone (callers count that as done)."""
        await self._request(
            "delete_meeting", "DELETE", f"/meetings/{int(meeting_id)}", token,
            params={"schedule_for_reminder": "false", "cancel_meeting_reminder": "false"},
        )

    async def list_meetings(
        self, token: str, *, meeting_type: str = "upcoming", page_size: int = 300
    ) -> AsyncIterator[MeetingSummary]:
        """Every meeting of the host, following `next_page_token` until the last page."""
        page_token: str | None = None
        while True:
            page = await self.list_meetings_page(token, meeting_type=meeting_type, page_size=page_size,
                                                 next_page_token=page_token)
            for meeting in page.meetings:
                yield meeting
            if not page.next_page_token:
                return
            page_token = page.next_page_token

    async def list_meetings_page(
        self, token: str, *, meeting_type: str = "upcoming", page_size: int = 300, next_page_token: str | None = None
    ) -> MeetingPage:
        """One page of the host's meetings (one request, so a caller can pace each page)."""
        params: dict[str, Any] = {"type": meeting_type, "page_size": page_size}
        if next_page_token:
            params["next_page_token"] = next_page_token
        response = await self._request("list_meetings", "GET", "/users/me/meetings", token, params=params)
        return MeetingPage.model_validate(response.json())

    async def get_on_behalf_token(self, token: str) -> OnBehalfToken:
        response = await self._request(
            "get_user_token", "GET", "/users/me/token", token, params={"type": "onbehalf"}
        )
        return OnBehalfToken.model_validate(response.json())

    # -- plumbing -------------------------------------------------------------------------------------

    async def _request(
        self, endpoint: str, method: str, path: str, token: str, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            response = await self._http.request(method, self._base + path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            self._observe(endpoint, 0)
            raise ZoomTransportError(f"Zoom {endpoint}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            self._observe(endpoint, 0)
            raise ZoomTransportError(f"Zoom {endpoint}: no response ({type(exc).__name__})") from None
        self._observe(endpoint, response.status_code)
        classify_response(response, endpoint)
        return response

    def _observe(self, endpoint: str, status: int) -> None:
        if self._observer is not None:
            self._observer(endpoint, status)
