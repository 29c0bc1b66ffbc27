"""Make the Redis limit book agree with the PostgreSQL ledger after crashes and data loss.

A worker takes a claim in Redis, then commits the event in PostgreSQL. It can
die in between. Claims are idempotent by (event, mechanic), so when the bank
retries the event the retry reuses the claim and nothing is lost. When no retry
comes, the claim is an orphan: it holds quota that no ledger entry granted.
The other way round, Redis can lose data (a restart without persistence, a
FLUSHDB, a failover to a lagging replica) that the ledger still has.

`reconcile` settles both, in this order:

1. **Rebuild** when the ready marker is missing: Redis lost the book, so every
   counter under the prefix is rebuilt from PostgreSQL (counts from ``events``,
   claims, caps and perks from ``events.claims`` in commit order), and only then is the
   marker set. Until it is, the scripts refuse to count, so nothing is granted
   against counters that read zero because they were lost. One process rebuilds
   (a Redis lock); the others wait for the marker.
2. **Restore** every committed claim that Redis does not hold, atomically and
   only if absent, so a worker taking claims meanwhile is never double counted.
3. **Release** every claim Redis holds that PostgreSQL has not committed and that
   was last taken more than `grace` ago by the Redis clock. The release script
   checks the age again atomically, so a retry that has just reused the claim
   keeps it; claims whose commit lands after the look are put back by step 2's
   script straight away.
4. **Forget** every observation (the count an event added to its customer's
   state) of an event PostgreSQL has not committed, last observed more than
   `grace` ago: a dead worker's event must not count towards a condition such
   as "reserved and assessed". Events found committed leave the pending set.
   The script checks the age again, so an event a retry has just observed is
   left alone; if such a retry then commits, its count is the one it observed.

`grace` must exceed the longest time between a take and its commit (the store's
commit timeout bounds that), or a slow commit could lose its claim.

A commit whose COMMIT was sent but never answered may have landed. The worker
then does not release its claims (`PostgresStore.commit_outcome_unknown`):
they are orphans or not, and step 3 or the retry settles which, so a unit is
never granted twice because a commit's answer was lost.

After it, each mechanic's ``granted`` equals its claims in the ledger, its
``spent`` their cost, and each customer's counts are those of their committed
events (plus any observed within the grace period).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Row, text

from double11.adapters.postgres import PostgresStore
from double11.adapters.redis_limits import DEFAULT_PREFIX, HeldClaim, RedisLimitBook, cents
from double11.engine.codec import decode_claims
from double11.errors import Unavailable

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(seconds=30)
CHUNK = 500  # claims per script call: each call blocks Redis for about a millisecond
REBUILD_LOCK_MS = 30_000  # renewed as the rebuild goes on; lapses soon if its process dies
REBUILD_WAIT_S = 300.0

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one reconcile changed."""

    rebuilt: bool
    restored: int
    released: int
    forgotten: int = 0

    def __str__(self) -> str:
        rebuilt = "rebuilt from PostgreSQL; " if self.rebuilt else ""
        return (
            f"{rebuilt}restored {self.restored} committed claim(s), "
            f"released {self.released} orphan claim(s), "
            f"forgot {self.forgotten} uncommitted observation(s)"
        )


# The events that took claims, in commit order; `events.claims` lists them in the
# order they were decided.
_COMMITTED_CLAIMS = text(
    "SELECT id, customer_id, claims, decided_at FROM events WHERE claims <> '[]' ORDER BY seq"
)

_COMMITTED_AMONG = text(
    "SELECT id, customer_id, claims FROM events WHERE id = ANY(CAST(:ids AS varchar[]))"
)

_COMMITTED_IDS = text("SELECT id FROM events WHERE id = ANY(CAST(:ids AS varchar[]))")

_COUNTS = text(
    "SELECT customer_id, type, phase, count(*) AS n FROM events GROUP BY customer_id, type, phase"
)


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ms(instant: datetime) -> int:
    return int(instant.astimezone(UTC).timestamp() * 1000)


async def reconcile(
    pg: PostgresStore, limits: RedisLimitBook, grace: timedelta = DEFAULT_GRACE
) -> ReconcileReport:
    """Rebuild a lost book, restore committed claims, release orphans older than `grace`."""
    rebuilt = await ensure_ready(pg, limits)
    held = await limits.held_claims()
    restored = await _restore_committed(pg, limits, {(h.mechanic_id, h.event_id) for h in held})
    released = await _release_orphans(pg, limits, held, grace)
    forgotten = await _forget_orphan_observations(pg, limits, grace)
    report = ReconcileReport(rebuilt, restored, released, forgotten)
    if rebuilt or restored or released or forgotten:
        log.warning("reconcile: %s", report)
    return report


async def ensure_ready(pg: PostgresStore, limits: RedisLimitBook) -> bool:
    """Rebuild the book from PostgreSQL if Redis lost it; True if this call rebuilt it."""
    client = limits.client
    lock = limits.prefix + "lock:rebuild"
    token = uuid.uuid4().hex
    deadline = asyncio.get_running_loop().time() + REBUILD_WAIT_S
    while True:
        if await limits.is_ready():
            return False
        if await client.set(lock, token, nx=True, px=REBUILD_LOCK_MS):
            break
        if asyncio.get_running_loop().time() > deadline:
            raise Unavailable("another process has been rebuilding the limit book for too long")
        await asyncio.sleep(0.05)
    try:
        if await limits.is_ready():  # finished by another process just before our lock
            return False
        await _rebuild(pg, limits, lock)
        return True
    finally:
        if await client.get(lock) == token:
            await client.delete(lock)


