"""Generates docs/contract.md from the contract models, so the published JSON Schemas never drift.

`python -m ratio_zoom.contract.schema_doc > docs/contract.md` (a test fails when the file is out of date).
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from ratio_zoom.contract.events import EVENT_TYPES, CoreAppEvent
from ratio_zoom.contract.appointment import (
    AppointmentInput,
    AppointmentStateView,
    AwaitConference,
    Cancel,
    ConferenceResult,
    Consent,
    Reschedule,
    UpdateDetails,
)

INTRO = """# The appointment workflow contract

This is what the core app (in any language) codes against. It is generated from the pydantic models in
`ratio_zoom/contract/appointment.py` by `python -m ratio_zoom.contract.schema_doc > docs/contract.md`; a test keeps it current.

| what | name |
|---|---|
| workflow type | `AppointmentWorkflow` |
| workflow ID | `appointment-{appointment_id}` |
| task queue | the `TEMPORAL_TASK_QUEUE` setting (default `zoom-meetings`) |
| search attributes | `AppointmentId`, `WorkspaceId`, `ConferenceStatus` (Keyword), `AppointmentStart` (Datetime) |
| signals | `reschedule`, `cancel`, `update_details`, `consent` (fire-and-forget; accepted while no worker runs) |
| service signals | `bot_status`, `zoom_connection_changed`, `zoom_meeting_changed` (sent by ratio-zoom's API, not by the core app) |
| query | `state` |
| update | `await_conference` (use it with update-with-start to book and get the join URL in one round trip) |

Payloads are JSON (`json/plain`), encrypted with AES-256-GCM by the payload codec when
`PAYLOAD_ENCRYPTION_KEYS` is set: a client in another language uses the same codec, or the codec server
(`POST /codec/encode`, `/codec/decode`).

## Rules the workflow keeps

- Every message carries a `request_id`. A repeated `request_id` is ignored (recorded as a duplicate in
  `state.rejected_requests`), across continue-as-new too: retry freely.
- Invalid messages never fail the workflow: they are recorded in `state.rejected_requests` with a reason
  in plain words, and change nothing. Messages after a cancel are rejected the same way.
- Booking: start the workflow with `AppointmentInput` using `WorkflowIDConflictPolicy.USE_EXISTING` and the
  update `await_conference` in the same call (update-with-start). Booking the same appointment twice
  returns the same meeting.
- After the appointment's workflow has completed (end + grace period), send messages with
  signal-with-start and the full `AppointmentInput`: the new run restores the meeting from the database and
  never creates a second one.
- `conference.status`: `pending` (being created), `ready` (join URL valid), `waiting_for_zoom` (the
  workspace is not connected, needs re-authorization, or the daily Zoom quota is used up: it resumes by
  itself), `detached` (Zoom disconnected, or another provider is chosen), `deleted`, `failed` (see
  `conference.reason` / `last_error`).
- The host's start URL is never exposed; `join_url` is for attendees.

"""

SECTIONS: list[tuple[str, str, type[BaseModel]]] = [
    ("Start input", "AppointmentInput (workflow argument)", AppointmentInput),
    ("Signal `reschedule`", "Reschedule", Reschedule),
    ("Signal `cancel`", "Cancel", Cancel),
    ("Signal `update_details`", "UpdateDetails", UpdateDetails),
    ("Signal `consent`", "Consent", Consent),
    ("Update `await_conference` input", "AwaitConference", AwaitConference),
    ("Update `await_conference` result", "ConferenceResult", ConferenceResult),
    ("Query `state` result", "AppointmentStateView", AppointmentStateView),
]

EVENTS_INTRO = """## Events to the core app

When `CORE_APP_WEBHOOK_URL` is set, ratio-zoom POSTs an event there whenever an appointment's conference
changes as Ratio's record sees it (`conference.*`: ready, a new join URL, waiting for Zoom with the reason,
needs attention, detached, deleted) and whenever a workspace's Zoom connection changes (`connection.*`).
Events are written in the same database transaction as the change they announce. Each POST is one `CoreAppEvent` (JSON), signed in the
[Standard Webhooks](https://www.standardwebhooks.com/) format with `CORE_APP_WEBHOOK_SECRET` (`whsec_...`):
headers `webhook-id` (= the event's `id`), `webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256
of "{id}.{timestamp}.{body}">`). `starter/webhooks.py` verifies them; `starter/example_receiver.py` is a
complete receiver.

- **At least once**: answer 2xx once the event is stored; anything else (or no answer in 10 s) is retried
  with backoff (1 s doubling to 10 minutes; a `Retry-After` lengthens the wait), for up to 3 days, after which
  the event is marked expired in the `core_app_events` table with the last reason. De-duplicate on `id`.
- **In order per stream** (`appointment:{id}` or `workspace:{id}`): event `sequence` N+1 is never sent
  before N was acknowledged. Streams are independent: one appointment's stuck event never holds another's.
- No secret, token, start URL or Zoom email is in any event. `data.join_url` is present only in
  `conference.ready` and `conference.updated`, for the appointment record.

Types: """ + ", ".join(f"`{name}`" for name in EVENT_TYPES) + """.

"""


def render() -> str:
    parts = [INTRO]
    for title, label, model in SECTIONS:
        schema = model.model_json_schema(mode="serialization" if "result" in title else "validation")
        parts.append(f"## {title}\n\n`{label}`\n\n```json\n{json.dumps(schema, indent=2, sort_keys=True)}\n```\n\n")
    schema = CoreAppEvent.model_json_schema(mode="serialization")
    parts.append(EVENTS_INTRO + f"`CoreAppEvent`\n\n```json\n{json.dumps(schema, indent=2, sort_keys=True)}\n```\n\n")
    return "".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
