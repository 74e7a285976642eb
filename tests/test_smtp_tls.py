"""Finding 8: join URLs never cross the network in clear. `smtp://` upgrades with STARTTLS or sends nothing;
only SMTP_ALLOW_PLAINTEXT lets a message (never a password) go in clear. Real SMTP servers (aiosmtpd), one
offering STARTTLS with a certificate minted by the test."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ratio_zoom.confirmations.models import Recipient
from ratio_zoom.confirmations.render import build_message
from ratio_zoom.confirmations.smtp import SmtpConfig, SmtpInsecureError, SmtpSender, SmtpTemporaryError
from ratio_zoom.emulators.smtp_sink.testing import running_smtp_sink
from ratio_zoom.emulators.zoom_server.testing import free_port
from tests.test_confirmations import facts
from tests.tls_material import mint


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[dict[str, Any]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.delivered.append({"to": list(envelope.rcpt_tos), "tls": session.ssl is not None})
        return "250 Message accepted"


@contextmanager
def starttls_server(tmp_path: Path) -> Iterator[tuple[Recorder, int, Path]]:
    """An SMTP server that offers STARTTLS and refuses mail before it (aiosmtpd `require_starttls`)."""
    material = mint(tmp_path / "smtp-tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(material.server.cert, material.server.key)
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    try:
        yield recorder, port, material.ca
    finally:
        controller.stop()


def _message():  # type: ignore[no-untyped-def]
    return build_message(facts(), Recipient(email="ada@example.com"), sender="r@x.io", message_id="<tls@x>")


async def test_without_starttls_nothing_is_sent_in_clear() -> None:
    with running_smtp_sink() as sink:  # the sink offers no STARTTLS
        with pytest.raises(SmtpInsecureError, match="refusing to send in clear"):
            await SmtpSender(SmtpConfig.from_url(sink.smtp_url)).send(_message(), "ada@example.com")
        assert sink.messages == []
        # The explicit allowance (a relay on this machine) is the only way through in clear.
        await SmtpSender(SmtpConfig.from_url(sink.smtp_url, allow_plaintext=True)).send(_message(), "ada@example.com")
        assert len(sink.messages) == 1


async def test_a_password_never_goes_in_clear_even_when_plaintext_is_allowed() -> None:
    with running_smtp_sink() as sink:
        url = sink.smtp_url.replace("smtp://", "smtp://mailer:s3cret@")
        with pytest.raises(SmtpInsecureError, match="credentials"):
            await SmtpSender(SmtpConfig.from_url(url, allow_plaintext=True)).send(_message(), "ada@example.com")
        assert sink.messages == []


async def test_starttls_is_used_when_offered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with starttls_server(tmp_path) as (recorder, port, ca):
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the sender verifies the server against the system store
        await SmtpSender(SmtpConfig.from_url(f"smtp://127.0.0.1:{port}")).send(_message(), "ada@example.com")
    assert recorder.delivered == [{"to": ["ada@example.com"], "tls": True}]


async def test_an_untrusted_certificate_is_not_a_reason_to_fall_back_to_clear(tmp_path: Path) -> None:
    with starttls_server(tmp_path) as (recorder, port, _ca):
        with pytest.raises(SmtpTemporaryError, match="SSLCertVerificationError"):
            await SmtpSender(SmtpConfig.from_url(f"smtp://127.0.0.1:{port}", allow_plaintext=True)).send(
                _message(), "ada@example.com")
    assert recorder.delivered == []
