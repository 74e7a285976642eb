"""The Zoom connection lifecycle through the HTTP API, over real HTTP: the browser flow with redirects,
every failure path, status, disconnect, Marketplace deauthorization, and secrets at rest."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from ratio_zoom.connections.repository import ACCOUNT_HASH_PURPOSE, load_connection, read_secrets
from ratio_zoom.storage.models import OAuthState
from tests.integration.conftest import RETURN, TOKEN, Api, ws
from ratio_zoom.zoom.webhooks import sign

async def test_owner_connects_through_the_browser_flow(api: Api) -> None:
    workspace = ws()
    response = await api.connect(workspace)
    assert response.status_code == 200
    landed, hops = await api.browser(response.json()["authorize_url"])
    assert landed.status_code == 303 and landed.headers["location"] == f"{RETURN}?zoom=connected"
    assert any("/v1/zoom/oauth/callback" in hop for hop in hops)
    status = await api.status(workspace)
    assert status["status"] == "connected" and status["zoom_email"] == "host@example.com"
    assert status["zoom_user_id"] == "z8yCxjabR7qYD9Yc7ScTLA" and status["connected_by"] == "u1"
    assert "meeting:write:meeting" in status["scopes"]


async def test_member_may_not_connect_or_disconnect(api: Api) -> None:
    response = await api.connect(ws(), role="member")
    assert response.status_code == 403 and "owner or admin" in response.json()["detail"]
    response = await api.http.post(f"{api.base}/v1/workspaces/w/zoom/disconnect",
                                   json={"actor_id": "u", "actor_role": "member"},
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 403


async def test_wrong_or_missing_bearer_token_is_refused(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await api.http.get(f"{api.base}/v1/workspaces/w/zoom", headers=headers)
        assert response.status_code == 401


async def test_denied_consent_comes_back_with_a_reason(api: Api) -> None:
    await api.emulator.set_next_consent(deny=True)
    landed, _ = await api.browser((await api.connect(ws())).json()["authorize_url"])
    assert landed.headers["location"] == f"{RETURN}?zoom=error&reason=access_denied"


async def test_missing_scope_is_refused(api: Api) -> None:
    await api.emulator.set_next_consent(scopes="user:read:user meeting:read:meeting")
    workspace = ws()
    landed, _ = await api.browser((await api.connect(workspace)).json()["authorize_url"])
    assert landed.headers["location"] == f"{RETURN}?zoom=error&reason=missing_scope"
    assert (await api.status(workspace))["status"] == "disconnected"


async def test_forged_reused_and_expired_states_are_refused(api: Api) -> None:
    forged = await api.http.get(f"{api.base}/v1/zoom/oauth/callback", params={"code": "x", "state": "forged"})
    assert forged.status_code == 400 and "unknown_state" in forged.text
    missing = await api.http.get(f"{api.base}/v1/zoom/oauth/callback", params={"code": "x"})
    assert missing.status_code == 400 and "missing_state" in missing.text

    authorize = (await api.connect(ws())).json()["authorize_url"]
    first = await api.http.get(authorize)
    callback = first.headers["location"]
    assert (await api.http.get(callback)).status_code == 303
    reused = await api.http.get(callback)
    assert reused.status_code == 400 and "reused_state" in reused.text

    authorize = (await api.connect(ws())).json()["authorize_url"]
    async with api.services.db.transaction() as session:
        await session.execute(update(OAuthState).where(OAuthState.used_at.is_(None)).values(
            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    expired = await api.http.get((await api.http.get(authorize)).headers["location"])
    assert expired.status_code == 400 and "expired_state" in expired.text, expired.headers.get("location")


async def test_oversized_and_malformed_bodies_are_refused(api: Api) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    big = await api.http.post(f"{api.base}/v1/workspaces/w/zoom/connect", content=b"{" + b" " * 70_000 + b"}", headers=headers)
    assert big.status_code == 413
    bad = await api.http.post(f"{api.base}/v1/workspaces/w/zoom/connect", content=b'{"actor_id": 1}', headers=headers)
    assert bad.status_code == 422
    url = await api.http.post(f"{api.base}/v1/workspaces/w/zoom/connect", headers=headers,
                              json={"actor_id": "u", "actor_role": "owner", "return_url": "javascript:alert(1)"})
    assert url.status_code == 422


async def test_disconnect_purges_secrets_and_stops_every_zoom_call(api: Api) -> None:
    workspace = ws()
    await api.browser((await api.connect(workspace)).json()["authorize_url"])
    async with api.services.db.sessions() as session:
        connected = await load_connection(session, workspace)
    assert connected is not None and read_secrets(api.services.vault, connected).zoom_account_id == "acct-1"
    assert connected.zoom_account_hash == api.services.vault.lookup_hash("acct-1", ACCOUNT_HASH_PURPOSE)
    calls_before = len(await api.emulator.calls())
    response = await api.http.post(f"{api.base}/v1/workspaces/{workspace}/zoom/disconnect",
                                   json={"actor_id": "u1", "actor_role": "admin"},
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["status"] == "disconnected"
    status = await api.status(workspace)
    assert status["zoom_email"] is None and status["zoom_user_id"] is None
    async with api.services.db.sessions() as session:
        row = await load_connection(session, workspace)
        assert row is not None and row.access_token_enc is None and row.refresh_token_enc is None
        assert row.zoom_user_id_enc is None and row.zoom_email_enc is None and row.zoom_user_id_hash is None
        assert row.zoom_account_id_enc is None and row.zoom_account_hash is None
    counters = await api.emulator.counters()
    assert counters.get("oauth_revoke", 0) >= 1
    again = await api.http.post(f"{api.base}/v1/workspaces/{workspace}/zoom/disconnect",
                                json={"actor_id": "u1", "actor_role": "admin"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.status_code == 200  # idempotent
    from ratio_zoom.connections.errors import Detached

    with pytest.raises(Detached):
        await api.services.broker.call(workspace, lambda lease: api.services.zoom.get_me(lease.token))
    assert len(await api.emulator.calls()) == calls_before


async def test_webhooks_validation_deauthorization_and_forgery(api: Api) -> None:
    workspace = ws()
    await api.browser((await api.connect(workspace)).json()["authorize_url"])
    url = f"{api.base}/v1/webhooks/zoom"
    secret = "test-webhook-secret"

    def signed(payload: dict, ts: int | None = None, key: str = secret) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(payload).encode()
        stamp = str(ts or int(time.time()))
        return raw, {"x-zm-request-timestamp": stamp, "x-zm-signature": sign(key, stamp, raw),
                     "content-type": "application/json"}

    raw, headers = signed({"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    answer = await api.http.post(url, content=raw, headers=headers)
    assert answer.status_code == 200 and answer.json()["plainToken"] == "abc"

    deauth = {"event": "app_deauthorized", "event_ts": 1, "payload": {"user_id": "z8yCxjabR7qYD9Yc7ScTLA",
              "account_id": "acct-1", "deauthorization_time": "2026-11-24T00:00:00Z", "signature": "x", "client_id": "c"}}
    for forged in (signed(deauth, key="wrong"), signed(deauth, ts=int(time.time()) - 600)):
        assert (await api.http.post(url, content=forged[0], headers=forged[1])).status_code == 401
    assert (await api.status(workspace))["status"] == "connected"

    raw, headers = signed(deauth)
    first = await api.http.post(url, content=raw, headers=headers)
    assert first.status_code == 200 and first.json()["status"] == "deauthorized"
    again = await api.http.post(url, content=raw, headers=headers)
    assert again.status_code == 200 and "duplicate" in again.json()["status"]
    status = await api.status(workspace)
    assert status["status"] == "disconnected" and status["zoom_email"] is None


async def test_database_dump_holds_no_token_or_zoom_email_in_clear(api: Api, fresh_pg_url: str) -> None:
    workspace = ws()
    await api.browser((await api.connect(workspace)).json()["authorize_url"])
    async with api.services.db.sessions() as session:
        from ratio_zoom.connections.repository import load_connection, read_secrets

        secrets = read_secrets(api.services.vault, await load_connection(session, workspace))
    dump = subprocess.run(["pg_dump", "--data-only", fresh_pg_url], capture_output=True, text=True, check=True).stdout
    for clear in (secrets.access_token, secrets.refresh_token, secrets.zoom_email, secrets.zoom_user_id,
                  secrets.zoom_account_id):
        assert clear and clear not in dump
    assert "v1:t1:" in dump  # secrets are stored as vault ciphertexts


async def test_the_emulators_signed_deauthorization_purges_the_connection(api: Api) -> None:
    workspace = ws()
    await api.browser((await api.connect(workspace)).json()["authorize_url"])
    delivered = await api.emulator.send_webhook(event="app_deauthorized", user_id="z8yCxjabR7qYD9Yc7ScTLA",
                                                url=f"{api.base}/v1/webhooks/zoom")
    assert delivered["status"] == 200 and "deauthorized" in delivered["body"]
    status = await api.status(workspace)
    assert status["status"] == "disconnected" and status["reason"] == "deauthorized in the Zoom Marketplace"
