"""The README is executed, not trusted.

In a fresh clone and a fresh venv this test runs the README's first set-up command exactly as written, waits
for the stack, runs every line of the README's demo block exactly as written, checks what a newcomer would
look for (a join URL, the meeting gone from "Zoom" after the cancel, a confirmation, an update and a
cancellation in the mailbox), then presses Ctrl-C and finds no process left. Last round the suite was green
while that first command failed on a fresh machine; this is the test that would have said so.

The README's commands use the documented ports (8080, 9090, 2525/2526, 7233, 8233): the test refuses to
start, with the port named, when one is taken, rather than poking someone else's service.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_PORTS = (8080, 9090, 2525, 2526, 7233, 8233)
STACK_TIMEOUT = 900.0  # a fresh venv: pip install of the whole dependency set, then the dev server


def readme_blocks(text: str) -> dict[str, list[str]]:
    """`sh` code blocks by the heading they sit under."""
    blocks: dict[str, list[str]] = {}
    heading = ""
    for match in re.finditer(r"^(#{2,4} [^\n]+)$|^```sh\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("#").strip()
        else:
            blocks.setdefault(heading, []).append(match.group(2))
    return blocks


def test_readme_has_the_two_set_up_commands_and_ci_runs_the_second() -> None:
    setup = readme_blocks((ROOT / "README.md").read_text())["Set-up (a fresh machine, Python 3.11)"]
    assert len(setup) == 2 and all(len(b.strip().splitlines()) == 1 for b in setup), setup
    assert setup[1].strip() in (ROOT / ".ci" / "run").read_text(), ".ci/run must call the README's test command"


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


def _clean_env(home: Path) -> dict[str, str]:
    """What a newcomer's shell has: no venv of ours on PATH, no settings of the test run."""
    venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", "/nonexistent")) / "bin")
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p and p != venv_bin
                    and ".venv" not in p)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL",
                                                          "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE")}
    return {**keep, "PATH": path, "HOME": os.environ.get("HOME", str(home))}


def _processes_under(root: Path) -> list[str]:
    """Live processes whose command line or working directory is inside the clone."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            state = next((line for line in (proc / "status").read_text().splitlines() if line.startswith("State:")), "")
        except OSError:
            continue
        if "zombie" in state:
            continue
        if str(root) in cmdline or cwd == str(root) or cwd.startswith(str(root) + "/"):
            found.append(f"{proc.name}: {cmdline.strip()[:200]}")
    return found


@pytest.mark.slow
def test_readme_quickstart_and_demo_run_as_written(tmp_path: Path) -> None:
    taken = [port for port in README_PORTS if _port_taken(port)]
    if taken:
        pytest.fail(f"the README's ports {taken} are in use on this machine; the README test needs them free")
    readme = (ROOT / "README.md").read_text()
    blocks = readme_blocks(readme)
    first_command = blocks["Set-up (a fresh machine, Python 3.11)"][0].strip()
    demo = blocks["Demo"][0]
    clone = tmp_path / "ratio-zoom"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = _clean_env(tmp_path)
    log_path = tmp_path / "dev.log"
    with log_path.open("w") as log:
        # Its own session, like a terminal's foreground job: Ctrl-C is SIGINT to the whole process group.
        dev = subprocess.Popen(["bash", "-c", first_command], cwd=clone, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STACK_TIMEOUT
        while "ratio-zoom dev is up" not in log_path.read_text():
            assert dev.poll() is None, f"the README's first command failed:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"the stack did not come up:\n{log_path.read_text()[-4000:]}"
            time.sleep(1)

        result = subprocess.run(["bash", "-euo", "pipefail", "-c", demo], cwd=clone, env=env, capture_output=True,
                                text=True, timeout=300)
        transcript = result.stdout + result.stderr
        assert result.returncode == 0, f"a line of the README's demo failed:\n{transcript[-4000:]}"

        # Connected, and the browser ended where the return URL said.
        assert "browser landed on http://localhost:8080/healthz" in transcript, transcript[-4000:]
        assert '"status":"connected"' in transcript.replace(" ", ""), transcript[-4000:]
        # `book` printed a join URL (the emulator's), `show` the rescheduled state.
        join_urls = re.findall(r'"join_url":\s*"(https?://[^"]+)"', transcript)
        assert join_urls, f"no join URL in the demo's output:\n{transcript[-4000:]}"
        assert '"duration_minutes": 45' in transcript, "`show` does not reflect the reschedule"

        # After the cancel: the meeting is gone from "Zoom", and Ada got all three emails.
        deadline = time.monotonic() + 60
        meetings: list[object] = [None]
        subjects: list[str] = []
        while time.monotonic() < deadline:
            status, body = _get("http://127.0.0.1:9090/_emulator/meetings")
            meetings = json.loads(body) if status == 200 else [None]
            status, body = _get("http://127.0.0.1:2526/messages")
            subjects = [m["subject"] for m in json.loads(body)] if status == 200 else []
            gone = bool(meetings) and all(isinstance(m, dict) and m.get("deleted") for m in meetings)
            if gone and any(s.startswith("Cancelled:") for s in subjects):
                break
            time.sleep(1)
        assert len(meetings) == 1, f"one booking, one meeting in the emulator: {meetings}"
        assert isinstance(meetings[0], dict) and meetings[0]["deleted"], "the cancelled appointment's meeting was not deleted"
        assert meetings[0]["duration"] == 45, "the reschedule did not reach the meeting"
        assert subjects == ["Confirmed: Intro call", "Updated: Intro call", "Cancelled: Intro call"], subjects
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C
        try:
            code = dev.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
            code = None
    output = log_path.read_text()
    assert code is not None, f"Ctrl-C did not stop `ratio-zoom dev` within 90 s:\n{output[-3000:]}"
    assert "ratio-zoom dev: stopped." in output, output[-3000:]
    time.sleep(1)
    left = _processes_under(clone)
    assert not left, "processes left behind after Ctrl-C:\n" + "\n".join(left)
