"""The service's HTTP API (FastAPI): Zoom connect/callback/status/disconnect, Zoom webhooks, health.

OpenAPI is published at /openapi.json: it describes the contract the core app codes against and holds no
secret. The interactive /docs and /redoc pages are off: they load third-party scripts from a CDN into our
origin and invite pasting the internal bearer token into a browser. Every /v1/workspaces call needs
`Authorization: Bearer <INTERNAL_API_TOKEN>` and says who acts (`actor_id`, `actor_role`).

Security controls of this layer (docs/security-api.md): a request-body limit on every route while streaming
(body_limit.py), the codec closed without its token (codec/server.py), connect's `return_url` on an
allow-list of origins (RETURN_URL_ORIGINS), a Zoom deauthorization remembered only once its purge succeeded,
the OBF-token gates (obf_token.py), and the access log through the redacting log handler (`server_config`).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from datetime import datetime
from typing import Literal

from fastapi import Depends, FastAPI, Request
from temporalio.client import Client
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text

from ratio_zoom.connections.repository import utcnow
from ratio_zoom.connections.service import ConnectionRefused, ConnectionService
from ratio_zoom.contract.zoom_events import MEETING_EVENTS
from ratio_zoom.http_api import deliveries, zoom_meeting_events
from ratio_zoom.http_api.auth import bearer_guard
from ratio_zoom.http_api.body_limit import BodyLimit
from ratio_zoom.connections.services import Services
from ratio_zoom.zoom.webhooks import WebhookSignatureError, url_validation_response, verify_signature

log = logging.getLogger("ratio_zoom.api")
MAX_BODY_BYTES = 64 * 1024
# The Temporal UI posts a history event's payloads in one request; ours are small (kilobytes), and Temporal's
# own blob limit is 2 MB. 1 MiB leaves room for the base64/JSON overhead without reading 2 MB bodies.
CODEC_MAX_BODY_BYTES = 1024 * 1024
LOOPBACK_BINDS = ("127.0.0.1", "localhost", "::1", "[::1]")
Role = Literal["owner", "admin", "member"]


class ConnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor_id: str = Field(min_length=1, max_length=128)
    actor_role: Role
    return_url: str = Field(min_length=1, max_length=2000)


class ConnectResponse(BaseModel):
    authorize_url: str


class ActorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor_id: str = Field(min_length=1, max_length=128)
    actor_role: Role


class ConnectionView(BaseModel):
    workspace_id: str
    status: Literal["connected", "needs_reconnect", "disconnected"]
    zoom_email: str | None = None
    zoom_user_id: str | None = None
    connected_by: str | None = None
    connected_at: datetime | None = None
    scopes: list[str] = []
    reason: str | None = None


def _body_limit_for(path: str) -> int | None:
    return CODEC_MAX_BODY_BYTES if path.startswith("/codec/") else None


def create_app(services: Services, connections: ConnectionService, *, temporal_ready=None,  # type: ignore[no-untyped-def]
               bot_signaller=None, meeting_signaller: zoom_meeting_events.MeetingSignaller | None = None) -> FastAPI:
    """`bot_signaller(appointment_id, event)` relays a verified bot status to the appointment's workflow;
    `meeting_signaller(appointment_id, change)` relays Zoom's meeting.updated / meeting.deleted the same way."""
    settings = services.settings
    app = FastAPI(title="ratio-zoom", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Zoom connection lifecycle and webhooks for Ratio workspaces.")
    app.add_middleware(BodyLimit, default_limit=MAX_BODY_BYTES, limit_for_path=_body_limit_for)
    guard = Depends(bearer_guard(settings.internal_api_token.get_secret_value()))
    return_origins = settings.return_origins()
    ring = settings.payload_keyring()
    if ring is not None:
        from ratio_zoom.core.payload_codec import EncryptionCodec
        from ratio_zoom.codec.server import codec_routes

        origins = [o.strip() for o in settings.codec_cors_origins.split(",") if o.strip()]
        token = settings.codec_auth_token.get_secret_value() or None
        # Opening the codec without a token is honoured on a loopback bind only (dev): never on a reachable one.
        open_codec = settings.codec_allow_unauthenticated and settings.api_host_port[0] in LOOPBACK_BINDS
        if settings.codec_allow_unauthenticated and not open_codec:
            log.warning("CODEC_ALLOW_UNAUTHENTICATED ignored: API_BIND %s is not a loopback address",
                        settings.api_host_port[0])
        app.include_router(codec_routes(EncryptionCodec(ring), allowed_origins=origins, bearer_token=token,
                                        allow_unauthenticated=open_codec))

    def refused(exc: ConnectionRefused) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.post("/v1/workspaces/{workspace_id}/zoom/connect", response_model=ConnectResponse, dependencies=[guard])
    async def connect(workspace_id: str, body: ConnectRequest) -> ConnectResponse | JSONResponse:
        try:
            url = await connections.start_connect(workspace_id, body.actor_id, body.actor_role, body.return_url,
                                                  allowed_origins=return_origins)
        except ConnectionRefused as exc:
            return refused(exc)
        return ConnectResponse(authorize_url=url)

    @app.get("/v1/zoom/oauth/callback", response_class=RedirectResponse, include_in_schema=True)
    async def oauth_callback(code: str | None = None, state: str | None = None, error: str | None = None) -> Response:
        try:
            target = await connections.complete_connect(code, state, error)
        except ConnectionRefused as exc:
            # Without a valid state we do not know (or trust) a return URL: show the reason here.
            page = (f"<!doctype html><title>Zoom connection failed</title><h1>Zoom connection failed</h1>"
                    f"<p>Reason: {html.escape(exc.reason)}. Start again from Ratio's Zoom settings page.</p>")
            return HTMLResponse(page, status_code=400)
        return RedirectResponse(target, status_code=303)

    @app.get("/v1/workspaces/{workspace_id}/zoom", response_model=ConnectionView, dependencies=[guard])
    async def connection_status(workspace_id: str) -> ConnectionView:
        status = await connections.status(workspace_id)
        return ConnectionView(workspace_id=workspace_id, status=status.status, zoom_email=status.zoom_email,  # type: ignore[arg-type]
                              zoom_user_id=status.zoom_user_id, connected_by=status.connected_by,
                              connected_at=status.connected_at, scopes=list(status.scopes), reason=status.reason)

    @app.post("/v1/workspaces/{workspace_id}/zoom/disconnect", response_model=ConnectionView, dependencies=[guard])
    async def disconnect(workspace_id: str, body: ActorRequest) -> ConnectionView | JSONResponse:
        try:
            status = await connections.disconnect(workspace_id, body.actor_id, body.actor_role)
        except ConnectionRefused as exc:
            return refused(exc)
        return ConnectionView(workspace_id=workspace_id, status=status.status, reason=status.reason)  # type: ignore[arg-type]

    @app.post("/v1/webhooks/zoom")
    async def zoom_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        secret = settings.zoom_webhook_secret_token.get_secret_value()
        try:
            verify_signature(secret, request.headers.get("x-zm-request-timestamp"), body,
                             request.headers.get("x-zm-signature"))
        except WebhookSignatureError as exc:
            log.warning("zoom webhook refused: %s", exc)
            return JSONResponse({"detail": "invalid signature"}, status_code=401)
        try:
            event = json.loads(body)
            name = event["event"]
            payload = event.get("payload") or {}
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"detail": "malformed event"}, status_code=400)
        if name == "endpoint.url_validation":
            plain = payload.get("plainToken")
            if not isinstance(plain, str) or not plain:
                return JSONResponse({"detail": "plainToken missing"}, status_code=400)
            return JSONResponse(url_validation_response(secret, plain))
        if name == "app_deauthorized":
            user_id = payload.get("user_id")
            if not isinstance(user_id, str) or not user_id:
                return JSONResponse({"detail": "user_id missing"}, status_code=400)
            delivery = hashlib.sha256(body).hexdigest()
            if await deliveries.seen(services.db, f"zoom:{delivery}"):
                return JSONResponse({"status": "duplicate delivery ignored"})
            # The purge is idempotent, so the delivery is remembered only once it succeeded: a failed purge
            # answers 503 and Zoom redelivers (it retries after 5xx, never after 4xx) until the data is gone.
            try:
                workspaces = await connections.deauthorize(user_id, delivery)
            except Exception as exc:  # noqa: BLE001 - answered 503 for a redelivery; the type only (no row data)
                log.error("zoom deauthorization purge failed (%s); answered 503 so Zoom redelivers",
                          type(exc).__name__)
                return JSONResponse({"detail": "temporarily unable to purge; redeliver"}, status_code=503)
            await deliveries.remember(services.db, f"zoom:{delivery}")
            return JSONResponse({"status": "deauthorized", "workspaces": len(workspaces)})
        if name in MEETING_EVENTS and isinstance(payload, dict):
            status, answer = await zoom_meeting_events.route(services.db, meeting_signaller, name, payload,
                                                             hashlib.sha256(body).hexdigest())
            return JSONResponse(answer, status_code=status)
        return JSONResponse({"status": "ignored", "event": str(name)[:64]})

    @app.post("/v1/webhooks/recording-bot")
    async def recording_bot_webhook(request: Request) -> JSONResponse:
        from ratio_zoom.recording_bot.webhooks import BotWebhookError, verify

        body = await request.body()
        try:
            event = verify(settings.recording_bot_webhook_secret.get_secret_value(), dict(request.headers), body)
        except BotWebhookError as exc:
            log.warning("recording-bot webhook refused: %s", exc)
            return JSONResponse({"detail": "invalid signature"}, status_code=401)
        if not await deliveries.first(services.db, f"recall:{event.delivery_id}"):
            return JSONResponse({"status": "duplicate delivery ignored"})
        appointment_id = event.metadata.get("appointment_id")
        if not appointment_id or bot_signaller is None:
            return JSONResponse({"status": "ignored", "reason": "no appointment in the bot's metadata"})
        try:
            await _audit_bot_status(services, appointment_id, event)
            await bot_signaller(appointment_id, event)
        except Exception:  # noqa: BLE001 - answered 503 so the provider redelivers; logged with the reason
            log.exception("could not relay recording-bot status for appointment %s", appointment_id)
            await deliveries.forget(services.db, f"recall:{event.delivery_id}")  # let the redelivery through
            return JSONResponse({"detail": "temporarily unable to record the status"}, status_code=503)
        return JSONResponse({"status": "relayed", "bot_status": event.status})

    @app.get("/v1/recording-bot/zoom-obf-token")
    async def zoom_obf_token(request: Request, dispatch_key: str = "", expires: str = "", secret: str = "") -> Response:
        """Called by the bot provider at launch. Minted now from the host's grant; never stored or logged."""
        from ratio_zoom.http_api.obf_token import OBF_SECRET_HEADER, mint_obf_token

        presented = request.headers.get(OBF_SECRET_HEADER) or secret
        return await mint_obf_token(services, dispatch_key, expires, presented)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            async with services.db.sessions() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - logged here; the public answer names no internals
            log.warning("readiness: database unreachable (%s)", type(exc).__name__)
            checks["database"] = "unreachable"
        if temporal_ready is not None:
            checks["temporal"] = "ok" if await temporal_ready() else "unreachable"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)

    return app


