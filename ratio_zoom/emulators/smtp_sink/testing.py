"""`with running_smtp_sink() as sink:` for tests: real SMTP on a free port, in-process inspection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ratio_zoom.emulators.smtp_sink.server import Sink, start_smtp
from ratio_zoom.emulators.zoom_server.testing import free_port


class SinkHandle:
    def __init__(self, sink: Sink, port: int) -> None:
        self.sink = sink
        self.port = port
        self.smtp_url = f"smtp://127.0.0.1:{port}"

    @property
    def messages(self) -> list[dict]:
        return list(self.sink.messages)


@contextmanager
def running_smtp_sink() -> Iterator[SinkHandle]:
    sink = Sink()
    port = free_port()
    controller = start_smtp(sink, "127.0.0.1", port)
    try:
        yield SinkHandle(sink, port)
    finally:
        controller.stop()
