"""A workflow that cancels an activity waiting for its retry (not started), as the lanes do when newer work
supersedes a retrying step. (Its own module: the workflow sandbox re-imports the module of a workflow.)"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn(name="fails_first_then_waits")
async def fails_first_then_waits() -> None:
    if activity.info().attempt == 1:
        raise RuntimeError("the first attempt fails, so the second waits for its retry interval")
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.2)


@workflow.defn(name="CancelBeforeStart")
class CancelBeforeStart:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            fails_first_then_waits, start_to_close_timeout=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=30)),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        await workflow.sleep(2)  # the first attempt has failed; the retry is 30 s away
        handle.cancel()
        try:
            await handle
        except Exception as err:  # noqa: BLE001 - the outcome is what the test reads
            return f"{type(err).__name__}/{type(err.__cause__).__name__}"
        return "completed"
