"""The packaged migrations create exactly the schema the queries are written against."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from double11.adapters import migrate
from double11.adapters.schema import VIEWS, declared_on, metadata
from double11.domain.decision import Decision, MechanicOutcome, Outcome, RiskAssessment, Verdict
from double11.domain.ledger import Asset, EntryKind, LedgerEntry
from double11.engine.codec import encode_decision
from services import session_services

from .conftest import ScaleOutServices


def differences(url: str) -> list[object]:
    """What autogenerate would change to make the database match `schema.metadata`."""
    engine = create_engine(migrate.sync_url(url))
    name = engine.dialect.name

    def include(item: object, _name: object, _type: str, reflected: bool, _other: object) -> bool:
        return reflected or declared_on(item, name)

    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_object": include})
            return list(compare_metadata(context, metadata))
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
        "0003_one_row_per_event.py",
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


def _decided(event_id: str) -> str:
    """A decision as the engine stores it: m2 fires before m1 in the campaign's order."""
    at = datetime(2026, 11, 11, 0, 0, 1, tzinfo=timezone(timedelta(hours=8)))
    grants = tuple(
        LedgerEntry(
            f"{event_id}/{m}/0",
            event_id,
            m,
            "c1",
            EntryKind.GRANT,
            asset,
            at,
            points=points,
            cost=Decimal(cost),
            attributes=attributes,
        )
        for m, asset, points, cost, attributes in (
            ("m2", Asset.POINTS, 20, "0.20", {}),
            ("m1", Asset.PERK, 0, "0.00", {"perk": "double_points"}),
        )
    )
    outcomes = (MechanicOutcome("m2", Outcome.FIRED), MechanicOutcome("m1", Outcome.FIRED))
    decision = Decision(
        event_id, "c1", "reservation", "warmup", RiskAssessment(Verdict.ALLOW), outcomes, grants, at
    )
    return encode_decision(decision).decode()


_OLD_EVENT = text(
    "INSERT INTO events (id, seq, type, customer_id, at, phase, fingerprint, decision,"
    " decided_at, data) VALUES (:id, :seq, 'reservation', 'c1', :at, 'warmup', 'f',"
    " :decision, :at, '{}')"
)
# Inserted in the opposite of the campaign's order: the fold must follow the decision.
_OLD_CLAIMS = text(
    "INSERT INTO claims (event_id, mechanic_id, customer_id, cost, quota, budget, cap,"
    " cap_bucket, perks) VALUES ('e1', 'm1', 'c1', :zero, 10000, NULL, 1, '', 'double_points'),"
    " ('e1', 'm2', 'c1', :points, NULL, :budget, 1, '2026-11-11', '')"
)
_OLD_LEDGER = text(
    "INSERT INTO ledger (id, event_id, mechanic_id, customer_id, kind, asset, at, points,"
    " quantity, cost, attributes, refers_to) VALUES"
    " ('e1/m2/0', 'e1', 'm2', 'c1', 'grant', 'points', :at, 20, 1, :points, '{}', NULL),"
    " ('e1/m1/0', 'e1', 'm1', 'c1', 'grant', 'perk', :at, 0, 1, :zero,"
    ' \'{"perk":"double_points"}\', NULL)'
)


def _round_trip(url: str) -> None:
    """From 0002 with rows, up to the head, then back: every grant and claim kept."""
    migrate.downgrade(url, "0002")
    engine = create_engine(migrate.sync_url(url))
    sqlite = engine.dialect.name == "sqlite"
    at = datetime(2026, 11, 10, 16, 0, 1, tzinfo=UTC)
    money = (lambda v: v) if sqlite else Decimal
    values = {"zero": money("0.00"), "points": money("0.20"), "budget": money("5000.00")}
    try:
        with engine.begin() as connection:
            for seq, event_id in enumerate(("e1", "e2"), start=1):
                connection.execute(
                    _OLD_EVENT,
                    {"id": event_id, "seq": seq, "at": at, "decision": _decided(event_id)},
                )
            connection.execute(_OLD_CLAIMS, values)
            connection.execute(_OLD_LEDGER, {"at": at, **values})
        migrate.upgrade(url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, claims FROM events")).all()
            folded: dict[str, str] = {row[0]: row[1] for row in rows}
            ledger_view = connection.execute(
                text(
                    "SELECT id, mechanic_id, points, cost FROM ledger WHERE event_id = 'e1'"
                    " ORDER BY position"
                )
            ).all()
            claims_view = connection.execute(
                text("SELECT mechanic_id, quota, budget, cap_bucket FROM claims ORDER BY position")
            ).all()
        assert json.loads(folded["e1"]) == [
            ["m2", "0.20", None, "5000.00", 1, "2026-11-11", [], None],
            ["m1", "0.00", 10000, None, 1, "", ["double_points"], None],
        ]
        assert {k: v for k, v in folded.items() if k != "e1"} == {"e2": "[]"}
        assert [(r[0], r[1], int(r[2]), Decimal(r[3])) for r in ledger_view] == [
            ("e1/m2/0", "m2", 20, Decimal("0.20")),
            ("e1/m1/0", "m1", 0, Decimal("0.00")),
        ]
        assert [
            (r[0], r[1], None if r[2] is None else Decimal(r[2]), r[3]) for r in claims_view
        ] == [
            ("m2", None, Decimal("5000.00"), "2026-11-11"),
            ("m1", 10000, None, ""),
        ]
        assert not {"ledger", "claims"} & set(inspect(engine).get_table_names())
        assert set(VIEWS) <= set(inspect(engine).get_view_names())
        assert differences(url) == []

        migrate.downgrade(url, "0002")
        with engine.connect() as connection:
            ledger_rows = connection.execute(
                text(
                    "SELECT id, event_id, mechanic_id, kind, asset, points, cost, attributes"
                    " FROM ledger ORDER BY id"
                )
            ).all()
            claim_rows = connection.execute(
                text(
                    "SELECT event_id, mechanic_id, cost, quota, budget, cap, cap_bucket, perks"
                    " FROM claims ORDER BY mechanic_id"
                )
            ).all()
        # The grants and claims come back as the decision and events.claims held them.
        # (Two grants of e2's decision too: the fixture gave e2 the same decision.)
        assert [(r[0], r[2], r[5], Decimal(r[6]), r[7]) for r in ledger_rows] == [
            ("e1/m1/0", "m1", 0, Decimal("0.00"), '{"perk":"double_points"}'),
            ("e1/m2/0", "m2", 20, Decimal("0.20"), "{}"),
            ("e2/m1/0", "m1", 0, Decimal("0.00"), '{"perk":"double_points"}'),
            ("e2/m2/0", "m2", 20, Decimal("0.20"), "{}"),
        ]
        assert [(r[1], Decimal(r[2]), r[3], r[6], r[7]) for r in claim_rows] == [
            ("m1", Decimal("0.00"), 10000, "", "double_points"),
            ("m2", Decimal("0.20"), None, "2026-11-11", ""),
        ]
    finally:
        engine.dispose()
    migrate.upgrade(url)


def test_one_row_per_event_keeps_every_grant_and_claim_both_ways_on_sqlite(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'layout.db'}"
    migrate.upgrade(url)
    _round_trip(url)


@pytest.mark.scaleout
def test_one_row_per_event_keeps_every_grant_and_claim_both_ways_on_postgresql() -> None:
    with session_services("migration") as services:
        _round_trip(services.pg_url)