async def _audit_bot_status(services: Services, appointment_id: str, event) -> None:  # type: ignore[no-untyped-def]
    """The bot's status changes are lifecycle facts too: one audit row per webhook delivery."""
    from ratio_zoom.contract.bot_status import TERMINAL
    from ratio_zoom.storage import audit
    from ratio_zoom.storage.models import AppointmentConference, BotDispatch

    async with services.db.transaction() as session:
        if event.status in TERMINAL:
            # The bot is gone: the OBF endpoint must stop minting tokens for it.
            for dispatch in (await session.execute(select(BotDispatch).where(BotDispatch.bot_id == event.bot_id)
                                                   .with_for_update())).scalars():
                dispatch.status = event.status
                dispatch.updated_at = utcnow()
        conference = await session.get(AppointmentConference, appointment_id)
        if conference is None:
            return
        await audit.append(session, audit.AuditFact(
            workspace_id=conference.workspace_id, appointment_id=appointment_id, event="bot.status", actor="provider",
            dedupe_key=f"recall:{event.delivery_id}", details={"bot_id": event.bot_id, "status": event.status,
                                                               "sub_code": event.sub_code}))


def server_config(app: FastAPI, settings, **overrides: object):  # type: ignore[no-untyped-def]
    """Uvicorn's settings for the API. `log_config=None`: uvicorn must not install its own handlers, whose
    access log printed request lines (OAuth `code`/`state`, the bot's `secret`) unredacted; its loggers then
    propagate to the root handler set up by `configure_logging`, which redacts in both formats."""
    import uvicorn

    host, port = settings.api_host_port
    options: dict[str, object] = {"host": host, "port": port, "log_level": settings.log_level.lower(),
                                  "access_log": True, "log_config": None, "server_header": False}
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def temporal_meeting_signaller(client: Client) -> zoom_meeting_events.MeetingSignaller:
    """Signals `zoom_meeting_changed` to `appointment-{id}`; a closed workflow is WorkflowGone, not an error."""
    from temporalio.service import RPCError, RPCStatusCode

    from ratio_zoom.contract.appointment import workflow_id_for
    from ratio_zoom.contract.zoom_events import ZOOM_MEETING_CHANGED_SIGNAL, ZoomMeetingChanged

    async def signal(appointment_id: str, change: ZoomMeetingChanged) -> None:
        try:
            await client.get_workflow_handle(workflow_id_for(appointment_id)).signal(ZOOM_MEETING_CHANGED_SIGNAL, change)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise zoom_meeting_events.WorkflowGone(appointment_id) from None
            raise

    return signal


