"""`GET /v1/recording-bot/zoom-obf-token`: the bot provider fetches a Zoom on-behalf-of (OBF) token at launch.

An OBF token lets a bot join the host's meeting *as the host's companion*, so it is minted only while every
condition under which we sent that bot still holds, checked against the database at the moment of the call:

- the secret is the HMAC of the dispatch key and the expiry carried beside it (`activities/bots.py`): a
  forged or altered URL fails, and the URL stops working at the expiry (the appointment's end plus
  RECORDING_BOT_OBF_GRACE_MINUTES) -> 401;
- that dispatch is the appointment's live bot: not cancelled, ended or failed, and no newer generation
  replaced it -> 403 otherwise;
- the appointment is still scheduled (not cancelled or completed), note-taking is on and the latest consent
  in the consent log is a grant -> 403 otherwise;
- the workspace is connected with the `user:read:token` scope -> 409 otherwise.

Where the secret travels: in the `X-Ratio-Bot-Secret` header when the caller can send one. Recall, the
provider we drive, documents that these launch-time GETs carry no custom header and keep the URL's query
string, so the URL handed to it carries the secret as `secret=`; the access log redacts that parameter
(core/logs.py) and the secret expires with the appointment. The token itself is never stored or logged.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timezone

from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from activities.bots import OBF_SECRET_HEADER, obf_secret_candidates
from ratio_zoom.connections.repository import load_connection
from ratio_zoom.connections.services import Services
from ratio_zoom.contract.bot_status import TERMINAL
from ratio_zoom.storage.models import AppointmentConference, BotDispatch, ConsentRecord
from ratio_zoom.zoom.errors import ZoomError
from ratio_zoom.zoom.oauth import OBF_TOKEN_SCOPE

log = logging.getLogger("ratio_zoom.api.obf")

__all__ = ["OBF_SECRET_HEADER", "mint_obf_token"]


def _valid_secret(services: Services, dispatch_key: str, expires: str, presented: str) -> bool:
    if not dispatch_key or not presented or not expires.isdigit() or len(expires) > 12 or len(presented) > 128:
        return False
    # Every key of the ring is tried, so URLs issued before a key rotation keep working until they expire.
    return any(hmac.compare_digest(presented.encode(), candidate.encode())
               for candidate in obf_secret_candidates(services.vault, dispatch_key, int(expires)))


async def _refusal(services: Services, dispatch: BotDispatch | None) -> tuple[str, AppointmentConference | None]:
    """Why this bot may not act for the host now ('' when it may), from the database as it is now."""
    if dispatch is None:
        return "unknown bot", None
    async with services.db.sessions() as session:
        newer = await session.scalar(select(func.count()).select_from(BotDispatch).where(
            BotDispatch.appointment_id == dispatch.appointment_id, BotDispatch.generation > dispatch.generation))
        conference = await session.get(AppointmentConference, dispatch.appointment_id)
        consent = (await session.execute(
            select(ConsentRecord).where(ConsentRecord.appointment_id == dispatch.appointment_id)
            .order_by(ConsentRecord.occurred_at.desc(), ConsentRecord.id.desc()).limit(1))).scalar_one_or_none()
    if dispatch.bot_id is None or dispatch.status in TERMINAL or newer:
        return "this bot is no longer the appointment's live bot", conference
    if conference is None or conference.appointment_status != "scheduled":
        return "the appointment is cancelled or over", conference
    if consent is None or not consent.granted:
        return "the client's consent is not granted", conference
    if not consent.note_taking_enabled:
        return "AI note-taking is off for this appointment", conference
    return "", conference


async def mint_obf_token(services: Services, dispatch_key: str, expires: str, presented: str) -> Response:
    if not _valid_secret(services, dispatch_key, expires, presented):
        return JSONResponse({"detail": "unknown bot or wrong secret"}, status_code=401)
    if datetime.fromtimestamp(int(expires), timezone.utc) <= datetime.now(timezone.utc):
        return JSONResponse({"detail": "this bot's token URL has expired"}, status_code=401)
    async with services.db.sessions() as session:
        dispatch = await session.get(BotDispatch, dispatch_key)
    reason, conference = await _refusal(services, dispatch)
    if reason or conference is None:
        log.info("OBF token refused for appointment %s: %s",
                 dispatch.appointment_id if dispatch else "-", reason or "no conference")
        return JSONResponse({"detail": reason or "no conference"}, status_code=403)
    async with services.db.sessions() as session:
        connection = await load_connection(session, conference.workspace_id)
    if connection is None or connection.status != "connected":
        return JSONResponse({"detail": "no Zoom connection for this bot's appointment"}, status_code=409)
    if OBF_TOKEN_SCOPE not in connection.scopes.split():
        return JSONResponse({"detail": "the Zoom grant lacks user:read:token; the host must admit the bot"},
                            status_code=409)
    try:
        obf = await services.broker.call(conference.workspace_id,
                                         lambda lease: services.zoom.get_on_behalf_token(lease.token))
    except ZoomError as exc:
        return JSONResponse({"detail": f"Zoom refused: {type(exc).__name__}"}, status_code=502)
    except Exception as exc:  # noqa: BLE001 - connection unusable (detached, needs reconnect): say so
        return JSONResponse({"detail": f"Zoom connection unusable: {type(exc).__name__}"}, status_code=409)
    log.info("OBF token minted for appointment %s", conference.appointment_id)
    return Response(obf.token.get_secret_value(), media_type="text/plain", headers={"Cache-Control": "no-store"})
