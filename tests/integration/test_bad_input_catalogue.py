"""The bad-input catalogue: hostile or malformed inputs across the Temporal contract, the HTTP API, the
webhooks and the OAuth callback. Each gets a clear rejection; none changes state, leaks a secret, or fails
a workflow task. One table, one test."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from ratio_zoom.contract.appointment import Attendee, Cancel, Consent, Reschedule, UpdateDetails
from starter import BookingRejected
from tests.integration.conftest import CODEC_TOKEN, RETURN, TOKEN, Api, Stack, ws
from tests.integration.test_appointment_lifecycle import booking
from ratio_zoom.recording_bot.webhooks import sign as bot_sign
from ratio_zoom.storage.models import AuditEvent, OAuthState
from ratio_zoom.zoom.webhooks import sign

SECRETS = ("test-internal-token", "test-client-secret", "test-webhook-secret", "test-recall-webhook-secret",
           "test-codec-token")
TWO_MB = b'{"pad":"' + b"p" * (2 * 1024 * 1024) + b'"}'
SOON = (datetime.now(timezone.utc) + timedelta(days=10)).replace(microsecond=0).isoformat()


@dataclass
class Case:
    channel: str
    name: str
    run: Callable[..., Awaitable[str]]  # returns the text of the rejection
    expect: str


def signal_case(name: str, signal: str, message: object, expect: str) -> Case:
    async def run(ctx: dict) -> str:
        await ctx["handle"].signal(signal, message)
        rid = getattr(message, "request_id", "")
        await ctx["handle"].execute_update("await_conference", {"timeout_seconds": 10}, result_type=dict)
        state = await ctx["stack"].appointments.state(ctx["booking"].appointment_id)
        reasons = [r.reason for r in state.rejected_requests if r.request_id == rid]
        return reasons[-1] if reasons else "NOT REJECTED"

    return Case("contract", name, run, expect)


def http_case(name: str, method: str, path: str, expect: str, *, json_body: object = None, content: bytes | None = None,
              headers: dict[str, str] | None = None, chunked: bool = False) -> Case:
    async def run(ctx: dict) -> str:
        api: Api = ctx["api"]
        h = {"Authorization": f"Bearer {TOKEN}", **(headers or {})}
        body: object = content
        if chunked and content is not None:
            async def chunks(data: bytes = content):  # type: ignore[no-untyped-def]
                for i in range(0, len(data), 16 * 1024):  # no Content-Length: the limit must count while reading
                    yield data[i:i + 16 * 1024]
            body = chunks()
        response = await api.http.request(method, f"{api.base}{path}", json=json_body, content=body, headers=h)  # type: ignore[arg-type]
        return f"{response.status_code} {response.text}"

    return Case("http", name, run, expect)


def codec_case(name: str, path: str, expect: str, *, token: str | None) -> Case:
    """The codec attack: the appointment's join URL, encrypted as it sits in the history, posted to the codec
    (or a forgery posted to be encrypted). Without the codec token nothing is decrypted or encrypted."""
    async def run(ctx: dict) -> str:
        from google.protobuf import json_format
        from temporalio.api.common.v1 import Payload, Payloads

        from ratio_zoom.core.payload_codec import EncryptionCodec

        api: Api = ctx["api"]
        ring = api.services.settings.payload_keyring()
        assert ring is not None
        plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(ctx["join_url"]).encode())
        payloads = [plain] if path.endswith("encode") else await EncryptionCodec(ring).encode([plain])
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await api.http.post(f"{api.base}{path}", headers=headers,
                                       content=json_format.MessageToJson(Payloads(payloads=payloads)))
        return f"{response.status_code} {response.text}"

    return Case("codec", name, run, expect)


def plaintext_signal_case(name: str) -> Case:
    """Anyone with Temporal frontend access signals the workflow with an unencrypted (forged) payload: the
    codec refuses it, the SDK drops the signal, the appointment does not change."""
    async def run(ctx: dict) -> str:
        from temporalio.client import Client
        from temporalio.contrib.pydantic import pydantic_data_converter

        stack: Stack = ctx["stack"]
        plain_client = Client(stack.client.service_client, namespace=stack.client.namespace,
                              data_converter=pydantic_data_converter)
        forged = Reschedule(request_id="plaintext-1", start_time=SOON, duration_minutes=77)
        await plain_client.get_workflow_handle(ctx["handle"].id).signal("reschedule", forged)
        await ctx["handle"].execute_update("await_conference", {"timeout_seconds": 10}, result_type=dict)
        state = await stack.appointments.state(ctx["booking"].appointment_id)
        applied = state.appointment.duration_minutes == 77 or any(
            r.request_id == "plaintext-1" for r in state.rejected_requests)
        return "APPLIED" if applied else "plaintext refused"

    return Case("contract", name, run, expect="plaintext refused")


def obf_case(name: str, expect: str, *, expired: bool) -> Case:
    async def run(ctx: dict) -> str:
        from activities.bots import obf_secret

        api: Api = ctx["api"]
        key = f"{ctx['booking'].appointment_id}:recbot:1"
        expires = int(time.time()) + (-60 if expired else 3600)
        secret = obf_secret(api.services.vault, key, expires) if expired else "guessed"
        response = await api.http.get(f"{api.base}/v1/recording-bot/zoom-obf-token",
                                       params={"dispatch_key": key, "expires": str(expires), "secret": secret})
        return f"{response.status_code} {response.text}"

    return Case("http", name, run, expect)


def webhook_case(name: str, payload: dict, expect: str, *, secret: str = "test-webhook-secret", age: int = 0,
                 drop_headers: bool = False, repeat: bool = False) -> Case:
    async def run(ctx: dict) -> str:
        api: Api = ctx["api"]
        raw = json.dumps(payload).encode()
        stamp = str(int(time.time()) - age)
        headers = {} if drop_headers else {"x-zm-request-timestamp": stamp, "x-zm-signature": sign(secret, stamp, raw)}
        response = await api.http.post(f"{api.base}/v1/webhooks/zoom", content=raw, headers=headers)
        if repeat:
            response = await api.http.post(f"{api.base}/v1/webhooks/zoom", content=raw, headers=headers)
        return f"{response.status_code} {response.text}"

    return Case("webhook", name, run, expect)


def callback_case(name: str, params: dict[str, str], expect: str) -> Case:
    async def run(ctx: dict) -> str:
        api: Api = ctx["api"]
        response = await api.http.get(f"{api.base}/v1/zoom/oauth/callback", params=params)
        return f"{response.status_code} {response.text}"

    return Case("oauth", name, run, expect)


def late_case(name: str, kind: str, message: object) -> Case:
    """A message for an appointment that was cancelled and whose workflow has closed: the core app's
    signal-with-start opens a new run, which must refuse it (and never resurrect the meeting)."""
    async def run(ctx: dict) -> str:
        stack: Stack = ctx["stack"]
        cancelled = ctx["cancelled"]
        await getattr(stack.appointments, kind)(cancelled.appointment_id, message, booking=cancelled)
        answer = await stack.appointments.await_conference(cancelled.appointment_id,
                                                           after_request_id=message.request_id, timeout_seconds=20)
        return f"{answer.request_outcome} {answer.reason}"

    return Case("contract", name, run, "cancelled")


def oauth_state_case(name: str, expect: str, *, expire: bool = False) -> Case:
    """A real state from a real connect, then spent (reused) or aged past its ten minutes (expired)."""
    async def run(ctx: dict) -> str:
        api: Api = ctx["api"]
        # A Zoom user of its own: the same user authorizing again would end the catalogue workspace's grant.
        user = f"state-case-{uuid.uuid4().hex[:8]}"
        await api.emulator.add_user(user, f"{user}@example.com")
        await api.emulator.set_next_consent(user_id=user)
        authorize = (await api.connect(ws())).json()["authorize_url"]
        if expire:
            async with api.services.db.transaction() as session:
                await session.execute(update(OAuthState).where(OAuthState.used_at.is_(None)).values(
                    expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        callback = (await api.http.get(authorize)).headers["location"]
        if not expire:
            first = await api.http.get(callback)
            assert first.status_code == 303, first.text
        response = await api.http.get(callback)
        return f"{response.status_code} {response.text}"

    return Case("oauth", name, run, expect)


def bot_webhook_case(name: str, expect: str, *, forged: bool = False, age: int = 0) -> Case:
    async def run(ctx: dict) -> str:
        api: Api = ctx["api"]
        raw = json.dumps({"event": "bot.done", "data": {"data": {"code": "done"},
                                                         "bot": {"id": "b", "metadata": {"appointment_id": "x"}}}}).encode()
        stamp = str(int(time.time()) - age)
        secret = "guessed-secret" if forged else api.services.settings.recording_bot_webhook_secret.get_secret_value()
        headers = {"webhook-id": f"msg_{stamp}", "webhook-timestamp": stamp,
                   "webhook-signature": bot_sign(secret, f"msg_{stamp}", stamp, raw)}
        response = await api.http.post(f"{api.base}/v1/webhooks/recording-bot", content=raw, headers=headers)
        return f"{response.status_code} {response.text}"

    return Case("webhook", name, run, expect)


DEAUTH = {"event": "app_deauthorized", "event_ts": 7, "payload": {"user_id": "nobody-known", "account_id": "a"}}

CATALOGUE: list[Case] = [
    signal_case("start in the past", "reschedule", Reschedule(request_id="b1", start_time="2001-01-01T10:00:00+00:00", duration_minutes=30), "past"),
    signal_case("start ten years ahead", "reschedule", Reschedule(request_id="b2", start_time="2036-01-01T10:00:00+00:00", duration_minutes=30), "three years"),
    signal_case("zero duration", "reschedule", Reschedule(request_id="b3", start_time=SOON, duration_minutes=0), "positive"),
    signal_case("negative duration", "reschedule", Reschedule(request_id="b4", start_time=SOON, duration_minutes=-30), "positive"),
    signal_case("huge duration", "reschedule", Reschedule(request_id="b5", start_time=SOON, duration_minutes=100_000), "24 hours"),
    signal_case("unknown time zone", "reschedule", Reschedule(request_id="b6", start_time=SOON, duration_minutes=30, timezone="Mars/Olympus"), "time zone"),
    signal_case("time zone path traversal", "reschedule", Reschedule(request_id="b7", start_time=SOON, duration_minutes=30, timezone="../../etc/passwd"), "time zone"),
    signal_case("time without offset", "reschedule", Reschedule(request_id="b8", start_time=SOON[:19], duration_minutes=30), "RFC 3339"),
    signal_case("time as prose", "reschedule", Reschedule(request_id="b9", start_time="tomorrow at ten", duration_minutes=30), "RFC 3339"),
    signal_case("empty title", "update_details", UpdateDetails(request_id="b10", title="   "), "empty"),
    signal_case("oversized title", "update_details", UpdateDetails(request_id="b11", title="T" * 201), "limit"),
    signal_case("control characters in title", "update_details", UpdateDetails(request_id="b12", title="a\x00b\x1bc"), "control"),
    signal_case("oversized description", "update_details", UpdateDetails(request_id="b13", description="d" * 20_000), "limit"),
    signal_case("unknown provider", "update_details", UpdateDetails(request_id="b14", conference_provider="skype"), "provider"),
    signal_case("malformed attendee email", "update_details", UpdateDetails(request_id="b15", attendees=[Attendee(name="x", email="x@@y")]), "email"),
    signal_case("header injection in email", "update_details", UpdateDetails(request_id="b16", attendees=[Attendee(name="x", email="a@b.com\nBcc: c@d.com")]), "email"),
    signal_case("too many attendees", "update_details", UpdateDetails(request_id="b17", attendees=[Attendee(name="x", email=f"a{i}@example.com") for i in range(201)]), "attendees"),
    signal_case("nothing to update", "update_details", UpdateDetails(request_id="b18"), "nothing"),
    signal_case("oversized request id", "cancel", Cancel(request_id="r" * 200, actor="u"), "malformed"),
    signal_case("cancel without actor", "cancel", Cancel(request_id="b20"), "actor"),
    signal_case("consent without subject", "consent", Consent(request_id="b21", granted=True, actor="u", channel="web", consent_text_version="v1", occurred_at=SOON), "consent needs"),
    signal_case("consent with a bad timestamp", "consent", Consent(request_id="b22", granted=True, actor="u", subject="s", channel="web", consent_text_version="v1", occurred_at="yesterday"), "occurred_at"),
    signal_case("replayed request id", "reschedule", Reschedule(request_id="good-1", start_time=SOON, duration_minutes=99), "duplicate"),
    http_case("wrong bearer token", "GET", "/v1/workspaces/w/zoom", "401", headers={"Authorization": "Bearer nope"}),
    http_case("member connects", "POST", "/v1/workspaces/w/zoom/connect", "403",
              json_body={"actor_id": "m", "actor_role": "member", "return_url": RETURN}),
    http_case("unknown role", "POST", "/v1/workspaces/w/zoom/connect", "422",
              json_body={"actor_id": "m", "actor_role": "root", "return_url": RETURN}),
    http_case("javascript return URL", "POST", "/v1/workspaces/w/zoom/connect", "422",
              json_body={"actor_id": "m", "actor_role": "owner", "return_url": "javascript:alert(1)"}),
    http_case("oversized JSON body", "POST", "/v1/workspaces/w/zoom/connect", "413",
              content=b'{"actor_id":"' + b"a" * 100_000 + b'"}', headers={"content-type": "application/json"}),
    http_case("return URL on a foreign origin", "POST", "/v1/workspaces/w/zoom/connect", "RETURN_URL_ORIGINS",
              json_body={"actor_id": "m", "actor_role": "owner", "return_url": "https://evil.example/phish"}),
    http_case("return URL over plain http", "POST", "/v1/workspaces/w/zoom/connect", "RETURN_URL_ORIGINS",
              json_body={"actor_id": "m", "actor_role": "owner", "return_url": "http://ratio.example/settings/zoom"}),
    http_case("return URL on a look-alike origin", "POST", "/v1/workspaces/w/zoom/connect", "RETURN_URL_ORIGINS",
              json_body={"actor_id": "m", "actor_role": "owner", "return_url": "https://ratio.example.evil.example/"}),
    http_case("2 MB chunked body to connect", "POST", "/v1/workspaces/w/zoom/connect", "413", content=TWO_MB,
              chunked=True, headers={"content-type": "application/json"}),
    http_case("2 MB chunked body to the Zoom webhook", "POST", "/v1/webhooks/zoom", "413", content=TWO_MB, chunked=True),
    http_case("2 MB chunked body to the bot webhook", "POST", "/v1/webhooks/recording-bot", "413", content=TWO_MB,
              chunked=True),
    http_case("2 MB chunked body to the codec", "POST", "/codec/decode", "413", content=TWO_MB, chunked=True,
              headers={"Authorization": f"Bearer {CODEC_TOKEN}"}),
    http_case("2 MB body to the Zoom webhook with its Content-Length", "POST", "/v1/webhooks/zoom", "413",
              content=TWO_MB),
    codec_case("codec decode without a token", "/codec/decode", "401", token=None),
    codec_case("codec encode without a token", "/codec/encode", "401", token=None),
    codec_case("codec decode with the internal API token", "/codec/decode", "401", token=TOKEN),
    plaintext_signal_case("unencrypted signal from the Temporal frontend"),
    obf_case("OBF token with a guessed secret", "401", expired=False),
    obf_case("OBF token with a signed but expired secret", "401", expired=True),
    http_case("malformed JSON body", "POST", "/v1/workspaces/w/zoom/disconnect", "422",
              content=b"{not json", headers={"content-type": "application/json"}),
    http_case("member disconnects", "POST", "/v1/workspaces/w/zoom/disconnect", "403",
              json_body={"actor_id": "m", "actor_role": "member"}),
    webhook_case("forged signature", DEAUTH, "401", secret="guessed"),
    webhook_case("stale timestamp", DEAUTH, "401", age=3600),
    webhook_case("missing signature headers", DEAUTH, "401", drop_headers=True),
    webhook_case("replayed delivery", DEAUTH, "duplicate", repeat=True),
    webhook_case("validation without plainToken", {"event": "endpoint.url_validation", "payload": {}}, "400"),
    webhook_case("oversized webhook body", {"event": "app_deauthorized", "pad": "p" * 100_000}, "413"),
    bot_webhook_case("bot webhook with forged signature", "401", forged=True),
    bot_webhook_case("bot webhook with stale timestamp", "401", age=3600),
    callback_case("callback without state", {"code": "c"}, "missing_state"),
    callback_case("callback with forged state", {"code": "c", "state": "forged-state"}, "unknown_state"),
    oauth_state_case("callback with reused state", "reused_state"),
    oauth_state_case("callback with expired state", "expired_state", expire=True),
    late_case("reschedule after cancel", "reschedule", Reschedule(request_id="late-1", start_time=SOON, duration_minutes=30)),
    late_case("title change after cancel", "update_details", UpdateDetails(request_id="late-2", title="Back from the dead")),
    late_case("second cancel after cancel", "cancel", Cancel(request_id="late-3", actor="u")),
]


async def _meeting_calls(stack: Stack) -> int:
    return sum(1 for c in await stack.emulator.calls() if "meetings" in c["path"])


async def _audit_rows(api: Api, workspace: str) -> int:
    async with api.services.db.sessions() as session:
        return int((await session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.workspace_id == workspace))).scalar_one())


async def test_bad_input_catalogue(stack: Stack, api: Api) -> None:
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace)
    await stack.appointments.book(b)
    handle = stack.appointments.handle(b.appointment_id)
    await handle.signal("reschedule", Reschedule(request_id="good-1", start_time=SOON, duration_minutes=40))
    await handle.execute_update("await_conference", {"after_request_id": "good-1"}, result_type=dict)
    cancelled = booking(workspace)
    await stack.appointments.book(cancelled)
    await stack.appointments.cancel(cancelled.appointment_id, Cancel(request_id="gone", actor="u"))
    await stack.appointments.handle(cancelled.appointment_id).result()
    before = await stack.appointments.state(b.appointment_id)
    assert before.conference.join_url
    # The join URL embeds the meeting passcode: no answer to a hostile input may echo it either.
    secrets = (*SECRETS, before.conference.join_url)
    zoom_calls, audit_rows = await _meeting_calls(stack), await _audit_rows(api, workspace)
    ctx = {"stack": stack, "api": api, "handle": handle, "booking": b, "cancelled": cancelled,
           "join_url": before.conference.join_url}
    failures = []
    for case in CATALOGUE:
        answer = await case.run(ctx)
        if case.expect not in answer:
            failures.append(f"[{case.channel}] {case.name}: expected {case.expect!r}, got {answer[:200]!r}")
        if any(secret in answer for secret in secrets):
            failures.append(f"[{case.channel}] {case.name}: the answer leaks a secret")
    with pytest.raises(BookingRejected, match="time zone"):
        await stack.appointments.book(booking(workspace, timezone="Atlantis/Capital"))
    after = await stack.appointments.state(b.appointment_id)
    assert after.appointment == before.appointment and after.conference == before.conference
    for appointment in (b, cancelled):
        history = [e async for e in stack.appointments.handle(appointment.appointment_id).fetch_history_events()]
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history)
    # No meeting call reached Zoom (the reused-state case's own first, valid connect reads /users/me) and
    # nothing was written to the workspace's audit trail.
    assert await _meeting_calls(stack) == zoom_calls
    assert await _audit_rows(api, workspace) == audit_rows
    assert (await stack.appointments.state(cancelled.appointment_id)).conference.zoom_meeting_id is None
    assert len(CATALOGUE) + 1 >= 30
    assert failures == []
    # after a cancel, further messages are refused, even through signal-with-start once the run has closed
    await handle.signal("cancel", Cancel(request_id="final", actor="u"))
    await handle.result()
    calls_before_late = len(await stack.emulator.calls())
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="late", start_time=SOON, duration_minutes=30),
                                        booking=b)
    late = await stack.appointments.await_conference(b.appointment_id, after_request_id="late", timeout_seconds=20)
    assert late.request_outcome == "rejected" and "cancelled" in (late.reason or "")
    # the new run did not resurrect the cancelled appointment's meeting: not a single Zoom call
    assert len(await stack.emulator.calls()) == calls_before_late
    assert (await stack.appointments.state(b.appointment_id)).conference.zoom_meeting_id is None
