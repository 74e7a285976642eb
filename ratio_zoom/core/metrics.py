"""Our metrics, exported through the Temporal SDK runtime's Prometheus endpoint (one port, `METRICS_BIND`),
next to the SDK's own worker metrics. Names are prefixed `ratio_zoom_`.

Process-level counters live here (Zoom calls by endpoint and outcome, 429s, token refreshes, and the Zoom
limiter's figures: seconds waited for a slot, calls paced out, 429s by rate-limit category, the current
rate per account and category, the account label being a prefix of a keyed hash, never an identifier). Counters
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
        self._waits = meter.create_counter("ratio_zoom_zoom_limiter_waits", "Zoom calls that waited for a slot")
        self._waited = meter.create_histogram_float(
            "ratio_zoom_zoom_limiter_wait", "Time a Zoom call waited for its slot in the shared limiter", "s")
        self._paced_out = meter.create_counter(
            "ratio_zoom_zoom_limiter_paced_out", "Zoom calls not sent: the wait was too long or the daily budget spent")
        self._by_category = meter.create_counter("ratio_zoom_zoom_429_by_category",
                                                 "Zoom 429 answers by rate-limit category and limit type")
        self._rate = meter.create_gauge_float("ratio_zoom_zoom_rate",
                                              "Current paced rate per Zoom account and category", "1/s")

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

    # -- the Zoom limiter (connections/limiter.py LimiterMetrics) --------------------------------------------

    def limiter_waited(self, category: str, seconds: float) -> None:
        self._waits.add(1, {"category": category})
        self._waited.record(seconds, {"category": category})

    def limiter_paced_out(self, category: str, limit_type: str) -> None:
        self._paced_out.add(1, {"category": category, "limit_type": limit_type})

    def zoom_rate_limited(self, category: str, limit_type: str) -> None:
        self._by_category.add(1, {"category": category, "limit_type": limit_type})

    def limiter_rate(self, account: str, category: str, rate: float) -> None:
        # `account` is the first 12 hex digits of the limiter's account key, a keyed hash (HMAC) of the Zoom
        # account (of the workspace when the account is not known): no identifier in clear.
        self._rate.set(rate, {"account": account, "category": category})
