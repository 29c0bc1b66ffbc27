"""The clock the bootstrap builds from settings: one anchor for every worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from double11.bootstrap import make_clock
from double11.engine.clock import StartedClock, SystemClock
from double11.serving import settings_from_env, settings_to_env
from double11.settings import Settings

NOW = datetime(2026, 11, 10, 23, 59, tzinfo=UTC)


def test_without_now_the_engine_runs_on_the_system_clock() -> None:
    assert isinstance(make_clock(Settings("c.yaml")), SystemClock)


def test_a_clock_built_later_starts_where_the_time_since_now_was_read_has_taken_it() -> None:
    read_at = datetime.now(UTC) - timedelta(seconds=10)
    settings = Settings("c.yaml", now=NOW, clock_speed=60.0, now_read_at=read_at)

    clock = make_clock(settings)

    assert isinstance(clock, StartedClock)
    # Ten real seconds at sixty clock seconds each, give or take the test's own time.
    assert timedelta(minutes=10) <= clock.now() - NOW < timedelta(minutes=10, seconds=30)


def test_workers_booted_at_different_times_read_the_same_clock() -> None:
    # What `serve` hands every worker, through the environment, as uvicorn starts them.
    sent = settings_to_env(
        Settings("c.yaml", now=NOW, clock_speed=100.0, now_read_at=datetime.now(UTC))
    )
    first = make_clock(settings_from_env(sent))
    time.sleep(0.3)  # a worker that boots, or is restarted, later
    second = make_clock(settings_from_env(sent))

    # Without the anchor the second would read 30 clock seconds behind the first.
    assert abs(first.now() - second.now()) < timedelta(seconds=3)
    assert first.now() - NOW >= timedelta(seconds=30)
