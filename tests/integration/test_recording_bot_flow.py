"""A transcript bot joins only with AI note-taking on and the client's consent, follows every reschedule
and meeting change, and leaves on cancel or withdrawal. Real worker, Zoom and Recall emulators over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import schemas as act
from activities.bots import BotActivities
from ratio_zoom.connections.notify import temporal_notifier
from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.contract.appointment import Cancel, Consent, Reschedule
from ratio_zoom.emulators.recording_bot.app import BotEmulatorConfig, create_app as bot_app
from ratio_zoom.emulators.zoom_server.testing import free_port
from ratio_zoom.http_api.server import create_app
from ratio_zoom.connections.services import Services
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.worker_app import build_worker
from ratio_zoom.recording_bot.recall import RecallProvider
from ratio_zoom.recording_bot.webhooks import sign
from starter import Appointments
from tests.conftest import make_settings
from tests.integration.conftest import Stack, ws
from tests.integration.test_appointment_lifecycle import booking

KEY = "recall-key"
SECRET = "recall-webhook-secret"


@pytest.fixture
async def bot_stack(temporal_env: WorkflowEnvironment, pg_database_url: str, zoom_emulator) -> AsyncIterator[tuple[Stack, str, str]]:  # type: ignore[no-untyped-def]
    api_port = free_port()
    with serving(bot_app(BotEmulatorConfig(api_key=KEY, webhook_secret=SECRET,
                                           webhook_url=f"http://127.0.0.1:{api_port}/v1/webhooks/recording-bot")),
                 free_port(), name="recall") as recall_base:
        queue = f"bots-{uuid.uuid4().hex[:8]}"
        settings = make_settings(pg_database_url, ZOOM_API_BASE_URL=zoom_emulator.api_base_url,
                                 ZOOM_OAUTH_BASE_URL=zoom_emulator.oauth_base_url, TEMPORAL_TASK_QUEUE=queue,
                                 RECORDING_BOT_API_URL=recall_base, RECORDING_BOT_API_KEY=KEY,
                                 RECORDING_BOT_WEBHOOK_SECRET=SECRET, PUBLIC_BASE_URL=f"http://127.0.0.1:{api_port}")
        services = Services.create(settings)
        client = temporal_env.client
        connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom,
                                        notify=temporal_notifier(client))
        api_services = Services.create(settings, pooled=False)

        async def relay(appointment_id: str, event) -> None:  # type: ignore[no-untyped-def]
            await client.get_workflow_handle(f"appointment-{appointment_id}").signal("bot_status", event)

        app = create_app(api_services, ConnectionService(api_services.db, api_services.vault, api_services.oauth,
                                                         api_services.zoom), bot_signaller=relay)
        with serving(app, api_port, name="api") as api_base:
            async with build_worker(client, services, task_queue=queue):
                yield Stack(settings=settings, services=services, connections=connections, client=client,
                            appointments=Appointments(client, task_queue=queue), task_queue=queue,
                            emulator=zoom_emulator), recall_base, api_base
        await services.aclose()


async def bots_of(recall_base: str, appointment_id: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        return [b for b in (await http.get(f"{recall_base}/_emulator/bots")).json()
                if b["metadata"].get("appointment_id") == appointment_id]


def live(bots: list[dict]) -> list[dict]:
    return [b for b in bots if not b["deleted"] and not b["left"]]


def consent(rid: str, granted: bool) -> Consent:
    return Consent(request_id=rid, granted=granted, actor="client-portal", subject="client:42", channel="web",
                   consent_text_version="2026-01", occurred_at=datetime.now(timezone.utc).isoformat())


async def settle(stack: Stack, appointment_id: str, rid: str) -> None:
    await stack.appointments.await_conference(appointment_id, after_request_id=rid)
    for _ in range(40):  # the bot step runs right after the conference is settled
        state = await stack.appointments.state(appointment_id)
        if not state.pending_operations:
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.1)


async def test_no_bot_without_both_gates(bot_stack) -> None:  # type: ignore[no-untyped-def]
    stack, recall, _ = bot_stack
    workspace = ws()
    await stack.connect_workspace(workspace)
    with_notes = booking(workspace, note_taking_enabled=True)
    await stack.appointments.book(with_notes)  # note-taking on, no consent
    without_notes = booking(workspace, note_taking_enabled=False)
    await stack.appointments.book(without_notes)
    await stack.appointments.record_consent(without_notes.appointment_id, consent("k1", True))  # consent, notes off
    await settle(stack, without_notes.appointment_id, "k1")
    assert await bots_of(recall, with_notes.appointment_id) == []
    assert await bots_of(recall, without_notes.appointment_id) == []
    for b in (with_notes, without_notes):
        await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))


async def test_bot_follows_consent_reschedules_meeting_changes_and_cancel(bot_stack) -> None:  # type: ignore[no-untyped-def]
    stack, recall, api_base = bot_stack
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace, note_taking_enabled=True)
    booked = await stack.appointments.book(b)
    await stack.appointments.record_consent(b.appointment_id, consent("k1", True))
    await settle(stack, b.appointment_id, "k1")
    bots = await bots_of(recall, b.appointment_id)
    assert len(bots) == 1 and bots[0]["metadata"]["dispatch_key"] == f"{b.appointment_id}:recbot:1"
    assert bots[0]["meeting_url"] == booked.conference.join_url
    first_bot = bots[0]["id"]

    far = (datetime.now(timezone.utc) + timedelta(days=6)).replace(microsecond=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r1", start_time=far.isoformat(), duration_minutes=45))
    await settle(stack, b.appointment_id, "r1")
    bots = await bots_of(recall, b.appointment_id)
    assert len(bots) == 1 and bots[0]["id"] == first_bot  # moved with a PATCH, not replaced
    assert datetime.fromisoformat(bots[0]["join_at"].replace("Z", "+00:00")) == far

    await stack.emulator.delete_meeting_in_zoom(booked.conference.zoom_meeting_id)  # the meeting is recreated...
    far2 = far + timedelta(hours=1)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r2", start_time=far2.isoformat(), duration_minutes=45))
    await settle(stack, b.appointment_id, "r2")
    state = await stack.appointments.state(b.appointment_id)
    bots = live(await bots_of(recall, b.appointment_id))
    assert len(bots) == 1 and bots[0]["meeting_url"] == state.conference.join_url != booked.conference.join_url

    soon = (datetime.now(timezone.utc) + timedelta(minutes=6)).replace(microsecond=0)
    await stack.appointments.reschedule(b.appointment_id, Reschedule(request_id="r3", start_time=soon.isoformat(), duration_minutes=30))
    await settle(stack, b.appointment_id, "r3")
    bots = await bots_of(recall, b.appointment_id)
    assert len(live(bots)) == 1 and live(bots)[0]["id"] != first_bot  # inside 10 minutes: replaced
    state = await stack.appointments.state(b.appointment_id)
    assert state.recording_bot.generation == 2

    # a verified webhook shows in state; a forged one is refused
    current = live(bots)[0]
    raw = json.dumps({"event": "bot.in_call_not_recording", "data": {"data": {"code": "in_call_not_recording"},
                      "bot": {"id": current["id"], "metadata": current["metadata"]}}}).encode()
    stamp = str(int(time.time()))
    async with httpx.AsyncClient() as http:
        forged = await http.post(f"{api_base}/v1/webhooks/recording-bot", content=raw, headers={
            "webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": sign("guess", "msg_1", stamp, raw)})
        assert forged.status_code == 401
        ok = await http.post(f"{api_base}/v1/webhooks/recording-bot", content=raw, headers={
            "webhook-id": "msg_2", "webhook-timestamp": stamp, "webhook-signature": sign(SECRET, "msg_2", stamp, raw)})
        assert ok.status_code == 200
    for _ in range(40):
        state = await stack.appointments.state(b.appointment_id)
        if state.recording_bot.status == "waiting_for_host_permission":
            break
        await asyncio.sleep(0.1)
    assert state.recording_bot.status == "waiting_for_host_permission" and "admit" in (state.recording_bot.note or "")
    from sqlalchemy import select

    from ratio_zoom.storage.models import AuditEvent

    async with stack.services.db.sessions() as session:
        events = list((await session.execute(select(AuditEvent.event).where(
            AuditEvent.appointment_id == b.appointment_id).order_by(AuditEvent.seq))).scalars())
    assert events.count("bot.scheduled") == 2 and events.count("bot.moved") == 2 and "bot.status" in events
    assert "consent.granted" in events and events.count("bot.removed") == 1

    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()
    assert live(await bots_of(recall, b.appointment_id)) == []


async def test_withdraw_removes_and_a_new_grant_is_a_new_generation_never_two_bots(bot_stack) -> None:  # type: ignore[no-untyped-def]
    stack, recall, _ = bot_stack
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace, note_taking_enabled=True)
    await stack.appointments.book(b)
    await stack.appointments.record_consent(b.appointment_id, consent("k1", True))
    await settle(stack, b.appointment_id, "k1")
    await stack.appointments.record_consent(b.appointment_id, consent("k2", False))
    await settle(stack, b.appointment_id, "k2")
    assert live(await bots_of(recall, b.appointment_id)) == []
    await stack.appointments.record_consent(b.appointment_id, consent("k3", True))
    await settle(stack, b.appointment_id, "k3")
    bots = await bots_of(recall, b.appointment_id)
    assert len(live(bots)) == 1 and live(bots)[0]["metadata"]["dispatch_key"].endswith(":recbot:2")
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    await stack.appointments.handle(b.appointment_id).result()


async def test_a_retried_schedule_adopts_the_bot_instead_of_creating_a_second(bot_stack) -> None:  # type: ignore[no-untyped-def]
    """The worker dies after the provider created the bot: the retry (same dispatch key) finds it."""
    stack, recall, _ = bot_stack
    workspace = ws()
    await stack.connect_workspace(workspace)
    b = booking(workspace, note_taking_enabled=True, conference_provider="none")
    await stack.appointments.book(b)
    await stack.appointments.record_consent(b.appointment_id, consent("k1", True))
    await settle(stack, b.appointment_id, "k1")
    activities = BotActivities(stack.services.db, RecallProvider(recall, SecretStr(KEY)), stack.services.vault, "")
    args = act.ScheduleBotArgs(
        ctx=act.OpContext(workflow_id=f"appointment-{b.appointment_id}", run_id="r", appointment_id=b.appointment_id,
                          workspace_id=workspace, op_id="op"),
        generation=1, dispatch_key=f"{b.appointment_id}:recbot:1", meeting_url="https://zoom.example/j/1?pwd=x",
        join_at=(datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), duration_minutes=30)
    env = ActivityEnvironment()
    first = await env.run(activities.schedule_bot, args)
    again = await env.run(activities.schedule_bot, args)
    assert (first.outcome, again.outcome) == ("scheduled", "adopted") and first.bot_id == again.bot_id
    assert len(live(await bots_of(recall, b.appointment_id))) == 1
    await stack.appointments.record_consent(b.appointment_id, consent("k2", False))  # consent log says no now
    await settle(stack, b.appointment_id, "k2")
    refused = await env.run(activities.schedule_bot, args.model_copy(update={"generation": 2,
                                                                            "dispatch_key": f"{b.appointment_id}:recbot:2"}))
    assert refused.outcome == "refused"
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))


FULL_SCOPES = ("meeting:write:meeting meeting:update:meeting meeting:delete:meeting meeting:read:meeting "
               "meeting:read:list_meetings user:read:user")


async def test_obf_token_is_minted_at_launch_only_with_the_scope(bot_stack) -> None:  # type: ignore[no-untyped-def]
    stack, recall, api_base = bot_stack
    with_scope, without_scope = ws(), ws()
    other_user = f"zu{uuid.uuid4().hex[:8]}"
    await stack.emulator.add_user(other_user, f"{other_user}@example.com")
    try:
        await stack.emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA", scopes=FULL_SCOPES + " user:read:token")
        await stack.connect_workspace(with_scope)
        await stack.emulator.set_next_consent(user_id=other_user, scopes=FULL_SCOPES)
        await stack.connect_workspace(without_scope)
    finally:
        await stack.emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA", scopes=FULL_SCOPES + " user:read:token")
    a = booking(with_scope, note_taking_enabled=True)
    b = booking(without_scope, note_taking_enabled=True)
    for appt in (a, b):
        await stack.appointments.book(appt)
        await stack.appointments.record_consent(appt.appointment_id, consent("k1", True))
        await settle(stack, appt.appointment_id, "k1")
    bot_a = live(await bots_of(recall, a.appointment_id))[0]
    bot_b = live(await bots_of(recall, b.appointment_id))[0]
    assert "obf_token_url" not in bot_b["zoom"]
    state_b = await stack.appointments.state(b.appointment_id)
    assert "host must admit" in (state_b.recording_bot.note or "")
    url = bot_a["zoom"]["obf_token_url"]
    assert url.startswith(api_base)
    async with httpx.AsyncClient() as http:
        minted = await http.get(url)
        assert minted.status_code == 200 and minted.text.startswith("obf.")
        assert minted.headers["cache-control"] == "no-store"
        forged = await http.get(url.replace("secret=", "secret=x"))
        assert forged.status_code == 401
    for appt in (a, b):
        await stack.appointments.cancel(appt.appointment_id, Cancel(request_id="c", actor="u"))


def _with_params(url: str, **changes: str | None) -> str:
    parsed = httpx.URL(url)
    params = {k: v for k, v in parsed.params.items()}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return str(parsed.copy_with(params=params))


async def test_obf_token_only_for_the_live_bot_while_both_gates_hold_and_until_it_expires(bot_stack) -> None:  # type: ignore[no-untyped-def]
    """The attack of issue 13: the endpoint minted a Zoom OBF token for any dispatch row that ever existed,
    whatever its status, the consent, the note-taking flag or the appointment's state, with a secret that
    never expired. Each of those now gets 401 (secret) or 403 (gates); the live bot still gets its token."""
    from activities.bots import OBF_SECRET_HEADER, obf_secret
    from ratio_zoom.storage.models import BotDispatch

    stack, recall, api_base = bot_stack
    workspace = ws()
    await stack.emulator.set_next_consent(user_id="z8yCxjabR7qYD9Yc7ScTLA", scopes=FULL_SCOPES + " user:read:token")
    await stack.connect_workspace(workspace)
    a = booking(workspace, note_taking_enabled=True)
    await stack.appointments.book(a)
    await stack.appointments.record_consent(a.appointment_id, consent("k1", True))
    await settle(stack, a.appointment_id, "k1")
    first_url = live(await bots_of(recall, a.appointment_id))[0]["zoom"]["obf_token_url"]
    params = httpx.URL(first_url).params
    key, expires, secret = params["dispatch_key"], int(params["expires"]), params["secret"]
    vault = stack.services.vault
    async with httpx.AsyncClient() as http:
        async def status(url: str, **headers: str) -> int:
            return (await http.get(url, headers=headers)).status_code

        assert await status(first_url) == 200
        # the secret may come in a header instead of the query
        assert await status(_with_params(first_url, secret=None), **{OBF_SECRET_HEADER: secret}) == 200
        # the expiry is covered by the HMAC: pushing it out breaks the secret
        assert await status(_with_params(first_url, expires=str(expires + 86_400))) == 401
        # a correctly signed URL whose expiry has passed is refused
        past = int(time.time()) - 60
        assert await status(_with_params(first_url, expires=str(past), secret=obf_secret(vault, key, past))) == 401
        # the old, never-expiring form (HMAC of the dispatch key alone) is refused
        assert await status(_with_params(first_url, expires=None)) == 401

        # a reschedule moves the bot and re-issues its URL with the new expiry
        far = (datetime.now(timezone.utc) + timedelta(days=6)).replace(microsecond=0)
        await stack.appointments.reschedule(a.appointment_id, Reschedule(request_id="r1", start_time=far.isoformat(),
                                                                         duration_minutes=45))
        await settle(stack, a.appointment_id, "r1")
        moved_url = live(await bots_of(recall, a.appointment_id))[0]["zoom"]["obf_token_url"]
        assert int(httpx.URL(moved_url).params["expires"]) > far.timestamp() and await status(moved_url) == 200

        # consent withdrawn: the bot is removed and its URL stops working
        await stack.appointments.record_consent(a.appointment_id, consent("k2", False))
        await settle(stack, a.appointment_id, "k2")
        assert await status(moved_url) == 403
        # consent granted again: a new generation; only the new bot's URL works
        await stack.appointments.record_consent(a.appointment_id, consent("k3", True))
        await settle(stack, a.appointment_id, "k3")
        second_url = live(await bots_of(recall, a.appointment_id))[0]["zoom"]["obf_token_url"]
        assert httpx.URL(second_url).params["dispatch_key"].endswith(":recbot:2")
        assert await status(second_url) == 200 and await status(moved_url) == 403

        # a dispatch row for an appointment with note-taking off (consent given) gets nothing, even signed
        b = booking(workspace, note_taking_enabled=False)
        await stack.appointments.book(b)
        await stack.appointments.record_consent(b.appointment_id, consent("k1", True))
        await settle(stack, b.appointment_id, "k1")
        forged_key = f"{b.appointment_id}:recbot:1"
        async with stack.services.db.transaction() as session:
            now = datetime.now(timezone.utc)
            session.add(BotDispatch(dispatch_key=forged_key, appointment_id=b.appointment_id, generation=1,
                                    bot_id="bot-not-ours", status="scheduled", created_at=now, updated_at=now))
        later = int(time.time()) + 3600
        no_notes = _with_params(second_url, dispatch_key=forged_key, expires=str(later),
                                secret=obf_secret(vault, forged_key, later))
        answer = await http.get(no_notes)
        assert answer.status_code == 403 and "note-taking" in answer.text

        # the appointment cancelled: its live bot's URL is refused too
        await stack.appointments.cancel(a.appointment_id, Cancel(request_id="c", actor="u"))
        await stack.appointments.handle(a.appointment_id).result()
        assert await status(second_url) == 403
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
