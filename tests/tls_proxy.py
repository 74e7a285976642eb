"""A TLS-terminating proxy in front of the Temporal dev server, standing in for a secured cluster (a
self-hosted frontend with TLS/mTLS, or Temporal Cloud's API-key endpoint).

gRPC over TLS is plain TLS at the TCP level, so an asyncio stream server with an `ssl` context terminates it
and forwards the HTTP/2 bytes to the dev server's plain-text port. With `require_client_cert` it demands a
certificate signed by our CA (mTLS). With `api_key` it reads the HTTP/2 request headers on their way through
(HPACK, decoded with the `hpack` library) and cuts the connection of any request whose `authorization`
metadata is not `Bearer <api_key>`, as an API-key endpoint would refuse it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, CONTINUATION = 0x1, 0x9
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20


class RequestRefused(Exception):
    pass


@dataclass
class RequestSniffer:
    """Follows the client-to-server HTTP/2 stream and yields each request's header block, decoded."""

    decoder: hpack.Decoder = field(default_factory=hpack.Decoder)
    buffer: bytes = b""
    preface_seen: bool = False
    block: bytes = b""

    def feed(self, data: bytes) -> list[dict[str, str]]:
        self.buffer += data
        if not self.preface_seen:
            if len(self.buffer) < len(PREFACE):
                return []
            assert self.buffer.startswith(PREFACE), "not HTTP/2 prior knowledge"
            self.buffer = self.buffer[len(PREFACE):]
            self.preface_seen = True
        requests = []
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            kind, flags = self.buffer[3], self.buffer[4]
            if len(self.buffer) < 9 + length:
                break
            payload, self.buffer = self.buffer[9:9 + length], self.buffer[9 + length:]
            if kind == HEADERS:
                if flags & PADDED:
                    pad = payload[0]
                    payload = payload[1:len(payload) - pad]
                if flags & PRIORITY:
                    payload = payload[5:]
                self.block = payload
            elif kind == CONTINUATION:
                self.block += payload
            else:
                continue
            if flags & END_HEADERS:
                # Every block goes through the decoder, in order: HPACK's dynamic table is connection state.
                headers = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                           for k, v in self.decoder.decode(self.block, raw=True)}
                self.block = b""
                if ":path" in headers:
                    requests.append(headers)
        return requests


@dataclass
class TlsProxy:
    upstream: str  # host:port of the plain-text dev server
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: mTLS required
    api_key: str | None = None  # set: every request must carry `authorization: Bearer <api_key>`
    port: int = 0
    verified_clients: list[str] = field(default_factory=list)  # subject CNs of client certs seen
    requests: list[dict[str, str]] = field(default_factory=list)  # forwarded requests' headers
    refused: int = 0
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(["h2"])
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)
        return context

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        peer = writer.get_extra_info("peercert")
        if peer:
            self.verified_clients.append(dict(x[0] for x in peer["subject"])["commonName"])
        host, _, port = self.upstream.rpartition(":")
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        sniffer = RequestSniffer()

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                for headers in sniffer.feed(data):
                    if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
                        self.refused += 1
                        raise RequestRefused(headers.get(":path", "?"))
                    self.requests.append(headers)
                up_writer.write(data)
                await up_writer.drain()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(client_to_server()), asyncio.ensure_future(server_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, RequestRefused, ConnectionError, ssl.SSLError):
                    await task
            self._open.discard(writer)
            for w in (up_writer, writer):
                w.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await w.wait_closed()


@contextlib.asynccontextmanager
async def running_tls_proxy(proxy: TlsProxy) -> AsyncIterator[TlsProxy]:
    server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0, ssl=proxy._context())
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        # SDK clients keep their connections for the life of the process: close them, or wait_closed hangs.
        for writer in list(proxy._open):
            writer.close()
        await server.wait_closed()


__all__ = ["RequestSniffer", "TlsProxy", "running_tls_proxy"]
