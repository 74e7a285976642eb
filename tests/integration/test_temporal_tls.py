"""Finding 13: reaching a secured Temporal. A TLS-terminating proxy made by the test (certificates minted per
run) stands in front of the dev server. Every client the service builds goes through `connect_client`, so
the worker process, the starter (the core app's client) and the CLI all reach it with the same settings:
server CA, mTLS client certificate, TLS server name, API key. And the secured endpoint refuses what it must:
no client certificate, a certificate from another CA, a server the client does not trust, a wrong API key,
plain text."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ratio_zoom.contract.appointment import Cancel
from ratio_zoom.core.settings import Settings
from ratio_zoom.core.temporal import connect_client
from starter import Appointments, connect
from tests.conftest import make_settings
from tests.integration.test_appointment_lifecycle import booking
from tests.integration.worker_process import WorkerProcess, worker_env
from tests.tls_material import SERVER_NAME, TlsMaterial, mint
from tests.tls_proxy import TlsProxy, running_tls_proxy


@pytest.fixture
def tls(tmp_path: Path) -> TlsMaterial:
    return mint(tmp_path / "tls")


def _upstream(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def _secured(base: Settings, proxy: TlsProxy, tls: TlsMaterial, **changes: object) -> Settings:
    values: dict[str, object] = {"temporal_address": proxy.address, "temporal_tls_server_ca_cert_path": str(tls.ca),
                                 "temporal_tls_client_cert_path": str(tls.client.cert),
                                 "temporal_tls_client_key_path": str(tls.client.key),
                                 "temporal_tls_server_name": SERVER_NAME}
    values.update(changes)
    return base.model_copy(update=values)


async def test_worker_starter_and_cli_reach_temporal_over_mtls(temporal_env: WorkflowEnvironment, pg_database_url: str,
                                                               zoom_emulator, tls: TlsMaterial) -> None:  # type: ignore[no-untyped-def]
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    proxy = TlsProxy(_upstream(temporal_env), tls.server.cert, tls.server.key, client_ca=tls.ca)
    async with running_tls_proxy(proxy):
        settings = _secured(make_settings(pg_database_url, ZOOM_API_BASE_URL=zoom_emulator.api_base_url,
                                          ZOOM_OAUTH_BASE_URL=zoom_emulator.oauth_base_url, TEMPORAL_TASK_QUEUE=queue),
                            proxy, tls)
        assert settings.mode == "production" and settings.temporal_tls_enabled
        # The real worker process, configured only through the environment, in production mode.
        env = worker_env(settings, proxy.address)
        worker = WorkerProcess(env)
        worker.start()
        try:
            client = await connect(settings)  # the starter: what the core app uses
            b = booking(f"w-{uuid.uuid4().hex[:8]}")  # a workspace never connected: the worker parks it
            appointments = Appointments(client, task_queue=queue)
            result = await appointments.book(b, timeout_seconds=60)
            assert result.conference.status == "waiting_for_zoom"  # only a worker could have answered
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ratio_zoom.cli.main", "appointment", "show", b.appointment_id, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await cli.communicate()
            assert cli.returncode == 0, err.decode()[-2000:]
            assert "waiting_for_zoom" in out.decode()
            await appointments.cancel(b.appointment_id, Cancel(request_id="c", actor="u"))
        finally:
            worker.stop()
    # Worker, starter and CLI each presented the client certificate our CA signed.
    assert len(proxy.verified_clients) >= 3 and set(proxy.verified_clients) == {"ratio-zoom-worker"}
    assert proxy.requests, "nothing went through the proxy"


async def test_mtls_endpoint_refuses_clients_without_our_certificate(temporal_env: WorkflowEnvironment,
                                                                     tls: TlsMaterial) -> None:
    proxy = TlsProxy(_upstream(temporal_env), tls.server.cert, tls.server.key, client_ca=tls.ca)
    base = make_settings("sqlite:///unused")
    async with running_tls_proxy(proxy):
        good = _secured(base, proxy, tls)
        await (await connect_client(good)).count_workflows()  # the control: this one gets through
        refused = {
            "no client certificate": _secured(base, proxy, tls, temporal_tls_client_cert_path="",
                                              temporal_tls_client_key_path=""),
            "certificate of another CA": _secured(base, proxy, tls,
                                                  temporal_tls_client_cert_path=str(tls.stranger_client.cert),
                                                  temporal_tls_client_key_path=str(tls.stranger_client.key)),
            "server not trusted by the client": _secured(base, proxy, tls,
                                                         temporal_tls_server_ca_cert_path=str(tls.stranger_ca)),
            "wrong server name": _secured(base, proxy, tls, temporal_tls_server_name="impostor.example"),
            "plain text": base.model_copy(update={"temporal_address": proxy.address}),
        }
        for case, settings in refused.items():
            with pytest.raises(RuntimeError):
                await connect_client(settings)
            assert set(proxy.verified_clients) == {"ratio-zoom-worker"}, case
    assert len(proxy.requests) >= 1


async def test_api_key_travels_as_bearer_metadata_over_tls(temporal_env: WorkflowEnvironment, tls: TlsMaterial) -> None:
    key = f"tk-{uuid.uuid4().hex}"
    proxy = TlsProxy(_upstream(temporal_env), tls.server.cert, tls.server.key, api_key=key)
    base = make_settings("sqlite:///unused")
    async with running_tls_proxy(proxy):
        with_key = _secured(base, proxy, tls, temporal_tls_client_cert_path="", temporal_tls_client_key_path="",
                            temporal_api_key=SecretStr(key))
        client = await connect_client(with_key)
        await client.count_workflows()
        assert proxy.requests and all(r["authorization"] == f"Bearer {key}" for r in proxy.requests)
        assert proxy.refused == 0
        wrong = with_key.model_copy(update={"temporal_api_key": SecretStr("tk-wrong")})
        with pytest.raises(RuntimeError):
            await connect_client(wrong)
        assert proxy.refused >= 1
