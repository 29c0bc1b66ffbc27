"""Reconcile: Redis agrees with the ledger again after it lost data or kept orphan claims."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from double11.adapters.postgres import PostgresStore
from double11.adapters.reconcile import reconcile, reconcile_urls
from double11.adapters.redis_limits import RedisLimitBook
from double11.domain.events import Event
from double11.domain.limits import Claim, ClaimOutcome
from double11.engine.clock import SystemClock
from double11.engine.pipeline import Engine
from double11.engine.ports import Stores
from double11.risk.step import NoRiskRules

from .conftest import Services
from .scenario import MECHANIC, PERK, campaign, customers

pytestmark = pytest.mark.scaleout

QUOTA = 5


def _parts(stores: Stores) -> tuple[PostgresStore, RedisLimitBook]:
    assert isinstance(stores.events, PostgresStore)
    assert isinstance(stores.limits, RedisLimitBook)
    return stores.events, stores.limits


async def _decided(stores: Stores) -> tuple[Engine, datetime]:
    """Eight customers reserve (five get the perk), and the first reserves twice."""
    now = datetime.now(UTC)
    pg, _ = _parts(stores)
    await pg.put_customers(customers(10))
    engine = Engine(campaign(QUOTA, now), stores, SystemClock(), NoRiskRules())
    for i in range(8):
        await engine.submit(Event(f"e{i}", "reservation", f"c{i:05d}", now))
    again = await engine.submit(Event("e-again", "reservation", "c00000", now))
    assert not again.decision.granted  # the cap of one per customer
    return engine, now


async def test_after_flushdb_reconcile_rebuilds_claims_counts_and_perks(stores: Stores) -> None:
    pg, limits = _parts(stores)
    engine, now = await _decided(stores)
    usage = await limits.usage()
    held = {(h.mechanic_id, h.event_id, h.customer_id) for h in await limits.held_claims()}
    assert usage[MECHANIC].granted == QUOTA and len(held) == QUOTA

    await limits.client.flushdb()
    report = await reconcile(pg, limits)

    assert report.rebuilt
    assert await limits.usage() == usage
    assert {(h.mechanic_id, h.event_id, h.customer_id) for h in await limits.held_claims()} == held
    # Counts and perks came back: c00000 has reserved twice and holds the perk.
    state = await limits.observe(Event("e-third", "reservation", "c00000", now), "main")
    assert dict(state.campaign_counts) == {"reservation": 3}
    assert dict(state.phase_counts) == {"reservation": 3}
    assert state.perks == frozenset({PERK})
    # And the limits hold as before: the quota is used up, the cap is reached.
    late = await engine.submit(Event("e-late", "reservation", "c00009", now))
    assert [o.outcome.value for o in late.decision.outcomes] == ["quota_exhausted"]
    assert (await reconcile(pg, limits)) == type(report)(False, 0, 0)


async def test_a_flushed_redis_is_rebuilt_by_the_next_event_that_needs_it(
    stores: Stores,
) -> None:
    _, limits = _parts(stores)
    engine, now = await _decided(stores)
    await limits.client.flushdb()

    # Many events at once: one rebuild, and none of them counts against lost counters.
    late = await asyncio.gather(
        *(engine.submit(Event(f"late{i}", "reservation", f"c{i:05d}", now)) for i in range(10))
    )
    assert not any(s.decision.granted for s in late)
    assert (await limits.usage())[MECHANIC].granted == QUOTA


async def test_a_committed_claim_missing_from_redis_is_restored(stores: Stores) -> None:
    pg, limits = _parts(stores)
    await _decided(stores)
    committed = await pg.find_event("e0")
    assert committed is not None and committed.claims
    # As if a worker had released it after a commit whose answer it never got.
    await limits.release_held(
        [(c.mechanic_id, c.event_id, c.customer_id) for c in committed.claims]
    )
    assert (await limits.usage())[MECHANIC].granted == QUOTA - 1

    report = await reconcile(pg, limits)

    assert (report.rebuilt, report.restored, report.released) == (False, 1, 0)
    assert (await limits.usage())[MECHANIC].granted == QUOTA


async def test_an_orphan_claim_is_released_only_after_the_grace_period(stores: Stores) -> None:
    pg, limits = _parts(stores)
    await _decided(stores)
    usage = await limits.usage()
    # A worker took this claim and died before committing it.
    orphan = Claim("dead", "other", "c00009", quota=1, perks=("vip",))
    assert await limits.take([orphan]) == {"other": ClaimOutcome.TAKEN}

    assert (await reconcile(pg, limits, timedelta(seconds=30))).released == 0
    await asyncio.sleep(0.3)
    report = await reconcile(pg, limits, timedelta(seconds=0.2))

    assert report.released == 1
    assert (await limits.usage())["other"].granted == 0
    assert (await limits.usage())[MECHANIC] == usage[MECHANIC]  # committed claims stay
    assert await limits.take([Claim("alive", "other", "c00008", quota=1)]) == {
        "other": ClaimOutcome.TAKEN
    }


async def test_an_uncommitted_observation_is_forgotten_only_after_the_grace_period(
    stores: Stores,
) -> None:
    pg, limits = _parts(stores)
    _, now = await _decided(stores)
    # A worker counted this reservation of c00009 into its state and died before the
    # commit, and the bank never sent it again.
    dead = Event("dead", "reservation", "c00009", now)
    assert (await limits.observe(dead, "main")).phase_counts == {"reservation": 1}

    early = await reconcile(pg, limits, timedelta(seconds=30))
    assert early.forgotten == 0
    await asyncio.sleep(0.3)
    report = await reconcile(pg, limits, timedelta(seconds=0.2))

    assert report.forgotten == 1
    assert "forgot 1 uncommitted observation" in str(report)
    # Only the dead event's count went: c00000's two committed reservations stay.
    later = await limits.observe(Event("next", "risk_assessment", "c00009", now), "main")
    assert later.phase_counts == {"risk_assessment": 1}
    first = await limits.observe(Event("next0", "risk_assessment", "c00000", now), "main")
    assert first.phase_counts == {"reservation": 2, "risk_assessment": 1}
    # The committed ones left the pending set; the two just observed are pending.
    assert await limits.pending(await limits.server_ms(), 100) == ["next", "next0"]


async def test_the_command_line_reconcile_reports_what_it_did(
    stores: Stores, clean: Services
) -> None:
    pg, limits = _parts(stores)
    await _decided(stores)
    await limits.client.flushdb()

    report = await reconcile_urls(clean.pg_url, clean.redis_url, grace_s=30)

    assert report.rebuilt
    assert str(report).startswith("rebuilt from PostgreSQL")
    assert (await limits.usage())[MECHANIC].granted == QUOTA
    assert await pg.find_event("e1") is not None
