"""The sandbox the worker runs `AppointmentWorkflow` in.

Temporal's Python sandbox re-imports a workflow's module for every workflow *instance* it creates (each new
appointment, and each replay after the instance was evicted from the worker's cache), so that workflows
cannot share module state. Everything that module imports inside the sandbox is imported again with it.
For this workflow that was the decision core, its state models and the contract's pydantic models: compiling
`workflows/core.py` and building ~60 pydantic and dataclass classes took two thirds of the worker's CPU
while 10,000 appointments opened (py-spy), and 185 ms per instance on a 2-core machine.

The modules passed through below are deterministic and keep no module-level mutable state (pure functions,
frozen models, constants), which is what the sandbox's isolation protects; sharing them across instances
is what Temporal's documentation recommends for such modules. The workflow module itself is still
re-imported and its code still runs under the sandbox's restrictions (no I/O, no clock, no randomness).
`tests/test_workflow_runner.py` measures both sandboxes side by side and checks that they replay alike.
"""

from __future__ import annotations

import importlib.util
import logging
import py_compile
from pathlib import Path

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

logger = logging.getLogger(__name__)

PASSTHROUGH_MODULES = (
    "workflows.core",  # the pure decision core
    "workflows.state",  # its state models
    "activities.schemas",  # activity argument/result models (no I/O: the activities live elsewhere)
    "ratio_zoom.contract",  # the documented contract: pydantic models, validation, names
    "pydantic",
    "pydantic_core",
    "annotated_types",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    warm_bytecode()
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES))


def warm_bytecode() -> bool:
    """Bytecode for the modules the sandbox imports again for every instance: the workflow's and its
    package's. True when both are cached."""
    return all([_warm("workflows"), _warm("workflows.appointment")])


def _warm(module_name: str) -> bool:
    """Make sure the workflow module has compiled bytecode beside it.

    The sandbox re-imports the workflow module for every instance; without a valid `.pyc` each import
    compiles the source again (a fifth of the worker's CPU while 10,000 appointments opened). Python
    writes no `.pyc` when PYTHONDONTWRITEBYTECODE is set (this project's image sets it; so do many CI
    machines), and an editable install never had one. `py_compile` writes it regardless. The image's
    `pip install` already compiled it; where the directory is read-only, the worker runs as before."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return False
    source = Path(spec.origin)
    cached = Path(importlib.util.cache_from_source(str(source)))
    try:
        if cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime:
            return True  # e.g. the image: pip compiled it at install, and the directory is not ours to write
        # Once per worker start (milliseconds); the loader checks the source's mtime and size against it.
        py_compile.compile(str(source), cfile=str(cached), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
        return True
    except (OSError, py_compile.PyCompileError) as exc:
        logger.info("workflow bytecode not cached (%s): each new workflow instance compiles %s", exc, source.name)
        return False
