"""The architecture's layers (README "Architecture", pyproject `[tool.importlinter]`) hold, and would be caught.

import-linter does the checking; these tests run it as CI would and prove, on a planted violation in a copy
of the tree, that a broken layer fails the build rather than passing silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ratio_zoom", "workflows", "activities", "starter")


def lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(found).exists():
        raise RuntimeError("lint-imports is missing: pip install -e '.[test]' installs import-linter")
    return found


def run_linter(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the tree under test wins over the editable install
    return subprocess.run([lint_imports(), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_layers_hold() -> None:
    result = run_linter(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(("module", "planted", "contract"), [
    # the contract reaching up into the CLI (a cycle through the whole stack)
    ("ratio_zoom/contract/validation.py", "import ratio_zoom.cli.main", "Layers"),
    # a workflow doing I/O through the database layer
    ("workflows/state.py", "import ratio_zoom.storage.db", "Workflows see only"),
    # the core app's client reaching past the contract into the workflow
    ("starter/appointments.py", "import workflows.appointment", "starter"),
    # storage importing the layer above it (the storage <-> connections cycle of old)
    ("ratio_zoom/storage/vault.py", "import ratio_zoom.connections.repository", "Layers"),
])
def test_a_planted_violation_fails(tree_copy: Path, module: str, planted: str, contract: str) -> None:
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{planted}  # planted by tests/test_layers.py\n")
    result = run_linter(tree_copy)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(contract in line for line in broken) or contract in result.stdout, result.stdout
    # the report names the planted import, so whoever broke it sees where
    assert planted.split()[-1] in result.stdout
