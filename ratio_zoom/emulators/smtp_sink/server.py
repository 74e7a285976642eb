"""SMTP sink on aiosmtpd with an HTTP listing: `GET /messages` (JSON), `GET /messages/{i}` (raw RFC 822),
`DELETE /messages`, and fault switches `POST /faults {"reject": ["a@b.c"], "tempfail_next": N}`."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class Sink:
    messages: list[dict[str, Any]] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)
    tempfail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]  # noqa: N802
        if address.lower() in self.reject:
            return "550 5.1.1 Mailbox unavailable"
        with self.lock:
            if self.tempfail_next > 0:
                self.tempfail_next -= 1
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            self.messages.append({"index": len(self.messages), "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "subject": str(parsed["Subject"] or ""), "message_id": str(parsed["Message-ID"] or ""),
                                  "raw": raw.decode(errors="replace")})
        return "250 Message accepted"


def http_app(sink: Sink) -> Starlette:
    async def listing(request: Request) -> Response:
        if request.method == "DELETE":
            with sink.lock:
                sink.messages.clear()
            return JSONResponse({"status": "cleared"})
        return JSONResponse([{k: v for k, v in m.items() if k != "raw"} for m in sink.messages])

    async def one(request: Request) -> Response:
        index = int(request.path_params["index"])
        if index >= len(sink.messages):
            return JSONResponse({"error": "no such message"}, status_code=404)
        return PlainTextResponse(sink.messages[index]["raw"], media_type="message/rfc822")

    async def faults(request: Request) -> Response:
        body = await request.json()
        with sink.lock:
            sink.reject = {a.lower() for a in body.get("reject", [])}
            sink.tempfail_next = int(body.get("tempfail_next", 0))
        return JSONResponse({"reject": sorted(sink.reject), "tempfail_next": sink.tempfail_next})

    return Starlette(routes=[Route("/messages", listing, methods=["GET", "DELETE"]),
                             Route("/messages/{index}", one, methods=["GET"]),
                             Route("/faults", faults, methods=["POST"])])


def start_smtp(sink: Sink, host: str, port: int) -> Controller:
    controller = Controller(sink, hostname=host, port=port)
    controller.start()
    return controller


def serve(host: str, smtp_port: int, http_port: int) -> None:
    import uvicorn

    sink = Sink()
    controller = start_smtp(sink, host, smtp_port)
    print(f"SMTP sink on smtp://{host}:{smtp_port}, messages at http://{host}:{http_port}/messages", flush=True)
    try:
        uvicorn.run(http_app(sink), host=host, port=http_port, log_level="warning")
    finally:
        controller.stop()
