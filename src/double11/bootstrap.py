"""The one place that chooses adapters from settings and wires an engine."""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime, timedelta

from double11.domain.campaign import Campaign
from double11.engine.clock import StartedClock, SystemClock
from double11.engine.pipeline import Engine
from double11.engine.ports import CampaignVersion, Clock, Stores
from double11.errors import InvalidInput
from double11.risk.step import NoRiskRules
from double11.settings import Settings


async def open_stores(
    db_url: str, redis_url: str | None = None, *, sqlite_synchronous: str = "FULL"
) -> Stores:
    """Open the stores a database URL names: memory://, sqlite:///path or postgresql://...

    PostgreSQL needs a Redis URL: quotas, budgets and caps live there in scale-out.
    """
    if db_url.startswith("memory:"):
        from double11.adapters.memory import MemoryStore

        mem = MemoryStore()
        return Stores(mem, mem, mem, (mem,), config=mem)
    if db_url.startswith("sqlite:"):
        from double11.adapters.sqlite import open_sqlite_store

        store = await open_sqlite_store(db_url, synchronous=sqlite_synchronous)
        return Stores(store, store, store, (store,), config=store)
    if db_url.startswith(("postgresql:", "postgres:", "postgresql+asyncpg:")):
        if not redis_url:
            raise InvalidInput("PostgreSQL needs --redis for quotas and budgets", "redis")
        from double11.adapters.scaleout import open_scaleout_stores

        return await open_scaleout_stores(db_url, redis_url)
    raise InvalidInput(f"unsupported database URL {db_url!r}", "db")


def make_clock(settings: Settings) -> Clock:
    """The system clock, or one started at `settings.now` as of `settings.now_read_at`."""
    if settings.now is None:
        return SystemClock()
    start = settings.now
    if settings.now_read_at is not None:
        # The time that has passed since `now` was read, at the clock's speed: a worker
        # booting (or rebooting) later starts where the others already are.
        passed = max(datetime.now(UTC) - settings.now_read_at, timedelta(0))
        start += passed * settings.clock_speed
    return StartedClock(start, speed=settings.clock_speed)


async def build_engine(settings: Settings, campaign: Campaign) -> Engine:
    """Open the stores and wire the engine the settings describe."""
    stores = await open_stores(
        settings.db_url, settings.redis_url, sqlite_synchronous=settings.sqlite_synchronous
    )
    return Engine(campaign, stores, make_clock(settings), NoRiskRules(), settings.max_ahead)


def operator() -> str:
    """Who is running this process, as `user@host`, for the configuration audit."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in the environment nor the password database
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def record_campaign_version(
    stores: Stores, campaign: Campaign, source: str
) -> CampaignVersion | None:
    """Keep the campaign file this process runs (`source`, the text `campaign` was parsed
    from), once per version; the version kept."""
    if stores.config is None:
        return None
    kept = CampaignVersion(campaign.version, campaign.id, source, datetime.now(UTC), operator())
    await stores.config.record_campaign(kept)
    return kept
