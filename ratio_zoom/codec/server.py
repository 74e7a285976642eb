"""The codec server: `POST /codec/decode` and `/codec/encode` for the Temporal UI and CLI
(`--ui-codec-endpoint`, `temporal ... --codec-endpoint`), with CORS for the UI's origin, optional bearer
auth and one access-log line per request (never the payloads)."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from ratio_zoom.core.payload_codec import EncryptionCodec

log = logging.getLogger("ratio_zoom.codec")


def codec_routes(codec: EncryptionCodec, *, allowed_origins: list[str], bearer_token: str | None) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin", "")
        if origin and (origin in allowed_origins or "*" in allowed_origins):
            return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": "content-type, x-namespace, authorization", "Vary": "Origin"}
        return {}

    def authorised(request: Request) -> bool:
        if not bearer_token:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), bearer_token.encode())

    async def handle(request: Request, decode: bool) -> Response:
        headers = cors(request)
        namespace = request.headers.get("x-namespace", "-")
        if not authorised(request):
            log.info("codec %s namespace=%s status=401", request.url.path, namespace)
            return JSONResponse({"detail": "unauthorized"}, status_code=401, headers=headers)
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
            result = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except Exception as exc:  # noqa: BLE001 - answered as a 400 with the reason, and logged
            log.warning("codec %s namespace=%s status=400 reason=%s", request.url.path, namespace, type(exc).__name__)
            return JSONResponse({"detail": f"cannot {'decode' if decode else 'encode'}: {type(exc).__name__}"},
                                status_code=400, headers=headers)
        log.info("codec %s namespace=%s payloads=%d status=200", request.url.path, namespace, len(result))
        body = json_format.MessageToJson(Payloads(payloads=result))
        return Response(body, media_type="application/json", headers=headers)

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
