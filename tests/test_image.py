"""The Docker image's file set, installed as its Dockerfile says, starts `ratio-zoom worker` and `api`.

There is no Docker engine on the build machines, so this test plays the Dockerfile itself: it reads the
instructions, applies `.dockerignore` with Docker's own matching rules (the `docker` SDK's
`exclude_paths`), copies each stage's files into a directory standing for that stage's root, runs the
`RUN` lines there with the image's Python replaced by a clean venv, and then starts both roles from the
installed wheel in an empty directory (so nothing from the repository can shadow what the image lacks).
Last round the image could not import a package while every other test was green; this is the test that
would have said so.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import TEST_PAYLOAD_KEYS, TEST_TOKEN_KEYS

ROOT = Path(__file__).resolve().parent.parent
# Instructions that only set metadata or users; playing them changes no file the test looks at.
NO_FILE_EFFECT = {"ENV", "EXPOSE", "ENTRYPOINT", "CMD", "LABEL", "ARG", "USER"}
IMPORT_NAMES = {"ratio_zoom", "workflows", "activities", "starter"}
DEV_ONLY = ("temporal", "aiosmtpd", "pytest", "openapi_schema_validator")


@dataclass
class Stage:
    name: str
    root: Path
    workdir: str = "/"
    user: str = "root"
    runs: list[str] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def build_context(clone: Path) -> set[str]:
    patterns = [p.strip() for p in (clone / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.strip().startswith("#")]
    return set(exclude_paths(str(clone), patterns))


def copy_into(stage: Stage, sources: list[Path], base: Path, dest: str, allowed: set[str] | None) -> None:
    target = stage.root / (dest if dest.startswith("/") else f"{stage.workdir}/{dest}").lstrip("/")
    for source in sources:
        if source.is_dir():
            for path in sorted(source.rglob("*")):
                rel = path.relative_to(base).as_posix()
                if path.is_file() and (allowed is None or rel in allowed):
                    out = target / path.relative_to(source)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
        else:
            out = target / source.name if dest.endswith("/") or target.is_dir() else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out)


def run_line(stage: Stage, command: str, venv: Path) -> None:
    """A RUN line with the stage's absolute paths mapped into its directory and the image's pip = the venv's."""
    def rooted(match: re.Match[str]) -> str:
        return str(stage.root) + match.group(0)

    mapped = re.sub(r"(?<![\w.])/(?:wheels|src|app|home)\b[^\s;&|]*", rooted, command)
    mapped = re.sub(r"(?<![\w/.-])pip(?= )", shlex.quote(str(venv / "bin" / "pip")), mapped)
    cwd = stage.root / stage.workdir.lstrip("/")
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", mapped], cwd=cwd, capture_output=True, text=True,
                            timeout=900, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert result.returncode == 0, f"RUN {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Stage, Path]:
    """Plays the Dockerfile; returns the final stage and the venv standing for its Python."""
    work = tmp_path_factory.mktemp("image")
    clone = work / "context"
    # The build context of a fresh clone: what CI and a deployer have, not this checkout's stray files.
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    allowed = build_context(clone)
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    venvs: dict[str, Path] = {}
    for keyword, rest in instructions((clone / "Dockerfile").read_text()):
        if keyword == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest.upper() else f"stage{len(stages)}"
            name = re.split(r"\s+as\s+", rest, flags=re.IGNORECASE)[-1] if re.search(r"\s+as\s+", rest, re.I) else name
            current = stages[name] = Stage(name=name, root=work / f"root-{name}")
            current.root.mkdir()
            venv = venvs[name] = work / f"python-{name}"  # the base image's Python: a clean venv
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
            continue
        assert current is not None, "instruction before FROM"
        if keyword == "WORKDIR":
            current.workdir = rest
            (current.root / rest.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            parts = shlex.split(rest)
            source_stage = None
            while parts[0].startswith("--"):
                flag = parts.pop(0)
                if flag.startswith("--from="):
                    source_stage = stages[flag.split("=", 1)[1]]
            *srcs, dest = parts
            if source_stage is None:
                paths = [clone / s for s in srcs] if srcs != ["."] else [clone]
                copy_into(current, paths, clone, dest, allowed)
            else:
                paths = [source_stage.root / s.lstrip("/") for s in srcs]
                copy_into(current, paths, source_stage.root, dest, None)
        elif keyword == "RUN":
            if rest.startswith("useradd"):
                continue  # users exist only in the image; USER below is checked instead
            current.runs.append(rest)
            run_line(current, rest, venvs[current.name])
        elif keyword == "USER":
            current.user = rest
        else:
            assert keyword in NO_FILE_EFFECT, f"the image test does not know how to play {keyword}"
    assert current is not None
    return current, venvs[current.name]


def test_image_runs_as_non_root(image: tuple[Stage, Path]) -> None:
    final, _ = image
    assert final.user not in ("root", "0", "0:0"), "the image must not run as root"


def test_image_build_context_leaves_out_tests_and_local_state(tmp_path: Path) -> None:
    clone = tmp_path / "c"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    (clone / ".venv").mkdir()
    (clone / ".venv" / "marker").write_text("x")
    (clone / ".data").mkdir()
    (clone / ".data" / "dev.env").write_text("INTERNAL_API_TOKEN=x")
    allowed = build_context(clone)
    assert "pyproject.toml" in allowed and "ratio_zoom/core/settings.py" in allowed
    for leaked in (".venv/marker", ".data/dev.env", "tests/conftest.py", "bench/run.py", ".git/HEAD"):
        assert leaked not in allowed, leaked


def test_image_installs_only_the_service(image: tuple[Stage, Path]) -> None:
    final, venv = image
    site = next((venv / "lib").glob("python3.*/site-packages"))
    record = next(site.glob("ratio_zoom-*.dist-info"))
    top_level = {line.split("/", 1)[0].split(",", 1)[0] for line in (record / "RECORD").read_text().splitlines()}
    ours = {name for name in top_level if not name.endswith((".dist-info", ".data")) and name not in ("__pycache__", "..")}
    assert ours == IMPORT_NAMES, f"the wheel must expose exactly {sorted(IMPORT_NAMES)}, not {sorted(ours)}"
    assert not (venv / "bin" / "temporal").exists(), "the Temporal CLI is a dev tool; the image must not carry it"
    for module in DEV_ONLY[1:]:
        assert not list(site.glob(f"{module}*")), f"{module} is dev-only and must not be in the image"
    assert not (final.root / "wheels").exists(), "the wheel directory is removed after installing"


def test_every_service_module_imports_from_the_image(image: tuple[Stage, Path]) -> None:
    _, venv = image
    # Everything the image ships imports, except the emulators (the `dev` extra's tools).
    probe = (
        "import importlib, pkgutil\n"
        "failed = []\n"
        "for top in ('ratio_zoom', 'workflows', 'activities', 'starter'):\n"
        "    pkg = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        if info.name.startswith(('ratio_zoom.emulators', 'ratio_zoom.storage.migrations')):\n"
        "            continue\n"
        "        try:\n"
        "            importlib.import_module(info.name)\n"
        "        except Exception as exc:\n"
        "            failed.append(f'{info.name}: {exc!r}')\n"
        "print('\\n'.join(failed) or 'ok')\n"
    )
    empty = venv.parent / "empty-cwd"
    empty.mkdir(exist_ok=True)
    result = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=empty, capture_output=True,
                            text=True, timeout=300, env=_image_env(empty))
    assert result.stdout.strip() == "ok", result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _image_env(home: Path, **extra: str) -> dict[str, str]:
    """Production-shaped settings, as compose passes them; Temporal points at a port where nothing listens."""
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
        "DATABASE_URL": os.environ.get("RATIO_ZOOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
        "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEYS, "PAYLOAD_ENCRYPTION_KEYS": TEST_PAYLOAD_KEYS,
        "ZOOM_CLIENT_ID": "image-test", "ZOOM_CLIENT_SECRET": "image-test-secret",
        "ZOOM_REDIRECT_URI": "https://ratio.example/v1/zoom/oauth/callback",
        "ZOOM_WEBHOOK_SECRET_TOKEN": "image-test-webhook", "INTERNAL_API_TOKEN": "image-test-internal",
        "CODEC_AUTH_TOKEN": "image-test-codec-token-of-at-least-32-chars", "SMTP_URL": "smtps://mail.example:465",
    }
    env.update(extra)
    return env


