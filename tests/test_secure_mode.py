"""One explicit mode (issue 13): production is the default and the worker and the API refuse to start
insecurely, with exit status 2 and one line naming the setting; dev mode is asked for by name.

The refusals run the real commands (`python -m ratio_zoom.cli.main worker|api`) configured only through the
environment, as a deployment configures them. Each case starts from a configuration that passes the checks
(asserted first, so no row can pass by accident) and breaks exactly one thing."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ratio_zoom.cli.dev import _dev_env_file
from ratio_zoom.core.mode import check_start, production_problems
from ratio_zoom.core.settings import ConfigurationError, Settings
from tests.conftest import TEST_CODEC_TOKEN, TEST_PAYLOAD_KEYS, TEST_TOKEN_KEYS

SMTP_PASSWORD = "hunter2-smtp-password"
# Production-good: PostgreSQL (never contacted: the checks run before anything connects), every secret.
GOOD = {
    "RATIO_ZOOM_MODE": "production",
    "DATABASE_URL": "postgresql://ratio@127.0.0.1:1/never-reached",
    "TEMPORAL_ADDRESS": "127.0.0.1:1",
    "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEYS,
    "PAYLOAD_ENCRYPTION_KEYS": TEST_PAYLOAD_KEYS,
    "CODEC_AUTH_TOKEN": TEST_CODEC_TOKEN,
    "INTERNAL_API_TOKEN": "test-internal-token",
    "ZOOM_CLIENT_ID": "id",
    "ZOOM_CLIENT_SECRET": "secret",
    "ZOOM_REDIRECT_URI": "https://ratio.example/cb",
    "API_BIND": "0.0.0.0:8080",
    "SMTP_URL": f"smtp://mailer:{SMTP_PASSWORD}@smtp.example.com:587",
}

# (case, what changes, the setting the one line must name)
REFUSALS = [
    ("no payload encryption", {"PAYLOAD_ENCRYPTION_KEYS": ""}, "PAYLOAD_ENCRYPTION_KEYS is required in production"),
    ("no codec token", {"CODEC_AUTH_TOKEN": ""}, "CODEC_AUTH_TOKEN is required"),
    ("weak codec token", {"CODEC_AUTH_TOKEN": "short"}, "CODEC_AUTH_TOKEN is too short"),
    ("codec opened without a token", {"CODEC_ALLOW_UNAUTHENTICATED": "true"}, "CODEC_ALLOW_UNAUTHENTICATED is refused"),
    ("SMTP in clear to another machine", {"SMTP_ALLOW_PLAINTEXT": "true"}, "SMTP_ALLOW_PLAINTEXT is refused"),
    ("SMTP URL of another protocol", {"SMTP_URL": f"http://mailer:{SMTP_PASSWORD}@smtp.example.com"},
     "SMTP_URL is invalid"),
    ("SQLite (disconnect cannot wait for calls in flight)", {"DATABASE_URL": "sqlite:///ratio.sqlite3"},
     "DATABASE_URL is SQLite"),
    ("unreadable Temporal client certificate", {"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/client.pem",
                                                "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent/client.key"},
     "TEMPORAL_TLS_CLIENT_CERT_PATH cannot be read"),
    ("dev mode, codec on a public bind without a token", {"RATIO_ZOOM_MODE": "dev", "CODEC_AUTH_TOKEN": ""},
     "CODEC_AUTH_TOKEN is required: the codec server on API_BIND 0.0.0.0:8080"),
]


def _settings(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


def _clean_environ() -> dict[str, str]:
    """The test runner's environment without anything that could configure the service by accident."""
    ours = ("RATIO_ZOOM_", "DATABASE_URL", "TEMPORAL_", "ZOOM_", "TOKEN_", "PAYLOAD_", "CODEC_", "INTERNAL_",
            "API_BIND", "SMTP_", "EMAIL", "RECORDING_BOT_", "PUBLIC_BASE_URL", "METRICS_BIND", "LOG_")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours)}


def test_the_baseline_passes_so_every_refusal_below_is_caused_by_its_one_change() -> None:
    settings = _settings(GOOD)
    assert settings.mode == "production"
    assert production_problems(settings) == []
    check_start(settings, "worker")


def test_production_is_the_default_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RATIO_ZOOM_MODE", raising=False)
    assert Settings().mode == "production"


@pytest.mark.parametrize("command", ["worker", "api"])
@pytest.mark.parametrize(("case", "change", "named"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_insecure_start_exits_2_with_one_line_naming_the_setting(tmp_path: Path, command: str, case: str,
                                                                 change: dict[str, str], named: str) -> None:
    env = {**_clean_environ(), **GOOD, **change}
    with pytest.raises(ConfigurationError, match=named.split(":")[0]):
        check_start(_settings({**GOOD, **change}), command)
    proc = subprocess.run([sys.executable, "-m", "ratio_zoom.cli.main", command], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and named in lines[0], lines
    assert SMTP_PASSWORD not in proc.stderr + proc.stdout  # the line names the setting, never its secret


def test_dev_mode_relaxes_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings({**GOOD, "RATIO_ZOOM_MODE": "dev", "API_BIND": "127.0.0.1:8080", "PAYLOAD_ENCRYPTION_KEYS": "",
                          "CODEC_AUTH_TOKEN": "", "DATABASE_URL": "sqlite:///dev.sqlite3"})
    with caplog.at_level(logging.WARNING, logger="ratio_zoom.mode"):
        check_start(settings, "worker")
    lines = [r.getMessage() for r in caplog.records if r.name == "ratio_zoom.mode"]
    assert len(lines) == 1
    assert "dev mode" in lines[0] and "PAYLOAD_ENCRYPTION_KEYS" in lines[0] and "DATABASE_URL is SQLite" in lines[0]


def test_a_loopback_relay_may_take_mail_in_clear_in_production() -> None:
    """A relay on the same host (a sidecar MTA) is the one place a message may go without TLS: it crosses no
    network. Any other host is refused (see REFUSALS)."""
    for host in ("127.0.0.1", "localhost", "[::1]"):
        settings = _settings({**GOOD, "SMTP_URL": f"smtp://{host}:25", "SMTP_ALLOW_PLAINTEXT": "true"})
        assert production_problems(settings) == [], host


def test_dev_env_holds_every_secret_dev_mode_needs_and_upgrades_an_old_file(tmp_path: Path) -> None:
    old = tmp_path / "dev.env"
    old.write_text("TOKEN_ENCRYPTION_KEYS=dev1:keep-me\nINTERNAL_API_TOKEN=keep-me-too\n")
    values, generated = _dev_env_file(tmp_path)
    # Existing keys stay (data is encrypted under them); only the missing ones are generated, once.
    assert values["TOKEN_ENCRYPTION_KEYS"] == "dev1:keep-me" and values["INTERNAL_API_TOKEN"] == "keep-me-too"
    assert {"PAYLOAD_ENCRYPTION_KEYS", "CODEC_AUTH_TOKEN"} <= set(generated)
    assert len(values["CODEC_AUTH_TOKEN"]) >= 32
    again, generated_again = _dev_env_file(tmp_path)
    assert generated_again == [] and again == values
    assert oct(old.stat().st_mode & 0o777) == "0o600"
    # What dev mode generated passes the production secret checks too (only SQLite remains relaxed).
    dev = _settings({**GOOD, **{k: v for k, v in values.items() if k != "TOKEN_ENCRYPTION_KEYS"},
                     "DATABASE_URL": "sqlite:///dev.sqlite3"})
    assert [p.split(" ")[0] for p in production_problems(dev)] == ["DATABASE_URL"]
