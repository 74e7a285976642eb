"""Sending one message to one recipient over SMTP, with every outcome classified.

`SMTP_URL`: `smtp://user:pass@host:587` (STARTTLS, always: a message carries join URLs, so when the server
does not offer STARTTLS nothing is sent) or `smtps://...:465` (implicit TLS). Only `SMTP_ALLOW_PLAINTEXT`
(`allow_plaintext`) lets a message go in clear to a server without STARTTLS, for a relay or sink on the same
machine; a password never crosses the wire in clear, allowed or not. smtplib runs in a thread.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit


class SmtpError(Exception):
    """Base of the sender's outcomes. Messages carry the server's code and text, never the password."""


class SmtpTemporaryError(SmtpError):
    """4xx or no connection: retry later."""


class SmtpInsecureError(SmtpTemporaryError):
    """The server offers no STARTTLS and sending in clear is not allowed. Temporary: fixing the server (or
    the setting) lets the retry deliver; nothing was sent."""


class SmtpPermanentError(SmtpError):
    """5xx for this recipient: recorded for them, never retried, never blocks the other attendees."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    allow_plaintext: bool = False

    @classmethod
    def from_url(cls, url: str, *, allow_plaintext: bool = False) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://user:pass@host:465")
        implicit = parts.scheme == "smtps"
        return cls(host=parts.hostname, port=parts.port or (465 if implicit else 587), implicit_tls=implicit,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None, allow_plaintext=allow_plaintext)


class SmtpSender:
    def __init__(self, config: SmtpConfig, *, timeout: float = 20.0) -> None:
        self._config = config
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpSender({self._config.host}:{self._config.port})"

    async def send(self, message: EmailMessage, recipient: str) -> None:
        await asyncio.to_thread(self._send, message, recipient)

    def _send(self, message: EmailMessage, recipient: str) -> None:
        cfg = self._config
        context = ssl.create_default_context()
        try:
            if cfg.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=self._timeout, context=context)
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=self._timeout)
            try:
                client.ehlo()
                if not cfg.implicit_tls:
                    if client.has_extn("starttls"):
                        client.starttls(context=context)
                        client.ehlo()
                    elif cfg.username:
                        raise SmtpInsecureError("the SMTP server does not offer STARTTLS; "
                                                "refusing to send credentials in clear")
                    elif not cfg.allow_plaintext:
                        raise SmtpInsecureError("the SMTP server does not offer STARTTLS; refusing to send in clear "
                                                "(SMTP_ALLOW_PLAINTEXT=true allows it for a relay on this machine)")
                if cfg.username and cfg.password is not None:
                    client.login(cfg.username, cfg.password)
                client.send_message(message, to_addrs=[recipient])
            finally:
                # The outcome is known once DATA is answered: a failing QUIT must not turn an accepted
                # message into a "temporary error" that the retry would send a second time.
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _classified(code, text) from None
        except smtplib.SMTPResponseException as exc:
            raise _classified(exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SmtpTemporaryError(f"SMTP connection problem: {type(exc).__name__}") from None


def _classified(code: int, text: bytes | str) -> SmtpError:
    reason = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    cls = SmtpPermanentError if 500 <= code < 600 else SmtpTemporaryError
    return cls(f"SMTP {code}: {reason[:200]}")
