"""A small campaign, and the worker processes the multi-process tests start.

Workers are forked by a fork server, a fresh interpreter that has imported this
module once: each worker then has its own event loop and its own connections, as
separate `double11 serve` workers do, without paying seconds of imports each.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.context
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any, LiteralString

import psycopg
import redis

from double11.adapters.scaleout import connect_redis, open_scaleout_stores
from double11.domain.campaign import Campaign, EventType, Limits, Mechanic, Perk, PerkGrant, Phase
from double11.domain.customer import Customer
from double11.domain.events import Event
from double11.domain.ledger import LedgerEntry
from double11.domain.limits import Claim
from double11.engine.clock import SystemClock
from double11.engine.pipeline import Engine
from double11.engine.ports import EventLog, EventRecord, Stores
from double11.risk.step import NoRiskRules
from services import libpq

MECHANIC = "first_n"


def worker_context() -> multiprocessing.context.ForkServerContext:
    """Processes started clean (never a fork of pytest), with the imports done once."""
    ctx = multiprocessing.get_context("forkserver")
    # Not this module: Python 3.11's fork server ignores the parent's sys.path, so it
    # could not import it; its heavy imports are what matters, and those it can.
    ctx.set_forkserver_preload(
        ["double11.adapters.scaleout", "double11.adapters.migrate", "double11.engine.pipeline"]
    )
    return ctx


PERK = "double_points"


def campaign(quota: int, now: datetime) -> Campaign:
    """One phase around `now`; the first `quota` reservers get a perk, once per customer."""
    phase = Phase("main", now - timedelta(days=1), now + timedelta(days=1))
    first_n = Mechanic(
        MECHANIC,
        triggers=frozenset({"reservation"}),
        phases=frozenset({"main"}),
        grants=(PerkGrant(PERK),),
        limits=Limits(quota=quota, per_customer=1),
    )
    return Campaign(
        id="it",
        name="integration",
        timezone="Asia/Shanghai",
        phases=(phase,),
        event_types={"reservation": EventType("reservation")},
        mechanics=(first_n,),
        perks={PERK: Perk(PERK, points_multiplier=2)},
    )


def customers(count: int) -> list[Customer]:
    return [Customer(f"c{i:05d}") for i in range(count)]


class SlowCommits:
    """An event log whose commits wait first, like a database under load.

    It widens the window between taking a claim and committing it, so that a worker
    killed at any moment almost surely dies inside it.
    """

    def __init__(self, inner: EventLog, delay_s: float) -> None:
        self._inner = inner
        self._delay_s = delay_s

    async def find_event(self, event_id: str) -> EventRecord | None:
        return await self._inner.find_event(event_id)

    async def commit(self, record: EventRecord) -> EventRecord:
        # Jittered, so that concurrent senders drift apart instead of moving in lockstep.
        await asyncio.sleep(random.uniform(0.5, 1.5) * self._delay_s)
        return await self._inner.commit(record)

    async def commit_many(self, records: Sequence[EventRecord]) -> list[EventRecord | Exception]:
        await asyncio.sleep(random.uniform(0.5, 1.5) * self._delay_s)
        return await self._inner.commit_many(records)

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]:
        return await self._inner.ledger_for(customer_id)


@dataclass(frozen=True, slots=True)
class Load:
    """What one engine worker sends, and where it writes the answers it got."""

    pg_url: str
    redis_url: str
    quota: int
    now: datetime
    events: list[tuple[str, str]]  # (event id, customer id)
    answers_path: str
    concurrency: int = 32
    commit_delay_s: float = 0.0
    start: Barrier | None = None  # workers that should begin together wait here


def run_engine_worker(load: Load) -> None:
    """Process entry point: drive `load.events` through an `Engine` on the scale-out stores."""
    asyncio.run(_drive(load))


async def _drive(load: Load) -> None:
    stores = await open_scaleout_stores(load.pg_url, load.redis_url, reconcile_every=None)
    fd = os.open(load.answers_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        events: EventLog = stores.events
        if load.commit_delay_s:
            events = SlowCommits(stores.events, load.commit_delay_s)
        engine = Engine(
            campaign(load.quota, load.now),
            Stores(stores.customers, events, stores.limits),
            SystemClock(),
            NoRiskRules(),
        )
        todo = iter(load.events)
        if load.start is not None:
            load.start.wait()

        async def sender() -> None:
            for event_id, customer_id in todo:
                got = await engine.submit(Event(event_id, "reservation", customer_id, load.now))
                # One short O_APPEND write per answer: a SIGKILL never leaves half a line.
                line = f"{event_id} {int(got.replayed)} {int(got.decision.granted)}\n"
                os.write(fd, line.encode())

        await asyncio.gather(*(sender() for _ in range(load.concurrency)))
    finally:
        os.close(fd)
        await stores.close()


def read_answers(path: str) -> dict[str, tuple[bool, bool]]:
    """Event id -> (replayed, granted) for every answer a worker wrote."""
    answers: dict[str, tuple[bool, bool]] = {}
    if not os.path.exists(path):
        return answers
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                event_id, replayed, granted = line.split()
                answers[event_id] = (replayed == "1", granted == "1")
    return answers


def run_take_worker(
    redis_url: str,
    customer_ids: list[str],
    quota: int,
    start: Barrier,
    results: Queue[tuple[dict[str, int], float]],
) -> None:
    """Process entry point: take one claim per customer on a shared quota, all at once."""
    results.put(asyncio.run(_take_all(redis_url, customer_ids, quota, start)))


async def _take_all(
    redis_url: str, customer_ids: list[str], quota: int, start: Barrier
) -> tuple[dict[str, int], float]:
    book = connect_redis(redis_url)
    try:
        await book.client.ping()  # connect before the start line, not after
        start.wait()
        began = time.perf_counter()
        outcomes: Counter[str] = Counter()
        todo = iter(customer_ids)

        async def taker() -> None:
            for customer_id in todo:
                claim = Claim(f"take-{customer_id}", MECHANIC, customer_id, quota=quota)
                outcomes[(await book.take([claim]))[MECHANIC].value] += 1

        await asyncio.gather(*(taker() for _ in range(200)))
        return dict(outcomes), time.perf_counter() - began
    finally:
        await book.close()


@dataclass(frozen=True, slots=True)
class Books:
    """What PostgreSQL and Redis say about the mechanic, for the assertions."""

    events: int
    claims: int
    ledger_grants: int
    granted_events: int
    granted_customers: int
    customers_granted_twice: int
    redis_granted: int
    redis_claims: int


def books(pg_url: str, redis_url: str, prefix: str = "d11:") -> Books:
    with psycopg.connect(libpq(pg_url)) as conn:
        (events,) = _one(conn, "SELECT count(*) FROM events")
        (claims,) = _one(conn, "SELECT count(*) FROM claims WHERE mechanic_id = %s", MECHANIC)
        grants, granted_events, granted_customers = _one(
            conn,
            "SELECT count(*), count(DISTINCT event_id), count(DISTINCT customer_id)"
            " FROM ledger WHERE mechanic_id = %s AND kind = 'grant'",
            MECHANIC,
        )
        (twice,) = _one(
            conn,
            "SELECT count(*) FROM (SELECT customer_id FROM ledger WHERE mechanic_id = %s"
            " GROUP BY customer_id HAVING count(*) > 1) AS t",
            MECHANIC,
        )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        granted = int(client.hget(prefix + "granted", MECHANIC) or 0)
        held = int(client.hlen(prefix + "claims:" + MECHANIC))
    finally:
        client.close()
    return Books(events, claims, grants, granted_events, granted_customers, twice, granted, held)


def _one(conn: psycopg.Connection[Any], query: LiteralString, *args: str) -> tuple[int, ...]:
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return tuple(row)
