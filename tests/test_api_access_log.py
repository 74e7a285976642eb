"""The API's access log goes through the redactor (issue 13, finding 2).

The attack: uvicorn's own access-log handler printed `GET /v1/zoom/oauth/callback?code=<auth code>&state=<state>`
and `GET /v1/recording-bot/zoom-obf-token?...&secret=<bot secret>` verbatim, and `LOG_FORMAT=text` skipped
redaction. Here the real uvicorn server runs with the API's own `server_config` and the logging the
`ratio-zoom api` command sets up, in both formats; the request lines are logged, the secrets are not."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from ratio_zoom.connections.service import ConnectionService
from ratio_zoom.connections.services import Services
from ratio_zoom.core.logs import configure_logging
from ratio_zoom.emulators.zoom_server.testing import free_port
from ratio_zoom.http_api.server import create_app, server_config
from tests.conftest import make_settings

AUTH_CODE = "AuthCode-7f3a9c2e5b"
STATE = "OAuthState-1d8e6f4a2c"
BOT_SECRET = "BotSecret-9e2b7c4d1f"
DISPATCH_KEY = "appt-42:recbot:3"


@pytest.fixture
def captured_root_log() -> Iterator[io.StringIO]:
    """Where the root handler writes during the test; the root logger is restored afterwards."""
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    buffer = io.StringIO()
    yield buffer
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def _serve(config: uvicorn.Config) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-access-log", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    return server, thread


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_access_log_lines_carry_no_codes_states_or_bot_secrets(fmt: str, sqlite_url: str,
                                                                     captured_root_log: io.StringIO) -> None:
    port = free_port()
    settings = make_settings(sqlite_url, API_BIND=f"127.0.0.1:{port}", LOG_FORMAT=fmt)
    configure_logging(settings.log_level, settings.log_format)  # what `ratio-zoom api` does first
    logging.getLogger().handlers[0].setStream(captured_root_log)  # type: ignore[attr-defined]
    services = Services.create(settings, pooled=False)
    connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom)
    server, thread = _serve(server_config(create_app(services, connections), settings, lifespan="off"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            callback = await http.get("/v1/zoom/oauth/callback", params={"code": AUTH_CODE, "state": STATE})
            obf = await http.get("/v1/recording-bot/zoom-obf-token",
                                 params={"dispatch_key": DISPATCH_KEY, "expires": "4102444800", "secret": BOT_SECRET})
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        await services.aclose()
    assert callback.status_code == 400 and obf.status_code == 401
    written = captured_root_log.getvalue()
    # The access log is there (so this test would see a leak) ...
    assert "/v1/zoom/oauth/callback?code=[redacted]&state=[redacted]" in written, written
    assert "/v1/recording-bot/zoom-obf-token?dispatch_key=[redacted]" in written and "secret=[redacted]" in written
    # ... and nothing it wrote carries a secret.
    for secret in (AUTH_CODE, STATE, BOT_SECRET, "recbot"):
        assert secret not in written, f"{secret} leaked into the {fmt} log"
