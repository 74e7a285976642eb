"""Every way a Zoom call can fail, as a small typed hierarchy that says what to do next.

One place (`classify_response`) maps a response to an outcome, so callers never look at status codes
(the moodle-mod_zoom lesson). Messages carry Zoom's code and text, never a token, passcode or URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal


class ZoomError(Exception):
    """Base of everything the Zoom client raises."""

    retryable: bool = False


class ZoomTransportError(ZoomError):
    """No (complete) response: connect/read timeout, connection reset, response lost. Retry.

    The request may have taken effect at Zoom ("response lost"), so a retry of a non-idempotent call
    (meeting create) must first look for the effect; see activities/meetings.py.
    """

    retryable = True


class ZoomHTTPError(ZoomError):
    """Zoom answered with a non-2xx status and (usually) a `{"code", "message"}` body."""

    def __init__(self, status: int, code: int | None, message: str, endpoint: str) -> None:
        self.status = status
        self.code = code
        self.zoom_message = message
        self.endpoint = endpoint
        super().__init__(f"Zoom {endpoint} answered HTTP {status}" + (f" code {code}" if code is not None else "") + f": {message}")


class AccessTokenInvalid(ZoomHTTPError):
    """401 / code 124: the access token is invalid or expired. Refresh once and retry once."""


class MeetingNotFound(ZoomHTTPError):
    """404 / code 3001: the meeting does not exist (deleted inside Zoom, or owned by another account)."""


class MeetingInProgress(ZoomHTTPError):
    """Code 3000 (and 3002/3007 in older specs): the meeting has started or ended; it cannot be changed."""


class RateLimited(ZoomHTTPError):
    """429. `retry_after` is the wait Zoom asked for (seconds), or None when it gave no usable hint."""

    retryable = True

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        endpoint: str,
        *,
        retry_after: float | None,
        limit_type: Literal["per_second", "daily"],
        category: str | None,
    ) -> None:
        super().__init__(status, code, message, endpoint)
        self.retry_after = retry_after
        self.limit_type = limit_type
        self.category = category


class PacedOut(RateLimited):
    """Our own limiter refused to send (the account's per-second budget is booked further ahead than a call
    may wait, or the user's daily create/update budget is spent). Nothing reached Zoom. Status 0: not an
    HTTP answer; it is handled exactly like Zoom's 429 of the same `limit_type`."""

    def __init__(self, endpoint: str, *, retry_after: float, limit_type: Literal["per_second", "daily"],
                 category: str) -> None:
        reason = ("the daily create/update budget of this Zoom user is spent" if limit_type == "daily"
                  else "the Zoom account's per-second budget is booked ahead")
        super().__init__(0, None, f"paced by ratio-zoom: {reason}", endpoint, retry_after=retry_after,
                         limit_type=limit_type, category=category)


class PermissionProblem(ZoomHTTPError):
    """401/403 other than an expired token, or code 4711 (missing scope): needs a human (reconnect)."""


class BadRequest(ZoomHTTPError):
    """400 (validation code 300 and friends): our request is wrong; retrying will not help."""


class ZoomServerError(ZoomHTTPError):
    """5xx: Zoom is having trouble. Retry with backoff."""

    retryable = True


# -- OAuth ------------------------------------------------------------------------------------------


class OAuthError(ZoomError):
    """The OAuth endpoint refused (other than a dead grant)."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        self.status = status
        self.error = error
        self.reason = reason
        super().__init__(f"Zoom OAuth answered HTTP {status}: {error} ({reason})")


class InvalidGrant(OAuthError):
    """The refresh token (or code) is dead: revoked, rotated away, or the user re-authorized elsewhere.

    Only a human re-authorizing fixes this: the connection becomes `needs_reconnect`.
    """


class OAuthServerError(OAuthError):
    retryable = True


DAILY_LIMIT_TYPES = {"daily-limit", "daily"}


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Zoom's Retry-After comes as seconds, as an ISO date-time, or not at all. Return seconds or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
