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

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

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
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES))
