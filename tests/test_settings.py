"""Settings: defaults, contract names, and one clear line for every configuration error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ratio_zoom.core.settings import ConfigurationError, load_settings


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "ZOOM_", "DATABASE_URL", "API_BIND")):
            monkeypatch.delenv(name)
    s = load_settings()
    assert s.temporal_address == "localhost:7233"
    assert s.temporal_namespace == "default"
    assert s.temporal_task_queue == "zoom-meetings"
    assert s.zoom_api_base_url == "https://api.zoom.us/v2"
    assert s.zoom_oauth_base_url == "https://zoom.us"
    assert s.api_bind == "127.0.0.1:8080"
    assert s.database_url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("API_BIND", "nonsense", "API_BIND is invalid"),
        ("ZOOM_API_BASE_URL", "ftp://x", "ZOOM_API_BASE_URL is invalid"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL is invalid"),
    ],
)
def test_malformed_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=expected):
        load_settings()


def test_key_ring_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", "k1:c2hvcnQ=")
    with pytest.raises(ConfigurationError, match="TOKEN_ENCRYPTION_KEYS is malformed: key 'k1' is 5 bytes"):
        load_settings().token_keyring()
    monkeypatch.delenv("TOKEN_ENCRYPTION_KEYS")
    with pytest.raises(ConfigurationError, match="TOKEN_ENCRYPTION_KEYS is required"):
        load_settings().token_keyring()


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", "super-secret-value")
    monkeypatch.setenv("INTERNAL_API_TOKEN", "internal-secret-value")
    s = load_settings()
    assert "super-secret-value" not in repr(s) and "internal-secret-value" not in str(s)


def test_cli_exits_2_with_one_line_on_configuration_error(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "TOKEN_"))}
    env["API_BIND"] = "not-a-bind"
    proc = subprocess.run([sys.executable, "-m", "ratio_zoom.cli.main", "worker"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "API_BIND is invalid" in lines[0]
    env.pop("API_BIND")
    proc = subprocess.run([sys.executable, "-m", "ratio_zoom.cli.main", "worker"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "TOKEN_ENCRYPTION_KEYS is required" in proc.stderr
    assert "Traceback" not in proc.stderr
