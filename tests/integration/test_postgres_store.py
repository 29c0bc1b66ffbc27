"""The PostgreSQL store: group commit, first writer wins, commit order, batched lookups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from double11.adapters.postgres import PostgresStore
from double11.adapters.scaleout import connect_postgres
from double11.domain.customer import Customer
from double11.domain.decision import Decision, MechanicOutcome, Outcome, RiskAssessment, Verdict
from double11.domain.events import Event
from double11.domain.ledger import Asset, EntryKind, LedgerEntry
from double11.domain.limits import Claim
from double11.engine.pipeline import fingerprint
from double11.engine.ports import EventRecord
from services import libpq

from .conftest import Services

pytestmark = pytest.mark.scaleout

SHANGHAI = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 11, 0, 0, 1, 123456, tzinfo=SHANGHAI)


def _record(
    event_id: str,
    customer_id: str = "c1",
    *,
    mechanics: tuple[str, ...] = ("m1",),
    points: int = 10,
) -> EventRecord:
    event = Event(event_id, "deposit", customer_id, AT, {"amount": Decimal("100.00")})
    grants = tuple(
        LedgerEntry(
            f"{event_id}/{m}/0",
            event_id,
            m,
            customer_id,
            EntryKind.GRANT,
            Asset.POINTS,
            AT,
            points=points,
            cost=Decimal("0.10"),
            attributes={"mechanic": m},
        )
        for m in mechanics
    )
    claims = tuple(
        Claim(event_id, m, customer_id, Decimal("0.10"), quota=100, budget=Decimal("9.99"), cap=1)
        for m in mechanics
    )
    decision = Decision(
        event_id,
        customer_id,
        "deposit",
        "main",
        RiskAssessment(Verdict.ALLOW),
        tuple(MechanicOutcome(m, Outcome.FIRED) for m in mechanics),
        grants,
        AT + timedelta(milliseconds=2),
    )
    return EventRecord(event, fingerprint(event), "main", decision, claims)


def _seqs(clean: Services) -> list[tuple[str, int]]:
    with psycopg.connect(libpq(clean.pg_url)) as conn:
        return [
            (str(r[0]), int(r[1])) for r in conn.execute("SELECT id, seq FROM events ORDER BY seq")
        ]


async def test_concurrent_commits_of_one_id_store_the_first_and_answer_the_rest_with_it(
    pg: PostgresStore, clean: Services
) -> None:
    attempts = [_record("e1", points=p) for p in range(1, 6)]
    stood = await asyncio.gather(*(pg.commit(r) for r in attempts))

    winners = [r for r, s in zip(attempts, stood, strict=True) if s is r]
    assert len(winners) == 1
    assert all(s == winners[0] for s in stood)
    assert await pg.ledger_for("c1") == winners[0].decision.grants
    assert len(_seqs(clean)) == 1


async def test_a_record_that_cannot_be_stored_fails_alone_and_its_batch_commits(
    pg: PostgresStore,
) -> None:
    good = [_record(f"e{i}", f"c{i}") for i in range(20)]
    bad = _record("x" * 200)  # longer than an event id may be
    results = await asyncio.gather(*(pg.commit(r) for r in [*good, bad]), return_exceptions=True)

    assert results[:20] == good
    assert all(r is g for r, g in zip(results, good, strict=False))
    assert isinstance(results[20], DBAPIError)
    assert await pg.find_event(bad.event.id) is None
    for g in good:
        assert await pg.find_event(g.event.id) is not None


async def test_commits_from_two_processes_get_distinct_seqs_in_commit_order(
    pg: PostgresStore, clean: Services
) -> None:
    other = await connect_postgres(clean.pg_url)  # its own pool, as another worker has
    try:
        first = [_record(f"a{i}", f"c{i}") for i in range(300)]
        second = [_record(f"b{i}", f"c{i}") for i in range(300)]
        await asyncio.gather(*(pg.commit(r) for r in first), *(other.commit(r) for r in second))
        late = await pg.commit(_record("last"))
        assert late.event.id == "last"
    finally:
        await other.close()

    seqs = _seqs(clean)
    assert len(seqs) == 601
    assert len({s for _, s in seqs}) == 601  # no two commits share a place in the order
    assert seqs[-1][0] == "last"


async def test_a_found_event_keeps_its_claims_in_the_campaigns_order_and_its_exact_values(
    pg: PostgresStore,
) -> None:
    # Mechanic "z" comes first in this campaign; a lookup must not sort it by name.
    record = _record("e1", mechanics=("z_first", "a_second"))
    assert await pg.commit(record) is record

    found = await pg.find_event("e1")
    assert found is not None
    assert found.claims == record.claims
    assert found.decision == record.decision
    assert found.event.at == AT and found.event.at.tzinfo is not None
    assert found.fingerprint == record.fingerprint
    assert await pg.ledger_for("c1") == record.decision.grants


async def test_concurrent_lookups_of_many_customers_each_get_their_own_profile(
    pg: PostgresStore,
) -> None:
    profiles = [
        Customer(f"c{i}", age=20 + i % 50, aum=Decimal(i) / 4, segments=frozenset({f"s{i % 3}"}))
        for i in range(1000)
    ]
    assert await pg.put_customers(profiles) == 1000
    assert await pg.put_customers(profiles[:10]) == 0  # replaced, not created

    wanted = [f"c{i}" for i in range(0, 1200, 3)]
    found = await asyncio.gather(*(pg.get_customer(c) for c in wanted))
    expected = {p.id: p for p in profiles}
    assert found == [expected.get(c) for c in wanted]


async def test_instants_come_back_as_the_same_instant_with_a_time_zone(pg: PostgresStore) -> None:
    record = _record("e1")
    await pg.commit(record)
    (entry,) = await pg.ledger_for("c1")
    assert entry.at == AT
    assert entry.at.utcoffset() is not None
    assert entry.cost == Decimal("0.10")
    assert datetime.now(UTC) > entry.at
