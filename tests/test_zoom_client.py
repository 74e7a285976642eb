"""The typed Zoom client against the emulator over real HTTP: every documented error is classified,
the start URL never reaches a model, pagination is followed, OAuth rotates; plus spec conformance."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr

from ratio_zoom.emulators.zoom_server import spec
from ratio_zoom.emulators.zoom_server.app import EmulatorConfig
from ratio_zoom.emulators.zoom_server.testing import ZoomEmulatorHandle, running_zoom_emulator
from ratio_zoom.zoom import errors as z
from ratio_zoom.zoom.client import ZoomClient
from ratio_zoom.zoom.models import MeetingSettings, MeetingWrite
from ratio_zoom.zoom.oauth import ZoomOAuth, missing_scopes, new_pkce_pair
from ratio_zoom.zoom.webhooks import WebhookSignatureError, sign, url_validation_response, verify_signature

REDIRECT = "http://127.0.0.1:1/callback"


@pytest.fixture
async def emu() -> AsyncIterator[ZoomEmulatorHandle]:
    async with running_zoom_emulator(EmulatorConfig(client_id="cid", client_secret="csecret")) as handle:
        yield handle


def oauth_for(emu: ZoomEmulatorHandle) -> ZoomOAuth:
    return ZoomOAuth(emu.oauth_base_url, "cid", SecretStr("csecret"), REDIRECT)


async def authorize(emu: ZoomEmulatorHandle) -> tuple[ZoomOAuth, str, str]:
    oauth = oauth_for(emu)
    verifier, challenge = new_pkce_pair()
    async with httpx.AsyncClient() as http:
        response = await http.get(oauth.authorize_url("st", challenge))
    code = httpx.URL(response.headers["location"]).params["code"]
    tokens = await oauth.exchange_code(code, verifier)
    return oauth, tokens.access_token.get_secret_value(), tokens.refresh_token.get_secret_value()


def body(**overrides: object) -> MeetingWrite:
    values: dict[str, object] = dict(
        topic="Intro", agenda="hello", type=2, start_time=datetime.now(timezone.utc) + timedelta(days=1),
        duration=30, timezone="Europe/Berlin", default_password=True,
        settings=MeetingSettings(join_before_host=True, waiting_room=False, auto_recording="none"))
    values.update(overrides)
    return MeetingWrite(**values)  # type: ignore[arg-type]


async def test_meeting_crud_and_the_start_url_is_dropped_at_the_edge(emu: ZoomEmulatorHandle) -> None:
    _, token, _ = await authorize(emu)
    async with ZoomClient(emu.api_base_url) as zoom:
        me = await zoom.get_me(token)
        meeting = await zoom.create_meeting(token, body())
        assert meeting.password and "pwd=" in meeting.join_url
        assert meeting.settings and meeting.settings.waiting_room is False and meeting.settings.auto_recording == "none"
        assert not hasattr(meeting, "start_url") and "start_url" not in meeting.model_dump()
        assert meeting.join_url not in repr(meeting) and meeting.password not in repr(meeting)
        await zoom.update_meeting(token, meeting.id, MeetingWrite(duration=45))
        assert (await zoom.get_meeting(token, meeting.id)).duration == 45
        await zoom.delete_meeting(token, meeting.id)
        with pytest.raises(z.MeetingNotFound):
            await zoom.delete_meeting(token, meeting.id)
        with pytest.raises(z.MeetingNotFound):
            await zoom.update_meeting(token, meeting.id, MeetingWrite(duration=50))
    assert me.email == "host@example.com"


async def test_list_follows_next_page_token(emu: ZoomEmulatorHandle) -> None:
    _, token, _ = await authorize(emu)
    async with ZoomClient(emu.api_base_url) as zoom:
        created = {(await zoom.create_meeting(token, body(topic=f"m{i}"))).id for i in range(7)}
        listed = [m.id async for m in zoom.list_meetings(token, page_size=3)]
    assert set(listed) == created and len(listed) == 7
    pages = [c for c in await emu.calls() if c["operation"] == "list_meetings"]
    assert len(pages) == 3


async def test_error_classification(emu: ZoomEmulatorHandle) -> None:
    _, token, _ = await authorize(emu)
    async with ZoomClient(emu.api_base_url) as zoom:
        with pytest.raises(z.AccessTokenInvalid) as expired:
            await zoom.get_me("at.not-a-token")
        assert expired.value.code == 124 and "not-a-token" not in str(expired.value)
        with pytest.raises(z.BadRequest) as bad:
            await zoom.create_meeting(token, MeetingWrite.model_construct(topic="x" * 300, type=2, duration=30))
        assert bad.value.code == 300
        meeting = await zoom.create_meeting(token, body())
        await emu.edit_meeting_in_zoom(meeting.id, started=True)
        with pytest.raises(z.MeetingInProgress) as started:
            await zoom.delete_meeting(token, meeting.id)
        assert started.value.code == 3000
        await emu.set_faults([{"path": "^/v2/users/me$", "kind": "error", "status": 503, "count": 1}])
        with pytest.raises(z.ZoomServerError):
            await zoom.get_me(token)
        await emu.set_faults([{"path": "^/v2/users/me$", "kind": "error", "status": 502, "count": 1}])
        with pytest.raises(z.ZoomServerError):
            await zoom.get_me(token)


async def test_missing_scope_is_a_permission_problem(emu: ZoomEmulatorHandle) -> None:
    await emu.set_next_consent(scopes="user:read:user meeting:read:meeting")
    _, token, _ = await authorize(emu)
    async with ZoomClient(emu.api_base_url) as zoom:
        with pytest.raises(z.PermissionProblem) as problem:
            await zoom.create_meeting(token, body())
        with pytest.raises(z.PermissionProblem):
            await zoom.get_on_behalf_token(token)
    assert problem.value.code == 4711
    assert missing_scopes(frozenset({"user:read:user", "meeting:read:meeting"})) == [
        "meeting:delete:meeting", "meeting:read:list_meetings", "meeting:update:meeting", "meeting:write:meeting"]
    assert missing_scopes(frozenset({"meeting:write", "meeting:read", "user:read"})) == []


@pytest.mark.parametrize("fmt", ["seconds", "date", "none"])
async def test_per_second_429_in_every_retry_after_form(emu: ZoomEmulatorHandle, fmt: str) -> None:
    _, token, _ = await authorize(emu)
    await emu.set_limits(light_per_second=1, retry_after_format=fmt)
    async with ZoomClient(emu.api_base_url) as zoom:
        await zoom.get_me(token)
        with pytest.raises(z.RateLimited) as limited:
            await zoom.get_me(token)
    assert limited.value.limit_type == "per_second" and limited.value.category == "Light"
    if fmt == "none":
        assert limited.value.retry_after is None
    else:
        assert limited.value.retry_after is not None and 0 <= limited.value.retry_after <= 2


async def test_daily_limit_waits_until_midnight_utc(emu: ZoomEmulatorHandle) -> None:
    _, token, _ = await authorize(emu)
    await emu.set_limits(daily=2, retry_after_format="date")
    async with ZoomClient(emu.api_base_url) as zoom:
        await zoom.create_meeting(token, body())
        await zoom.create_meeting(token, body())
        with pytest.raises(z.RateLimited) as limited:
            await zoom.create_meeting(token, body())
    now = datetime.now(timezone.utc)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    assert limited.value.limit_type == "daily"
    assert abs(limited.value.retry_after - (midnight - now).total_seconds()) < 5


def test_retry_after_parsing_covers_every_form() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    assert z.parse_retry_after("3", now) == 3
    assert z.parse_retry_after("2026-11-24T12:00:30Z", now) == 30
    assert z.parse_retry_after("Tue, 24 Nov 2026 12:01:00 GMT", now) == 60
    assert z.parse_retry_after(None, now) is None and z.parse_retry_after("soon", now) is None


async def test_lost_response_is_a_transport_error_and_the_effect_happened(emu: ZoomEmulatorHandle) -> None:
    _, token, _ = await authorize(emu)
    await emu.set_faults([{"path": "/v2/users/me/meetings", "method": "POST", "kind": "lost", "count": 1}])
    async with ZoomClient(emu.api_base_url) as zoom:
        with pytest.raises(z.ZoomTransportError):
            await zoom.create_meeting(token, body(topic="lost one"))
    assert [m["topic"] for m in await emu.meetings()] == ["lost one"]


async def test_refresh_rotates_and_the_old_refresh_token_dies(emu: ZoomEmulatorHandle) -> None:
    oauth, access, refresh = await authorize(emu)
    rotated = await oauth.refresh(refresh)
    assert rotated.refresh_token.get_secret_value() != refresh
    with pytest.raises(z.InvalidGrant) as dead:
        await oauth.refresh(refresh)
    assert refresh not in str(dead.value)
    async with ZoomClient(emu.api_base_url) as zoom:
        with pytest.raises(z.AccessTokenInvalid):
            await zoom.get_me(access)  # the old access token went with the rotation
        await zoom.get_me(rotated.access_token.get_secret_value())
        await oauth.revoke(rotated.access_token.get_secret_value())
        with pytest.raises(z.AccessTokenInvalid):
            await zoom.get_me(rotated.access_token.get_secret_value())


async def test_a_second_authorization_by_the_same_user_kills_the_first_grant(emu: ZoomEmulatorHandle) -> None:
    oauth, _, first_refresh = await authorize(emu)
    await authorize(emu)
    with pytest.raises(z.InvalidGrant):
        await oauth.refresh(first_refresh)


async def test_pkce_and_codes_are_enforced(emu: ZoomEmulatorHandle) -> None:
    oauth = oauth_for(emu)
    verifier, challenge = new_pkce_pair()
    assert base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode() == challenge
    async with httpx.AsyncClient() as http:
        code = httpx.URL((await http.get(oauth.authorize_url("s", challenge))).headers["location"]).params["code"]
    with pytest.raises(z.InvalidGrant):
        await oauth.exchange_code(code, "wrong-verifier")
    with pytest.raises(z.InvalidGrant):
        await oauth.exchange_code(code, verifier)  # single use, even after a failed attempt
    with pytest.raises(z.OAuthError) as wrong_client:
        await ZoomOAuth(emu.oauth_base_url, "cid", SecretStr("nope"), REDIRECT).refresh("x")
    assert wrong_client.value.error == "invalid_client" and "nope" not in repr(wrong_client.value)


def test_webhook_signature_rules() -> None:
    secret, body_bytes, ts = "s3cret", b'{"event":"app_deauthorized"}', str(int(time.time()))
    good = sign(secret, ts, body_bytes)
    verify_signature(secret, ts, body_bytes, good)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(secret, ts, body_bytes + b" ", good)
    with pytest.raises(WebhookSignatureError, match="window"):
        old = str(int(time.time()) - 301)
        verify_signature(secret, old, body_bytes, sign(secret, old, body_bytes))
    with pytest.raises(WebhookSignatureError, match="missing"):
        verify_signature(secret, None, body_bytes, good)
    answer = url_validation_response(secret, "plain")
    assert answer["plainToken"] == "plain" and len(answer["encryptedToken"]) == 64


async def test_emulator_responses_conform_to_zooms_spec(emu: ZoomEmulatorHandle) -> None:
    _, token, _ = await authorize(emu)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=emu.api_base_url, headers=headers) as http:
        created = await http.post("/users/me/meetings", json=body().to_json())
        meeting_id = created.json()["id"]
        samples = [
            ("create_meeting", "201", created),
            ("get_meeting", "200", await http.get(f"/meetings/{meeting_id}")),
            ("list_meetings", "200", await http.get("/users/me/meetings", params={"page_size": 1})),
            ("get_user", "200", await http.get("/users/me")),
            ("get_user_token", "200", await http.get("/users/me/token", params={"type": "onbehalf"})),
        ]
        for operation, status, response in samples:
            assert str(response.status_code) == status
            assert spec.response_errors(operation, status, response.json()) == [], operation
        for operation, payload in [("create_meeting", body().to_json()), ("update_meeting", {"duration": 10})]:
            assert spec.request_errors(operation, payload) == []
        assert spec.request_errors("create_meeting", {"type": 99})


def test_rate_limit_categories_come_from_zooms_spec_labels() -> None:
    from ratio_zoom.zoom.rate_limits import category

    # Zoom labels both POST and GET /users/{userId}/meetings MEDIUM; the single-meeting calls LIGHT.
    assert {e: category(e) for e in ("create_meeting", "list_meetings")} == {"create_meeting": "medium",
                                                                            "list_meetings": "medium"}
    assert {category(e) for e in ("get_meeting", "update_meeting", "delete_meeting", "get_me", "get_user_token")} == {"light"}


async def test_create_and_list_share_one_medium_budget_per_account(emu: ZoomEmulatorHandle) -> None:
    _, token, _ = await authorize(emu)
    await emu.set_limits(medium_per_second=1, light_per_second=0)
    async with ZoomClient(emu.api_base_url) as zoom:
        meeting = await zoom.create_meeting(token, body())
        with pytest.raises(z.RateLimited) as refused:  # the list spends the same Medium budget as the create
            _ = [m async for m in zoom.list_meetings(token)]
        assert refused.value.category == "Medium" and refused.value.limit_type == "per_second"
        assert (await zoom.get_meeting(token, meeting.id)).id == meeting.id  # Light has its own budget


async def test_the_emulator_defaults_to_zooms_pro_limits() -> None:
    config = EmulatorConfig()
    assert (config.light_per_second, config.medium_per_second, config.heavy_per_second) == (30, 20, 10)


async def test_the_emulator_issues_tokens_of_the_lifetime_it_is_told(emu: ZoomEmulatorHandle) -> None:
    await emu.set_limits(access_token_seconds=15)
    oauth, _, refresh_token = await authorize(emu)
    refreshed = await oauth.refresh(refresh_token)
    assert refreshed.expires_in == 15
