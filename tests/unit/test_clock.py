"""Clocks: the started clock stands at a chosen instant and then runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from double11.engine.clock import StartedClock, SystemClock

SHANGHAI = timezone(timedelta(hours=8))
START = datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI)


def test_a_started_clock_reads_its_start_instant_at_first() -> None:
    clock = StartedClock(START)
    now = clock.now()
    assert START <= now < START + timedelta(seconds=1)
    assert now.utcoffset() == timedelta(hours=8)


def test_a_started_clock_runs_in_real_time() -> None:
    clock = StartedClock(START)
    first = clock.now()
    time.sleep(0.05)
    second = clock.now()
    assert second - first >= timedelta(seconds=0.05)
    assert second - first < timedelta(seconds=5)


def test_a_started_clock_never_runs_backwards() -> None:
    clock = StartedClock(START)
    readings = [clock.now() for _ in range(1000)]
    assert readings == sorted(readings)


def test_a_faster_clock_runs_that_many_times_faster() -> None:
    clock = StartedClock(START, speed=1000.0)
    time.sleep(0.02)
    assert clock.now() - START >= timedelta(seconds=20)


def test_advancing_a_started_clock_jumps_it_forward() -> None:
    clock = StartedClock(START)
    clock.advance(timedelta(days=10))
    now = clock.now()
    assert START + timedelta(days=10) <= now < START + timedelta(days=10, seconds=1)


@pytest.mark.parametrize("naive", [datetime(2026, 11, 1, 10, 0), datetime(2026, 11, 11)])
def test_a_started_clock_refuses_a_naive_start(naive: datetime) -> None:
    with pytest.raises(ValueError, match="time-zone aware"):
        StartedClock(naive)


def test_the_system_clock_reads_an_aware_instant_in_utc() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    after = datetime.now(UTC)
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before <= now <= after
