"""Structured JSON logs: one event per line, IDs not personal data, secrets redacted by pattern.

Redaction is a last line of defence (the code never logs secrets on purpose): bearer tokens, JWT-shaped
strings, `pwd=` passcodes in join URLs, emails, and the values of secret-bearing query parameters (OAuth
`code` and `state`, the recording bot's `secret` and `dispatch_key`, tokens, signatures) are masked in every
message and extra field, in both formats. The access log of the HTTP server goes through the same handler
(see `http_api/server.py: server_config`), so request lines are redacted too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

# Query parameters whose values are secrets (or, for dispatch_key, pair with one) wherever a URL is logged:
# the OAuth callback (`code`, `state`), the bot's OBF callback (`secret`, `dispatch_key`), and any token.
SECRET_QUERY_PARAMS = ("code", "state", "secret", "dispatch_key", "token", "access_token", "refresh_token",
                       "id_token", "client_secret", "code_verifier", "signature", "password", "api_key", "key")

_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}"), "[redacted-jwt]"),
    (re.compile(r"(?i)(pwd=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)([?&](?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)[^&#\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:access|refresh)_token[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"), r"\1[redacted]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
]
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Uvicorn attaches a coloured duplicate of its message; one copy per line is enough.
_DROPPED_EXTRAS = {"color_message"}


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED_EXTRAS and not key.startswith("_"):
                event[key] = redact(value) if isinstance(value, str) else _safe(value)
        if record.exc_info:
            event["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(event, default=str)


class RedactingTextFormatter(logging.Formatter):
    """`LOG_FORMAT=text`: human-readable lines, redacted exactly like the JSON ones (message and traceback)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _safe(value: object) -> object:
    if isinstance(value, dict):
        return {k: (redact(v) if isinstance(v, str) else _safe(v)) for k, v in value.items()}
    return value if isinstance(value, (int, float, bool, type(None))) else redact(str(value))


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else RedactingTextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines would carry URLs with IDs
    # Uvicorn's own logging config gives its loggers private, unredacted handlers (propagate off). Whatever
    # configured them before, they now write through the redacting root handler (see server_config).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        server_logger = logging.getLogger(name)
        server_logger.handlers[:] = []
        server_logger.propagate = True
        server_logger.setLevel(logging.NOTSET)
