"""A worker SIGKILLed between taking claims in Redis and committing them in PostgreSQL.

Three engine workers share one quota; one is killed mid-load. Either the bank
retries every event it got no answer for (and the retries reuse the claims the
dead worker took), or it never does (and reconcile releases the orphan claims
after the grace period). Either way, afterwards: quota used in Redis = grants in
the ledger = customers granted, and nothing is granted twice.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.context import ForkServerProcess
from pathlib import Path

import pytest
import redis

from double11.adapters.postgres import PostgresStore
from double11.adapters.reconcile import ReconcileReport, reconcile
from double11.adapters.redis_limits import DEFAULT_PREFIX
from double11.adapters.scaleout import connect_postgres, connect_redis

from .conftest import Services
from .scenario import (
    MECHANIC,
    Books,
    Load,
    books,
    customers,
    read_answers,
    run_engine_worker,
    worker_context,
)

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

CUSTOMERS = 400
QUOTA = 300  # fewer than the customers who qualify, so the quota runs out
WORKERS = 3
COMMIT_DELAY_S = 0.05
KILL_AFTER = 0.15  # of the victim's events answered


async def _seed(pg_url: str) -> None:
    pg: PostgresStore = await connect_postgres(pg_url)
    try:
        await pg.put_customers(customers(CUSTOMERS))
    finally:
        await pg.close()


def _events() -> list[tuple[str, str]]:
    # Every customer reserves twice; the per-customer cap of 1 must hold across workers.
    return [(f"e{n}-{c.id}", c.id) for n in range(2) for c in customers(CUSTOMERS)]


def _start(load: Load) -> ForkServerProcess:
    process = worker_context().Process(target=run_engine_worker, args=(load,))
    process.start()
    return process


def _finish(process: ForkServerProcess) -> None:
    process.join(timeout=120)
    assert process.exitcode == 0


def _kill_midway(clean: Services, tmp_path: Path) -> tuple[Load, list[tuple[str, str]]]:
    """Run the load with one worker SIGKILLed; return its load and the events it left unanswered."""
    asyncio.run(_seed(clean.pg_url))
    now = datetime.now(UTC)
    events = _events()
    start = worker_context().Barrier(WORKERS)
    loads = [
        Load(
            clean.pg_url,
            clean.redis_url,
            QUOTA,
            now,
            events[n::WORKERS],
            str(tmp_path / f"answers-{n}.txt"),
            commit_delay_s=COMMIT_DELAY_S,
            start=start,
        )
        for n in range(WORKERS)
    ]
    processes = [_start(load) for load in loads]
    victim, victim_load = processes[0], loads[0]
    deadline = time.monotonic() + 120
    # Kill once it is well under way and holds claims it has not committed yet.
    while (
        len(read_answers(victim_load.answers_path)) < KILL_AFTER * len(victim_load.events)
        or _claims_in_flight(clean.redis_url, victim_load) < 3
    ):
        assert victim.is_alive() and time.monotonic() < deadline, "the victim ended too soon"
        time.sleep(0.005)
    victim.kill()  # SIGKILL: no finally blocks, no closing, no flushing
    victim.join(timeout=30)
    assert victim.exitcode == -9
    for process in processes[1:]:
        _finish(process)
    answered = read_answers(victim_load.answers_path)
    unanswered = [e for e in victim_load.events if e[0] not in answered]
    return victim_load, unanswered


def _claims_in_flight(redis_url: str, load: Load) -> int:
    """Claims Redis holds for events of `load` that have no answer yet."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        held = set(client.hkeys(f"{DEFAULT_PREFIX}claims:{MECHANIC}"))
    finally:
        client.close()
    answered = read_answers(load.answers_path)
    return sum(1 for event_id, _ in load.events if event_id in held and event_id not in answered)


def _assert_consistent(state: Books) -> None:
    assert state.redis_granted == state.claims == state.ledger_grants
    assert state.ledger_grants == state.granted_events == state.granted_customers
    assert state.customers_granted_twice == 0
    assert state.redis_claims == state.claims  # no claim held without its grant


def test_retrying_the_unanswered_events_after_a_sigkill_grants_each_once(
    clean: Services, tmp_path: Path
) -> None:
    victim_load, unanswered = _kill_midway(clean, tmp_path)
    assert unanswered, "the kill came after the victim had answered everything"
    before = books(clean.pg_url, clean.redis_url)
    # The kill left claims taken in Redis whose events were never committed.
    assert before.redis_granted > before.claims

    # The bank retries every event it got no answer for, on a restarted worker.
    retry = Load(
        clean.pg_url,
        clean.redis_url,
        QUOTA,
        victim_load.now,
        unanswered,
        str(tmp_path / "answers-retry.txt"),
    )
    _finish(_start(retry))
    assert set(read_answers(retry.answers_path)) == {e for e, _ in unanswered}

    # The retries reused the dead worker's claims: nothing is left to release or restore.
    report = asyncio.run(_reconcile(clean, timedelta(0)))
    assert (report.released, report.restored) == (0, 0)
    after = books(clean.pg_url, clean.redis_url)
    assert after.events == 2 * CUSTOMERS  # every event was decided
    assert after.ledger_grants == QUOTA  # the quota was used up exactly, by real grants
    _assert_consistent(after)


def test_orphan_claims_of_a_sigkilled_worker_are_released_after_the_grace_period(
    clean: Services, tmp_path: Path
) -> None:
    victim_load, _ = _kill_midway(clean, tmp_path)
    before = books(clean.pg_url, clean.redis_url)
    orphans = before.redis_granted - before.claims
    assert orphans > 0, "the kill left no claim between take and commit"

    # Young claims might still be committed by a live worker: they are left alone.
    young = asyncio.run(_reconcile(clean, timedelta(minutes=5)))
    assert young.released == 0
    time.sleep(1.0)
    report = asyncio.run(_reconcile(clean, timedelta(seconds=1)))
    assert report.released == orphans
    after = books(clean.pg_url, clean.redis_url)
    _assert_consistent(after)
    assert after.ledger_grants < QUOTA

    # What the orphans held is free again: customers with no grant yet can now get it.
    late = Load(
        clean.pg_url,
        clean.redis_url,
        QUOTA,
        victim_load.now,
        [(f"late-{c.id}", c.id) for c in customers(CUSTOMERS)],
        str(tmp_path / "answers-late.txt"),
    )
    _finish(_start(late))
    final = books(clean.pg_url, clean.redis_url)
    _assert_consistent(final)
    assert final.ledger_grants == QUOTA


async def _reconcile(clean: Services, grace: timedelta) -> ReconcileReport:
    pg = await connect_postgres(clean.pg_url)
    limits = connect_redis(clean.redis_url)
    try:
        return await reconcile(pg, limits, grace)
    finally:
        await limits.close()
        await pg.close()
