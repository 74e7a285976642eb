"""Request and response validation against Zoom's own OpenAPI spec (zoom_api/spec/ZoomMeetingAPISpec.json).

The emulator refuses a body Zoom would refuse (HTTP 400, code 300), and a conformance test validates every
response body it returns against the same file, so the emulator cannot drift from Zoom's documented shapes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from openapi_schema_validator import OAS30Validator

# (path, method) -> where its JSON schema lives in the spec.
OPERATIONS = {
    "create_meeting": ("/users/{userId}/meetings", "post"),
    "list_meetings": ("/users/{userId}/meetings", "get"),
    "get_meeting": ("/meetings/{meetingId}", "get"),
    "update_meeting": ("/meetings/{meetingId}", "patch"),
    "delete_meeting": ("/meetings/{meetingId}", "delete"),
    "get_user": ("/users/{userId}", "get"),
    "get_user_token": ("/users/{userId}/token", "get"),
}


@cache
def spec() -> dict[str, Any]:
    with resources.files("ratio_zoom.zoom").joinpath("spec/ZoomMeetingAPISpec.json").open() as handle:
        return json.load(handle)


def _operation(name: str) -> dict[str, Any]:
    path, method = OPERATIONS[name]
    return spec()["paths"][path][method]


@cache
def request_validator(name: str) -> OAS30Validator:
    schema = _operation(name)["requestBody"]["content"]["application/json"]["schema"]
    return OAS30Validator(schema)


@cache
def response_validator(name: str, status: str) -> OAS30Validator:
    schema = _operation(name)["responses"][status]["content"]["application/json"]["schema"]
    return OAS30Validator(schema)


def request_errors(name: str, body: Any) -> list[dict[str, str]]:
    """Zoom-style `errors` entries for an invalid request body (empty when valid)."""
    errors = []
    for error in sorted(request_validator(name).iter_errors(body), key=lambda e: list(e.path)):
        field = ".".join(str(p) for p in error.path) or "body"
        errors.append({"field": field, "message": error.message[:200]})
    return errors


def response_errors(name: str, status: str, body: Any) -> list[str]:
    return [f"{'.'.join(str(p) for p in e.path) or 'body'}: {e.message[:200]}"
            for e in response_validator(name, status).iter_errors(body)]
