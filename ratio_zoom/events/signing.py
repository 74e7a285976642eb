"""Standard Webhooks signatures (https://www.standardwebhooks.com/), through the maintained reference
implementation (`standardwebhooks`): `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
over `{id}.{timestamp}.{body}` with HMAC-SHA256."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """A new signing secret in the format every Standard Webhooks library reads (`whsec_` + base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class EventSigner:
    def __init__(self, secret: str) -> None:
        # Webhook() accepts the `whsec_` form and raw base64; an empty or malformed secret raises here,
        # at start-up, not at the first delivery.
        self._webhook = Webhook(secret)

    def headers(self, event_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
        moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        # `Webhook.sign` reads the datetime's wall-clock fields as UTC: give it a UTC value.
        signature = self._webhook.sign(msg_id=event_id, timestamp=moment, data=body)
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }
