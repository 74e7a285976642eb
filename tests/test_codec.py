"""Payload encryption: the codec, the codec server, and what actually sits in a Temporal history."""

from __future__ import annotations

import base64

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from ratio_zoom.emulators.zoom_server.testing import free_port
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.core.keyring import KeyRing
from ratio_zoom.core.payload_codec import REFUSED_ENCODING, EncryptionCodec, PayloadDecryptionError
from ratio_zoom.codec.server import codec_routes

K1 = "p1:" + base64.b64encode(b"\x05" * 32).decode()
K2 = "p2:" + base64.b64encode(b"\x06" * 32).decode()


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_round_trip_rotation_and_tampering() -> None:
    old = EncryptionCodec(KeyRing.parse(K1))
    encoded = await old.encode([payload('{"email":"ada@example.com"}')])
    assert b"ada@example.com" not in encoded[0].SerializeToString()
    assert encoded[0].metadata["encryption-key-id"] == b"p1"
    assert encoded != await old.encode([payload('{"email":"ada@example.com"}')])  # fresh nonce
    rotated = EncryptionCodec(KeyRing.parse(f"{K2},{K1}"))
    assert (await rotated.decode(encoded))[0].data == b'{"email":"ada@example.com"}'
    with pytest.raises(PayloadDecryptionError, match="p1"):
        await EncryptionCodec(KeyRing.parse(K2)).decode(encoded)
    tampered = Payload(metadata=dict(encoded[0].metadata), data=encoded[0].data[:-1] + b"\x00")
    with pytest.raises(PayloadDecryptionError):
        await old.decode([tampered])
    # While encryption is on, an unencrypted payload is refused (a marker no converter reads), not raised.
    refused = await old.decode([payload('{"forged": true}')])
    assert refused[0].metadata["encoding"] == REFUSED_ENCODING and refused[0].data == b""


async def test_codec_server_decodes_with_cors_and_bearer_auth() -> None:
    from fastapi import FastAPI

    codec = EncryptionCodec(KeyRing.parse(K1))
    app = FastAPI()
    app.include_router(codec_routes(codec, allowed_origins=["http://localhost:8233"], bearer_token="ui-token"))
    encoded = await codec.encode([payload('"Intro call"')])
    body = json_format.MessageToJson(Payloads(payloads=encoded))
    with serving(app, free_port()) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            preflight = await http.options("/codec/decode", headers={"Origin": "http://localhost:8233",
                                                                     "Access-Control-Request-Method": "POST"})
            assert preflight.headers["access-control-allow-origin"] == "http://localhost:8233"
            assert "x-namespace" in preflight.headers["access-control-allow-headers"]
            denied = await http.post("/codec/decode", content=body)
            assert denied.status_code == 401
            decoded = await http.post("/codec/decode", content=body, headers={
                "Authorization": "Bearer ui-token", "Origin": "http://localhost:8233", "X-Namespace": "default"})
            assert decoded.status_code == 200
            assert decoded.headers["access-control-allow-origin"] == "http://localhost:8233"
            result = json_format.Parse(decoded.text, Payloads())
            assert result.payloads[0].data == b'"Intro call"'
            foreign = await http.post("/codec/decode", content=body, headers={
                "Authorization": "Bearer ui-token", "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in foreign.headers


async def test_codec_without_a_configured_token_refuses_everyone_and_decrypts_nothing() -> None:
    """The attack of issue 13: with CODEC_AUTH_TOKEN unset, encode then decode with no token returned the
    plaintext join URL. Now a codec without a token answers 401 to every request, with any credentials."""
    from fastapi import FastAPI

    codec = EncryptionCodec(KeyRing.parse(K1))
    app = FastAPI()
    app.include_router(codec_routes(codec, allowed_origins=["http://localhost:8233"], bearer_token=None))
    join_url = "https://zoom.example/j/123?pwd=sekrit"
    encoded = json_format.MessageToJson(Payloads(payloads=await codec.encode([payload(f'"{join_url}"')])))
    plain = json_format.MessageToJson(Payloads(payloads=[payload(f'"{join_url}"')]))
    with serving(app, free_port()) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            for path, body in (("/codec/decode", encoded), ("/codec/encode", plain)):
                for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer anything"}):
                    answer = await http.post(path, content=body, headers=headers)
                    assert answer.status_code == 401, (path, headers, answer.text)
                    assert "sekrit" not in answer.text and "zoom.example" not in answer.text


async def test_an_explicitly_opened_codec_still_refuses_plaintext_input() -> None:
    from fastapi import FastAPI

    codec = EncryptionCodec(KeyRing.parse(K1))
    app = FastAPI()
    app.include_router(codec_routes(codec, allowed_origins=[], bearer_token=None, allow_unauthenticated=True))
    forged = json_format.MessageToJson(Payloads(payloads=[payload('"forged"')]))
    with serving(app, free_port()) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            decoded = json_format.Parse((await http.post("/codec/decode", content=forged)).text, Payloads())
    assert decoded.payloads[0].metadata["encoding"] == REFUSED_ENCODING and decoded.payloads[0].data == b""