async def run_api(settings) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from ratio_zoom.connections.notify import temporal_notifier
    from ratio_zoom.core.mode import check_start
    from ratio_zoom.core.temporal import connect_client

    check_start(settings, "api")  # production refuses insecure settings before anything is served
    services = Services.create(settings)
    client = await connect_client(settings)

    async def temporal_ready() -> bool:
        try:
            return bool(await client.service_client.check_health())
        except Exception:  # noqa: BLE001
            return False

    connections = ConnectionService(services.db, services.vault, services.oauth, services.zoom,
                                    notify=temporal_notifier(client), outbox=services.outbox)

    async def bot_signaller(appointment_id: str, event) -> None:  # type: ignore[no-untyped-def]
        from ratio_zoom.contract.appointment import workflow_id_for

        await client.get_workflow_handle(workflow_id_for(appointment_id)).signal("bot_status", event)

    app = create_app(services, connections, temporal_ready=temporal_ready, bot_signaller=bot_signaller,
                     meeting_signaller=temporal_meeting_signaller(client))
    host, port = settings.api_host_port
    server = uvicorn.Server(server_config(app, settings))
    print(f"ratio-zoom API on http://{host}:{port} (OpenAPI at /openapi.json)", flush=True)
    try:
        await server.serve()
    finally:
        await services.aclose()
