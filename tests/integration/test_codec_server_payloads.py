"""The payload codec refuses plaintext from clients, but lets through what the Temporal server writes itself.

Found when the lanes (which cancel superseded steps) met the codec that refuses plaintext: a workflow that
cancelled an activity waiting for its retry failed every activation on the server's plaintext
`"ACTIVITY_ID_NOT_STARTED"` cancellation details, and the appointment was stuck."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ratio_zoom.core.payload_codec import REFUSED_ENCODING, EncryptionCodec
from tests.conftest import make_settings
from tests.integration.cancel_before_start import CancelBeforeStart, fails_first_then_waits


async def test_cancelling_an_activity_before_it_starts_completes_under_encryption(temporal_env: WorkflowEnvironment) -> None:
    queue = f"cancel-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=queue, workflows=[CancelBeforeStart],
                      activities=[fails_first_then_waits]):
        # A regression wedges the workflow (every activation fails): the execution timeout turns that into a failure.
        outcome = await temporal_env.client.execute_workflow(CancelBeforeStart.run, id=f"cancel-{uuid.uuid4()}",
                                                             task_queue=queue, execution_timeout=timedelta(seconds=60))
    assert outcome == "ActivityError/CancelledError"


async def test_only_the_servers_own_constant_passes_in_clear() -> None:
    codec = EncryptionCodec(make_settings("sqlite:///unused").payload_keyring())  # type: ignore[arg-type]
    server = Payload(metadata={"encoding": b"json/plain"}, data=b'"ACTIVITY_ID_NOT_STARTED"')
    forged = Payload(metadata={"encoding": b"json/plain"}, data=b'{"request_id": "x", "start_time": "..."}')
    passed, refused = await codec.decode([server, forged])
    assert passed == server
    assert refused.metadata["encoding"] == REFUSED_ENCODING and refused.data == b""
