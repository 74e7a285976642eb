"""Telling a workspace's open appointment workflows that its Zoom connection changed.

Found through the `WorkspaceId` search attribute. Correctness never depends on this signal (the broker
checks the database before every Zoom call); it only wakes parked workflows without waiting for their
hourly re-check. Visibility is eventually consistent, so a workflow started a moment ago may be missed.
"""

from __future__ import annotations

import uuid

from temporalio.client import Client

from ratio_zoom.contract.appointment import ZoomConnectionChanged


def temporal_notifier(client: Client):  # type: ignore[no-untyped-def]
    async def notify(workspace_id: str, status: str, reason: str | None) -> int:
        query = f'WorkflowType="AppointmentWorkflow" AND ExecutionStatus="Running" AND WorkspaceId="{_quote(workspace_id)}"'
        count = 0
        async for execution in client.list_workflows(query):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            await handle.signal("zoom_connection_changed", ZoomConnectionChanged(
                request_id=f"conn-{uuid.uuid4()}", status=status, reason=reason))
            count += 1
        return count

    return notify


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
