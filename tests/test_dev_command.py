"""`ratio-zoom dev --emulate` brings the whole stack up and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ratio_zoom.emulators.zoom_server.testing import free_port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - localhost
            return response.status
    except OSError:
        return 0


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,sid=,pgid="], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    found = {pid}
    changed = True
    while changed:
        changed = False
        for child, parent, _sid, _pgid in rows:
            if parent in found and child not in found:
                found.add(child)
                changed = True
    return found - {pid}


def test_dev_stack_comes_up_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("temporal", "ui", "api", "emulator")}
    # The sink takes two neighbouring ports (SMTP, HTTP). Pick them below the kernel's ephemeral range, where
    # the dev server's own dynamically bound ports (metrics, internal services) cannot land.
    import random

    ports["smtp"] = random.randrange(20000, 30000, 2)
    while _port_taken(ports["smtp"]) or _port_taken(ports["smtp"] + 1):
        ports["smtp"] = random.randrange(20000, 30000, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "TOKEN_", "PAYLOAD_", "DATABASE_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ratio_zoom.cli.main", "dev", "--emulate", "--data-dir", str(tmp_path / ".data"),
         "--temporal-port", str(ports["temporal"]), "--ui-port", str(ports["ui"]), "--api-port", str(ports["api"]),
         "--emulator-port", str(ports["emulator"]), "--smtp-port", str(ports["smtp"])],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while _get(f"http://127.0.0.1:{ports['api']}/healthz") != 200:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "dev stack did not come up"
            time.sleep(0.5)
        assert _get(f"http://127.0.0.1:{ports['ui']}/") == 200  # the Temporal UI answers
        assert _get(f"http://127.0.0.1:{ports['emulator']}/_emulator/counters") == 200
        assert _get(f"http://127.0.0.1:{ports['smtp'] + 1}/messages") == 200  # the SMTP sink's listing
        assert (tmp_path / ".data" / "temporal.sqlite3").exists()
        children = _descendants(proc.pid)
        assert len(children) >= 5  # temporal, zoom emulator, smtp sink, worker, api
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Temporal UI" in output and "stopped." in output
    # Dev mode is explicit and said once by the supervisor; what it needs was generated into dev.env.
    assert output.count("ratio-zoom dev: dev mode (RATIO_ZOOM_MODE=dev)") == 1
    dev_env = (tmp_path / ".data" / "dev.env").read_text()
    assert "CODEC_AUTH_TOKEN=" in dev_env and "PAYLOAD_ENCRYPTION_KEYS=" in dev_env
    time.sleep(0.5)
    alive = [pid for pid in children if _alive(pid)]
    assert alive == [], f"orphans left behind: {alive}"


def _port_taken(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")
