"""What ops rely on: search-attribute queries from the Temporal CLI, and the worker's metrics endpoint."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request

from temporalio.testing import WorkflowEnvironment

from ratio_zoom.contract.appointment import Cancel
from ratio_zoom.emulators.zoom_server.testing import free_port
from tests.conftest import temporal_cli
from tests.integration.conftest import Stack, ws
from tests.integration.test_appointment_lifecycle import booking
from tests.integration.worker_process import WorkerProcess, worker_env


async def test_cli_finds_parked_workflows_by_workspace_and_status(temporal_env: WorkflowEnvironment, stack: Stack) -> None:
    workspace = ws()
    b = booking(workspace)
    assert (await stack.appointments.book(b)).conference.status == "waiting_for_zoom"
    address = temporal_env.client.service_client.config.target_host
    query = f'WorkspaceId="{workspace}" AND ConferenceStatus="waiting_for_zoom"'
    listed = ""
    for _ in range(40):  # visibility is eventually consistent
        proc = await asyncio.create_subprocess_exec(temporal_cli(), "workflow", "list", "--address", address,
                                                    "--query", query, "--output", "json",
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        listed = out.decode()
        if f"appointment-{b.appointment_id}" in listed:
            break
        await asyncio.sleep(0.25)
    assert f"appointment-{b.appointment_id}" in listed
    assert "@" not in listed.replace("@example", "")  # no attendee email in the listing (payloads are encrypted)
    await stack.appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))


async def test_worker_metrics_are_scraped(temporal_env: WorkflowEnvironment, stack: Stack) -> None:
    import uuid

    workspace = ws()
    await stack.connect_workspace(workspace)
    port = free_port()
    queue = f"metrics-{uuid.uuid4().hex[:6]}"
    settings = stack.settings.model_copy(update={"temporal_task_queue": queue})
    env = worker_env(settings, temporal_env.client.service_client.config.target_host)
    env["METRICS_BIND"] = f"127.0.0.1:{port}"
    worker = WorkerProcess(env)
    worker.start()
    try:
        from starter import Appointments

        appointments = Appointments(stack.client, task_queue=queue)
        b = booking(workspace)
        assert (await appointments.book(b)).conference.status == "ready"
        body = ""
        for _ in range(40):
            try:
                body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode())
            except OSError:
                body = ""
            if "ratio_zoom_zoom_calls" in body:
                break
            await asyncio.sleep(0.25)
        assert 'ratio_zoom_zoom_calls' in body and 'endpoint="create_meeting"' in body
        assert "temporal_" in body  # the SDK's own worker metrics on the same endpoint
        await appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
    finally:
        worker.stop()
