"""The recording-bot provider (Recall.ai client) against the Recall-compatible emulator, over real HTTP:
the 10-minute rule, leave_call fallback, idempotent replay, metadata look-ups, rate limits, webhooks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import SecretStr

from ratio_zoom.emulators.recording_bot.app import BotEmulatorConfig, create_app
from ratio_zoom.emulators.zoom_server.testing import free_port
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.recording_bot.errors import BotAuthError, BotRateLimited
from ratio_zoom.recording_bot.models import BotSpec
from ratio_zoom.recording_bot.recall import RecallProvider
from ratio_zoom.recording_bot.webhooks import BotWebhookError, sign, verify

KEY = "recall-test-key"
SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cw=="
JOIN = "https://zoom.example/j/84000000001?pwd=abc"


@pytest.fixture
async def recall() -> AsyncIterator[tuple[str, RecallProvider]]:
    with serving(create_app(BotEmulatorConfig(api_key=KEY, webhook_secret=SECRET)), free_port(), name="recall") as base:
        provider = RecallProvider(base, SecretStr(KEY))
        yield base, provider
        await provider.aclose()


def spec(minutes_ahead: float, key: str = "a1:recbot:1") -> BotSpec:
    return BotSpec(meeting_url=JOIN, join_at=datetime.now(timezone.utc) + timedelta(minutes=minutes_ahead),
                   dispatch_key=key, appointment_id="a1")


async def test_far_ahead_is_scheduled_and_can_be_moved_and_deleted(recall) -> None:  # type: ignore[no-untyped-def]
    base, provider = recall
    bot = await provider.schedule(spec(120), idempotency_key="a1:recbot:1")
    assert bot.status == "scheduled" and bot.dispatch_key == "a1:recbot:1"
    moved = await provider.reschedule(bot.bot_id, join_at=datetime.now(timezone.utc) + timedelta(hours=5),
                                      meeting_url=None, idempotency_key="a1:recbot:1:move:1")
    assert moved.join_at and moved.join_at > datetime.now(timezone.utc) + timedelta(hours=4)
    gone = await provider.cancel(bot.bot_id)
    assert gone.status == "cancelled"
    assert await provider.find_by_dispatch_key("a1:recbot:1") == []
    assert JOIN not in repr(bot)


async def test_inside_ten_minutes_it_joins_at_once_and_cancel_falls_back_to_leave_call(recall) -> None:  # type: ignore[no-untyped-def]
    base, provider = recall
    bot = await provider.schedule(spec(5, "a2:recbot:1"), idempotency_key="a2:recbot:1")
    assert bot.status == "joining"
    left = await provider.cancel(bot.bot_id)
    assert left.status == "ended" and left.sub_code == "bot_received_leave_call"
    async with httpx.AsyncClient() as http:
        bots = (await http.get(f"{base}/_emulator/bots")).json()
    assert next(b for b in bots if b["id"] == bot.bot_id)["left"] is True


async def test_idempotent_replay_and_lookup_by_dispatch_key(recall) -> None:  # type: ignore[no-untyped-def]
    base, provider = recall
    first = await provider.schedule(spec(60, "a3:recbot:1"), idempotency_key="a3:recbot:1")
    again = await provider.schedule(spec(60, "a3:recbot:1").model_copy(update={"join_at": first.join_at}),
                                    idempotency_key="a3:recbot:1")
    assert again.bot_id == first.bot_id
    found = await provider.find_by_dispatch_key("a3:recbot:1")
    assert [b.bot_id for b in found] == [first.bot_id]
    assert first.bot_id in [b.bot_id for b in await provider.find_by_appointment("a1")]


async def test_rate_limits_and_capacity_carry_retry_after_and_bad_keys_are_refused(recall) -> None:  # type: ignore[no-untyped-def]
    base, provider = recall
    async with httpx.AsyncClient() as http:
        for status in (429, 507):
            await http.post(f"{base}/_emulator/faults", json={"status": status, "count": 1, "retry_after": 7})
            with pytest.raises(BotRateLimited) as limited:
                await provider.schedule(spec(60, f"rl-{status}"), idempotency_key=f"rl-{status}")
            assert limited.value.retry_after == 7
    wrong = RecallProvider(base, SecretStr("wrong-key"))
    with pytest.raises(BotAuthError) as denied:
        await wrong.status("x")
    assert "wrong-key" not in str(denied.value) and "wrong-key" not in repr(wrong)
    await wrong.aclose()


async def test_signed_status_webhooks_verify_and_forgeries_do_not(recall) -> None:  # type: ignore[no-untyped-def]
    base, provider = recall
    received: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        received.append(({k: v for k, v in request.headers.items()}, await request.body()))
        return {"ok": "yes"}

    with serving(app, free_port(), name="hook") as hook_base:
        bot = await provider.schedule(spec(90, "a5:recbot:1"), idempotency_key="a5:recbot:1")
        async with httpx.AsyncClient() as http:
            for code, sub in (("joining_call", None), ("in_call_not_recording", None), ("fatal", "bot_kicked_from_call")):
                await http.post(f"{base}/_emulator/advance", json={"bot_id": bot.bot_id, "code": code, "sub_code": sub,
                                                                   "url": f"{hook_base}/hook"})
    events = [verify(SECRET, headers, body) for headers, body in received]
    assert [e.status for e in events] == ["joining", "waiting_for_host_permission", "failed"]
    assert events[-1].sub_code == "bot_kicked_from_call" and events[0].metadata["dispatch_key"] == "a5:recbot:1"
    headers, body = received[0]
    with pytest.raises(BotWebhookError, match="does not match"):
        verify(SECRET, headers, body.replace(b"joining", b"joinin9"))
    stale = str(int(time.time()) - 3600)
    with pytest.raises(BotWebhookError, match="window"):
        verify(SECRET, {**headers, "webhook-timestamp": stale,
                        "webhook-signature": sign(SECRET, headers["webhook-id"], stale, body)}, body)
    with pytest.raises(BotWebhookError, match="missing"):
        verify(SECRET, {}, body)
    assert json.loads(body)["event"] == "bot.joining_call"
