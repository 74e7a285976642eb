"""What a bot provider call can end in. Texts carry the provider's code, never the API key."""

from __future__ import annotations


class BotError(Exception):
    retryable = False


class BotRateLimited(BotError):
    """429 or 507 (no capacity): wait `retry_after` seconds and retry."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BotTooLateToModify(BotError):
    """Inside the 10-minute window the provider refuses PATCH/DELETE: leave the call or replace the bot."""


class BotNotFound(BotError):
    pass


class BotAuthError(BotError):
    """Wrong or revoked API key: needs a human."""


class BotBadRequest(BotError):
    pass


class BotServerError(BotError):
    retryable = True


class BotTransportError(BotError):
    retryable = True
