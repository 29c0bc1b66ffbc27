"""The limit book in Redis: quotas, budgets, per-customer caps, counts and perks.

Every step that reads and then writes runs as one Lua script (``lua/*.lua``,
called by EVALSHA), so it is atomic across any number of worker processes:
that is what keeps a quota of N from being granted N + 1 times. Money is
integer cents in Redis; yuan `Decimal` only at this module's edge.

Keys, all under one prefix (default ``d11:``; tests use their own):

====================  =========================================================
``ready``             marker written by a full rebuild; scripts refuse to count
                      without it, so lost counters are never read as zero
``granted``           hash mechanic -> grants taken
``spent``             hash mechanic -> cents taken
``claims:MECHANIC``   hash event id -> claim record (JSON: customer, cost cents,
                      cap bucket, perks, cap, taken-at ms by the Redis clock)
``cust:CUSTOMER``     hash of the customer's counts, perks and cap counters
``obs:EVENT``         the state one event observed, kept for `observed_ttl`
``pending``           zset event id -> last observed (server ms) of events not
                      yet known to be committed; reconcile drops the committed
                      ones and undoes the counts of the rest (`forget`)
====================  =========================================================

One Redis node (or a primary with replicas) is assumed. On Redis Cluster put the
prefix in braces, e.g. ``{d11}:``, so that every key hashes to one slot, which a
script touching a mechanic and a customer at once needs.

Every script is idempotent, so redis-py retrying a command after a broken
connection cannot take or release anything twice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from importlib.resources import files
from typing import Any

import hiredis
import msgspec
from redis.asyncio import Connection, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.typing import EncodableT

from double11.adapters.batching import MicroBatcher
from double11.domain.events import Event
from double11.domain.facts import CustomerState
from double11.domain.limits import Claim, ClaimOutcome, MechanicUsage
from double11.domain.money import CENT
from double11.errors import Unavailable

DEFAULT_PREFIX = "d11:"
DEFAULT_OBSERVED_TTL = timedelta(days=14)

_Call = tuple[AsyncScript, list[str], list[str]]


class HiredisPackingConnection(Connection):
    """A connection that packs commands with hiredis, in C.

    redis-py's asyncio connection packs each argument in Python, which was a third
    of the client's CPU per claim here; its synchronous client already uses hiredis.
    """

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        if isinstance(args[0], str):  # "SCRIPT LOAD" is two words on the wire
            args = (*args[0].encode().split(), *args[1:])
        # hiredis's stub declares a one-element tuple; it takes any number of arguments.
        return [hiredis.pack_command(args)]  # type: ignore[arg-type]


class LimitsNotReady(Unavailable):
    """Redis has no initialised limit book (it lost its data); reconcile must rebuild it."""


def cents(amount: Decimal) -> int:
    """Exact yuan to integer cents; refuses fractions of a cent rather than round them."""
    scaled = amount.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} yuan is not a whole number of cents")
    return int(scaled)


def yuan_of(count: int | str) -> Decimal:
    """Integer cents back to yuan with two places."""
    return Decimal(int(count)).scaleb(-2).quantize(CENT)


def _script(name: str) -> str:
    return (files("double11.adapters") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


class _State(msgspec.Struct):
    """What observe.lua returns; cjson writes an empty table as {}, so all are objects."""

    p: dict[str, int]
    c: dict[str, int]
    k: dict[str, str]


class _Record(msgspec.Struct):
    """A claim record as take.lua stores it: every field a string."""

    c: str
    m: str
    b: str
    k: str
    x: str
    t: str


@dataclass(frozen=True, slots=True)
class HeldClaim:
    """A claim Redis holds, as reconcile sees it."""

    mechanic_id: str
    event_id: str
    customer_id: str
    cost_cents: int
    cap: int | None
    cap_bucket: str
    perks: tuple[str, ...]
    taken_ms: int


class _Undo(msgspec.Struct):
    """What forget.lua undoes, from an observation: [customer, type, in phase, phase]."""

    u: tuple[str, str, str, str]


_state_decoder = msgspec.json.Decoder(_State)
_undo_decoder = msgspec.json.Decoder(_Undo)
_record_decoder = msgspec.json.Decoder(_Record)


class RedisLimitBook:
    """`LimitBook` on Redis; safe to share between any number of processes."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        observed_ttl: timedelta = DEFAULT_OBSERVED_TTL,
        max_batch: int = 256,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._ttl = str(int(observed_ttl.total_seconds()))
        self._observe = client.register_script(_script("observe"))
        self._take = client.register_script(_script("take"))
        self._release = client.register_script(_script("release"))
        self._forget = client.register_script(_script("forget"))
        self._restore = client.register_script(_script("restore"))
        self.ready_key = prefix + "ready"
        self.granted_key = prefix + "granted"
        self.spent_key = prefix + "spent"
        self.pending_key = prefix + "pending"
        # Called when a script finds the book uninitialised: scale-out wires it to a
        # reconcile that rebuilds from PostgreSQL, so a flushed Redis heals itself.
        self.on_not_ready: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._recovering: asyncio.Task[None] | None = None
        # Set by scale-out to the event log's: True for an event whose commit failed in
        # a way that may have committed it (asked once per event).
        self.commit_outcome_unknown: Callable[[str], bool] | None = None
        # A separate redis-py call costs hundreds of microseconds of CPU and a pooled
        # connection; concurrent script calls share one pipeline instead, as commits
        # share one transaction.
        self._calls: MicroBatcher[_Call, Any] = MicroBatcher(
            self._eval_many, max_batch=max_batch, max_in_flight=4
        )

    # key names
    def claims_key(self, mechanic_id: str) -> str:
        return f"{self.prefix}claims:{mechanic_id}"

    def customer_key(self, customer_id: str) -> str:
        return f"{self.prefix}cust:{customer_id}"

    def observed_key(self, event_id: str) -> str:
        return f"{self.prefix}obs:{event_id}"

    # the port
    async def observe(self, event: Event, phase: str | None) -> CustomerState:
        keys = [
            self.ready_key,
            self.observed_key(event.id),
            self.customer_key(event.customer_id),
            self.pending_key,
        ]
        args = [event.type, "0" if phase is None else "1", phase or "", self._ttl]
        args += [event.id, event.customer_id]
        raw = await self._run(self._observe, keys, args)
        state = _state_decoder.decode(raw)
        return CustomerState(state.p, state.c, frozenset(state.k))

    async def take(self, claims: Sequence[Claim]) -> Mapping[str, ClaimOutcome]:
        if not claims:
            return {}
        keys = [self.ready_key, self.granted_key, self.spent_key]
        args: list[str] = []
        for claim in claims:
            keys += [self.claims_key(claim.mechanic_id), self.customer_key(claim.customer_id)]
            args += [
                claim.mechanic_id,
                claim.event_id,
                claim.customer_id,
                str(cents(claim.cost)),
                "" if claim.quota is None else str(claim.quota),
                "" if claim.budget is None else str(cents(claim.budget)),
                "" if claim.cap is None else str(claim.cap),
                claim.cap_bucket,
                ",".join(claim.perks),
            ]
        outcomes = await self._run(self._take, keys, args)
        return {c.mechanic_id: ClaimOutcome(o) for c, o in zip(claims, outcomes, strict=True)}

    async def release(self, event: Event, claims: Sequence[Claim]) -> None:
        # An event that may have been committed after all keeps its count and claims:
        # releasing them could grant a unit twice. Reconcile settles it after the grace.
        keep = self.commit_outcome_unknown
        if keep is not None and keep(event.id):
            return
        held = [(c.mechanic_id, c.event_id, c.customer_id) for c in claims]
        await asyncio.gather(self.release_held(held), self.forget([(event.id, event.customer_id)]))

    async def usage(self) -> Mapping[str, MechanicUsage]:
        granted, spent = await self._usage()
        if granted is None:  # lost with the rest of the book: rebuild rather than say zero
            await self._recover_or_raise()
            granted, spent = await self._usage()
            if granted is None:
                raise LimitsNotReady("the Redis limit book is being rebuilt")
        return {
            mid: MechanicUsage(int(n), yuan_of(spent.get(mid, 0))) for mid, n in granted.items()
        }

    async def _usage(self) -> tuple[dict[str, str] | None, dict[str, str]]:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.exists(self.ready_key)
                pipe.hgetall(self.granted_key)
                pipe.hgetall(self.spent_key)
                ready, granted, spent = await pipe.execute()
        except RedisError as exc:
            raise Unavailable(f"Redis failed: {type(exc).__name__}") from exc
        return (granted if ready else None), spent

    async def close(self) -> None:
        await self._calls.close()
        if self._recovering is not None:
            await asyncio.gather(self._recovering, return_exceptions=True)
        await self.client.aclose()

    # what reconcile needs
    async def release_held(
        self, held: Sequence[tuple[str, str, str]], *, taken_at_or_before_ms: int | None = None
    ) -> int:
        """Release claims given as (mechanic, event, customer); with a cutoff, only older ones."""
        if not held:
            return 0
        keys = [self.granted_key, self.spent_key]
        args = ["" if taken_at_or_before_ms is None else str(taken_at_or_before_ms)]
        for mechanic_id, event_id, customer_id in held:
            keys += [self.claims_key(mechanic_id), self.customer_key(customer_id)]
            args += [mechanic_id, event_id]
        released = await self._run(self._release, keys, args, check_ready=False)
        return int(released)

    async def forget(
        self, observed: Sequence[tuple[str, str]], *, observed_at_or_before_ms: int | None = None
    ) -> int:
        """Undo the counts of events given as (event, customer) that were never committed.

        Only pending ones, and with a cutoff only those last observed at or before it.
        """
        if not observed:
            return 0
        keys = [self.pending_key]
        args = ["" if observed_at_or_before_ms is None else str(observed_at_or_before_ms)]
        for event_id, customer_id in observed:
            keys += [self.observed_key(event_id), self.customer_key(customer_id)]
            args.append(event_id)
        forgotten = await self._run(self._forget, keys, args, check_ready=False)
        return int(forgotten)

    async def pending(self, observed_at_or_before_ms: int, limit: int) -> list[str]:
        """Up to `limit` ids of events observed at or before the cutoff, not yet settled."""
        found = await self.client.zrangebyscore(
            self.pending_key, "-inf", observed_at_or_before_ms, start=0, num=limit
        )
        return [str(event_id) for event_id in found]  # the client decodes responses

    async def settled(self, event_ids: Sequence[str]) -> None:
        """Drop committed events from the pending set: their counts stand."""
        if event_ids:
            await self.client.zrem(self.pending_key, *event_ids)

    async def observers(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The customer of each event whose observation is still kept, by event id."""
        if not event_ids:
            return {}
        raws = await self.client.mget([self.observed_key(e) for e in event_ids])
        out: dict[str, str] = {}
        for event_id, raw in zip(event_ids, raws, strict=True):
            if raw is not None:
                out[event_id] = _undo_decoder.decode(raw).u[0]
        return out

    async def restore(self, held: Sequence[HeldClaim]) -> int:
        """Add committed claims that are missing, without checking limits; returns how many."""
        if not held:
            return 0
        keys = [self.granted_key, self.spent_key]
        args: list[str] = []
        for h in held:
            keys += [self.claims_key(h.mechanic_id), self.customer_key(h.customer_id)]
            args += [
                h.mechanic_id,
                h.event_id,
                h.customer_id,
                str(h.cost_cents),
                "" if h.cap is None else str(h.cap),
                h.cap_bucket,
                ",".join(h.perks),
                str(h.taken_ms),
            ]
        restored = await self._run(self._restore, keys, args, check_ready=False)
        return int(restored)

    async def held_claims(self) -> list[HeldClaim]:
        """Every claim record in Redis, read with HSCAN so the server is never blocked long."""
        out: list[HeldClaim] = []
        # Every mechanic that ever took a claim has a field in `granted`: no keyspace scan.
        for field in await self.client.hkeys(self.granted_key):
            mechanic_id = field.decode() if isinstance(field, bytes) else field
            async for event_id, raw in self.client.hscan_iter(
                self.claims_key(mechanic_id), count=1000
            ):
                rec = _record_decoder.decode(raw)
                out.append(
                    HeldClaim(
                        mechanic_id=mechanic_id,
                        event_id=event_id,
                        customer_id=rec.c,
                        cost_cents=int(rec.m),
                        cap=int(rec.x) if rec.x else None,
                        cap_bucket=rec.b,
                        perks=tuple(p for p in rec.k.split(",") if p),
                        taken_ms=int(rec.t),
                    )
                )
        return out

    async def keys(self) -> list[str]:
        """Every key under this book's prefix (a keyspace SCAN: for rebuilding only)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*"
        return [key async for key in self.client.scan_iter(match=pattern, count=1000)]

    async def server_ms(self) -> int:
        """The Redis server's clock in ms: the clock claims' taken-at times are read on."""
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def is_ready(self) -> bool:
        return bool(await self.client.exists(self.ready_key))

    # running scripts
    async def _run(
        self, script: AsyncScript, keys: list[str], args: list[str], *, check_ready: bool = True
    ) -> Any:
        try:
            return await self._calls.submit((script, keys, args))
        except ResponseError as exc:
            if not (check_ready and str(exc).startswith("NOTREADY")):
                raise Unavailable(f"a Redis script failed: {exc}") from exc
        except RedisError as exc:
            raise Unavailable(f"Redis failed: {type(exc).__name__}") from exc
        # The book was lost (Redis restarted empty or was flushed): rebuild, then try once more.
        await self._recover_or_raise()
        try:
            return await self._calls.submit((script, keys, args))
        except ResponseError as exc:
            if str(exc).startswith("NOTREADY"):
                raise LimitsNotReady("the Redis limit book is being rebuilt") from exc
            raise Unavailable(f"a Redis script failed: {exc}") from exc
        except RedisError as exc:
            raise Unavailable(f"Redis failed: {type(exc).__name__}") from exc

    async def _eval_many(self, calls: Sequence[_Call]) -> list[Any]:
        """Run many script calls in one pipeline: one round trip, each call still atomic."""
        results = await self._pipeline(calls)
        unknown = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if unknown:
            # Redis restarted or its script cache was flushed: load the scripts, go again.
            for script in {id(calls[i][0]): calls[i][0] for i in unknown}.values():
                script.sha = await self.client.script_load(script.script)
            again = await self._pipeline([calls[i] for i in unknown])
            for i, result in zip(unknown, again, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, calls: Sequence[_Call]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def _recover_or_raise(self) -> None:
        """Run `on_not_ready` once for all callers that are waiting on it."""
        if self.on_not_ready is None:
            raise LimitsNotReady("the Redis limit book is not initialised; run reconcile")
        try:
            await self._recover()
        except Exception as exc:
            raise LimitsNotReady(f"rebuilding the limit book failed: {exc!r}") from exc

    async def _recover(self) -> None:
        assert self.on_not_ready is not None
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.create_task(self.on_not_ready())
        await asyncio.shield(self._recovering)
