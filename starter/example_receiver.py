"""A tiny, complete core-app receiver for ratio-zoom's events (Starlette; run it with uvicorn).

    CORE_APP_WEBHOOK_SECRET=whsec_... uvicorn starter.example_receiver:app --port 8500

It verifies each POST, de-duplicates on the event ID, applies events in sequence order per stream and
keeps what it applied in memory (a real core app writes it to its database in the same transaction as the
appointment record, then answers 2xx). The tests use it as the core app.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ratio_zoom.contract.events import CoreAppEvent
from starter.webhooks import EventVerifier, InvalidEvent


@dataclass
class Inbox:
    """What the receiver applied, per stream, plus everything it turned away."""

    applied: list[CoreAppEvent] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    last_sequence: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    stale: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, event: CoreAppEvent) -> str:
        with self.lock:
            if event.id in self.seen_ids:
                self.duplicates += 1
                return "duplicate"
            self.seen_ids.add(event.id)
            if event.sequence <= self.last_sequence.get(event.stream, 0):
                self.stale += 1
                return "stale"
            self.last_sequence[event.stream] = event.sequence
            self.applied.append(event)
            return "applied"


def make_app(secret: str, inbox: Inbox | None = None) -> Starlette:
    verifier = EventVerifier(secret)
    box = inbox if inbox is not None else Inbox()

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            event = verifier.verify(body, request.headers)
        except InvalidEvent as exc:
            with box.lock:
                box.refused += 1
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"result": box.accept(event)})

    app = Starlette(routes=[Route("/ratio-zoom/events", receive, methods=["POST"])])
    app.state.inbox = box
    return app


_from_env: Starlette | None = None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The uvicorn entry point: built on first use from CORE_APP_WEBHOOK_SECRET (importing needs no secret)."""
    global _from_env
    if _from_env is None:
        secret = os.environ.get("CORE_APP_WEBHOOK_SECRET", "")
        if not secret:
            raise RuntimeError("set CORE_APP_WEBHOOK_SECRET to the secret ratio-zoom signs its events with")
        _from_env = make_app(secret)
    await _from_env(scope, receive, send)
