"""Ops see decoded payloads in the Temporal UI: a workflow page, rendered by headless Chromium, shows the
appointment title that is encrypted at rest, decoded through our codec server.

Needs Chromium and Node (`.ci/run` installs both and sets RATIO_ZOOM_REQUIRE_UI_CHECK=1, so in CI this test
runs and cannot be skipped); elsewhere it is skipped with the reason when they are missing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from ratio_zoom.contract.appointment import AppointmentInput
from ratio_zoom.emulators.zoom_server.testing import free_port
from ratio_zoom.core.threaded_server import serving
from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.payload_codec import EncryptionCodec
from ratio_zoom.codec.server import codec_routes
from tests.conftest import make_settings, temporal_cli
from workflows.appointment import SEARCH_ATTRIBUTE_KEYS

UI_DIR = Path(__file__).parent / "ui"


def _tools_missing() -> str | None:
    if not shutil.which("node"):
        return "node is not installed"
    if not Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")).exists():
        return "chromium is not installed (apt-get install chromium)"
    if not (UI_DIR / "node_modules" / "playwright-core").exists():
        return "run: npm --prefix tests/ui ci"
    return None


async def test_workflow_page_shows_the_decoded_title(tmp_path: Path) -> None:
    missing = _tools_missing()
    if missing:
        if os.environ.get("RATIO_ZOOM_REQUIRE_UI_CHECK") == "1":
            pytest.fail(f"UI check required but {missing}")
        pytest.skip(missing)
    settings = make_settings("sqlite:///unused")
    ring = settings.payload_keyring()
    assert ring is not None
    api_port, ui_port = free_port(), free_port()
    codec_app = FastAPI()
    # The UI cannot send a static bearer token: the codec is opened explicitly, as dev mode does on loopback.
    codec_app.include_router(codec_routes(EncryptionCodec(ring), bearer_token=None, allow_unauthenticated=True, allowed_origins=[
        f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"]))
    title = f"Decoded title {uuid.uuid4().hex[:6]}"
    with serving(codec_app, api_port):
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli(), ui=True, ui_port=ui_port, search_attributes=SEARCH_ATTRIBUTE_KEYS,
            data_converter=data_converter(settings),
            dev_server_extra_args=["--ui-codec-endpoint", f"http://127.0.0.1:{api_port}/codec"])
        try:
            booking = AppointmentInput(appointment_id=f"ui-{uuid.uuid4().hex[:6]}", workspace_id="w", title=title,
                                       start_time="2030-01-01T10:00:00+00:00", duration_minutes=30)
            # No worker needed: the start input alone is what the page must decode.
            handle = await env.client.start_workflow("AppointmentWorkflow", booking, id=f"appointment-{booking.appointment_id}",
                                                     task_queue="ui-check-no-worker")
            raw = (await handle.fetch_history()).to_json()
            assert title not in raw  # encrypted at rest
            url = f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/history"
            proc = await asyncio.create_subprocess_exec(
                "node", str(UI_DIR / "workflow_page.mjs"), url, title, str(tmp_path / "workflow.png"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
            await handle.terminate("ui check done")
        finally:
            await env.shutdown()
    assert out.decode().strip() == "FOUND", err.decode()[-2000:]
