"""Request-body limit as a pure ASGI middleware: every route, every way a body can arrive.

A declared `Content-Length` over the limit is answered 413 before the app sees a byte. A chunked body is
counted while the app reads it; the moment it passes the limit the read fails, whatever the app was about to
answer is dropped and the client gets 413. Nothing past the limit is buffered.

Before answering, the rest of the body is read and thrown away, up to DRAIN_BYTES: an HTTP/1.1 client
writes its whole body before it reads the answer, and a server that closes mid-upload makes it see a
connection reset instead of the 413. Past DRAIN_BYTES the connection is simply closed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


# Discarded, never stored: the cost of a refused upload is bounded to this much reading per request.
DRAIN_BYTES = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    """Raised into the app from `receive` once the body passes the limit (never reaches a client)."""


class BodyLimit:
    def __init__(self, app: ASGIApp, *, default_limit: int, limit_for_path: Callable[[str], int | None] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limit_for_path = limit_for_path

    def _limit(self, path: str) -> int:
        special = self.limit_for_path(path) if self.limit_for_path else None
        return special if special is not None else self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if declared.isdigit() and int(declared) <= DRAIN_BYTES:
                await _drain(receive, DRAIN_BYTES)
            await _too_large(send, limit)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app answered after its read failed (a 400 or 500): the client gets our 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _drain(receive, DRAIN_BYTES - received)
            await _too_large(send, limit)


async def _drain(receive: Receive, budget: int) -> None:
    """Read and discard the rest of the request body, at most `budget` bytes."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
