"""The codec server: `POST /codec/decode` and `/codec/encode` for the Temporal UI and CLI
(`--ui-codec-endpoint`, `temporal ... --codec-endpoint --codec-auth`), with CORS for the UI's origin, bearer
auth and one access-log line per request (never the payloads).

Whoever can call `/codec/decode` reads every join URL and attendee email in every history, and whoever can
call `/codec/encode` can forge encrypted signals. So the codec fails closed: without a configured bearer token
every request is answered 401. The only way to serve it without a token is the explicit
`allow_unauthenticated` (dev mode on a loopback bind, where the Temporal UI cannot send a static token).
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from ratio_zoom.core.payload_codec import EncryptionCodec

log = logging.getLogger("ratio_zoom.codec")


def codec_routes(codec: EncryptionCodec, *, allowed_origins: list[str], bearer_token: str | None,
                 allow_unauthenticated: bool = False) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    expected = bearer_token.encode() if bearer_token else None
    if expected is None and not allow_unauthenticated:
        log.warning("codec server: CODEC_AUTH_TOKEN is not set, so /codec/encode and /codec/decode answer 401")

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin", "")
        if origin and (origin in allowed_origins or "*" in allowed_origins):
            return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": "content-type, x-namespace, authorization", "Vary": "Origin"}
        return {}

    def authorised(request: Request) -> bool:
        if allow_unauthenticated:
            # Explicitly opened (dev mode, loopback bind only: the Temporal UI cannot send a static token).
            # Anyone who can reach a loopback port here can also read the dev key file.
            return True
        if expected is None:
            return False  # no token configured: closed
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected)

    async def handle(request: Request, decode: bool) -> Response:
        headers = cors(request)
        namespace = request.headers.get("x-namespace", "-")[:64]
        if not authorised(request):
            log.info("codec %s namespace=%s status=401", request.url.path, namespace)
            return JSONResponse({"detail": "unauthorized"}, status_code=401,
                                headers={**headers, "WWW-Authenticate": "Bearer"})
        # Read outside the try below: an oversized body must surface as the body limit's 413, not a 400.
        raw = await request.body()
        try:
            payloads = json_format.Parse(raw, Payloads())
            result = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except Exception as exc:  # noqa: BLE001 - answered as a 400 with the reason, and logged
            log.warning("codec %s namespace=%s status=400 reason=%s", request.url.path, namespace, type(exc).__name__)
            return JSONResponse({"detail": f"cannot {'decode' if decode else 'encode'}: {type(exc).__name__}"},
                                status_code=400, headers=headers)
        log.info("codec %s namespace=%s payloads=%d status=200", request.url.path, namespace, len(result))
        body = json_format.MessageToJson(Payloads(payloads=result))
        return Response(body, media_type="application/json", headers={**headers, "Cache-Control": "no-store"})

    @router.options("/codec/{action}")
    async def preflight(request: Request, action: str) -> Response:
        return Response(status_code=204, headers=cors(request))

    @router.post("/codec/decode")
    async def decode(request: Request) -> Response:
        return await handle(request, decode=True)

    @router.post("/codec/encode")
    async def encode(request: Request) -> Response:
        return await handle(request, decode=False)

    return router
