"""The core app's side of the contract (docs/contract.md), in Python.

- `book` uses update-with-start: it starts `appointment-{id}` (or reuses the running one) and waits for
  the conference in one round trip. Booking the same appointment twice returns the same meeting.
- `reschedule`, `cancel`, `update_details`, `record_consent` are signals: fire-and-forget, accepted by the
  server even while no worker runs. Given the booking, they use signal-with-start, so they also work after
  the appointment's workflow has completed (the new run restores the meeting from the database).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from ratio_zoom.contract import validation
from ratio_zoom.contract.appointment import (
    AppointmentInput,
    AppointmentStateView,
    AwaitConference,
    Cancel,
    ConferenceResult,
    Consent,
    Reschedule,
    UpdateDetails,
    workflow_id_for,
)
from ratio_zoom.core.settings import Settings, load_settings
from ratio_zoom.core.temporal import connect_client
from ratio_zoom.contract.search_attributes import APPOINTMENT_ID, APPOINTMENT_START, CONFERENCE_STATUS, WORKSPACE_ID


class BookingRejected(ValueError):
    """The booking is invalid; the reason is in plain words. Nothing was started."""


async def connect(settings: Settings | None = None) -> Client:
    """A Temporal client with the project's data converter, from the settings (environment / .env)."""
    return await connect_client(settings or load_settings())


class Appointments:
    def __init__(self, client: Client, *, task_queue: str | None = None) -> None:
        self._client = client
        self._task_queue = task_queue or load_settings().temporal_task_queue

    def handle(self, appointment_id: str) -> WorkflowHandle[Any, Any]:
        return self._client.get_workflow_handle(workflow_id_for(appointment_id))

    async def book(self, booking: AppointmentInput, *, timeout_seconds: float = 30.0) -> ConferenceResult:
        problem = validation.check_booking(booking, datetime.now().astimezone())
        if problem is not None:
            raise BookingRejected(problem)
        operation = WithStartWorkflowOperation(
            "AppointmentWorkflow",
            booking,
            id=workflow_id_for(booking.appointment_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=initial_search_attributes(booking),
            static_summary=f"Zoom meeting for appointment {booking.appointment_id}",
            static_details="Keeps this appointment's Zoom meeting in step: create, patch on reschedule, "
            "delete on cancel. Open the Query tab and run `state` for the live view.",
        )
        return await self._client.execute_update_with_start_workflow(
            "await_conference",
            AwaitConference(timeout_seconds=timeout_seconds),
            start_workflow_operation=operation,
            result_type=ConferenceResult,
        )

    async def reschedule(self, appointment_id: str, request: Reschedule,
                         *, booking: AppointmentInput | None = None) -> None:
        await self._signal(appointment_id, "reschedule", request, booking)

    async def cancel(self, appointment_id: str, request: Cancel, *, booking: AppointmentInput | None = None) -> None:
        await self._signal(appointment_id, "cancel", request, booking)

    async def update_details(self, appointment_id: str, request: UpdateDetails,
                             *, booking: AppointmentInput | None = None) -> None:
        await self._signal(appointment_id, "update_details", request, booking)

    async def record_consent(self, appointment_id: str, request: Consent,
                             *, booking: AppointmentInput | None = None) -> None:
        await self._signal(appointment_id, "consent", request, booking)

    async def state(self, appointment_id: str) -> AppointmentStateView:
        return await self.handle(appointment_id).query("state", result_type=AppointmentStateView)

    async def await_conference(self, appointment_id: str, *, after_request_id: str | None = None,
                               timeout_seconds: float = 30.0) -> ConferenceResult:
        return await self.handle(appointment_id).execute_update(
            "await_conference",
            AwaitConference(after_request_id=after_request_id, timeout_seconds=timeout_seconds),
            result_type=ConferenceResult,
        )

    async def _signal(self, appointment_id: str, name: str, request: Any, booking: AppointmentInput | None) -> None:
        if booking is None:
            await self.handle(appointment_id).signal(name, request)
            return
        await self._client.start_workflow(
            "AppointmentWorkflow",
            booking,
            id=workflow_id_for(appointment_id),
            task_queue=self._task_queue,
            start_signal=name,
            start_signal_args=[request],
            search_attributes=initial_search_attributes(booking),
        )


def initial_search_attributes(booking: AppointmentInput) -> TypedSearchAttributes:
    pairs = [
        SearchAttributePair(APPOINTMENT_ID, booking.appointment_id),
        SearchAttributePair(WORKSPACE_ID, booking.workspace_id),
        SearchAttributePair(CONFERENCE_STATUS, "pending"),
    ]
    start = validation.parse_rfc3339(booking.start_time)
    if start is not None:
        pairs.append(SearchAttributePair(APPOINTMENT_START, start))
    return TypedSearchAttributes(pairs)


__all__ = ["Appointments", "BookingRejected", "connect"]
