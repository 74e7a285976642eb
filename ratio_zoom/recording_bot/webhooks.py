"""Signed bot status webhooks (Svix-style, as Recall sends them): `webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>` (possibly several,
space-separated). The secret may come as `whsec_<base64>`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

from ratio_zoom.recording_bot.models import BotStatusEvent
from ratio_zoom.recording_bot.recall import STATUS_MAP

WINDOW_SECONDS = 300


class BotWebhookError(Exception):
    pass


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):])
        except (binascii.Error, ValueError):
            raise BotWebhookError("webhook secret is not valid base64") from None
    return secret.encode()


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> BotStatusEvent:
    delivery_id, timestamp, signatures = (headers.get("webhook-id"), headers.get("webhook-timestamp"),
                                          headers.get("webhook-signature"))
    if not secret:
        raise BotWebhookError("webhook secret is not configured")
    if not delivery_id or not timestamp or not signatures:
        raise BotWebhookError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise BotWebhookError("timestamp is not an integer") from None
    if abs((now if now is not None else time.time()) - sent) > WINDOW_SECONDS:
        raise BotWebhookError("timestamp outside the allowed window")
    expected = sign(secret, delivery_id, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures.split()):
        raise BotWebhookError("signature does not match")
    try:
        payload = json.loads(body)
        data = payload["data"]
        bot = data["bot"]
        status = data.get("data", {})
        code = str(status.get("code") or payload["event"].split(".", 1)[1])
        return BotStatusEvent(delivery_id=delivery_id, event=str(payload["event"]), bot_id=str(bot["id"]),
                              status=STATUS_MAP.get(code, "unknown"), sub_code=status.get("sub_code"),
                              metadata={k: str(v) for k, v in (bot.get("metadata") or {}).items()})
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise BotWebhookError("malformed webhook payload") from None
