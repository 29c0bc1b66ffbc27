"""Clocks: the system clock, and one that starts at a chosen instant and then runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from time import monotonic


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class StartedClock:
    """A clock that reads `start` when created and then runs in real time, `speed` times faster.

    Tests, demos and rehearsals use it to stand inside the campaign's dates.
    """

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("the start instant must be time-zone aware")
        self._start = start
        self._speed = speed
        self._origin = monotonic()

    def now(self) -> datetime:
        # timedelta(days, seconds) positionally: keywords made this call twice as slow.
        return self._start + timedelta(0, (monotonic() - self._origin) * self._speed)

    @property
    def speed(self) -> float:
        """How many clock seconds pass in one real second."""
        return self._speed

    def advance(self, delta: timedelta) -> None:
        """Jump forward by `delta` (a demo moving from warm-up to the main day)."""
        self._start += delta
