"""Fixtures for the HTTP tests: the example campaign on a memory store, in the warm-up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from double11.adapters.memory import MemoryStore
from double11.api import create_app
from double11.api.fastpath import EventsFastPath
from double11.bootstrap import open_stores
from double11.campaign_file import load_campaign
from double11.domain.campaign import Campaign
from double11.domain.customer import Customer
from double11.engine.clock import StartedClock
from double11.engine.pipeline import Engine
from double11.risk.step import NoRiskRules
from double11.settings import Settings

CAMPAIGN_FILE = Path(__file__).resolve().parents[2] / "examples" / "double11-bank.yaml"
# Inside the warm-up phase, so reservations fire.
WARMUP_NOW = datetime(2026, 11, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
KEYS = {"producer": "producer-key-0001", "reader": "reader-key-0001", "admin": "admin-key-0001"}


@dataclass(frozen=True)
class Snapshot:
    """What a request could have written to a memory store."""

    customers: dict[str, Customer]
    events: frozenset[str]
    ledger: dict[str, int]
    usage: dict[str, tuple[int, str]]
    counts: dict[str, dict[str, int]]


@pytest.fixture(scope="session")
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


@pytest.fixture
def now() -> datetime:
    """Where the engine's clock starts: 2026-11-01 10:00 in Shanghai, in the warm-up."""
    return WARMUP_NOW


@pytest.fixture
def keys() -> dict[str, str]:
    """The API key of each role."""
    return dict(KEYS)


@pytest.fixture
def settings(keys: dict[str, str]) -> Settings:
    """Settings with one key per role and an 8 KiB body limit, to test it cheaply."""
    return Settings(
        campaign_path=str(CAMPAIGN_FILE),
        db_url="memory://",
        api_keys={key: role for role, key in keys.items()},
        body_limit=8 * 1024,
    )


@pytest.fixture
async def engine(campaign: Campaign, now: datetime) -> Engine:
    stores = await open_stores("memory://")
    return Engine(campaign, stores, StartedClock(now), NoRiskRules())


@pytest.fixture
def store(engine: Engine) -> MemoryStore:
    mem = engine.stores.events
    assert isinstance(mem, MemoryStore)
    return mem


@pytest.fixture
def app(engine: Engine, settings: Settings) -> EventsFastPath:
    return create_app(engine, settings)


@pytest.fixture
async def client(app: EventsFastPath) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://double11.test") as client:
        yield client


@pytest.fixture
def written(store: MemoryStore) -> Callable[[], Snapshot]:
    """Takes a snapshot of what requests could have written, to show bad ones wrote nothing."""

    def take() -> Snapshot:
        return Snapshot(
            customers=dict(store.customers),
            events=frozenset(store.events),
            ledger={cid: len(entries) for cid, entries in store.ledger.items() if entries},
            usage={m: (u.granted, str(u.spent)) for m, u in store.counters.usage.items()},
            counts={cid: dict(c.campaign) for cid, c in store.counts.items() if c.campaign},
        )

    return take


@pytest.fixture
async def customer(store: MemoryStore) -> Customer:
    """c-1, a new customer of 30, known to the store."""
    profile = Customer(id="c-1", age=30, is_new=True)
    await store.put_customer(profile)
    return profile
