"""docker-compose.yml, checked statically (no Docker engine here): structure, pinned images, dependency
order, scalable workers, every setting the service reads passed to the worker and the API, production mode
with its secrets required, and the Temporal UI read-only."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ratio_zoom.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# Settings a deployment may leave at their defaults on purpose (documented in the README).
OPTIONAL = {"PUBLIC_BASE_URL"}


def test_every_image_is_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        if service.get("build"):
            continue
        assert image, name
        if image == "ratio-zoom:local":
            assert any(s.get("build") for s in SERVICES.values()), "the local image must be built by some service"
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} is not pinned"


def test_the_stack_has_every_part() -> None:
    assert {"postgres", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "migrate", "worker", "api"} <= set(SERVICES)
    assert SERVICES["temporal"]["image"].startswith("temporalio/server:")  # not the deprecated auto-setup
    assert SERVICES["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert "TEMPORAL_CODEC_ENDPOINT" in SERVICES["temporal-ui"]["environment"]


def test_dependencies_exist_and_wait_for_the_right_condition() -> None:
    for name, service in SERVICES.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            assert rule["condition"] in ("service_healthy", "service_completed_successfully")
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck"
    assert SERVICES["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_workers_scale() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_every_setting_reaches_worker_and_api() -> None:
    aliases = {field.alias for field in Settings.model_fields.values() if field.alias} - OPTIONAL
    for name in ("worker", "api", "migrate"):
        env = SERVICES[name]["environment"]
        missing = sorted(a for a in aliases if a not in env)
        assert missing == [] or set(missing) <= OPTIONAL, f"{name} lacks {missing}"


def test_no_secret_is_committed() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for variable in ("ZOOM_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS", "PAYLOAD_ENCRYPTION_KEYS", "INTERNAL_API_TOKEN",
                     "POSTGRES_PASSWORD", "ZOOM_WEBHOOK_SECRET_TOKEN", "CODEC_AUTH_TOKEN", "TEMPORAL_API_KEY",
                     "SMTP_URL", "RECORDING_BOT_API_KEY"):
        for match in re.finditer(rf"{variable}: (.+)", text):
            assert match.group(1).startswith("${"), f"{variable} must come from the environment"
            assert ":?" in match.group(1) or "PASSWORD" not in variable


def test_mounted_files_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


# -- secure by default (issue 13) ----------------------------------------------------------------------------

def _expanded(env: dict[str, object]) -> dict[str, str]:
    """The ratio-zoom environment as Compose would hand it over when the operator sets every required
    variable (`${VAR:?}`) and leaves every optional one (`${VAR:-default}`) at its default."""
    from ratio_zoom.core.keyring import KeyRing

    samples = {"TOKEN_ENCRYPTION_KEYS": KeyRing.generate_entry("k1"), "PAYLOAD_ENCRYPTION_KEYS": KeyRing.generate_entry("p1")}

    def one(match: re.Match[str]) -> str:
        name, default, required = match.group(1), match.group(3), match.group(4)
        if required is not None:
            return samples.get(name, "s" * 40)
        return default or ""

    pattern = re.compile(r"\$\{(\w+)(:-([^}]*)|:\?([^}]*))?\}")
    return {key: pattern.sub(one, str(value)) for key, value in env.items()}


def test_the_shipped_stack_passes_the_production_checks() -> None:
    from ratio_zoom.core.mode import production_problems

    for name in ("worker", "api"):
        env = _expanded(SERVICES[name]["environment"])
        assert env["RATIO_ZOOM_MODE"] == "production"
        settings = Settings(_env_file=None, **env)  # type: ignore[call-arg]
        assert settings.mode == "production"
        assert production_problems(settings) == [], name


def test_production_secrets_are_required_not_defaulted() -> None:
    env = SERVICES["api"]["environment"]
    for variable in ("PAYLOAD_ENCRYPTION_KEYS", "CODEC_AUTH_TOKEN", "TOKEN_ENCRYPTION_KEYS", "INTERNAL_API_TOKEN"):
        assert str(env[variable]).startswith(f"${{{variable}:?"), f"{variable} must be required (${{{variable}:?...}})"
    assert _expanded(env)["SMTP_ALLOW_PLAINTEXT"] == "false"
    assert _expanded(env)["DATABASE_URL"].startswith("postgresql://")


def test_secured_temporal_settings_reach_worker_and_api() -> None:
    for name in ("worker", "api"):
        env = SERVICES[name]["environment"]
        for variable in ("TEMPORAL_TLS", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH",
                         "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_API_KEY"):
            assert str(env[variable]).startswith(f"${{{variable}:-"), f"{name}: {variable} not passed through"
    assert "TEMPORAL_API_KEY: ${TEMPORAL_API_KEY:-}" in (ROOT / "docker-compose.yml").read_text()  # never a value


def test_temporal_ui_is_read_only_and_not_published_beyond_this_host() -> None:
    ui = SERVICES["temporal-ui"]
    # The UI has no auth of its own in this stack: terminate/signal/reset from a browser must be off.
    assert str(ui["environment"]["TEMPORAL_DISABLE_WRITE_ACTIONS"]).lower() == "true"
    assert all(str(port).startswith("127.0.0.1:") for port in ui["ports"]), ui["ports"]
    text = (ROOT / "docker-compose.yml").read_text()
    assert "TEMPORAL_AUTH_ENABLED" in text  # the comment says how to put auth in front of it
