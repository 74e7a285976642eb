"""Generates docs/contract.md from the contract models, so the published JSON Schemas never drift.

`python -m ratio_zoom.contract.schema_doc > docs/contract.md` (a test fails when the file is out of date).
"""

from __future__ import annotations

import json

from pydantic import BaseModel

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


def render() -> str:
    parts = [INTRO]
    for title, label, model in SECTIONS:
        schema = model.model_json_schema(mode="serialization" if "result" in title else "validation")
        parts.append(f"## {title}\n\n`{label}`\n\n```json\n{json.dumps(schema, indent=2, sort_keys=True)}\n```\n\n")
    return "".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
