"""pydantic models for the Zoom requests and responses we use, derived from Zoom's OpenAPI spec
(`zoom_api/spec/ZoomMeetingAPISpec.json`).

The host `start_url` is dropped here, at the edge: `extra="ignore"` discards it and no model declares it.
Join URLs and passcodes are excluded from `repr` so they never reach a log line by accident.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer

TOPIC_MAX = 200
AGENDA_MAX = 2000


class _ZoomModel(BaseModel):
    # hide_input_in_errors: a validation error must never echo a join URL (passcode) or token into a log.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, hide_input_in_errors=True)


class ZoomUser(_ZoomModel):
    id: str
    email: str = Field(repr=False)
    account_id: str | None = None
    type: int | None = None
    timezone: str | None = None


class MeetingSettings(_ZoomModel):
    join_before_host: bool | None = None
    waiting_room: bool | None = None
    auto_recording: Literal["local", "cloud", "none"] | None = None
    jbh_time: int | None = None


class MeetingWrite(_ZoomModel):
    """Body of create (POST) and update (PATCH). Unset fields are not sent (PATCH only what changed)."""

    topic: str | None = Field(default=None, max_length=TOPIC_MAX)
    agenda: str | None = Field(default=None, max_length=AGENDA_MAX)
    type: Literal[2] | None = None
    start_time: datetime | None = None
    duration: int | None = Field(default=None, gt=0)
    timezone: str | None = None
    default_password: bool | None = None
    settings: MeetingSettings | None = None

    @field_serializer("start_time")
    def _utc_z(self, value: datetime | None) -> str | None:
        # One convention: UTC with "Z" plus the IANA timezone for display (Zoom reads an offset-less
        # start_time as wall-clock time in `timezone`, which is what breaks across DST changes).
        if value is None:
            return None
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


class Meeting(_ZoomModel):
    id: int
    uuid: str | None = None
    host_id: str | None = None
    topic: str = ""
    agenda: str | None = None
    type: int | None = None
    start_time: datetime | None = None
    duration: int | None = None
    timezone: str | None = None
    join_url: str = Field(repr=False)
    password: str | None = Field(default=None, repr=False)
    settings: MeetingSettings | None = None
    created_at: datetime | None = None
    status: str | None = None


class MeetingSummary(_ZoomModel):
    """An item of `GET /users/me/meetings` (agenda truncated to 250 characters by Zoom)."""

    id: int
    uuid: str | None = None
    host_id: str | None = None
    topic: str = ""
    agenda: str | None = None
    type: int | None = None
    start_time: datetime | None = None
    duration: int | None = None
    timezone: str | None = None
    created_at: datetime | None = None
    join_url: str | None = Field(default=None, repr=False)


class MeetingPage(_ZoomModel):
    meetings: list[MeetingSummary] = []
    next_page_token: str | None = None
    total_records: int | None = None


class TokenSet(_ZoomModel):
    access_token: SecretStr
    refresh_token: SecretStr
    expires_in: int
    scope: str = ""
    token_type: str = "bearer"

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


class OnBehalfToken(_ZoomModel):
    token: SecretStr
