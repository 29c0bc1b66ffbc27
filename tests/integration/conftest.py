"""Real PostgreSQL and Redis for the scale-out integration tests.

PostgreSQL: a fresh database is created for the session (from DOUBLE11_TEST_PG_URL,
the database to connect to for that, default postgresql://postgres@127.0.0.1:5432/postgres),
migrated, truncated before each test and dropped after the session.
Redis (DOUBLE11_TEST_REDIS_URL, default redis://127.0.0.1:6379): the session claims an
empty numbered database, so that a FLUSHDB here never touches another session's data,
and flushes it before each test.

Unreachable services skip these tests, unless DOUBLE11_REQUIRE_SCALEOUT=1: then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from double11.adapters import migrate
from double11.adapters.postgres import PostgresStore
from double11.adapters.redis_limits import RedisLimitBook
from double11.adapters.scaleout import connect_postgres, connect_redis, open_scaleout_stores
from double11.adapters.schema import metadata
from double11.engine.ports import Stores

from .scenario import libpq

PG_ADMIN_URL = os.environ.get(
    "DOUBLE11_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("DOUBLE11_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REQUIRED = os.environ.get("DOUBLE11_REQUIRE_SCALEOUT", "") not in ("", "0")
# Marks the Redis database this session claimed; other suites check for a lone key too.
OWNER_KEY = "double11:integration-suite:owner"
CONNECT_TIMEOUT_S = 3


@dataclass(frozen=True, slots=True)
class Services:
    """This session's PostgreSQL database and Redis database."""

    pg_url: str
    redis_url: str

    def reset(self) -> None:
        """Empty both, keeping the schema and the claim on the Redis database."""
        with psycopg.connect(libpq(self.pg_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("TRUNCATE {}").format(
                    sql.SQL(", ").join(sql.Identifier(name) for name in metadata.tables)
                )
            )
        client = redis.Redis.from_url(self.redis_url)
        try:
            owner = client.get(OWNER_KEY)
            client.flushdb()
            if owner is not None:
                client.set(OWNER_KEY, owner)
        finally:
            client.close()


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"DOUBLE11_REQUIRE_SCALEOUT=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (DOUBLE11_REQUIRE_SCALEOUT=1 makes this a failure)")


def _claim_redis_db(token: str) -> int:
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(REDIS_BASE_URL, db=number)
        try:
            if not client.set(OWNER_KEY, token, nx=True, ex=6 * 3600):
                continue
            if client.dbsize() == 1:
                return number
            client.delete(OWNER_KEY)  # another suite's data is there
        finally:
            client.close()
    raise RuntimeError("no empty Redis database (1-15) for the integration suite")


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """A fresh, migrated PostgreSQL database and a claimed Redis database."""
    admin = libpq(PG_ADMIN_URL)
    try:
        with psycopg.connect(admin, connect_timeout=CONNECT_TIMEOUT_S):
            pass
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}")
    probe = redis.Redis.from_url(REDIS_BASE_URL, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        probe.ping()
    except redis.ConnectionError as exc:
        _unavailable(f"Redis at {REDIS_BASE_URL} is unreachable: {exc}")
    finally:
        probe.close()

    token = uuid.uuid4().hex
    name = f"double11_integration_{token[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    pg_url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    number = _claim_redis_db(token)
    try:
        migrate.upgrade(pg_url)
        yield Services(pg_url, urlsplit(REDIS_BASE_URL)._replace(path=f"/{number}").geturl())
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
