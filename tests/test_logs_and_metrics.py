"""Logs are JSON with secrets redacted; our counters exist on the SDK meter."""

from __future__ import annotations

import json
import logging

from ratio_zoom.core.logs import JsonFormatter, redact
from ratio_zoom.core.metrics import Metrics


def test_redaction_masks_tokens_passcodes_and_emails() -> None:
    line = redact("Authorization: Bearer abc.def-123 join https://zoom.us/j/1?pwd=s3cret mail ada@example.com "
                  'refresh_token="r-123" eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig12345')
    for secret in ("abc.def-123", "s3cret", "ada@example.com", "r-123", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in line


def test_json_formatter_emits_one_object_per_line_with_extras_redacted() -> None:
    record = logging.makeLogRecord({"msg": "created %s", "args": ("m1",), "levelname": "INFO", "name": "t",
                                    "appointment_id": "a1", "join_url": "https://zoom.us/j/1?pwd=x"})
    event = json.loads(JsonFormatter().format(record))
    assert event["msg"] == "created m1" and event["appointment_id"] == "a1"
    assert "pwd=x" not in event["join_url"]


def test_metrics_on_noop_meter_accept_every_call() -> None:
    metrics = Metrics(None)
    metrics.zoom_call("create_meeting", 201)
    metrics.zoom_call("create_meeting", 429)
    metrics.zoom_call("get_meeting", 0)
    metrics.refresh("w1")


def test_secret_query_parameters_are_redacted_in_both_formats() -> None:
    from ratio_zoom.core.logs import RedactingTextFormatter

    line = ('127.0.0.1:5 - "GET /v1/zoom/oauth/callback?code=AUTHCODE123&state=STATE456 HTTP/1.1" 303 '
            '"GET /v1/recording-bot/zoom-obf-token?dispatch_key=a1%3Arecbot%3A1&expires=9&secret=BOTSECRET HTTP/1.1"')
    record = logging.makeLogRecord({"msg": "%s", "args": (line,), "levelname": "INFO", "name": "uvicorn.access"})
    for rendered in (JsonFormatter().format(record), RedactingTextFormatter().format(record)):
        for secret in ("AUTHCODE123", "STATE456", "BOTSECRET", "a1%3Arecbot"):
            assert secret not in rendered, rendered
        assert "/v1/zoom/oauth/callback?code=[redacted]" in rendered and "expires=9" in rendered
