"""Project-wide pytest hooks.

In CI (DOUBLE11_REQUIRE_SCALEOUT=1) a scale-out test must run: a skip of a
test marked `scaleout` is turned into a failure, whoever skipped it.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    required = os.environ.get("DOUBLE11_REQUIRE_SCALEOUT") == "1"
    if required and report.skipped and item.get_closest_marker("scaleout") is not None:
        report.outcome = "failed"
        reason = report.longrepr
        report.longrepr = f"scale-out test skipped but DOUBLE11_REQUIRE_SCALEOUT=1: {reason}"
    return report
