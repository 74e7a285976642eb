"""The one place where Zoom and connection failures become Temporal retry behaviour.

retryable            -> plain ApplicationError (Temporal retries with backoff)
wait-and-retry       -> per-second 429: `next_retry_delay` from Retry-After;
                        daily limit: non-retryable `ZoomDailyLimitReached` with the reset time, so the
                        workflow waits on a durable timer until 00:00 UTC instead of spinning
needs-human          -> non-retryable `ZoomNotConnected` / `ZoomNeedsReconnect` / `ZoomDetached`: the
                        workflow parks (`waiting_for_zoom` / `detached`)
our request is wrong -> non-retryable `ZoomRejectedRequest`: the workflow records the reason
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import schemas as act
from ratio_zoom.connections.errors import Detached, NeedsReconnect, NotConnected, RefreshUnavailable
from ratio_zoom.zoom import errors as z


BENIGN = ApplicationErrorCategory.BENIGN


def as_application_error(exc: Exception) -> ApplicationError:
    # BENIGN: expected outcomes (parking, waiting for a rate limit) are not logged as activity failures
    # with a stack trace, and do not count as failures in the SDK's metrics; real trouble still does.
    if isinstance(exc, NotConnected):
        return ApplicationError(str(exc), type=act.ERR_NOT_CONNECTED, non_retryable=True, category=BENIGN)
    if isinstance(exc, NeedsReconnect):
        return ApplicationError(str(exc), type=act.ERR_NEEDS_RECONNECT, non_retryable=True, category=BENIGN)
    if isinstance(exc, Detached):
        return ApplicationError(str(exc), type=act.ERR_DETACHED, non_retryable=True, category=BENIGN)
    if isinstance(exc, z.RateLimited):
        if exc.limit_type == "daily":
            retry_at = datetime.now(timezone.utc) + timedelta(seconds=exc.retry_after or 3600)
            return ApplicationError(
                "Zoom's daily meeting create/update limit for this user is reached",
                retry_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                type=act.ERR_DAILY_LIMIT, non_retryable=True, category=BENIGN,
            )
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
        return ApplicationError(f"Zoom rate limit ({exc.category or 'unknown'} category)",
                                type=act.ERR_RATE_LIMITED, next_retry_delay=delay, category=BENIGN)
    if isinstance(exc, (z.ZoomTransportError, z.ZoomServerError, z.AccessTokenInvalid, RefreshUnavailable)):
        return ApplicationError(str(exc), type=act.ERR_UNAVAILABLE)
    if isinstance(exc, z.PermissionProblem):
        return ApplicationError(f"Zoom refused access: {exc.zoom_message}", type=act.ERR_NEEDS_RECONNECT,
                                non_retryable=True)
    if isinstance(exc, z.ZoomHTTPError):
        return ApplicationError(f"{exc.zoom_message} (HTTP {exc.status}, code {exc.code})", type=act.ERR_REJECTED,
                                non_retryable=True)
    raise TypeError(f"not a Zoom failure: {type(exc).__name__}")


ZOOM_FAILURES = (z.ZoomError, NotConnected, NeedsReconnect, Detached, RefreshUnavailable)
