"""One explicit mode: production (the default) refuses to start insecurely; dev is asked for by name.

`check_start(settings, process)` runs first thing in the worker and the API. In production it raises one
`ConfigurationError` naming the setting (the CLI turns it into exit status 2 and one line) when:

- `PAYLOAD_ENCRYPTION_KEYS` is unset: join URLs and attendee emails would sit in Temporal histories in clear;
- `CODEC_AUTH_TOKEN` is unset or short: anyone reaching the API could decrypt (and forge) those payloads;
- SMTP may send in clear to another machine (`SMTP_ALLOW_PLAINTEXT=true` with a non-loopback host);
- `DATABASE_URL` is SQLite: a disconnect cannot wait there for a Zoom call already in flight in another
  process (PostgreSQL's row locks make it wait), so the promise "after disconnect returns, no further Zoom
  call is made" would not hold.

Two things are refused in every mode, because they expose secrets beyond this machine whatever the mode:
the codec served on a non-loopback bind without a token, and a malformed SMTP URL or TLS file.

In dev mode nothing else is refused; the process says once, at start-up, which protections are relaxed.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from ratio_zoom.core.settings import ConfigurationError, Settings
from ratio_zoom.core.temporal import temporal_tls

log = logging.getLogger("ratio_zoom.mode")
MIN_CODEC_TOKEN_CHARS = 32
DEV_HINT = "(RATIO_ZOOM_MODE=dev, set by `ratio-zoom dev`, allows it on one machine)"


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp_on(settings: Settings) -> bool:
    return settings.emails_enabled and bool(settings.smtp_url.get_secret_value())


def _smtp_host(settings: Settings) -> str:
    """The SMTP host, after checking the URL's form (never echoing it: it may carry a password)."""
    parts = urlsplit(settings.smtp_url.get_secret_value())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError("SMTP_URL is invalid: must be smtp://[user:pass@]host[:587] (STARTTLS) or "
                                 "smtps://[user:pass@]host[:465] (implicit TLS)")
    return parts.hostname


def _always(settings: Settings) -> None:
    """Refused in every mode."""
    if _smtp_on(settings):
        _smtp_host(settings)
    codec_served = bool(settings.payload_encryption_keys.get_secret_value())
    host, _ = settings.api_host_port
    if codec_served and not is_loopback(host) and not settings.codec_auth_token.get_secret_value():
        raise ConfigurationError(f"CODEC_AUTH_TOKEN is required: the codec server on API_BIND {settings.api_bind} "
                                 "is reachable from other machines and would decrypt payloads for anyone")
    temporal_tls(settings)  # unreadable certificate files fail here, naming the variable


def production_problems(settings: Settings) -> list[str]:
    """Every reason this configuration is unsafe in production, one line each, naming the setting."""
    problems = []
    if not settings.payload_encryption_keys.get_secret_value():
        problems.append("PAYLOAD_ENCRYPTION_KEYS is required in production: without it join URLs and attendee "
                        "emails are stored in Temporal histories in clear")
    else:
        settings.payload_keyring()  # malformed keys: ConfigurationError naming the variable
    token = settings.codec_auth_token.get_secret_value()
    if not token:
        problems.append("CODEC_AUTH_TOKEN is required in production: without it anyone who reaches the API can "
                        "decrypt and forge Temporal payloads through /codec")
    elif len(token) < MIN_CODEC_TOKEN_CHARS:
        problems.append(f"CODEC_AUTH_TOKEN is too short: use at least {MIN_CODEC_TOKEN_CHARS} random characters")
    if settings.codec_allow_unauthenticated:
        problems.append("CODEC_ALLOW_UNAUTHENTICATED is refused in production: the codec would decrypt payloads "
                        "for anyone who reaches the API")
    if _smtp_on(settings) and settings.smtp_allow_plaintext and not is_loopback(_smtp_host(settings)):
        problems.append("SMTP_ALLOW_PLAINTEXT is refused in production for a relay on another machine: join URLs "
                        "would cross the network in clear; use smtps:// or a server that offers STARTTLS")
    if settings.database_url.startswith("sqlite"):
        problems.append("DATABASE_URL is SQLite: a disconnect cannot wait there for a Zoom call in flight in "
                        f"another process; production needs postgresql:// {DEV_HINT}")
    return problems


def check_start(settings: Settings, process: str) -> None:
    """Raise the first production problem, or (dev mode) say once what is relaxed. `process`: worker/api."""
    _always(settings)
    problems = production_problems(settings)
    if settings.mode == "production":
        if problems:
            raise ConfigurationError(problems[0])
        return
    relaxed = "; ".join(p.split(":", 1)[0] for p in problems) or "nothing"
    log.warning("ratio-zoom %s in dev mode (RATIO_ZOOM_MODE=dev): not for production; relaxed: %s",
                process, relaxed)
