"""The real PostgreSQL and Redis that the contract and integration suites run against.

PostgreSQL: a fresh database is created for the session (from DOUBLE11_TEST_PG_URL,
a URL of a database to connect to for that, default
postgresql://postgres@127.0.0.1:5432/postgres), migrated, emptied before each test
by `Services.reset` and dropped after the session.
Redis (DOUBLE11_TEST_REDIS_URL, default redis://127.0.0.1:6379): the session claims an
empty numbered database (1-15) with an owner key, so that a FLUSHDB never touches
another session's data, and flushes it before each test, keeping that key.

Unreachable services skip the tests that need them, unless DOUBLE11_REQUIRE_SCALEOUT
is set (to anything but 0): then they fail.

Each suite passes its own name to `session_services`, which names its owner key and
its database: two suites run together claim two Redis databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from double11.adapters import migrate
from double11.adapters.schema import metadata

PG_ADMIN_URL = os.environ.get(
    "DOUBLE11_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("DOUBLE11_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REQUIRED = os.environ.get("DOUBLE11_REQUIRE_SCALEOUT", "") not in ("", "0")
CONNECT_TIMEOUT_S = 3
# How long a claim on a Redis database outlives a session that died without releasing it.
CLAIM_TTL_S = 6 * 3600


@dataclass(frozen=True, slots=True)
class Services:
    """A session's PostgreSQL database and the Redis database it claimed."""

    pg_url: str
    redis_url: str
    redis_db: int
    owner_key: str

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
            owner = client.get(self.owner_key)
            client.flushdb()
            if owner is not None:
                client.set(self.owner_key, owner)
        finally:
            client.close()


def libpq(url: str) -> str:
    """A SQLAlchemy-style PostgreSQL URL as libpq (psycopg) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def shown(url: str) -> str:
    """A URL fit for a test report: any password masked."""
    return make_url(url).render_as_string(hide_password=True)


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when DOUBLE11_REQUIRE_SCALEOUT is set."""
    if REQUIRED:
        pytest.fail(f"DOUBLE11_REQUIRE_SCALEOUT is set but {reason}", pytrace=False)
    pytest.skip(f"{reason} (set DOUBLE11_REQUIRE_SCALEOUT=1 to make this a failure)")


def _probe() -> None:
    """Skip or fail (see `unavailable`) unless both services answer."""
    try:
        with psycopg.connect(libpq(PG_ADMIN_URL), connect_timeout=CONNECT_TIMEOUT_S):
            pass
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {shown(PG_ADMIN_URL)} is unreachable: {exc}")
    client = redis.Redis.from_url(REDIS_BASE_URL, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        unavailable(f"Redis at {shown(REDIS_BASE_URL)} is unreachable: {exc}")
    finally:
        client.close()


def _claim_redis_db(owner_key: str, token: str, suite: str) -> int:
    """Claim an empty numbered Redis database; 0 is left to others."""
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(REDIS_BASE_URL, db=number)
        try:
            if not client.set(owner_key, token, nx=True, ex=CLAIM_TTL_S):
                continue
            if client.dbsize() == 1:
                return number
            client.delete(owner_key)  # someone else's data is there
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database (1-15) to run the {suite} suite in")


@contextmanager
def session_services(suite: str) -> Iterator[Services]:
    """A fresh, migrated PostgreSQL database and a claimed, empty Redis database.

    `suite` names the owner key (double11:<suite>-suite:owner) and the database
    (double11_<suite>_<random>). The database is dropped and the Redis database
    flushed (which releases the claim) on the way out.
    """
    _probe()
    owner_key = f"double11:{suite}-suite:owner"
    token = uuid.uuid4().hex
    name = f"double11_{suite}_{token[:12]}"
    admin = libpq(PG_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        pg_url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        number = _claim_redis_db(owner_key, token, suite)
        try:
            migrate.upgrade(pg_url)
            redis_url = urlsplit(REDIS_BASE_URL)._replace(path=f"/{number}").geturl()
            yield Services(pg_url, redis_url, number, owner_key)
        finally:
            client = redis.Redis.from_url(REDIS_BASE_URL, db=number)
            try:
                client.flushdb()
            finally:
                client.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
