"""Zoom webhook helpers: signature verification and the `endpoint.url_validation` answer.

Zoom signs `v0:{x-zm-request-timestamp}:{raw body}` with HMAC-SHA256 keyed by the app's secret token and
sends `x-zm-signature: v0=<hex>`. We compare in constant time and refuse stale timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_WINDOW_SECONDS = 300


class WebhookSignatureError(Exception):
    """Missing, malformed, stale or wrong signature. The reason never includes the secret."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    now: float | None = None,
    window_seconds: int = SIGNATURE_WINDOW_SECONDS,
) -> None:
    if not secret:
        raise WebhookSignatureError("webhook secret token is not configured")
    if not timestamp or not signature:
        raise WebhookSignatureError("missing x-zm-request-timestamp or x-zm-signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookSignatureError("timestamp is not an integer") from None
    # Zoom sends seconds; tolerate milliseconds too.
    if sent_at > 10**11:
        sent_at //= 1000
    current = time.time() if now is None else now
    if abs(current - sent_at) > window_seconds:
        raise WebhookSignatureError("timestamp outside the allowed window")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookSignatureError("signature does not match")


def url_validation_response(secret: str, plain_token: str) -> dict[str, str]:
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}
