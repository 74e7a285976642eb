"""Zoom OAuth 2.0 (user-managed app): authorize URL with state + PKCE (S256), code exchange, refresh, revoke.

Refresh tokens rotate: every refresh returns a new refresh token and kills the old one. The caller must
persist the new pair before using it (see `activities/tokens.py`). A dead grant answers HTTP 400
`{"reason":"Invalid Token!","error":"invalid_grant"}` (older: 401 / invalid_request), so we match the body.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from ratio_zoom.zoom.client import new_http_client
from ratio_zoom.zoom.errors import InvalidGrant, OAuthError, OAuthServerError, ZoomTransportError
from ratio_zoom.zoom.models import TokenSet

# meeting:read:list_meetings: the exactly-once create reconciles a lost response by listing the host's
# upcoming meetings (GET /users/me/meetings needs this granular scope; classic apps get it with meeting:read).
REQUIRED_SCOPES = frozenset(
    {"meeting:write:meeting", "meeting:update:meeting", "meeting:delete:meeting", "meeting:read:meeting",
     "meeting:read:list_meetings", "user:read:user"}
)
# Classic (pre-granular) names that grant the same: accepted when Zoom reports a classic app's scopes.
CLASSIC_EQUIVALENTS = {
    "meeting:write:meeting": "meeting:write",
    "meeting:update:meeting": "meeting:write",
    "meeting:delete:meeting": "meeting:write",
    "meeting:read:meeting": "meeting:read",
    "meeting:read:list_meetings": "meeting:read",
    "user:read:user": "user:read",
}
OBF_TOKEN_SCOPE = "user:read:token"


def missing_scopes(granted: frozenset[str]) -> list[str]:
    return sorted(s for s in REQUIRED_SCOPES if s not in granted and CLASSIC_EQUIVALENTS[s] not in granted)


def new_pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class ZoomOAuth:
    def __init__(
        self,
        oauth_base_url: str,
        client_id: str,
        client_secret: SecretStr,
        redirect_uri: str,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = oauth_base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._http = http or new_http_client()

    def __repr__(self) -> str:
        return f"ZoomOAuth(base={self._base!r}, client_id={self._client_id!r})"

    def authorize_url(self, state: str, code_challenge: str) -> str:
        query = urlencode({
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": self._redirect_uri,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        })
        return f"{self._base}/oauth/authorize?{query}"

    async def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        return await self._token_request({
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri,
            "code_verifier": code_verifier,
        })

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def revoke(self, token: str, *, timeout: float = 5.0) -> None:
        response = await self._post("/oauth/revoke", {"token": token}, timeout=timeout)
        _raise_for_oauth(response)

    async def _token_request(self, form: dict[str, str]) -> TokenSet:
        response = await self._post("/oauth/token", form)
        _raise_for_oauth(response)
        return TokenSet.model_validate(response.json())

    async def _post(self, path: str, form: dict[str, str], timeout: float | None = None) -> httpx.Response:
        auth = httpx.BasicAuth(self._client_id, self._client_secret.get_secret_value())
        try:
            return await self._http.post(
                self._base + path, data=form, auth=auth,
                **({"timeout": timeout} if timeout is not None else {}),
            )
        except httpx.TransportError as exc:
            raise ZoomTransportError(f"Zoom OAuth {path}: no response ({type(exc).__name__})") from None


def _raise_for_oauth(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = str(body.get("error") or "")
    reason = str(body.get("reason") or body.get("error_description") or response.reason_phrase or "")[:300]
    if response.status_code >= 500:
        raise OAuthServerError(response.status_code, error or "server_error", reason)
    dead = error == "invalid_grant" or (
        response.status_code in (400, 401) and error == "invalid_request" and "invalid token" in reason.lower()
    )
    if dead:
        raise InvalidGrant(response.status_code, error, reason)
    raise OAuthError(response.status_code, error or "oauth_error", reason)
