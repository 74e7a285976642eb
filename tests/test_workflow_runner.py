"""The worker's sandbox (workflows/runner.py) shares the pure modules instead of re-importing them for every
workflow instance, and replays exactly like Temporal's default sandbox.

Counted, not timed: an audit hook sees every module body the import system executes, so the test knows
whether `workflows/core.py` was imported again for a new instance. (The time this saves is a benchmark
figure: `python -m bench.run`, section "Workflow sandbox".)"""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ratio_zoom.core.converter import data_converter
from workflows import core
from workflows.appointment import AppointmentWorkflow
from workflows.runner import PASSTHROUGH_MODULES, warm_bytecode, workflow_runner

HISTORY = Path(__file__).parent / "histories" / "lifecycle_cancelled.json"
_executed: list[str] | None = None
_compiled: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "exec" and _executed is not None and args and hasattr(args[0], "co_filename"):
        _executed.append(str(args[0].co_filename))  # type: ignore[attr-defined]
    if event == "compile" and _compiled is not None and len(args) > 1:
        _compiled.append(str(args[1]))  # (source, filename)


sys.addaudithook(_audit)  # cannot be removed; it records only while a test sets `_executed`


async def _module_bodies_run_by_replay(runner: SandboxedWorkflowRunner, times: int) -> list[str]:
    global _executed
    history = WorkflowHistory.from_json("appointment-runner", HISTORY.read_text())
    replayer = Replayer(workflows=[AppointmentWorkflow], data_converter=data_converter(None), workflow_runner=runner)
    _executed = []
    try:
        for _ in range(times):
            await replayer.replay_workflow(history)
        return list(_executed)
    finally:
        _executed = None


async def test_new_instances_reuse_the_decision_core_instead_of_importing_it_again() -> None:
    core_file = str(Path(core.__file__).resolve())
    default = await _module_bodies_run_by_replay(SandboxedWorkflowRunner(), times=2)
    ours = await _module_bodies_run_by_replay(workflow_runner(), times=2)
    # Temporal's default sandbox runs core.py's module body again for every instance: the cost this avoids.
    assert sum(Path(f).resolve() == Path(core_file) for f in default) >= 2
    assert not any(Path(f).resolve() == Path(core_file) for f in ours)
    # The workflow module itself is still re-imported per instance: its code stays under the sandbox.
    assert sum(f.endswith("appointment.py") for f in ours) >= 2


def test_only_pure_modules_are_passed_through() -> None:
    # I/O lives in activities/* (except the schemas), ratio_zoom.connections, storage, zoom, ...: never shared
    # into the workflow sandbox, where a workflow could reach it by accident.
    for name in PASSTHROUGH_MODULES:
        assert not name.startswith(("ratio_zoom.connections", "ratio_zoom.storage", "ratio_zoom.zoom", "ratio_zoom.core"))
        assert name != "activities" and name != "ratio_zoom"


async def test_new_instances_do_not_compile_the_workflow_source_again() -> None:
    """With PYTHONDONTWRITEBYTECODE (set in the image and on many CI machines) Python never writes the
    workflow module's .pyc, and the sandbox's per-instance import compiled the source every time. The
    runner writes it once (`warm_bytecode`)."""
    assert warm_bytecode()
    ours = str(Path(core.__file__).parent)

    async def compiles(instances: int) -> list[str]:
        global _compiled
        _compiled = []
        try:
            await _module_bodies_run_by_replay(workflow_runner(), times=instances)
            return [f for f in _compiled if f.startswith(ours)]
        finally:
            _compiled = None

    # What the replayer compiles once when it starts is the same for one instance and for four: no
    # instance compiles the workflow's source again.
    assert await compiles(4) == await compiles(1)
