"""The stores under contract, each opened through `double11.bootstrap.open_stores`.

`backend` runs a test on every store: memory, SQLite (a temporary file) and
scale-out (PostgreSQL and Redis). `durable_backend` runs it on the ones that
keep state across closing and reopening.

Scale-out needs a PostgreSQL server where a fresh database is created for the
session and dropped after it (from DOUBLE11_TEST_PG_URL, a URL of a database
to connect to for that, default postgresql://postgres@127.0.0.1:5432/postgres)
and a Redis (DOUBLE11_TEST_REDIS_URL, default redis://127.0.0.1:6379) where the
suite claims an empty numbered database and flushes it before each test.
Those tests are skipped when `double11.adapters.scaleout` does not exist yet,
or when the services cannot be reached and DOUBLE11_REQUIRE_SCALEOUT is not
set; with DOUBLE11_REQUIRE_SCALEOUT=1, unreachable services fail them.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from double11.adapters import migrate
from double11.adapters.schema import metadata
from double11.bootstrap import open_stores
from double11.engine.ports import Stores

PG_ADMIN_URL = os.environ.get(
    "DOUBLE11_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("DOUBLE11_TEST_REDIS_URL", "redis://127.0.0.1:6379")
SCALEOUT_REQUIRED = os.environ.get("DOUBLE11_REQUIRE_SCALEOUT", "") not in ("", "0")
SCALEOUT_MODULE = "double11.adapters.scaleout"
# Marks the Redis database this session claimed, so two sessions never share one.
REDIS_OWNER_KEY = "double11:contract-suite:owner"
CONNECT_TIMEOUT_S = 3


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


@dataclass(frozen=True, slots=True)
class ScaleOutServices:
    """The session's fresh PostgreSQL database and claimed Redis database."""

    pg_url: str
    redis_url: str
    redis_db: int

    def reset(self) -> None:
        """Empty both, keeping the schema and this session's claim on the Redis database."""
        with psycopg.connect(_libpq(self.pg_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("TRUNCATE {}").format(
                    sql.SQL(", ").join(sql.Identifier(name) for name in metadata.tables)
                )
            )
        client = redis.Redis.from_url(self.redis_url)
        try:
            owner = client.get(REDIS_OWNER_KEY)
            client.flushdb()
            if owner is not None:
                client.set(REDIS_OWNER_KEY, owner)
        finally:
            client.close()


def _libpq(url: str) -> str:
    """A SQLAlchemy-style PostgreSQL URL as libpq takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _shown(url: str) -> str:
    """A URL fit for a test report: any password masked."""
    return make_url(url).render_as_string(hide_password=True)


def _unavailable(reason: str) -> None:
    """Skip, or fail when the scale-out store is required."""
    if SCALEOUT_REQUIRED:
        pytest.fail(f"DOUBLE11_REQUIRE_SCALEOUT is set but {reason}", pytrace=False)
    pytest.skip(f"{reason} (set DOUBLE11_REQUIRE_SCALEOUT=1 to make this a failure)")


def _claim_redis_db(base_url: str, token: str) -> int:
    """Claim an empty numbered Redis database for this session; 0 is left to others."""
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(base_url, db=number)
        try:
            if not client.set(REDIS_OWNER_KEY, token, nx=True, ex=6 * 3600):
                continue
            if client.dbsize() == 1:
                return number
            client.delete(REDIS_OWNER_KEY)  # someone else's data is there
        finally:
            client.close()
    raise RuntimeError("no empty Redis database (1-15) to run the contract suite in")


@pytest.fixture(scope="session")
def scaleout_services() -> Iterator[ScaleOutServices]:
    """A fresh PostgreSQL database, migrated, and an empty Redis database, for the session."""
    if importlib.util.find_spec(SCALEOUT_MODULE) is None:
        pytest.skip(f"{SCALEOUT_MODULE} is not written yet")
    admin = _libpq(PG_ADMIN_URL)
    try:
        with psycopg.connect(admin, connect_timeout=CONNECT_TIMEOUT_S):
            pass
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL at {_shown(PG_ADMIN_URL)} is unreachable: {exc}")
    probe = redis.Redis.from_url(REDIS_BASE_URL, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        probe.ping()
    except redis.ConnectionError as exc:
        _unavailable(f"Redis at {_shown(REDIS_BASE_URL)} is unreachable: {exc}")
    finally:
        probe.close()

    token = uuid.uuid4().hex
    name = f"double11_contract_{token[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    pg_url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    number = _claim_redis_db(REDIS_BASE_URL, token)
    redis_url = urlsplit(REDIS_BASE_URL)._replace(path=f"/{number}").geturl()
    try:
        migrate.upgrade(pg_url)
        yield ScaleOutServices(pg_url, redis_url, number)
    finally:
        client = redis.Redis.from_url(REDIS_BASE_URL, db=number)
        try:
            client.flushdb()
        finally:
            client.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _backend(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Backend:
    if name == "memory":
        return Backend("memory", "memory://")
    if name == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'contract.db'}", durable=True)
    services: ScaleOutServices = request.getfixturevalue("scaleout_services")
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
