"""The packaged migrations create exactly the schema the queries are written against."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from double11.adapters import migrate
from double11.adapters.schema import metadata

from .conftest import ScaleOutServices


def differences(url: str) -> list[object]:
    """What autogenerate would change to make the database match `schema.metadata`."""
    engine = create_engine(migrate.sync_url(url))
    try:
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))
    finally:
        engine.dispose()


def test_migrating_a_new_sqlite_file_creates_exactly_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert migrate.current_revision(url) is None

    migrate.upgrade(url)
    migrate.upgrade(url)  # a second run finds nothing to do

    assert migrate.current_revision(url) == migrate.head_revision()
    assert differences(url) == []


def test_downgrading_to_base_removes_every_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'down.db'}"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    assert migrate.current_revision(url) is None


@pytest.mark.scaleout
def test_migrating_postgresql_creates_exactly_the_schema(
    scaleout_services: ScaleOutServices,
) -> None:
    # The session's database is migrated already; an asyncpg URL is accepted too.
    asyncpg_url = migrate.sync_url(scaleout_services.pg_url).set(drivername="postgresql+asyncpg")
    migrate.upgrade(asyncpg_url)

    assert migrate.current_revision(scaleout_services.pg_url) == migrate.head_revision()
    assert differences(scaleout_services.pg_url) == []


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p%40ss@db:5432/d11", "postgresql+psycopg"),
        ("postgresql+asyncpg://u:p%40ss@db:5432/d11", "postgresql+psycopg"),
        ("postgres://u:p%40ss@db:5432/d11", "postgresql+psycopg"),
        ("sqlite:///double11.db", "sqlite"),
    ],
)
def test_any_supported_url_becomes_a_synchronous_one(given: str, driver: str) -> None:
    url = migrate.sync_url(given)
    assert url.drivername == driver
    if driver != "sqlite":
        assert (url.username, url.password, url.host, url.port, url.database) == (
            "u",
            "p@ss",
            "db",
            5432,
            "d11",
        )


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        migrate.sync_url("mysql://u@db/d11")


def test_the_migrations_ship_inside_the_package() -> None:
    assert (migrate.MIGRATIONS / "env.py").is_file()
    assert sorted(p.name for p in (migrate.MIGRATIONS / "versions").glob("*.py")) == [
        "0001_initial.py",
        "0002_event_data.py",
    ]


def test_a_file_from_before_event_data_keeps_its_events_and_reads_them_with_empty_data(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0001")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO events (id, seq, type, customer_id, at, phase, fingerprint,"
                    " decision, decided_at) VALUES ('e1', 1, 'checkin', 'c1',"
                    " '2026-11-03 12:00:00.000000', 'warmup', 'f', '{}',"
                    " '2026-11-03 12:00:00.000000')"
                )
            )
        migrate.upgrade(url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, data FROM events")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("e1", "{}")]
    assert differences(url) == []
