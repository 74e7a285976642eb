"""The chaos suite's log scan finds every kind of secret it is meant to find, and passes what the redactor
leaves behind: a scan that cannot see a planted secret would prove nothing after each scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratio_zoom.core.logs import redact
from tests.chaos.harness import scan_log_lines

JOIN = "https://zoom.example/j/84000007920?pwd=Q2hhb3NQYXNzY29kZTEyMzQ"
START = "https://zoom.example/s/84000007920?zak=host-secret"
KNOWN = [("auth code", "Zr3kq0Yf1mW9xWcH4pTj2sQd"), ("OAuth state", "st-7Hq2LmP0xKc9RvB3aZt1"),
         ("bot secret", "9f2c1e0d7a6b5c4d3e2f1a0b9c8d7e6f"), ("join URL", JOIN), ("host start URL", START),
         ("service secret", "test-internal-token")]
TOKEN = "at." + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"

PLANTED = [
    ("access token in a traceback", f"httpx.HTTPStatusError: Authorization: {TOKEN}", "access/refresh token"),
    ("refresh token in JSON", json.dumps({"msg": "refresh", "refresh_token": "rt." + "z" * 43}), "access/refresh token"),
    ("auth code in an access log", '127.0.0.1:5 - "GET /v1/zoom/oauth/callback?code=Zr3kq0Yf1mW9xWcH4pTj2sQd&state=x HTTP/1.1" 303',
     "auth code"),
    ("OAuth state alone", "state st-7Hq2LmP0xKc9RvB3aZt1 expired", "OAuth state"),
    ("bot secret in an access log",
     '"GET /v1/recording-bot/zoom-obf-token?dispatch_key=a%3Arecbot%3A1&secret=9f2c1e0d7a6b5c4d3e2f1a0b9c8d7e6f HTTP/1.1"',
     "bot secret"),
    ("join URL", f"meeting ready {JOIN}", "join URL"),
    ("passcode field", '{"msg": "created", "password": "482913"}', "passcode field"),
    ("host start URL", f"zoom said {START}", "host start URL"),
    ("service secret", "Bearer test-internal-token", "service secret"),
]


@pytest.mark.parametrize(("case", "line", "kind"), PLANTED, ids=[p[0] for p in PLANTED])
def test_each_planted_secret_is_found(tmp_path: Path, case: str, line: str, kind: str) -> None:
    log = tmp_path / "api.log"
    log.write_text(f"ratio-zoom API on http://127.0.0.1:8080\n{line}\n")
    violations, lines = scan_log_lines([log], KNOWN)
    assert lines == 2
    assert any(f"{kind} in api.log line 2" in v for v in violations), violations
    assert all(line not in v for v in violations)  # the report names the kind, never the value


def test_what_the_redactor_leaves_is_clean(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    lines = [redact(f"joined {JOIN}"), redact(f"Authorization: Bearer {TOKEN}"),
             '{"level": "info", "logger": "uvicorn.access", "msg": "POST /v1/webhooks/zoom HTTP/1.1 200"}',
             "ratio-zoom worker polling task queue 'chaos-1a2b3c' on 127.0.0.1:7233 (default)"]
    log.write_text("\n".join(lines) + "\n")
    violations, scanned = scan_log_lines([log], KNOWN)
    assert scanned == 4 and violations == []