async def _rebuild(pg: PostgresStore, limits: RedisLimitBook, lock: str) -> None:
    client = limits.client
    keep = {lock}
    # Start from nothing: whatever survived (if only the marker was lost) is not trusted.
    doomed = [key for key in await limits.keys() if key not in keep]
    for part in _chunks(doomed, 1000):
        await client.unlink(*part)
    async with pg.engine.connect() as conn:
        pipe = client.pipeline(transaction=False)
        queued = 0
        async for row in await conn.stream(_COUNTS):
            key = limits.customer_key(row.customer_id)
            pipe.hincrby(key, "c|" + row.type, row.n)
            if row.phase is not None:
                pipe.hincrby(key, f"p|{row.phase}|{row.type}", row.n)
            queued += 1
            if queued >= 5000:
                pipe.pexpire(lock, REBUILD_LOCK_MS)
                await pipe.execute()
                queued = 0
        await pipe.execute()
        # Claims in commit order, so the first event to grant a perk holds it, as it did.
        batch: list[HeldClaim] = []
        async for row in await conn.stream(_COMMITTED_CLAIMS):
            batch.extend(_held(row))
            if len(batch) >= CHUNK:
                await limits.restore(batch)
                await client.pexpire(lock, REBUILD_LOCK_MS)
                batch = []
        await limits.restore(batch)
    await client.set(limits.ready_key, datetime.now(UTC).isoformat())


def _held(row: Row[Any]) -> list[HeldClaim]:
    """The committed claims of an event (a row of _COMMITTED_CLAIMS) as Redis should hold them."""
    taken_ms = _ms(row.decided_at)
    return [
        HeldClaim(
            mechanic_id=claim.mechanic_id,
            event_id=claim.event_id,
            customer_id=claim.customer_id,
            cost_cents=cents(claim.cost),
            cap=claim.cap,
            cap_bucket=claim.cap_bucket,
            perks=claim.perks,
            taken_ms=taken_ms,
        )
        for claim in decode_claims(row.id, row.customer_id, row.claims)
    ]


async def _restore_committed(
    pg: PostgresStore, limits: RedisLimitBook, in_redis: set[tuple[str, str]]
) -> int:
    missing: list[HeldClaim] = []
    async with pg.engine.connect() as conn:
        async for row in await conn.stream(_COMMITTED_CLAIMS):
            missing.extend(h for h in _held(row) if (h.mechanic_id, h.event_id) not in in_redis)
    restored = 0
    for part in _chunks(missing):
        restored += await limits.restore(part)
    return restored


async def _committed_among(pg: PostgresStore, held: Sequence[HeldClaim]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    async with pg.engine.connect() as conn:
        for part in _chunks(held, 5000):
            ids = list({h.event_id for h in part})
            for row in await conn.execute(_COMMITTED_AMONG, {"ids": ids}):
                for claim in decode_claims(row.id, row.customer_id, row.claims):
                    found.add((claim.mechanic_id, claim.event_id))
    return found


async def _release_orphans(
    pg: PostgresStore, limits: RedisLimitBook, held: Sequence[HeldClaim], grace: timedelta
) -> int:
    cutoff = await limits.server_ms() - int(grace.total_seconds() * 1000)
    old = [h for h in held if h.taken_ms <= cutoff]
    if not old:
        return 0
    committed = await _committed_among(pg, old)
    orphans = [h for h in old if (h.mechanic_id, h.event_id) not in committed]
    released = 0
    for part in _chunks(orphans):
        released += await limits.release_held(
            [(h.mechanic_id, h.event_id, h.customer_id) for h in part],
            taken_at_or_before_ms=cutoff,
        )
    if orphans:
        # A commit may have landed between the look and the release: give its claim back.
        late = await _committed_among(pg, orphans)
        back = [h for h in orphans if (h.mechanic_id, h.event_id) in late]
        for part in _chunks(back):
            released -= await limits.restore(part)
    return released


async def _forget_orphan_observations(
    pg: PostgresStore, limits: RedisLimitBook, grace: timedelta
) -> int:
    cutoff = await limits.server_ms() - int(grace.total_seconds() * 1000)
    forgotten = 0
    while ids := await limits.pending(cutoff, CHUNK):
        async with pg.engine.connect() as conn:
            committed = {row.id for row in await conn.execute(_COMMITTED_IDS, {"ids": ids})}
        await limits.settled([i for i in ids if i in committed])
        orphans = [i for i in ids if i not in committed]
        customers = await limits.observers(orphans)
        # An observation that expired has nothing left to undo; it just leaves the set.
        await limits.settled([i for i in orphans if i not in customers])
        # One that a retry observed again meanwhile is kept, and its newer time puts it
        # past the cutoff, so the next look does not find it again.
        forgotten += await limits.forget(
            [(i, customers[i]) for i in orphans if i in customers],
            observed_at_or_before_ms=cutoff,
        )
    return forgotten


async def reconcile_urls(
    db_url: str,
    redis_url: str,
    *,
    grace_s: float = DEFAULT_GRACE.total_seconds(),
    prefix: str = DEFAULT_PREFIX,
) -> ReconcileReport:
    """Open the scale-out stores' connections, reconcile once, close (the CLI's command)."""
    from double11.adapters.scaleout import connect_postgres, connect_redis

    pg = await connect_postgres(db_url)
    try:
        limits = connect_redis(redis_url, prefix=prefix)
        try:
            return await reconcile(pg, limits, timedelta(seconds=grace_s))
        finally:
            await limits.close()
    finally:
        await pg.close()
