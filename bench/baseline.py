"""The bare-Temporal baseline: a workflow with the same message pattern as an appointment lifecycle
(update-with-start -> signal + update -> signal -> complete) doing one no-op activity per step.

`python -m bench.baseline ADDRESS TASK_QUEUE` runs its worker (a separate process, like ours)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn(name="noop")
async def noop(step: str) -> str:
    return step


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow:
    def __init__(self) -> None:
        self._queue: list[str] = []
        self._done = 0
        self._cancelled = False

    @workflow.run
    async def run(self, appointment_id: str) -> int:
        await workflow.execute_activity(noop, "create", start_to_close_timeout=timedelta(seconds=30))
        self._done += 1
        while not self._cancelled:
            await workflow.wait_condition(lambda: bool(self._queue))
            step = self._queue.pop(0)
            await workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
            self._done += 1
            self._cancelled = step == "cancel"
        return self._done

    @workflow.signal
    def step(self, name: str) -> None:
        self._queue.append(name)

    @workflow.update
    async def await_done(self, count: int) -> int:
        await workflow.wait_condition(lambda: self._done >= count)
        return self._done


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, workflows=[BaselineWorkflow], activities=[noop]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
