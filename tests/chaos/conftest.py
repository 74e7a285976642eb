"""Collects each chaos scenario's report line and prints them all at the end of the run, so the figures
(appointments, faults injected, invariant violations) appear in CI output even though pytest captures the
output of passing tests."""

from __future__ import annotations

import pytest

REPORT_LINES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT_LINES:
        terminalreporter.section("chaos scenarios")
        for line in REPORT_LINES:
            terminalreporter.write_line(line)
