"""Settings read from the command line and the environment, in one typed value."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from double11.engine.pipeline import DEFAULT_MAX_AHEAD
from double11.errors import InvalidInput

DEFAULT_DB = "sqlite:///double11.db"
DEFAULT_BODY_LIMIT = 1024 * 1024
# A bound past a year is a mistake, and one near `datetime.max` would overflow the
# engine's `now + max_ahead` on every event.
MAX_AHEAD_LIMIT = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Settings:
    """How one double11 process runs."""

    campaign_path: str
    db_url: str = DEFAULT_DB
    redis_url: str | None = None
    now: datetime | None = None  # start the engine clock at this instant
    clock_speed: float = 1.0  # with `now`: clock seconds per real second (demos, rehearsals)
    # With `now`: the real instant `now` was read at. Every worker, and a worker that
    # uvicorn restarts, runs its clock from this one anchor, so all read the same time
    # rather than each starting again at `now` when it boots.
    now_read_at: datetime | None = None
    # How far ahead of the engine's clock an event's `at` may be: bank systems' clocks
    # drift a little, but an event from the future must not open a phase early.
    max_ahead: timedelta = DEFAULT_MAX_AHEAD
    body_limit: int = DEFAULT_BODY_LIMIT  # bytes; a larger request body is refused (413)
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> role
    sqlite_synchronous: str = "FULL"

    def __post_init__(self) -> None:
        # Checked here as well as on the command line: settings also arrive from Python
        # and from the environment of worker processes, and a zero bound would refuse
        # every event (or every body) without saying why.
        if not timedelta(0) < self.max_ahead <= MAX_AHEAD_LIMIT:
            raise InvalidInput(
                f"must be positive and at most {MAX_AHEAD_LIMIT}, not {self.max_ahead}",
                "max_ahead",
            )
        if self.body_limit < 1:
            raise InvalidInput(
                f"must be a positive number of bytes, not {self.body_limit}", "body_limit"
            )
