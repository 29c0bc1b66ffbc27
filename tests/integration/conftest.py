"""Real PostgreSQL and Redis for the scale-out integration tests.

PostgreSQL: a fresh database is created for the session (from DOUBLE11_TEST_PG_URL,
the database to connect to for that, default postgresql://postgres@127.0.0.1:5432/postgres),
migrated, truncated before each test and dropped after the session.
Redis (DOUBLE11_TEST_REDIS_URL, default redis://127.0.0.1:6379): the session claims an
empty numbered database, so that a FLUSHDB here never touches another session's data,
and flushes it before each test.

Unreachable services skip these tests, unless DOUBLE11_REQUIRE_SCALEOUT=1: then they fail.
The machinery is tests/services.py, shared with the contract suite (which claims its own
Redis database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from double11.adapters.postgres import PostgresStore
from double11.adapters.redis_limits import RedisLimitBook
from double11.adapters.scaleout import connect_postgres, connect_redis, open_scaleout_stores
from double11.engine.ports import Stores
from services import Services as Services  # re-exported: the tests import it from here
from services import session_services


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """A fresh, migrated PostgreSQL database and a claimed Redis database."""
    with session_services("integration") as claimed:
        yield claimed


@pytest.fixture
def clean(services: Services) -> Services:
    """The session's services, emptied for this test."""
    services.reset()
    return services


@pytest.fixture
async def stores(clean: Services) -> AsyncIterator[Stores]:
    """The scale-out stores as `double11 serve` opens them, minus the background reconcile."""
    opened = await open_scaleout_stores(clean.pg_url, clean.redis_url, reconcile_every=None)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def pg(clean: Services) -> AsyncIterator[PostgresStore]:
    """The PostgreSQL store alone, on the emptied database."""
    store = await connect_postgres(clean.pg_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def book(clean: Services) -> AsyncIterator[RedisLimitBook]:
    """The Redis limit book alone, initialised (its ready marker set) on the emptied database."""
    limits = connect_redis(clean.redis_url, prefix="it:")
    await limits.client.set(limits.ready_key, "test")
    try:
        yield limits
    finally:
        await limits.close()
