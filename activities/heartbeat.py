"""Heartbeat while an activity runs, so Temporal notices a dead worker within the heartbeat timeout
(seconds) instead of the start-to-close timeout, and retries the activity elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity

HEARTBEAT_EVERY_SECONDS = 2.0


@asynccontextmanager
async def keep_alive(interval: float = HEARTBEAT_EVERY_SECONDS) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
