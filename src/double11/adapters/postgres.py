"""Customers and the event log in PostgreSQL (SQLAlchemy 2 async, asyncpg).

The hot path never pays one round trip per event. Concurrent calls are gathered
by a `MicroBatcher`: lookups become one ``WHERE id = ANY(...)`` and commits
become one transaction of up to a few hundred events (group commit), written
by a single statement whose data-modifying CTEs insert the events, then the
ledger rows and claims of only the events that were new. A duplicate event id
is ``ON CONFLICT DO NOTHING`` and the record already stored is read back: the
first writer wins, across any number of processes.

``events.seq`` keeps commit order exactly: each commit transaction first takes
one transaction-scoped advisory lock, then numbers its events after the
largest ``seq`` committed. Taking the lock in a statement of its own matters:
in READ COMMITTED each statement reads a fresh snapshot, so the next one sees
the previous holder's commit. Group commit makes the serialised section one
transaction per few hundred events, not one per event.

An event's ``data`` is kept as JSON with amounts as strings; a record read back
carries it so (see `double11.engine.codec.decode_event_data`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from double11.adapters.batching import MicroBatcher
from double11.domain.customer import Customer
from double11.domain.events import Event
from double11.domain.ledger import Asset, EntryKind, LedgerEntry
from double11.domain.limits import Claim
from double11.engine.codec import (
    decode_customer,
    decode_decision,
    decode_event_data,
    encode_customer,
    encode_decision,
    encode_event_data,
)
from double11.engine.ports import EventRecord

DEFAULT_MAX_BATCH = 300
DEFAULT_COMMIT_TIMEOUT_S = 10.0
MAX_UNKNOWN = 100_000  # remembered commits of unknown outcome; beyond, reconcile still fixes
# pg_advisory_xact_lock key that orders commits: the bytes of "d11 seq".
SEQ_LOCK_KEY = 0x64313120736571


_attributes_decoder = msgspec.json.Decoder(dict[str, str])
_ClaimRow = tuple[str, str, str, int | None, str | None, int | None, str, str]
_claims_decoder = msgspec.json.Decoder(list[_ClaimRow])


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("instants must be time-zone aware")
    return value.astimezone(UTC)


_GET_CUSTOMERS = text("SELECT id, profile FROM customers WHERE id = ANY(CAST(:ids AS varchar[]))")

_PUT_CUSTOMERS = text(
    """
    INSERT INTO customers (id, profile, updated_at)
    SELECT u.id, u.profile, :now
    FROM unnest(CAST(:ids AS varchar[]), CAST(:profiles AS text[])) AS u(id, profile)
    ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile, updated_at = EXCLUDED.updated_at
    RETURNING id, (xmax = 0) AS created
    """
)

# One row per event found, with its claims folded into a JSON array, so a replay costs
# one statement.
_FIND_EVENTS = text(
    """
    SELECT e.id, e.type, e.customer_id, e.at, e.phase, e.fingerprint, e.decision, e.data,
           (SELECT json_agg(json_build_array(c.mechanic_id, c.customer_id, c.cost::text,
                                             c.quota, c.budget::text, c.cap, c.cap_bucket,
                                             c.perks))::text
              FROM claims c WHERE c.event_id = e.id) AS claims
    FROM events e
    WHERE e.id = ANY(CAST(:ids AS varchar[]))
    """
)

_LOCK_SEQ = text("SELECT pg_advisory_xact_lock(:key)")

_COMMIT = text(
    """
    WITH top AS (SELECT coalesce(max(seq), 0) AS seq FROM events),
    new_events AS (
        INSERT INTO events (id, seq, type, customer_id, at, phase, fingerprint, decision,
                            decided_at, data)
        SELECT u.id, CAST(top.seq + u.n AS integer), u.type, u.customer_id, u.at, u.phase,
               u.fingerprint, u.decision, u.decided_at, u.data
        FROM unnest(CAST(:e_id AS varchar[]), CAST(:e_type AS varchar[]),
                    CAST(:e_customer AS varchar[]), CAST(:e_at AS timestamptz[]),
                    CAST(:e_phase AS varchar[]), CAST(:e_fingerprint AS varchar[]),
                    CAST(:e_decision AS text[]), CAST(:e_decided_at AS timestamptz[]),
                    CAST(:e_data AS text[]))
             WITH ORDINALITY AS u(id, type, customer_id, at, phase, fingerprint, decision,
                                  decided_at, data, n),
             top
        ORDER BY u.n
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    ),
    new_ledger AS (
        INSERT INTO ledger (id, event_id, mechanic_id, customer_id, kind, asset, at, points,
                            quantity, cost, attributes, refers_to)
        SELECT * FROM unnest(CAST(:l_id AS varchar[]), CAST(:l_event AS varchar[]),
                             CAST(:l_mechanic AS varchar[]), CAST(:l_customer AS varchar[]),
                             CAST(:l_kind AS varchar[]), CAST(:l_asset AS varchar[]),
                             CAST(:l_at AS timestamptz[]), CAST(:l_points AS integer[]),
                             CAST(:l_quantity AS integer[]), CAST(:l_cost AS numeric[]),
                             CAST(:l_attributes AS text[]), CAST(:l_refers_to AS varchar[]))
                 AS l(id, event_id, mechanic_id, customer_id, kind, asset, at, points,
                      quantity, cost, attributes, refers_to)
        WHERE l.event_id IN (SELECT id FROM new_events)
    ),
    new_claims AS (
        INSERT INTO claims (event_id, mechanic_id, customer_id, cost, quota, budget, cap,
                            cap_bucket, perks)
        SELECT * FROM unnest(CAST(:c_event AS varchar[]), CAST(:c_mechanic AS varchar[]),
                             CAST(:c_customer AS varchar[]), CAST(:c_cost AS numeric[]),
                             CAST(:c_quota AS integer[]), CAST(:c_budget AS numeric[]),
                             CAST(:c_cap AS integer[]), CAST(:c_bucket AS varchar[]),
                             CAST(:c_perks AS text[]))
                 AS c(event_id, mechanic_id, customer_id, cost, quota, budget, cap,
                      cap_bucket, perks)
        WHERE c.event_id IN (SELECT id FROM new_events)
    )
    SELECT id FROM new_events
    """
)

_LEDGER_FOR = text(
    """
    SELECT l.id, l.event_id, l.mechanic_id, l.customer_id, l.kind, l.asset, l.at, l.points,
           l.quantity, l.cost, l.attributes, l.refers_to
    FROM ledger l LEFT JOIN events e ON e.id = l.event_id
    WHERE l.customer_id = :customer
    ORDER BY e.seq NULLS LAST, l.event_id, l.id
    """
)

_DECISIONS = text("SELECT id, decision FROM events WHERE id = ANY(CAST(:ids AS varchar[]))")


_COMMIT_ARRAYS = (
    *("e_id", "e_type", "e_customer", "e_at", "e_phase", "e_fingerprint", "e_decision"),
    *("e_decided_at", "e_data", "l_id", "l_event", "l_mechanic", "l_customer", "l_kind"),
    *("l_asset", "l_at", "l_points", "l_quantity", "l_cost", "l_attributes", "l_refers_to"),
    *("c_event", "c_mechanic", "c_customer", "c_cost", "c_quota", "c_budget", "c_cap"),
    *("c_bucket", "c_perks"),
)


def _commit_params(records: Sequence[EventRecord]) -> dict[str, list[Any]]:
    p: dict[str, list[Any]] = {name: [] for name in _COMMIT_ARRAYS}
    for record in records:
        event, decision = record.event, record.decision
        p["e_id"].append(event.id)
        p["e_type"].append(event.type)
        p["e_customer"].append(event.customer_id)
        p["e_at"].append(_utc(event.at))
        p["e_phase"].append(record.phase)
        p["e_fingerprint"].append(record.fingerprint)
        p["e_decision"].append(encode_decision(decision).decode())
        p["e_decided_at"].append(_utc(decision.decided_at))
        p["e_data"].append(encode_event_data(event.data))
        for entry in decision.grants:
            p["l_id"].append(entry.id)
            p["l_event"].append(entry.event_id)
            p["l_mechanic"].append(entry.mechanic_id)
            p["l_customer"].append(entry.customer_id)
            p["l_kind"].append(entry.kind.value)
            p["l_asset"].append(entry.asset.value)
            p["l_at"].append(_utc(entry.at))
            p["l_points"].append(entry.points)
            p["l_quantity"].append(entry.quantity)
            p["l_cost"].append(entry.cost)
            p["l_attributes"].append(msgspec.json.encode(dict(entry.attributes)).decode())
            p["l_refers_to"].append(entry.refers_to)
        for claim in record.claims:
            p["c_event"].append(claim.event_id)
            p["c_mechanic"].append(claim.mechanic_id)
            p["c_customer"].append(claim.customer_id)
            p["c_cost"].append(claim.cost)
            p["c_quota"].append(claim.quota)
            p["c_budget"].append(claim.budget)
            p["c_cap"].append(claim.cap)
            p["c_bucket"].append(claim.cap_bucket)
            p["c_perks"].append(",".join(claim.perks))
    return p


class _OutcomeUnknown(Exception):
    """A commit whose COMMIT was sent but not answered: it may or may not have landed."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the outcome of COMMIT is unknown: {cause!r}")
        self.cause = cause


