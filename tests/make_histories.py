"""Regenerate the committed workflow histories used by the replay test.

`python -m tests.make_histories` runs typical lifecycles on the time-skipping server with the fake
activities and writes their histories (JSON) to tests/histories/, started with the search attributes the
starter sets (as in production). Commit them when a *deliberate*,
versioned workflow change needs new ones; otherwise the replay test proves old histories still replay.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ratio_zoom.contract.appointment import Cancel, Consent, Reschedule, UpdateDetails
from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.temporal import register_search_attributes
from starter.appointments import initial_search_attributes
from tests.conftest import time_skipping_server_cli
from tests.test_workflow_timers import booking
from tests.workflow_fakes import FakeZoom
from workflows.appointment import AppointmentWorkflow
from activities import schemas as act

OUT = Path(__file__).parent / "histories"


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server_cli(), data_converter=data_converter(None))
    await register_search_attributes(env.client, "default")
    fake = FakeZoom(policy=act.Policy(grace_hours=2))
    tq = f"tq-{uuid.uuid4()}"
    now = await env.get_current_time()
    async with Worker(env.client, task_queue=tq, workflows=[AppointmentWorkflow], activities=fake.activities()):
        # 1. book -> reschedule -> details -> consent -> cancel
        b = booking(now, appointment_id="replay-lifecycle")
        h = await env.client.start_workflow(AppointmentWorkflow.run, b, id=f"appointment-{b.appointment_id}", task_queue=tq,
                                           search_attributes=initial_search_attributes(b))
        await h.execute_update("await_conference", {"timeout_seconds": 30}, result_type=dict)
        await h.signal("reschedule", Reschedule(request_id="r1", start_time=(now + timedelta(days=4)).isoformat(), duration_minutes=50))
        # One step at a time: the time-skipping test server refuses the cancel of an activity it has already
        # completed (ACTIVITY_UNKNOWN), which a superseded PATCH racing its own completion can ask for.
        await h.execute_update("await_conference", {"after_request_id": "r1", "timeout_seconds": 30}, result_type=dict)
        await h.signal("update_details", UpdateDetails(request_id="u1", title="Renamed"))
        await h.signal("consent", Consent(request_id="k1", granted=True, actor="client", subject="c@example.com",
                                          channel="web", consent_text_version="v1", occurred_at=now.isoformat()))
        await h.signal("reschedule", Reschedule(request_id="bad", start_time="2001-01-01T00:00:00Z", duration_minutes=5))
        await h.execute_update("await_conference", {"after_request_id": "k1", "timeout_seconds": 30}, result_type=dict)
        await h.signal("cancel", Cancel(request_id="c1", actor="u1"))
        await h.result()
        (OUT / "lifecycle_cancelled.json").write_text((await h.fetch_history()).to_json())
        # 2. book -> runs to completion through the pre-start check and the grace period
        b2 = booking(now, appointment_id="replay-completed")
        h2 = await env.client.start_workflow(AppointmentWorkflow.run, b2, id=f"appointment-{b2.appointment_id}", task_queue=tq,
                                            search_attributes=initial_search_attributes(b2))
        await h2.result()
        (OUT / "lifecycle_completed.json").write_text((await h2.fetch_history()).to_json())
    await env.shutdown()


if __name__ == "__main__":
    import os

    asyncio.run(main())
    os._exit(0)  # the SDK runtime can crash at interpreter exit (sdk-python #300)
