"""Zoom's rate limits as Zoom documents them: which category each endpoint we call is charged to, and what
each category allows per second for an account's plan.

The category of an endpoint is read from Zoom's own OpenAPI spec (`spec/ZoomMeetingAPISpec.json`), whose
operation descriptions carry a "Rate Limit Label" (`Light`, `Medium`, `Heavy`). Reading it instead of
writing a table by hand is how the emulator once charged only the create as Medium, although Zoom labels
`GET /users/{userId}/meetings` (the list) Medium too: both share one per-account Medium budget.

Per-second limits are per *account* and shared by every app of that account; the daily create/update
limit (100 requests per user per UTC day) is per *user*. Source: Zoom's rate-limits page, restated in the
brief: Free 4/2/1, Pro 30/20/10, Business and up 80/60/40 (Light/Medium/Heavy, requests per second).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Literal

Category = Literal["light", "medium", "heavy"]
CATEGORIES: tuple[Category, ...] = ("light", "medium", "heavy")

# Endpoint labels (the Zoom client's and the emulator's names) -> the spec operation they are.
OPERATIONS: dict[str, tuple[str, str]] = {
    "create_meeting": ("/users/{userId}/meetings", "post"),
    "list_meetings": ("/users/{userId}/meetings", "get"),
    "get_meeting": ("/meetings/{meetingId}", "get"),
    "update_meeting": ("/meetings/{meetingId}", "patch"),
    "delete_meeting": ("/meetings/{meetingId}", "delete"),
    "get_me": ("/users/{userId}", "get"),
    "get_user": ("/users/{userId}", "get"),
    "get_user_token": ("/users/{userId}/token", "get"),
}

PLAN_RATES: dict[str, dict[Category, int]] = {
    "free": {"light": 4, "medium": 2, "heavy": 1},
    "pro": {"light": 30, "medium": 20, "heavy": 10},
    "business": {"light": 80, "medium": 60, "heavy": 40},
}
DEFAULT_PLAN = "pro"

# Zoom: "100 meeting create/update API requests per user per day" (resets 00:00 UTC).
DAILY_CREATE_UPDATE_LIMIT = 100
DAILY_LIMITED = frozenset({"create_meeting", "update_meeting"})

_LABEL = re.compile(r"Rate Limit Label[^`]*`(\w+)`", re.IGNORECASE)


@cache
def _spec() -> dict:  # type: ignore[type-arg]
    with resources.files("ratio_zoom.zoom").joinpath("spec/ZoomMeetingAPISpec.json").open() as handle:
        return json.load(handle)


@cache
def category(endpoint: str) -> Category:
    """The rate-limit category Zoom charges `endpoint` to, from the spec's label. KeyError if unknown."""
    path, method = OPERATIONS[endpoint]
    description = _spec()["paths"][path][method].get("description", "")
    found = _LABEL.search(description)
    if found is None:
        raise LookupError(f"Zoom's spec gives no rate-limit label for {method.upper()} {path}")
    label = found.group(1).lower()
    if label not in CATEGORIES:
        raise LookupError(f"unknown Zoom rate-limit label {found.group(1)!r} for {method.upper()} {path}")
    return label  # type: ignore[return-value]


def plan_rates(plan: str) -> dict[Category, int]:
    try:
        return dict(PLAN_RATES[plan.lower()])
    except KeyError:
        raise ValueError(f"unknown Zoom plan {plan!r}; one of {', '.join(PLAN_RATES)}") from None
