"""A failed commit gives its claims back, unless the commit may have landed after all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from double11.adapters.postgres import PostgresStore
from double11.adapters.reconcile import reconcile
from double11.adapters.redis_limits import RedisLimitBook
from double11.domain.events import Event
from double11.engine.clock import SystemClock
from double11.engine.pipeline import Engine
from double11.engine.ports import Stores
from double11.errors import Unavailable
from double11.risk.step import NoRiskRules
from services import libpq

from .conftest import Services
from .scenario import MECHANIC, campaign, customers

pytestmark = pytest.mark.scaleout

# Fails at COMMIT, the moment a lost connection would leave a commit's outcome unknown.
DOOM_AT_COMMIT = """
CREATE FUNCTION it_doom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id LIKE 'doomed%' THEN RAISE EXCEPTION 'refused at commit'; END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER it_doom AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION it_doom();
"""


@pytest.fixture
def doomed_at_commit(clean: Services) -> Iterator[None]:
    with psycopg.connect(libpq(clean.pg_url), autocommit=True) as conn:
        conn.execute(DOOM_AT_COMMIT)
    try:
        yield
    finally:
        with psycopg.connect(libpq(clean.pg_url), autocommit=True) as conn:
            conn.execute("DROP TRIGGER it_doom ON events; DROP FUNCTION it_doom()")


async def _engine(stores: Stores) -> tuple[Engine, PostgresStore, RedisLimitBook, datetime]:
    assert isinstance(stores.events, PostgresStore)
    assert isinstance(stores.limits, RedisLimitBook)
    now = datetime.now(UTC)
    await stores.events.put_customers(customers(3))
    return (
        Engine(campaign(10, now), stores, SystemClock(), NoRiskRules()),
        stores.events,
        stores.limits,
        now,
    )


async def _granted(limits: RedisLimitBook) -> int:
    used = (await limits.usage()).get(MECHANIC)
    return 0 if used is None else used.granted


async def test_a_commit_refused_before_commit_time_releases_its_claim_at_once(
    stores: Stores,
) -> None:
    engine, pg, limits, now = await _engine(stores)
    too_long = "x" * 200  # the events table takes ids up to 128 characters

    with pytest.raises(Unavailable):
        await engine.submit(Event(too_long, "reservation", "c00000", now))

    assert await _granted(limits) == 0
    assert await pg.find_event(too_long) is None


async def test_a_commit_that_failed_at_commit_time_keeps_its_claim_for_reconcile(
    stores: Stores, doomed_at_commit: None
) -> None:
    engine, pg, limits, now = await _engine(stores)

    with pytest.raises(Unavailable):
        await engine.submit(Event("doomed-1", "reservation", "c00000", now))

    # Had the COMMIT landed unseen, releasing would let its unit be granted twice.
    assert await _granted(limits) == 1
    assert await pg.find_event("doomed-1") is None
    assert (await reconcile(pg, limits, timedelta(seconds=30))).released == 0
    await asyncio.sleep(0.3)
    assert (await reconcile(pg, limits, timedelta(seconds=0.2))).released == 1
    assert await _granted(limits) == 0
    # Events around it are unaffected.
    fine = await engine.submit(Event("fine-1", "reservation", "c00001", now))
    assert fine.decision.granted