def test_worker_without_a_server_fails_for_that_reason_only(image: tuple[Stage, Path]) -> None:
    _, venv = image
    home = venv.parent / "home-worker"
    home.mkdir(exist_ok=True)
    result = subprocess.run([str(venv / "bin" / "ratio-zoom"), "worker"], cwd=home, capture_output=True, text=True,
                            timeout=180, env=_image_env(home))
    output = result.stdout + result.stderr
    assert "ModuleNotFoundError" not in output and "ImportError" not in output, output[-3000:]
    assert result.returncode != 0, "with no Temporal server the worker must fail, not hang or succeed"
    assert re.search(r"connect|Connection refused|transport|unavailable", output, re.I), output[-3000:]


@pytest.mark.parametrize("role", ["worker", "api"])
async def test_role_starts_from_the_image_against_real_servers(
        image: tuple[Stage, Path], role: str, temporal_env: WorkflowEnvironment, pg_database_url: str) -> None:
    """With a Temporal server and a migrated PostgreSQL, both roles come up and stay up until SIGTERM."""
    _, venv = image
    home = venv.parent / f"home-{role}"
    home.mkdir(exist_ok=True)
    api_port, metrics_port = _free_port(), _free_port()
    env = _image_env(home, API_BIND=f"127.0.0.1:{api_port}", METRICS_BIND=f"127.0.0.1:{metrics_port}",
                     DATABASE_URL=pg_database_url,
                     TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
                     TEMPORAL_TASK_QUEUE=f"image-test-{role}")
    proc = subprocess.Popen([str(venv / "bin" / "ratio-zoom"), role], cwd=home, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    # The API answers /healthz; the worker serves its Prometheus endpoint once it polls the task queue.
    url = f"http://127.0.0.1:{api_port}/healthz" if role == "api" else f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        status = await asyncio.to_thread(_wait_for, url, proc)
        if status != 200:
            proc.kill()
            output = proc.communicate(timeout=30)[0]
            pytest.fail(f"`ratio-zoom {role}` from the image did not come up (exit {proc.returncode}):\n{output[-3000:]}")
        if role == "worker":
            assert await _has_pollers(temporal_env, f"image-test-{role}"), "the worker never polled its task queue"
        assert proc.poll() is None, f"`ratio-zoom {role}` exited although its servers are there"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    output = proc.stdout.read() if proc.stdout else ""
    assert "ModuleNotFoundError" not in output and "ImportError" not in output, output[-3000:]


async def _has_pollers(env: WorkflowEnvironment, task_queue: str) -> bool:
    request = DescribeTaskQueueRequest(namespace=env.client.namespace, task_queue=TaskQueue(name=task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    for _ in range(120):
        response = await env.client.workflow_service.describe_task_queue(request)
        if response.pollers:
            return True
        await asyncio.sleep(0.5)
    return False


def _wait_for(url: str, proc: subprocess.Popen[str]) -> int | None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            time.sleep(0.5)
    return None


def test_the_wheel_carries_the_data_files(image: tuple[Stage, Path]) -> None:
    """Migrations and Zoom's spec are package data: a folder list once dropped them silently."""
    _, venv = image
    site = next((venv / "lib").glob("python3.*/site-packages"))
    assert (site / "ratio_zoom/storage/migrations/env.py").exists()
    assert list((site / "ratio_zoom/storage/migrations/versions").glob("0001_*.py"))
    assert (site / "ratio_zoom/zoom/spec/ZoomMeetingAPISpec.json").exists()


