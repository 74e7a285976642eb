"""Issue 13 (API half), each attack replayed against the real API over HTTP, now failing: a deauthorization
whose purge fails is redelivered until the data is gone; connect refuses return URLs off the allow-list; a
reconnect and a failed get_me leave no grant alive at Zoom; /readyz names no internals; /docs is off."""

from __future__ import annotations

import json
import time

import httpx
import psycopg

from ratio_zoom.connections.repository import load_connection
from ratio_zoom.zoom.webhooks import sign
from tests.integration.conftest import RETURN, TOKEN, Api, ws

ZOOM_USER = "z8yCxjabR7qYD9Yc7ScTLA"
FULL_SCOPES = ("meeting:write:meeting meeting:update:meeting meeting:delete:meeting meeting:read:meeting "
               "meeting:read:list_meetings user:read:user")


def _deauthorization(user_id: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps({"event": "app_deauthorized", "event_ts": int(time.time() * 1000),
                      "payload": {"user_id": user_id, "account_id": "acct-1", "signature": "x", "client_id": "c",
                                  "deauthorization_time": "2026-12-02T00:00:00Z"}}).encode()
    stamp = str(int(time.time()))
    return raw, {"x-zm-request-timestamp": stamp, "x-zm-signature": sign("test-webhook-secret", stamp, raw),
                 "content-type": "application/json"}


async def _secrets_stored(api: Api, workspace: str) -> bool:
    async with api.services.db.sessions() as session:
        row = await load_connection(session, workspace)
    assert row is not None
    return any(v is not None for v in (row.access_token_enc, row.refresh_token_enc, row.zoom_user_id_enc,
                                       row.zoom_email_enc, row.zoom_user_id_hash, row.zoom_account_id_enc,
                                       row.zoom_account_hash))


async def test_a_failed_deauthorization_purge_is_redelivered_until_the_data_is_gone(api: Api, fresh_pg_url: str) -> None:
    """The attack: the purge failed once, Zoom's redelivery got 200 "duplicate delivery ignored", and the
    tokens, Zoom email and user ID stayed stored for good."""
    workspace = ws()
    await api.browser((await api.connect(workspace)).json()["authorize_url"])
    raw, headers = _deauthorization(ZOOM_USER)
    # A real database fault: while this constraint stands, no row can become 'disconnected'.
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE zoom_connections ADD CONSTRAINT purge_blocked CHECK (status <> 'disconnected') NOT VALID")
    try:
        for _ in range(2):  # Zoom redelivers after each 5xx; each attempt fails the same way
            failed = await api.http.post(f"{api.base}/v1/webhooks/zoom", content=raw, headers=headers)
            assert failed.status_code == 503, failed.text
            assert "duplicate" not in failed.text
            assert await _secrets_stored(api, workspace)
    finally:
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE zoom_connections DROP CONSTRAINT purge_blocked")
    done = await api.http.post(f"{api.base}/v1/webhooks/zoom", content=raw, headers=headers)
    assert done.status_code == 200 and done.json() == {"status": "deauthorized", "workspaces": 1}
    assert not await _secrets_stored(api, workspace)
    status = await api.status(workspace)
    assert status["status"] == "disconnected" and status["zoom_email"] is None and status["zoom_user_id"] is None
    again = await api.http.post(f"{api.base}/v1/webhooks/zoom", content=raw, headers=headers)
    assert again.status_code == 200 and "duplicate" in again.json()["status"]  # remembered once purged


async def test_connect_redirects_only_to_allowed_origins(api: Api) -> None:
    """The attack: any http(s) return_url was accepted, so the OAuth callback redirected a browser anywhere."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    refused = ["https://evil.example/settings", "http://ratio.example/settings",  # foreign; plain http
               "https://ratio.example.evil.example/x", "https://evil.example/?https://ratio.example",
               "https://ratio.example@evil.example/", "https://ratio.example:8443/settings",
               "http://localhost:4000/", "https:/\\evil.example", "javascript:alert(1)"]
    for url in refused:
        answer = await api.http.post(f"{api.base}/v1/workspaces/{ws()}/zoom/connect", headers=headers,
                                     json={"actor_id": "u1", "actor_role": "owner", "return_url": url})
        assert answer.status_code == 422, (url, answer.text)
    for url in (RETURN, "https://RATIO.example:443/other?x=1", "http://localhost:3000/done"):
        answer = await api.http.post(f"{api.base}/v1/workspaces/{ws()}/zoom/connect", headers=headers,
                                     json={"actor_id": "u1", "actor_role": "owner", "return_url": url})
        assert answer.status_code == 200, (url, answer.text)


async def test_a_reconnect_with_another_zoom_user_revokes_the_old_grant(api: Api) -> None:
    """The attack: a reconnect overwrote the old tokens without revoking them: the grant stayed alive at Zoom
    with nobody holding it. A reconnect by the same user must not revoke (Zoom already ended that grant, and a
    revoke would de-authorize the app for the user, new grant included)."""
    workspace, other = ws(), f"zu-{ws()}"
    await api.emulator.add_user(other, f"{other}@example.com")
    await api.browser((await api.connect(workspace)).json()["authorize_url"])
    first = [g for g in await api.emulator.grants() if g["user_id"] == ZOOM_USER][-1]
    assert first["alive"]
    await api.emulator.set_next_consent(user_id=other, scopes=FULL_SCOPES)
    try:
        landed, _ = await api.browser((await api.connect(workspace)).json()["authorize_url"])
    finally:
        await api.emulator.set_next_consent(user_id=ZOOM_USER, scopes=FULL_SCOPES)
    assert landed.headers["location"] == f"{RETURN}?zoom=connected"
    grants = await api.emulator.grants()
    old = next(g for g in grants if g["access_fingerprint"] == first["access_fingerprint"])
    assert old["alive"] is False  # revoked at Zoom
    assert [g["alive"] for g in grants if g["user_id"] == other] == [True]
    assert (await api.status(workspace))["zoom_user_id"] == other

    # The same user authorizing again: Zoom replaces the grant itself; we do not revoke the new one.
    revokes = (await api.emulator.counters()).get("oauth_revoke", 0)
    await api.emulator.set_next_consent(user_id=other, scopes=FULL_SCOPES)
    try:
        await api.browser((await api.connect(workspace)).json()["authorize_url"])
    finally:
        await api.emulator.set_next_consent(user_id=ZOOM_USER, scopes=FULL_SCOPES)
    assert (await api.emulator.counters()).get("oauth_revoke", 0) == revokes
    assert [g["alive"] for g in await api.emulator.grants() if g["user_id"] == other][-1] is True
    assert (await api.status(workspace))["status"] == "connected"


async def test_tokens_are_revoked_when_get_me_fails_after_the_code_exchange(api: Api) -> None:
    """The attack: a failed get_me after the code exchange dropped the new tokens without revoking them."""
    user = f"zu-{ws()}"
    await api.emulator.add_user(user, f"{user}@example.com")
    await api.emulator.set_next_consent(user_id=user, scopes=FULL_SCOPES)
    await api.emulator.set_faults([{"path": "^/v2/users/me$", "kind": "error", "status": 403, "count": 1}])
    workspace = ws()
    try:
        landed, _ = await api.browser((await api.connect(workspace)).json()["authorize_url"])
    finally:
        await api.emulator.set_faults([])
        await api.emulator.set_next_consent(user_id=ZOOM_USER, scopes=FULL_SCOPES)
    assert landed.headers["location"] == f"{RETURN}?zoom=error&reason=zoom_unavailable"
    assert (await api.status(workspace))["status"] == "disconnected"
    grants = [g for g in await api.emulator.grants() if g["user_id"] == user]
    assert len(grants) == 1 and grants[0]["alive"] is False


async def test_readyz_names_no_internals_and_docs_are_off(api: Api) -> None:
    ready = await api.http.get(f"{api.base}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    for path in ("/docs", "/redoc"):
        assert (await api.http.get(f"{api.base}{path}")).status_code == 404
    schema = await api.http.get(f"{api.base}/openapi.json")
    assert schema.status_code == 200 and "/v1/workspaces/{workspace_id}/zoom/connect" in schema.json()["paths"]
    assert not any(p.startswith("/codec") for p in schema.json()["paths"])


async def test_readyz_with_the_database_down_says_unreachable_and_nothing_more(api: Api) -> None:
    from fastapi import FastAPI

    from ratio_zoom.connections.service import ConnectionService
    from ratio_zoom.connections.services import Services
    from ratio_zoom.core.threaded_server import serving
    from ratio_zoom.emulators.zoom_server.testing import free_port
    from ratio_zoom.http_api.server import create_app

    # A database nobody listens on: the connection error's class (OperationalError) must not reach the caller.
    settings = api.services.settings.model_copy(update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/x"})
    services = Services.create(settings, pooled=False)
    app: FastAPI = create_app(services, ConnectionService(services.db, services.vault, services.oauth, services.zoom))
    with serving(app, free_port()) as base:
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"{base}/readyz")
    await services.aclose()
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "checks": {"database": "unreachable"}}
