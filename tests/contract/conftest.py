"""The stores under contract, each opened through `double11.bootstrap.open_stores`.

`backend` runs a test on every store: memory, SQLite (a temporary file) and
scale-out (PostgreSQL and Redis). `durable_backend` runs it on the ones that
keep state across closing and reopening.

Scale-out needs a PostgreSQL server where a fresh database is created for the
session and dropped after it (from DOUBLE11_TEST_PG_URL, a URL of a database
to connect to for that, default postgresql://postgres@127.0.0.1:5432/postgres)
and a Redis (DOUBLE11_TEST_REDIS_URL, default redis://127.0.0.1:6379) where the
suite claims an empty numbered database and flushes it before each test.
Those tests are skipped when the services cannot be reached and
DOUBLE11_REQUIRE_SCALEOUT is not set; with DOUBLE11_REQUIRE_SCALEOUT=1,
unreachable services fail them. The machinery is tests/services.py, shared
with the integration suite (which claims its own Redis database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from double11.bootstrap import open_stores
from double11.engine.ports import Stores
from services import Services, session_services

# The name the contract tests know the session's services by.
ScaleOutServices = Services


@dataclass(frozen=True, slots=True)
class Backend:
    """A store under test: how to open it, and whether it keeps state across reopening."""

    name: str
    db_url: str
    redis_url: str | None = None
    durable: bool = False

    async def open(self) -> Stores:
        """Open the store through the bootstrap, as `double11 serve` does."""
        return await open_stores(self.db_url, self.redis_url)


@pytest.fixture(scope="session")
def scaleout_services() -> Iterator[Services]:
    """A fresh PostgreSQL database, migrated, and an empty Redis database, for the session."""
    with session_services("contract") as services:
        yield services


def _backend(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Backend:
    if name == "memory":
        return Backend("memory", "memory://")
    if name == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'contract.db'}", durable=True)
    services: Services = request.getfixturevalue("scaleout_services")
    services.reset()
    return Backend("scaleout", services.pg_url, services.redis_url, durable=True)


SCALEOUT = pytest.param("scaleout", marks=pytest.mark.scaleout)


@pytest.fixture(params=["memory", "sqlite", SCALEOUT])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every store."""
    name: str = request.param
    return _backend(request, name, tmp_path)


@pytest.fixture(params=["sqlite", SCALEOUT])
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The stores that keep their state when closed and reopened."""
    name: str = request.param
    return _backend(request, name, tmp_path)


@pytest.fixture
async def stores(backend: Backend) -> AsyncIterator[Stores]:
    """The backend's stores, open for one test."""
    opened = await backend.open()
    try:
        yield opened
    finally:
        await opened.close()
