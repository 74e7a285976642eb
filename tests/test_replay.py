"""Determinism guard: committed histories must replay with the current workflow code.

A change that breaks determinism for running workflows fails here. (Regenerate the histories only for a
deliberate, versioned change: python -m tests.make_histories.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ratio_zoom.core.converter import data_converter
from workflows.appointment import AppointmentWorkflow
from workflows.runner import workflow_runner

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 2


@pytest.mark.parametrize("runner", ["default-sandbox", "worker-sandbox"])
@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path, runner: str) -> None:
    """Under Temporal's default sandbox and under the worker's (workflows/runner.py), which shares the pure
    modules between instances: both must replay every history alike."""
    history = WorkflowHistory.from_json(f"appointment-{path.stem}", path.read_text())
    chosen = workflow_runner() if runner == "worker-sandbox" else SandboxedWorkflowRunner()
    replayer = Replayer(workflows=[AppointmentWorkflow], data_converter=data_converter(None), workflow_runner=chosen)
    await replayer.replay_workflow(history)


def test_new_histories_start_lean() -> None:
    """The histories written by the current code read the conference record with a local activity (a marker
    in the first workflow task), not a scheduled activity: one workflow task and one activity round trip fewer
    per appointment; and they upsert only search attributes that changed. The `v1_activity_load_*` histories above, recorded before the change, still replay
    because the workflow branches on the patch marker."""
    current = [p for p in HISTORIES if not p.stem.startswith("v1_")]
    assert current
    for path in current:
        events = WorkflowHistory.from_json("h", path.read_text()).events
        scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
                     if e.HasField("activity_task_scheduled_event_attributes")]
        markers = [e.marker_recorded_event_attributes.marker_name for e in events
                   if e.HasField("marker_recorded_event_attributes")]
        assert "load_conference" not in scheduled, path.stem
        assert "core_local_activity" in markers, (path.stem, markers)
        assert "core_patch" in markers, (path.stem, markers)
        # The starter set every search attribute at start: no upsert repeats the ones that never change.
        upserted = [key for e in events if e.HasField("upsert_workflow_search_attributes_event_attributes")
                    for key in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields]
        assert "AppointmentId" not in upserted and "WorkspaceId" not in upserted, (path.stem, upserted)
