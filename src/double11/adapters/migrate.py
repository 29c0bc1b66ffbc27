"""Bring a database's schema to the newest migration, programmatically, with no alembic.ini.

Migrations are the only way the schema is created, on SQLite and on PostgreSQL
alike. They run over a synchronous driver: the stdlib `sqlite3`, or psycopg for
PostgreSQL, whatever driver the URL names for the running service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url

MIGRATIONS = Path(__file__).with_name("migrations")

# Any fixed 64-bit number: workers starting together take this PostgreSQL advisory
# lock so only one of them migrates, and the others find the schema already there.
_PG_MIGRATION_LOCK = 0x646F75626C653131  # "double11"

_POSTGRES_NAMES = ("postgresql", "postgres")


def sync_url(url: str | URL) -> URL:
    """The URL with a synchronous driver: psycopg for PostgreSQL, sqlite3 for SQLite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in _POSTGRES_NAMES:
        # asyncpg (or no driver named) becomes psycopg 3; the host, port, user,
        # password, database and query pass through unchanged.
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    raise ValueError(f"migrations run on SQLite or PostgreSQL, not {backend!r}")


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration for the packaged migrations (and `url`, for offline SQL)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # configparser interpolates '%', which a URL-encoded password may contain.
        rendered = sync_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade(sync_url_: str | URL, revision: str = "head") -> None:
    """Migrate the database at the URL to `revision` (the newest by default)."""
    with _migrating(sync_url_) as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(sync_url_: str | URL, revision: str) -> None:
    """Migrate the database at the URL back to `revision` ("base" drops every table)."""
    with _migrating(sync_url_) as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(url: str | URL) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    engine = _engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision this package ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


@contextmanager
def _migrating(url: str | URL) -> Iterator[Connection]:
    """A connection in one transaction that holds the migration lock, committed on success."""
    engine = _engine(sync_url(url))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            yield connection
    finally:
        engine.dispose()


def _engine(url: URL) -> Engine:
    engine = create_engine(url)
    if url.get_backend_name() == "sqlite":
        # pysqlite starts transactions only before DML, so DDL would run outside
        # them. Take the transaction ourselves with BEGIN IMMEDIATE: a migration is
        # then atomic, and two processes opening one new file migrate one at a time.
        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
