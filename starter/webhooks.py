"""For a Python core app: verify and parse the events ratio-zoom POSTs to `CORE_APP_WEBHOOK_URL`.

    from starter.webhooks import EventVerifier, InvalidEvent

    verifier = EventVerifier(os.environ["CORE_APP_WEBHOOK_SECRET"])
    try:
        event = verifier.verify(raw_body, request.headers)   # CoreAppEvent (pydantic)
    except InvalidEvent:
        return 400                                            # forged, altered or replayed: do nothing

Then de-duplicate on `event.id` (deliveries are at least once) and ignore an event whose `sequence` is not
above the last one you applied for `event.stream` (a late redelivery of an older event). Answer 2xx only
after the event is stored: anything else is retried, with backoff, in order. `starter/example_receiver.py`
is a complete receiver that does all of this.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ratio_zoom.contract.events import CoreAppEvent


class InvalidEvent(ValueError):
    """The request is not a genuine, fresh ratio-zoom event. The message says why, without echoing secrets."""


class EventVerifier:
    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> CoreAppEvent:
        """Checks the Standard Webhooks signature and the 5-minute timestamp window, then parses the event."""
        try:
            self._webhook.verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError as exc:
            raise InvalidEvent(f"signature check failed: {exc}") from None
        try:
            event = CoreAppEvent.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidEvent(f"not a ratio-zoom event ({exc.error_count()} problems)") from None
        header_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id")
        if header_id != event.id:
            # The signed webhook-id and the body's id must agree, or a captured signature could be reused.
            raise InvalidEvent("webhook-id does not match the event id")
        return event
