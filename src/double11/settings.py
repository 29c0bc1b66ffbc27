"""Settings read from the command line and the environment, in one typed value."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_DB = "sqlite:///double11.db"
DEFAULT_BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    """How one double11 process runs."""

    campaign_path: str
    db_url: str = DEFAULT_DB
    redis_url: str | None = None
    now: datetime | None = None  # start the engine clock at this instant
    clock_speed: float = 1.0  # with `now`: clock seconds per real second (demos, rehearsals)
    max_ahead: timedelta = timedelta(minutes=5)
    body_limit: int = DEFAULT_BODY_LIMIT
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> role
    sqlite_synchronous: str = "FULL"
