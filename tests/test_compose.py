"""docker-compose.yml, checked statically (no Docker engine here): structure, pinned images, dependency
order, scalable workers, and every setting the service reads passed to the worker and the API."""

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
                     "POSTGRES_PASSWORD", "ZOOM_WEBHOOK_SECRET_TOKEN"):
        for match in re.finditer(rf"{variable}: (.+)", text):
            assert match.group(1).startswith("${"), f"{variable} must come from the environment"
            assert ":?" in match.group(1) or "PASSWORD" not in variable


def test_mounted_files_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
