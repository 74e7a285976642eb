"""The one typed settings object, read from the environment and an optional `.env`.

The variable names are a contract with deployments and the core app: keep them. Secrets are `SecretStr`
so they never print. `load_settings()` turns any validation problem into one `ConfigurationError` line that
names the variable, so commands can exit cleanly instead of failing deep inside a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ratio_zoom.core.keyring import KeyRing, KeyRingError
from ratio_zoom.core.origins import parse_origins

DEFAULT_DATA_DIR = Path(".data")


class ConfigurationError(Exception):
    """A setting is missing or malformed. The message is one line that names the variable."""


Mode = Literal["production", "dev"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Secure by default: production unless a deployment says otherwise. `ratio-zoom dev` sets `dev` for
    # everything it supervises; the start-up checks (`ratio_zoom.core.mode`) refuse insecure production set-ups.
    mode: Mode = Field(default="production", alias="RATIO_ZOOM_MODE")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'ratio-zoom.sqlite3'}", alias="DATABASE_URL"
    )
    temporal_address: str = Field(default="localhost:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    temporal_task_queue: str = Field(default="zoom-meetings", alias="TEMPORAL_TASK_QUEUE")
    # Reaching a secured Temporal (a TLS cluster, mTLS, Temporal Cloud). The names are the `temporal` CLI's
    # own, so the same environment lets ops run `temporal workflow list` against the same cluster. TLS is
    # on when TEMPORAL_TLS is true or any of the others is set: an API key never travels in clear.
    temporal_tls: bool = Field(default=False, alias="TEMPORAL_TLS")
    temporal_tls_server_ca_cert_path: str = Field(default="", alias="TEMPORAL_TLS_SERVER_CA_CERT_PATH")
    temporal_tls_client_cert_path: str = Field(default="", alias="TEMPORAL_TLS_CLIENT_CERT_PATH")
    temporal_tls_client_key_path: str = Field(default="", alias="TEMPORAL_TLS_CLIENT_KEY_PATH")
    temporal_tls_server_name: str = Field(default="", alias="TEMPORAL_TLS_SERVER_NAME")
    temporal_api_key: SecretStr = Field(default=SecretStr(""), alias="TEMPORAL_API_KEY")
    # Workflow instances the worker keeps in memory (sticky cache; the SDK's default is 1,000); the rest are
    # replayed from history when a message arrives. 200 measured: worker RSS with 1,200 open 217 MiB instead
    # of 388 MiB, all meetings after 175 s instead of 143 s (more replays in the burst). docs/benchmarks.md.
    temporal_max_cached_workflows: int = Field(default=200, alias="TEMPORAL_MAX_CACHED_WORKFLOWS", ge=0)

    zoom_client_id: str = Field(default="", alias="ZOOM_CLIENT_ID")
    zoom_client_secret: SecretStr = Field(default=SecretStr(""), alias="ZOOM_CLIENT_SECRET")
    zoom_redirect_uri: str = Field(default="", alias="ZOOM_REDIRECT_URI")
    zoom_webhook_secret_token: SecretStr = Field(default=SecretStr(""), alias="ZOOM_WEBHOOK_SECRET_TOKEN")
    zoom_api_base_url: str = Field(default="https://api.zoom.us/v2", alias="ZOOM_API_BASE_URL")
    zoom_oauth_base_url: str = Field(default="https://zoom.us", alias="ZOOM_OAUTH_BASE_URL")

    # Pacing Zoom per account (connections/limiter.py): the plan's documented per-second limits per category
    # (free | pro | business), optional overrides ("medium=10,light=30"), the share of them we aim for, the
    # per-user daily create/update budget, and an off switch (benchmarks compare with and without).
    zoom_plan: Literal["free", "pro", "business"] = Field(default="pro", alias="ZOOM_PLAN")
    zoom_rate_limits: str = Field(default="", alias="ZOOM_RATE_LIMITS")
    zoom_rate_headroom: float = Field(default=0.95, alias="ZOOM_RATE_HEADROOM", gt=0, le=1)
    zoom_daily_budget: int = Field(default=100, alias="ZOOM_DAILY_BUDGET", ge=1)
    zoom_rate_limiter: bool = Field(default=True, alias="ZOOM_RATE_LIMITER")

    token_encryption_keys: SecretStr = Field(default=SecretStr(""), alias="TOKEN_ENCRYPTION_KEYS")
    payload_encryption_keys: SecretStr = Field(default=SecretStr(""), alias="PAYLOAD_ENCRYPTION_KEYS")
    internal_api_token: SecretStr = Field(default=SecretStr(""), alias="INTERNAL_API_TOKEN")
    api_bind: str = Field(default="127.0.0.1:8080", alias="API_BIND")
    public_base_url: str = Field(default="", alias="PUBLIC_BASE_URL")
    # The codec server (served by the API when PAYLOAD_ENCRYPTION_KEYS is set) answers the Temporal UI.
    codec_cors_origins: str = Field(default="http://localhost:8233,http://127.0.0.1:8233", alias="CODEC_CORS_ORIGINS")
    codec_auth_token: SecretStr = Field(default=SecretStr(""), alias="CODEC_AUTH_TOKEN")
    # Without CODEC_AUTH_TOKEN the codec answers 401. This opens it without a token, for dev only (the
    # Temporal UI cannot send a static token); honoured only when API_BIND is a loopback address.
    codec_allow_unauthenticated: bool = Field(default=False, alias="CODEC_ALLOW_UNAUTHENTICATED")
    # Where the OAuth callback may send the browser back to (`return_url` of connect): comma-separated
    # origins, https only (http only for localhost). Empty: every connect request is refused.
    return_url_origins: str = Field(default="", alias="RETURN_URL_ORIGINS")

    # How long an appointment workflow stays open after the appointment ends, and when before the start it
    # checks the meeting once for drift made inside Zoom.
    appointment_grace_hours: float = Field(default=24.0, alias="APPOINTMENT_GRACE_HOURS", gt=0)
    pre_start_check_minutes: float = Field(default=60.0, alias="PRE_START_CHECK_MINUTES", ge=0)

    # Attendee confirmations. Off when EMAILS_ENABLED=false (the core app sends its own) or SMTP_URL is unset.
    smtp_url: SecretStr = Field(default=SecretStr(""), alias="SMTP_URL")
    # `smtp://` always upgrades with STARTTLS and refuses to send when the server does not offer it; true
    # lets a message (never a password) go in clear then. Production accepts that only for a relay on this
    # host (loopback), where the message crosses no network.
    smtp_allow_plaintext: bool = Field(default=False, alias="SMTP_ALLOW_PLAINTEXT")
    email_from: str = Field(default="Ratio <no-reply@ratio.example>", alias="EMAIL_FROM")
    emails_enabled: bool = Field(default=True, alias="EMAILS_ENABLED")

    # Recording bot (Recall.ai API or its emulator). Off when the URL or key is unset.
    recording_bot_api_url: str = Field(default="", alias="RECORDING_BOT_API_URL")
    recording_bot_api_key: SecretStr = Field(default=SecretStr(""), alias="RECORDING_BOT_API_KEY")
    recording_bot_webhook_secret: SecretStr = Field(default=SecretStr(""), alias="RECORDING_BOT_WEBHOOK_SECRET")
    # The bot's OBF-token URL stops working this long after the appointment's planned end.
    recording_bot_obf_grace_minutes: float = Field(default=30.0, alias="RECORDING_BOT_OBF_GRACE_MINUTES", gt=0,
                                                   le=24 * 60)

    # Conference and connection events POSTed to the core app (Standard Webhooks, `whsec_...` secret).
    # Off when the URL is unset: then no event is recorded either.
    core_app_webhook_url: str = Field(default="", alias="CORE_APP_WEBHOOK_URL")
    core_app_webhook_secret: SecretStr = Field(default=SecretStr(""), alias="CORE_APP_WEBHOOK_SECRET")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", alias="LOG_FORMAT")
    metrics_bind: str = Field(default="", alias="METRICS_BIND")

    @field_validator("api_bind", "metrics_bind")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, for example 127.0.0.1:8080")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("return_url_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        parse_origins(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("zoom_api_base_url", "zoom_oauth_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("core_app_webhook_url")
    @classmethod
    def _optional_http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("zoom_rate_limits")
    @classmethod
    def _rate_overrides(cls, value: str) -> str:
        _parse_rate_overrides(value)
        return value

    # -- derived, validated views -------------------------------------------------------------------

    def core_app_events_enabled(self) -> bool:
        """True when events go to the core app; then its signing secret must be set too."""
        if not self.core_app_webhook_url:
            return False
        if not self.core_app_webhook_secret.get_secret_value():
            raise ConfigurationError("CORE_APP_WEBHOOK_SECRET is required when CORE_APP_WEBHOOK_URL is set")
        return True

    def zoom_rate_overrides(self) -> dict[str, float]:
        return _parse_rate_overrides(self.zoom_rate_limits)

    def token_keyring(self) -> KeyRing:
        return _ring("TOKEN_ENCRYPTION_KEYS", self.token_encryption_keys)

    def payload_keyring(self) -> KeyRing | None:
        if not self.payload_encryption_keys.get_secret_value():
            return None
        return _ring("PAYLOAD_ENCRYPTION_KEYS", self.payload_encryption_keys)

    def return_origins(self) -> tuple[str, ...]:
        return parse_origins(self.return_url_origins)

    def require(self, *names: str) -> None:
        """Fail with one clear line when a command needs settings that are empty."""
        for name in names:
            field = next(k for k, f in type(self).model_fields.items() if f.alias == name)
            value = getattr(self, field)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not value:
                raise ConfigurationError(f"{name} is required but not set")

    @property
    def temporal_tls_enabled(self) -> bool:
        return self.temporal_tls or any((self.temporal_tls_server_ca_cert_path, self.temporal_tls_client_cert_path,
                                         self.temporal_tls_client_key_path, self.temporal_tls_server_name,
                                         self.temporal_api_key.get_secret_value()))

    @property
    def api_host_port(self) -> tuple[str, int]:
        host, _, port = self.api_bind.rpartition(":")
        return host, int(port)


def _parse_rate_overrides(value: str) -> dict[str, float]:
    """"medium=10,light=30" -> {"medium": 10.0, "light": 30.0} (requests per second per Zoom account)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, number = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in ("light", "medium", "heavy"):
            raise ValueError("must be category=rate pairs, for example medium=10,light=30")
        try:
            rate = float(number)
        except ValueError:
            raise ValueError(f"{name}: {number.strip()!r} is not a number") from None
        if rate <= 0:
            raise ValueError(f"{name}: the rate must be positive")
        out[name] = rate
    return out


def _ring(name: str, value: SecretStr) -> KeyRing:
    raw = value.get_secret_value()
    if not raw:
        raise ConfigurationError(f"{name} is required but not set (format kid:base64key[,kid:base64key...])")
    try:
        return KeyRing.parse(raw)
    except KeyRingError as exc:
        raise ConfigurationError(f"{name} is malformed: {exc}") from None


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and `.env`), raising one-line `ConfigurationError`s."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"][0] if first["loc"] else "settings"
        name = str(loc)
        for field_name, field in Settings.model_fields.items():
            if field_name == loc and field.alias:
                name = field.alias
        raise ConfigurationError(f"{name} is invalid: {first['msg']}") from None
