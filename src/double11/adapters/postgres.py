"""Customers and the event log in PostgreSQL (SQLAlchemy 2 async, asyncpg).

The hot path never pays one round trip per event. Concurrent calls are gathered
by a `MicroBatcher`: lookups become one ``WHERE id = ANY(...)`` and commits
become one transaction of up to a few hundred events (group commit), written
by a single INSERT of one row per event, which holds the event's ledger entries
(its decision's grants) and its claims (migration 0003). A duplicate event id
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
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from double11.adapters.batching import MicroBatcher
from double11.domain.customer import Customer
from double11.domain.events import Event
from double11.domain.ledger import LedgerEntry
from double11.engine.codec import (
    NO_GRANTS,
    decode_claims,
    decode_customer,
    decode_decision,
    decode_event_data,
    encode_claims,
    encode_customer,
    encode_decision,
    encode_event_data,
    grantees_of,
)
from double11.engine.ports import CampaignVersion, EventRecord

DEFAULT_MAX_BATCH = 300
DEFAULT_COMMIT_TIMEOUT_S = 10.0
MAX_UNKNOWN = 100_000  # remembered commits of unknown outcome; beyond, reconcile still fixes
# pg_advisory_xact_lock key that orders commits: the bytes of "d11 seq".
SEQ_LOCK_KEY = 0x64313120736571


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

_FIND_EVENTS = text(
    """
    SELECT id, type, customer_id, at, phase, fingerprint, decision, data, claims
    FROM events
    WHERE id = ANY(CAST(:ids AS varchar[]))
    """
)

_RECORD_CAMPAIGN = text(
    """
    INSERT INTO campaign_versions (digest, campaign_id, source, loaded_at, loaded_by)
    VALUES (:digest, :campaign_id, :source, :loaded_at, :loaded_by)
    ON CONFLICT (digest) DO NOTHING
    RETURNING digest
    """
)

_CAMPAIGN_VERSIONS = text(
    "SELECT digest, campaign_id, source, loaded_at, loaded_by FROM campaign_versions"
    " ORDER BY loaded_at, digest"
)

_LOCK_SEQ = text("SELECT pg_advisory_xact_lock(:key)")

# The events, then the grantees rows of only the events that were new.
_COMMIT = text(
    """
    WITH top AS (SELECT coalesce(max(seq), 0) AS seq FROM events),
    new_events AS (
        INSERT INTO events (id, seq, type, customer_id, at, phase, fingerprint, decision,
                            decided_at, data, claims)
        SELECT u.id, CAST(top.seq + u.n AS integer), u.type, u.customer_id, u.at, u.phase,
               u.fingerprint, u.decision, u.decided_at, u.data, u.claims
        FROM unnest(CAST(:e_id AS varchar[]), CAST(:e_type AS varchar[]),
                    CAST(:e_customer AS varchar[]), CAST(:e_at AS timestamptz[]),
                    CAST(:e_phase AS varchar[]), CAST(:e_fingerprint AS varchar[]),
                    CAST(:e_decision AS text[]), CAST(:e_decided_at AS timestamptz[]),
                    CAST(:e_data AS text[]), CAST(:e_claims AS text[]))
             WITH ORDINALITY AS u(id, type, customer_id, at, phase, fingerprint, decision,
                                  decided_at, data, claims, n),
             top
        ORDER BY u.n
        ON CONFLICT (id) DO NOTHING
        RETURNING id, seq
    ),
    new_grantees AS (
        INSERT INTO grantees (customer_id, seq)
        SELECT g.customer_id, n.seq
        FROM unnest(CAST(:g_event AS varchar[]), CAST(:g_customer AS varchar[]))
             AS g(event_id, customer_id)
        JOIN new_events AS n ON n.id = g.event_id
    )
    SELECT id FROM new_events
    """
)

# The events that granted to a customer, in commit order: their own that granted (the
# text test, `codec.NO_GRANTS`, skips the others without decoding them) and others'
# that granted to them too.
_LEDGER_FOR = text(
    """
    SELECT decision FROM events
    WHERE (customer_id = :customer AND strpos(decision, :no_grants) = 0)
       OR seq IN (SELECT seq FROM grantees WHERE customer_id = :customer)
    ORDER BY seq
    """
)

_COMMIT_ARRAYS = (
    *("e_id", "e_type", "e_customer", "e_at", "e_phase", "e_fingerprint", "e_decision"),
    *("e_decided_at", "e_data", "e_claims", "g_event", "g_customer"),
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
        p["e_claims"].append(encode_claims(record.claims, event.customer_id))
        for other in grantees_of(event.customer_id, decision):
            p["g_event"].append(event.id)
            p["g_customer"].append(other)
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

    # configuration
    async def record_campaign(self, version: CampaignVersion) -> bool:
        """Keep a campaign version the first time any worker runs it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                _RECORD_CAMPAIGN,
                {
                    "digest": version.digest,
                    "campaign_id": version.campaign_id,
                    "source": version.source,
                    "loaded_at": _utc(version.loaded_at),
                    "loaded_by": version.loaded_by,
                },
            )
            return result.first() is not None

    async def campaign_versions(self) -> Sequence[CampaignVersion]:
        async with self._reader.connect() as conn:
            rows = (await conn.execute(_CAMPAIGN_VERSIONS)).all()
        return [
            CampaignVersion(r.digest, r.campaign_id, r.source, _utc(r.loaded_at), r.loaded_by)
            for r in rows
        ]

    # event log
    async def find_event(self, event_id: str) -> EventRecord | None:
        return await self._finds.submit(event_id)

    async def commit(self, record: EventRecord) -> EventRecord:
        return await self._commits.submit(record)

    async def commit_many(self, records: Sequence[EventRecord]) -> list[EventRecord | Exception]:
        """Commit the records as `commit` does, together: they share group commits."""
        results = await asyncio.gather(
            *(self._commits.submit(r) for r in records), return_exceptions=True
        )
        out: list[EventRecord | Exception] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled, or the process is stopping
            out.append(result)
        return out

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]:
        async with self._reader.connect() as conn:
            params = {"customer": customer_id, "no_grants": NO_GRANTS}
            rows = (await conn.execute(_LEDGER_FOR, params)).all()
        return tuple(
            grant
            for row in rows
            for grant in decode_decision(row.decision).grants
            if grant.customer_id == customer_id
        )

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
            claims = decode_claims(row.id, row.customer_id, row.claims)
            out[row.id] = EventRecord(event, row.fingerprint, row.phase, decision, claims)
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
