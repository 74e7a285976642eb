"""Our metrics, exported through the Temporal SDK runtime's Prometheus endpoint (one port, `METRICS_BIND`),
next to the SDK's own worker metrics. Names are prefixed `ratio_zoom_`.

Process-level counters live here (Zoom calls by endpoint and outcome, 429s, token refreshes). Counters
with workflow or activity context use the SDK's meters where they happen: `ratio_zoom_workflows_parked`
(workflows/appointment.py, replay-safe), `ratio_zoom_emails` (activities/emails.py) and
`ratio_zoom_bot_dispatches` (activities/bots.py)."""

from __future__ import annotations

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


def runtime_with_metrics(bind: str) -> Runtime:
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


class Metrics:
    """Counters the service increments; a no-op meter when metrics are off."""

    def __init__(self, meter: MetricMeter | None) -> None:
        meter = meter or MetricMeter.noop
        self._zoom_calls = meter.create_counter("ratio_zoom_zoom_calls", "Zoom API calls by endpoint and outcome")
        self._rate_limited = meter.create_counter("ratio_zoom_zoom_rate_limited", "Zoom 429 answers by limit type")
        self._refreshes = meter.create_counter("ratio_zoom_token_refreshes", "Zoom token refreshes")
        self._core_app_events = meter.create_counter(
            "ratio_zoom_core_app_event_deliveries", "Event deliveries to the core app by outcome (delivered, retry, expired)")

    def zoom_call(self, endpoint: str, status: int) -> None:
        outcome = "transport_error" if status == 0 else f"{status // 100}xx"
        self._zoom_calls.add(1, {"endpoint": endpoint, "outcome": outcome})
        if status == 429:
            self._rate_limited.add(1, {"endpoint": endpoint})

    def core_app_event(self, outcome: str, status: int | None) -> None:
        self._core_app_events.add(1, {"outcome": outcome, "status": "transport_error" if status is None else f"{status // 100}xx"})

    def refresh(self, workspace_id: str) -> None:
        del workspace_id  # never a label: unbounded cardinality
        self._refreshes.add(1)
