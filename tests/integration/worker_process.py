"""Run the real service commands (`ratio-zoom worker`, `ratio-zoom api`) as subprocesses that tests can
SIGKILL, configured only through the environment, exactly as a deployment configures them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from ratio_zoom.core.settings import Settings


def worker_env(settings: Settings, temporal_address: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        # Explicit, never inherited from the developer's shell: the mode decides which start-up checks apply.
        "RATIO_ZOOM_MODE": settings.mode,
        "DATABASE_URL": settings.database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "TEMPORAL_TLS": str(settings.temporal_tls).lower(),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": settings.temporal_tls_server_ca_cert_path,
        "TEMPORAL_TLS_CLIENT_CERT_PATH": settings.temporal_tls_client_cert_path,
        "TEMPORAL_TLS_CLIENT_KEY_PATH": settings.temporal_tls_client_key_path,
        "TEMPORAL_TLS_SERVER_NAME": settings.temporal_tls_server_name,
        "TEMPORAL_API_KEY": settings.temporal_api_key.get_secret_value(),
        "ZOOM_API_BASE_URL": settings.zoom_api_base_url,
        "ZOOM_OAUTH_BASE_URL": settings.zoom_oauth_base_url,
        "ZOOM_CLIENT_ID": settings.zoom_client_id,
        "ZOOM_CLIENT_SECRET": settings.zoom_client_secret.get_secret_value(),
        "ZOOM_REDIRECT_URI": settings.zoom_redirect_uri,
        "ZOOM_WEBHOOK_SECRET_TOKEN": settings.zoom_webhook_secret_token.get_secret_value(),
        "INTERNAL_API_TOKEN": settings.internal_api_token.get_secret_value(),
        "TOKEN_ENCRYPTION_KEYS": settings.token_encryption_keys.get_secret_value(),
        "PAYLOAD_ENCRYPTION_KEYS": settings.payload_encryption_keys.get_secret_value(),
        "CODEC_AUTH_TOKEN": settings.codec_auth_token.get_secret_value(),
        "SMTP_URL": settings.smtp_url.get_secret_value(),
        "SMTP_ALLOW_PLAINTEXT": str(settings.smtp_allow_plaintext).lower(),
        "EMAIL_FROM": settings.email_from,
        "RECORDING_BOT_API_URL": settings.recording_bot_api_url,
        "RECORDING_BOT_API_KEY": settings.recording_bot_api_key.get_secret_value(),
        "RECORDING_BOT_WEBHOOK_SECRET": settings.recording_bot_webhook_secret.get_secret_value(),
        "PUBLIC_BASE_URL": settings.public_base_url,
        "LOG_LEVEL": "WARNING",
    })
    return env


class WorkerProcess:
    """One `ratio-zoom <command>` process in its own session, so a kill takes its whole tree.

    `log_path`: where its stdout and stderr go (appended across restarts, for the chaos log scan); by
    default they are discarded."""

    def __init__(self, env: dict[str, str], command: str = "worker", *, log_path: Path | None = None) -> None:
        self._env = env
        self._command = command
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.log_path is None:
            out: int | IO[bytes] = subprocess.DEVNULL
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        try:
            stderr = subprocess.STDOUT if self.log_path else out  # one file, in the order the lines were written
            self.process = subprocess.Popen([sys.executable, "-m", "ratio_zoom.cli.main", self._command],
                                            env=self._env, stdout=out, stderr=stderr, start_new_session=True)
        finally:
            if not isinstance(out, int):
                out.close()  # the child holds its own descriptor

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