def _lost_connection(exc: BaseException) -> bool:
    """Whether an error means the database is unreachable rather than one record is bad."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    if isinstance(exc, _OutcomeUnknown):
        return _lost_connection(exc.cause)
    return isinstance(exc, OSError | TimeoutError)


class PostgresStore:
    """`CustomerStore` and `EventLog` on PostgreSQL, batching concurrent calls."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        commit_timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S,
    ) -> None:
        self.engine = engine
        # Reads need no transaction: AUTOCOMMIT spares the BEGIN and ROLLBACK round trips.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._commit_timeout_s = commit_timeout_s
        self._customers = MicroBatcher(self._get_customers, max_batch=max_batch, max_in_flight=4)
        self._finds = MicroBatcher(self._find_events, max_batch=max_batch, max_in_flight=4)
        # Two commits in flight: one holds the order lock while the next gets ready.
        self._commits = MicroBatcher(self._commit_events, max_batch=max_batch, max_in_flight=2)
        self._unknown: set[str] = set()  # events whose failed COMMIT may have landed

    # customers
    async def get_customer(self, customer_id: str) -> Customer | None:
        return await self._customers.submit(customer_id)

    async def put_customer(self, customer: Customer) -> bool:
        return await self.put_customers([customer]) == 1

    async def put_customers(self, customers: Sequence[Customer]) -> int:
        """Create or replace many profiles in one statement; returns how many were created."""
        if not customers:
            return 0
        latest = {c.id: c for c in customers}  # one statement may not touch a row twice
        async with self.engine.begin() as conn:
            result = await conn.execute(
                _PUT_CUSTOMERS,
                {
                    "ids": list(latest),
                    "profiles": [encode_customer(c) for c in latest.values()],
                    "now": datetime.now(UTC),
                },
            )
            return sum(1 for row in result if row.created)

    async def _get_customers(self, ids: Sequence[str]) -> list[Customer | None]:
        async with self._reader.connect() as conn:
            rows = (await conn.execute(_GET_CUSTOMERS, {"ids": list(set(ids))})).all()
        found = {row.id: decode_customer(row.profile) for row in rows}
        return [found.get(i) for i in ids]

    # event log
    async def find_event(self, event_id: str) -> EventRecord | None:
        return await self._finds.submit(event_id)

    async def commit(self, record: EventRecord) -> EventRecord:
        return await self._commits.submit(record)

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]:
        async with self._reader.connect() as conn:
            rows = (await conn.execute(_LEDGER_FOR, {"customer": customer_id})).all()
            # Within one event, entries keep the order of the decision's grants (the
            # campaign's order of mechanics); only events with several entries need it.
            per_event: dict[str, int] = {}
            for row in rows:
                per_event[row.event_id] = per_event.get(row.event_id, 0) + 1
            several = [e for e, n in per_event.items() if n > 1]
            position: dict[str, int] = {}
            if several:
                for row in await conn.execute(_DECISIONS, {"ids": several}):
                    for i, grant in enumerate(decode_decision(row.decision).grants):
                        position[grant.id] = i
        entries = [
            LedgerEntry(
                id=row.id,
                event_id=row.event_id,
                mechanic_id=row.mechanic_id,
                customer_id=row.customer_id,
                kind=EntryKind(row.kind),
                asset=Asset(row.asset),
                at=_utc(row.at),
                points=row.points,
                quantity=row.quantity,
                cost=Decimal(row.cost),
                attributes=_attributes_decoder.decode(row.attributes),
                refers_to=row.refers_to,
            )
            for row in rows
        ]
        # Rows arrive grouped by event in commit order; reorder only inside each event.
        first: dict[str, int] = {}
        for i, e in enumerate(entries):
            first.setdefault(e.event_id, i)
        ranked = sorted(
            enumerate(entries),
            key=lambda ie: (
                first[ie[1].event_id],
                ie[1].id not in position,
                position.get(ie[1].id, ie[0]),
            ),
        )
        return tuple(e for _, e in ranked)

    async def close(self) -> None:
        for batcher in (self._finds, self._customers, self._commits):
            await batcher.close()
        await self.engine.dispose()

    # batched work
    async def _find_events(self, ids: Sequence[str]) -> list[EventRecord | None]:
        async with self._reader.connect() as conn:
            found = await self._read_records(conn, list(set(ids)))
        return [found.get(i) for i in ids]

    @staticmethod
    async def _read_records(conn: AsyncConnection, ids: list[str]) -> dict[str, EventRecord]:
        rows = (await conn.execute(_FIND_EVENTS, {"ids": ids})).all()
        out: dict[str, EventRecord] = {}
        for row in rows:
            decision = decode_decision(row.decision)
            event = Event(
                row.id, row.type, row.customer_id, _utc(row.at), decode_event_data(row.data)
            )
            claims = [
                Claim(
                    event_id=row.id,
                    mechanic_id=mechanic_id,
                    customer_id=customer_id,
                    cost=Decimal(cost),
                    quota=quota,
                    budget=None if budget is None else Decimal(budget),
                    cap=cap,
                    cap_bucket=bucket,
                    perks=tuple(p for p in perks.split(",") if p),
                )
                for mechanic_id, customer_id, cost, quota, budget, cap, bucket, perks in (
                    _claims_decoder.decode(row.claims) if row.claims else []
                )
            ]
            # Claims come back in the campaign's order of mechanics, as they were decided.
            rank = {o.mechanic_id: i for i, o in enumerate(decision.outcomes)}
            claims.sort(key=lambda c: rank.get(c.mechanic_id, len(rank)))
            out[row.id] = EventRecord(event, row.fingerprint, row.phase, decision, tuple(claims))
        return out

    async def _commit_events(
        self, records: Sequence[EventRecord]
    ) -> list[EventRecord | BaseException]:
        # Two commits of one id in one batch: the first goes in, the second gets its answer.
        unique = list({r.event.id: r for r in reversed(records)}.values())[::-1]
        try:
            stored: dict[str, EventRecord | BaseException] = dict(await self._write(unique))
        except Exception as exc:
            stored = await self._write_one_by_one(unique, exc)
        return [stored[r.event.id] for r in records]

    async def _write(self, records: Sequence[EventRecord]) -> dict[str, EventRecord]:
        """Commit `records` in one transaction; map each id to the record that stands."""
        committing = False
        try:
            async with asyncio.timeout(self._commit_timeout_s):
                async with self.engine.begin() as conn:
                    await conn.execute(_LOCK_SEQ, {"key": SEQ_LOCK_KEY})
                    result = await conn.execute(_COMMIT, _commit_params(records))
                    inserted = {row.id for row in result}
                    committing = True  # leaving the block sends COMMIT
        except Exception as exc:
            if committing:
                # The COMMIT went out and no answer came back: it may have landed.
                raise _OutcomeUnknown(exc) from exc
            raise
        out = {r.event.id: r for r in records if r.event.id in inserted}
        taken = [r.event.id for r in records if r.event.id not in inserted]
        if taken:
            async with self._reader.connect() as conn:
                existing = await self._read_records(conn, taken)
            for event_id in taken:
                if event_id not in existing:
                    raise RuntimeError(f"event {event_id!r} conflicted but cannot be read back")
                out[event_id] = existing[event_id]
        return out

    async def _write_one_by_one(
        self, records: Sequence[EventRecord], failure: Exception
    ) -> dict[str, EventRecord | BaseException]:
        """After a failed batch, commit each record alone, so one bad record fails alone.

        The batch may also have committed after all (the connection broke during COMMIT):
        then each record is found already there, with this very decision, and is ours.
        A record that still fails after a COMMIT of unknown outcome is remembered as such.
        """
        out: dict[str, EventRecord | BaseException] = {}
        unknown = isinstance(failure, _OutcomeUnknown)
        if len(records) == 1 and _lost_connection(failure):
            out[records[0].event.id] = self._failed(records[0], failure, unknown)
            return out
        for i, record in enumerate(records):
            try:
                stored = (await self._write([record]))[record.event.id]
            except Exception as exc:
                out[record.event.id] = self._failed(record, exc, unknown)
                if _lost_connection(exc):
                    for rest in records[i + 1 :]:
                        out[rest.event.id] = self._failed(rest, exc, unknown)
                    break
                continue
            ours = stored is record or (
                stored.fingerprint == record.fingerprint and stored.decision == record.decision
            )
            out[record.event.id] = record if ours else stored
        return out

    def _failed(self, record: EventRecord, exc: Exception, unknown: bool) -> Exception:
        """The error to answer a failed commit with, noting whether it may have landed."""
        if (unknown or isinstance(exc, _OutcomeUnknown)) and len(self._unknown) < MAX_UNKNOWN:
            self._unknown.add(record.event.id)
        return exc.cause if isinstance(exc, _OutcomeUnknown) else exc

    def commit_outcome_unknown(self, event_id: str) -> bool:
        """Whether this event's failed commit may have landed after all (asked once).

        Its claims must then not be released by the worker: reconcile releases them
        after the grace period if the event is not committed, and keeps them if it is.
        """
        if event_id in self._unknown:
            self._unknown.discard(event_id)
            return True
        return False
