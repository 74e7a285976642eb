"""Determinism guard: committed histories must replay with the current workflow code.

A change that breaks determinism for running workflows fails here. (Regenerate the histories only for a
deliberate, versioned change: python -m tests.make_histories.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from ratio_zoom.core.converter import data_converter
from workflows.appointment import AppointmentWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 2


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"appointment-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[AppointmentWorkflow], data_converter=data_converter(None))
    await replayer.replay_workflow(history)
