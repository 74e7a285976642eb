"""The emulator's in-memory world: users, grants (token pairs), authorization codes, meetings, clock."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

ACCESS_TOKEN_SECONDS = 3599  # what Zoom's token responses say (`expires_in`)
CODE_SECONDS = 300
DEFAULT_SCOPES = ("meeting:write:meeting meeting:update:meeting meeting:delete:meeting meeting:read:meeting "
                  "meeting:read:list_meetings user:read:user user:read:token")


@dataclass
class User:
    id: str
    email: str
    account_id: str
    first_name: str = "Host"
    last_name: str = "Example"


@dataclass
class Grant:
    """One live authorization of the app by one user: Zoom keeps one per user per app."""

    user_id: str
    scopes: str
    access_token: str
    access_expires_at: float
    refresh_token: str
    alive: bool = True
    refreshes: int = 0


@dataclass
class Code:
    user_id: str
    redirect_uri: str
    code_challenge: str
    scopes: str
    expires_at: float
    used: bool = False


@dataclass
class Meeting:
    id: int
    uuid: str
    host_id: str
    topic: str
    agenda: str
    start_time: str
    duration: int
    timezone: str
    password: str
    settings: dict[str, Any]
    created_at: str
    join_url: str
    started: bool = False
    deleted_at: str | None = None


@dataclass
class Clock:
    """Real time plus an offset the tests control (token expiry, code expiry, daily limits)."""

    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), timezone.utc)


@dataclass
class World:
    clock: Clock = field(default_factory=Clock)
    users: dict[str, User] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    codes: dict[str, Code] = field(default_factory=dict)
    meetings: dict[int, Meeting] = field(default_factory=dict)
    next_meeting_id: int = 84_000_000_001
    calls: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    # who consents at the next /oauth/authorize, with which scopes, or denies
    next_user: str = "z8yCxjabR7qYD9Yc7ScTLA"
    next_scopes: str = DEFAULT_SCOPES
    deny_next: bool = False
    # `expires_in` of tokens issued from now on; each is honoured one second longer than it says.
    access_token_seconds: int = ACCESS_TOKEN_SECONDS

    def __post_init__(self) -> None:
        self.add_user(User(id="z8yCxjabR7qYD9Yc7ScTLA", email="host@example.com", account_id="acct-1"))

    def add_user(self, user: User) -> None:
        self.users[user.id] = user

    def count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def issue_grant(self, user_id: str, scopes: str) -> Grant:
        # One live grant per user per app: a new authorization kills the earlier one (Zoom error 4741).
        for grant in self.grants:
            if grant.user_id == user_id and grant.alive:
                grant.alive = False
        grant = Grant(user_id=user_id, scopes=scopes, access_token=_token("at"),
                      access_expires_at=self.clock.now() + self.access_token_seconds + 1, refresh_token=_token("rt"))
        self.grants.append(grant)
        return grant

    def grant_for_access(self, token: str) -> Grant | None:
        for grant in self.grants:
            if grant.access_token == token and grant.alive and grant.access_expires_at > self.clock.now():
                return grant
        return None

    def token_owner(self, token: str) -> str | None:
        """The Zoom user whose grant issued this access token, alive or dead (for the call log only)."""
        return next((g.user_id for g in self.grants if token and g.access_token == token), None)

    def grant_for_refresh(self, token: str) -> Grant | None:
        for grant in self.grants:
            if grant.refresh_token == token and grant.alive:
                return grant
        return None

    def new_meeting_id(self) -> int:
        self.next_meeting_id += 7919  # not sequential, like Zoom's
        return self.next_meeting_id


def _token(prefix: str) -> str:
    return f"{prefix}.{secrets.token_urlsafe(32)}"


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_utc_midnight(now: datetime) -> datetime:
    day = (now + timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
