"""The SQLite store's own promises: group commit, durability, failure and its file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.dialects import sqlite as sqlite_dialect

from double11.adapters import schema
from double11.adapters.sqlite import (
    DEFAULT_PATH,
    MAX_BATCH,
    SqliteStore,
    instant_in,
    instant_out,
    open_sqlite_store,
    sqlite_path,
)
from double11.domain.customer import Customer
from double11.domain.decision import Decision, RiskAssessment, Verdict
from double11.domain.errors import InvalidInput
from double11.domain.events import Event
from double11.domain.ledger import Asset, EntryKind, LedgerEntry
from double11.domain.limits import Claim, ClaimOutcome, MechanicUsage
from double11.engine.ports import EventRecord
from double11.errors import Unavailable

SHANGHAI = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 11, 0, 0, 1, 250_000, tzinfo=SHANGHAI)


def make_record(event_id: str, customer_id: str = "c1", *, cost: str = "1.00") -> EventRecord:
    """An event with one points grant and one claim on a budgeted mechanic."""
    event = Event(event_id, "deposit", customer_id, AT, {"amount": Decimal("10.00")})
    entry = LedgerEntry(
        f"{event_id}/m1/0",
        event_id,
        "m1",
        customer_id,
        EntryKind.GRANT,
        Asset.POINTS,
        AT,
        points=10,
        cost=Decimal(cost),
        attributes={"rate": "1%"},
    )
    decision = Decision(
        event_id,
        customer_id,
        "deposit",
        "main",
        RiskAssessment(Verdict.ALLOW),
        (),
        (entry,),
        AT + timedelta(milliseconds=2),
    )
    claim = Claim(event_id, "m1", customer_id, Decimal(cost), quota=10_000, budget=Decimal("1e6"))
    return EventRecord(event, f"fp-{event_id}", "main", decision, (claim,))


async def decide(store: SqliteStore, record: EventRecord) -> EventRecord:
    """Observe, take and commit, as the engine does."""
    await store.observe(record.event, record.phase)
    await store.take(record.claims)
    return await store.commit(record)


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await open_sqlite_store(url(tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


async def test_many_concurrent_commits_land_in_few_transactions_and_all_survive_reopen(
    tmp_path: Path,
) -> None:
    count = 4 * MAX_BATCH + 7
    records = [make_record(f"e{i}", f"c{i % 37}") for i in range(count)]
    store = await open_sqlite_store(url(tmp_path))
    try:
        results = await asyncio.gather(*(decide(store, r) for r in records))
        assert all(got is want for got, want in zip(results, records, strict=True))
        assert store.stats.events == count
        assert store.stats.batches <= count // MAX_BATCH + 2
        assert store.stats.largest_batch == MAX_BATCH
    finally:
        await store.close()

    store = await open_sqlite_store(url(tmp_path))
    try:
        for r in records[:: count // 50]:
            found = await store.find_event(r.event.id)
            assert found is not None
            assert (found.decision, found.claims) == (r.decision, r.claims)
        assert await store.usage() == {"m1": MechanicUsage(count, Decimal(count))}
        state = await store.observe(Event("next", "deposit", "c0", AT), "main")
        assert state.campaign_counts == {"deposit": len(range(0, count, 37)) + 1}
    finally:
        await store.close()


async def test_a_failing_batch_fails_every_waiter_and_leaves_nothing_written(
    tmp_path: Path,
) -> None:
    good = make_record("good")
    # The file refuses two of the events, as a full disk or a constraint would:
    # the batch's transaction must fail as a whole.
    clash_a = make_record("clash-a")
    clash_b = make_record("clash-b")
    batch = [good, clash_a, clash_b]
    await (await open_sqlite_store(url(tmp_path))).close()
    with sqlite3.connect(tmp_path / "store.db") as planted:
        planted.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.id LIKE 'clash-%'"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    planted.close()
    store = await open_sqlite_store(url(tmp_path))
    try:
        for r in batch:
            await store.observe(r.event, r.phase)
            assert await store.take(r.claims) == {"m1": ClaimOutcome.TAKEN}
        results = await asyncio.gather(*(store.commit(r) for r in batch), return_exceptions=True)

        assert all(isinstance(r, Unavailable) for r in results), results
        assert isinstance(results[0], Unavailable)
        assert isinstance(results[0].__cause__, sqlite3.IntegrityError)
        for r in batch:
            assert await store.find_event(r.event.id) is None
        assert await store.ledger_for("c1") == ()
        # Nothing in memory says they were written: the claims are still held, as
        # taken-not-committed, and the engine gives them back.
        assert await store.usage() == {"m1": MechanicUsage(3, Decimal("3.00"))}
        for r in batch:
            await store.release(r.event, r.claims)
        assert await store.usage() == {"m1": MechanicUsage(0, Decimal("0.00"))}
        # A retry of the innocent one then goes through.
        assert await decide(store, good) is good
        assert store.stats.batches == 1
    finally:
        await store.close()

    store = await open_sqlite_store(url(tmp_path))
    try:
        assert await store.find_event("clash-a") is None
        assert await store.usage() == {"m1": MechanicUsage(1, Decimal("1.00"))}
        assert [e.id for e in await store.ledger_for("c1")] == ["good/m1/0"]
    finally:
        await store.close()


async def test_a_retry_racing_its_stored_original_gets_the_original_and_takes_nothing(
    store: SqliteStore,
) -> None:
    first = make_record("e1", cost="3.00")
    assert await decide(store, first) is first
    # A retry that missed the original in find_event, then observed and took again.
    retry = make_record("e1", cost="5.00")
    stood = await decide(store, retry)

    assert (stood.fingerprint, stood.decision, stood.claims) == (
        first.fingerprint,
        first.decision,
        first.claims,
    )
    assert await store.usage() == {"m1": MechanicUsage(1, Decimal("3.00"))}
    assert [e.cost for e in await store.ledger_for("c1")] == [Decimal("3.00")]


async def test_a_duplicate_committed_while_its_original_is_in_flight_shares_its_outcome(
    store: SqliteStore,
) -> None:
    first, second = make_record("e1", cost="3.00"), make_record("e1", cost="5.00")
    results = await asyncio.gather(store.commit(first), store.commit(second))
    assert list(results) == [first, first]
    assert store.stats.events == 1


async def test_find_event_waits_for_an_event_being_committed(store: SqliteStore) -> None:
    record = make_record("e1")
    committing = asyncio.create_task(store.commit(record))
    await asyncio.sleep(0)  # queued, not yet written
    assert await store.find_event("e1") is record
    assert await committing is record


async def test_close_writes_every_queued_commit_then_refuses_more(tmp_path: Path) -> None:
    store = await open_sqlite_store(url(tmp_path))
    records = [make_record(f"e{i}") for i in range(50)]
    commits = [asyncio.create_task(store.commit(r)) for r in records]
    await asyncio.sleep(0)
    await store.close()
    assert [await c for c in commits] == records
    with pytest.raises(Unavailable):
        await store.commit(make_record("late"))

    store = await open_sqlite_store(url(tmp_path))
    try:
        assert all([await store.find_event(r.event.id) for r in records])
    finally:
        await store.close()


async def test_a_dead_writer_fails_its_waiters_and_close_still_lets_the_file_go(
    tmp_path: Path,
) -> None:
    store = await open_sqlite_store(url(tmp_path))
    committing = asyncio.create_task(store.commit(make_record("e1")))
    await asyncio.sleep(0)  # queued
    writer = store._writer_task
    assert writer is not None
    writer.cancel()

    with pytest.raises(Unavailable):
        await committing
    with pytest.raises(Unavailable):
        await store.commit(make_record("e2"))
    await store.close()

    again = await open_sqlite_store(url(tmp_path))
    try:
        assert await again.find_event("e1") is None
    finally:
        await again.close()


async def test_an_event_is_one_row_read_back_through_sqlalchemy_core_as_written(
    store: SqliteStore,
) -> None:
    record = make_record("e1", cost="12.34")
    await decide(store, record)
    engine = create_engine(f"sqlite:///{store.path}")
    try:
        with engine.connect() as connection:
            event = connection.execute(select(schema.events)).one()
            entry = connection.execute(text("SELECT * FROM ledger")).mappings().one()
            claim = connection.execute(text("SELECT * FROM claims")).mappings().one()
    finally:
        engine.dispose()
    assert (event.id, event.seq, event.at, event.decided_at) == (
        "e1",
        1,
        AT,
        record.decision.decided_at,
    )
    assert event.at.tzinfo is not None
    # The views read the grant out of the decision and the claim out of `events.claims`.
    assert dict(entry) == {
        "id": "e1/m1/0",
        "event_id": "e1",
        "mechanic_id": "m1",
        "customer_id": "c1",
        "kind": "grant",
        "asset": "points",
        "at": AT.isoformat(),
        "points": 10,
        "quantity": 1,
        "cost": "12.34",
        "attributes": '{"rate":"1%"}',
        "refers_to": None,
        "seq": 1,
        "position": 0,
    }
    assert dict(claim) == {
        "event_id": "e1",
        "mechanic_id": "m1",
        "customer_id": "c1",
        "cost": "12.34",
        "quota": 10_000,
        "budget": "1000000",
        "cap": None,
        "cap_bucket": "",
        "perks": "[]",
        "seq": 1,
        "position": 0,
    }


@pytest.mark.parametrize(
    "instant",
    [
        AT,
        datetime(2026, 11, 11, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ],
)
def test_instants_convert_as_the_schema_types_do(instant: datetime) -> None:
    dialect = sqlite_dialect.dialect()
    bind = schema.Instant().dialect_impl(dialect).bind_processor(dialect)
    result = schema.Instant().dialect_impl(dialect).result_processor(dialect, None)
    assert bind is not None and result is not None
    assert instant_in(instant) == bind(instant)
    assert instant_out(instant_in(instant)) == result(bind(instant)) == instant


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        instant_in(datetime(2026, 11, 11))  # naive: the point of the test


async def test_a_second_store_cannot_open_a_file_that_is_open(tmp_path: Path) -> None:
    first = await open_sqlite_store(url(tmp_path))
    try:
        with pytest.raises(Unavailable, match="one process owns the file"):
            await open_sqlite_store(url(tmp_path))
    finally:
        await first.close()
    again = await open_sqlite_store(url(tmp_path))
    await again.close()


@pytest.mark.parametrize("mode", ["FULL", "NORMAL", "normal"])
async def test_the_file_is_in_wal_mode_with_the_chosen_synchronous(
    tmp_path: Path, mode: str
) -> None:
    store = await open_sqlite_store(url(tmp_path), synchronous=mode)
    try:
        # SQLite's numbers for synchronous: NORMAL is 1, FULL is 2.
        expected = {"NORMAL": 1, "FULL": 2}[mode.upper()]
        assert store._db.writer.execute("PRAGMA synchronous").fetchall() == [(expected,)]
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "store.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchall() == [("wal",)]


async def test_an_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="FULL, NORMAL"):
        await open_sqlite_store(url(tmp_path), synchronous="OFF")


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("sqlite:", Path(DEFAULT_PATH)),
        ("sqlite://", Path(DEFAULT_PATH)),
        ("sqlite:///campaign.db", Path("campaign.db")),
        ("sqlite:///data/campaign.db", Path("data/campaign.db")),
        ("sqlite:////var/lib/double11/campaign.db", Path("/var/lib/double11/campaign.db")),
    ],
)
def test_the_url_names_the_file(given: str, path: Path) -> None:
    assert sqlite_path(given) == path


@pytest.mark.parametrize(
    "given", ["sqlite:///:memory:", "sqlite:///file:x?mode=memory", "postgresql://db/x"]
)
def test_urls_without_a_file_are_refused(given: str) -> None:
    with pytest.raises(InvalidInput):
        sqlite_path(given)


async def test_the_default_file_is_created_on_first_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_sqlite_store("sqlite://")
    await store.close()
    assert (tmp_path / DEFAULT_PATH).is_file()


async def test_customers_are_read_from_the_file_and_cached(tmp_path: Path) -> None:
    store = await open_sqlite_store(url(tmp_path))
    profile = Customer("c1", aum=Decimal("88.80"), segments=frozenset({"vip"}))
    try:
        assert await store.put_customer(profile) is True
    finally:
        await store.close()
    store = await open_sqlite_store(url(tmp_path))
    try:
        found = await store.get_customer("c1")
        assert found == profile
        assert await store.get_customer("c1") is found
    finally:
        await store.close()


async def test_the_wal_is_copied_into_the_file_beside_the_writer_and_emptied_at_close(
    tmp_path: Path,
) -> None:
    store = await open_sqlite_store(url(tmp_path))
    db = tmp_path / "store.db"
    wal = tmp_path / "store.db-wal"
    try:
        before = db.stat().st_size
        await asyncio.gather(*(decide(store, make_record(f"e{i}", f"c{i}")) for i in range(2000)))
        # The writer never checkpoints; the checkpointer thread does, within a second.
        deadline = asyncio.get_running_loop().time() + 10
        while db.stat().st_size <= before:
            assert asyncio.get_running_loop().time() < deadline, "no checkpoint came"
            await asyncio.sleep(0.1)
    finally:
        await store.close()
    assert not wal.exists() or wal.stat().st_size == 0
    again = await open_sqlite_store(url(tmp_path))
    try:
        assert await again.find_event("e1999") is not None
    finally:
        await again.close()
