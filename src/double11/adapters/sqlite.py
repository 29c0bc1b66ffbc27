"""The embedded store: live state in memory, durability in one SQLite file (WAL).

One process owns the file (a lock beside it makes sure). What the hot path reads on
every event is kept in memory: limit counters, per-customer event counts and
perks (a `MemoryStore` holds them, rebuilt at open from the events' claims in
commit order) and customer profiles (a cache; puts write through).
Event records and the ledger are not kept: `find_event` and `ledger_for` are
point lookups on the file, and records being committed are answered from memory.

`commit` is durable before it returns. Commits queue for one writer task, which
takes up to `MAX_BATCH` of them and writes them in ONE transaction on a thread
of its own (group commit): the fsync of a batch overlaps deciding the next
events, and one fsync pays for hundreds of them.

An event is one row, its ledger entries inside its decision and its claims in
`events.claims` (migration 0003 says why). The file has no index by customer:
wallet reads find a customer's granting events through an index kept in memory
(`_granting`, customer id -> seqs), filled at open and after each write, since
a random-key index on disk dirtied a page per event in every group commit.

Statements are compiled once from the SQLAlchemy Core tables in
`double11.adapters.schema` and run on stdlib `sqlite3` connections directly, a
batch's rows in one multi-row INSERT (see `_MultiInsert`); instants are
converted as the schema's type does (a unit test holds them to it), so
SQLAlchemy reads the rows back as it would have written them. Measured on
ledger rows built from `LedgerEntry`, 500 a transaction, synchronous=FULL: a
median 24k rows/s through a SQLAlchemy `Connection`'s executemany, 37k this
way; and this way holds the GIL, which the event loop needs, far less.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any, Final

import msgspec
from sqlalchemy import Dialect, Table, bindparam, func, insert, literal, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql import ClauseElement

from double11.adapters import migrate
from double11.adapters.idfilter import IdFilter
from double11.adapters.memory import MemoryStore
from double11.adapters.schema import campaign_versions, customers, events, grantees
from double11.domain.customer import Customer
from double11.domain.decision import Decision, RiskAssessment, Verdict
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
from double11.errors import InvalidInput, Unavailable

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

DEFAULT_PATH = "double11.db"
MAX_BATCH: Final = 500
SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL")

# The writer's page cache (KiB when negative): the indexes of a campaign's busy
# hours stay in memory, so inserting into them reads nothing back from disk.
_WRITER_CACHE_KIB: Final = 64 * 1024
# The writer never checkpoints: copying the WAL back into the file in its thread
# stalled commits for 50-70 ms every ~60k events (measured, FULL, 200k events), and
# every decision waiting on them. A checkpointer thread with its own connection
# does PASSIVE checkpoints instead, which commits carry on beside, this often:
_CHECKPOINT_EVERY_S: Final = 0.5
_BUSY_TIMEOUT_MS: Final = 5_000
_RESTORE_CHUNK: Final = 10_000
_instant_encoder = msgspec.json.Encoder()


def sqlite_path(url: str) -> Path:
    """The database file a `sqlite:` URL names; `./double11.db` when it names none."""
    if url in ("sqlite:", "sqlite://"):
        return Path(DEFAULT_PATH)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"not a database URL: {url!r}", "db") from exc
    if parsed.get_backend_name() != "sqlite":
        raise InvalidInput(f"not a SQLite URL: {url!r}", "db")
    database = parsed.database
    if not database:
        return Path(DEFAULT_PATH)
    if database == ":memory:" or database.startswith("file:"):
        # The writer and the reader are two connections; an in-memory SQLite
        # database would be a different, empty one for each.
        raise InvalidInput("SQLite needs a file; use memory:// for a store without one", "db")
    return Path(database)


async def open_sqlite_store(url: str, *, synchronous: str = "FULL") -> SqliteStore:
    """Open (creating and migrating if need be) the SQLite file `url` names, and load its state.

    `synchronous` is SQLite's: FULL makes every commit survive a power cut;
    NORMAL, in WAL mode, may lose the last commits on one but never corrupts.
    """
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise InvalidInput(f"must be one of {', '.join(SYNCHRONOUS_MODES)}", "sqlite_synchronous")
    path = sqlite_path(url)
    store = SqliteStore(path, mode)
    try:
        await store.start()
    except BaseException:
        await store.close()
        raise
    return store


@dataclass(slots=True)
class WriterStats:
    """What the writer has done since the store opened: transactions and events."""

    batches: int = 0
    events: int = 0
    largest_batch: int = 0


@dataclass(slots=True, eq=False)
class _Pending:
    """A record waiting for the writer, its row already built, and who waits for it."""

    record: EventRecord
    row: list[Any]
    # Customers besides the event's own that it grants to (nearly always none).
    others: list[str]
    # One future per waiter, so a waiter that is cancelled cancels only its own.
    waiters: list[asyncio.Future[EventRecord]] = field(default_factory=list, repr=False)

    @property
    def seq(self) -> int:
        """The commit order the writer gave the row."""
        seq: int = self.row[_SEQ]
        return seq

    def wait(self) -> asyncio.Future[EventRecord]:
        """A future that gets the record standing once the batch is written, or its error."""
        waiter: asyncio.Future[EventRecord] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def resolve(self, result: EventRecord) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(result)

    def fail(self, exc: BaseException) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                error = Unavailable(f"the SQLite write failed: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
                waiter.set_exception(error)


class SqliteStore(MemoryStore):
    """Customers, event log, ledger and limit book on one SQLite file: every port at once.

    The limit book (`observe`, `take`, `release`, `usage`) is `MemoryStore`'s, on
    state rebuilt from the file; `customers` is a cache of the profiles in the
    file; `events` and `ledger` stay empty, since records live in the file, and
    `_granting` lists, per customer, the seqs of their events that granted.
    """

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = path
        self.synchronous = synchronous
        self.stats = WriterStats()
        self._db = _Database(path)
        # One thread does every write, so writes never contend for SQLite's lock.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="double11-sqlite")
        self._in_flight: dict[str, _Pending] = {}
        # Every committed id, so that a new event (nearly all) needs no read.
        self._seen = IdFilter()
        self._granting: dict[str, list[int]] = {}
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    async def start(self) -> None:
        """Lock and migrate the file, load its state and start the writer."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._db.open, self.synchronous)
        await loop.run_in_executor(self._executor, self._db.restore, self)
        self._writer_task = asyncio.create_task(
            self._write_forever(), name="double11-sqlite-writer"
        )

    # what the book counts, the filter learns: at open (restore) and after each write
    def settled(self, record: EventRecord) -> None:
        self._seen.add(record.event.id)
        super().settled(record)

    def restore(self, records: Iterable[EventRecord]) -> None:
        listed = list(records)
        self._seen.add_all(r.event.id for r in listed)
        super().restore(listed)

    # customers
    async def get_customer(self, customer_id: str) -> Customer | None:
        """The profile, from the cache or else the file."""
        cached = self.customers.get(customer_id)
        if cached is not None:
            return cached
        # A primary-key lookup in WAL mode never waits for the writer, and costs
        # a few microseconds: less than handing it to a thread.
        found = self._db.get_customer(customer_id)
        if found is not None:
            self.customers.setdefault(customer_id, found)
        return found

    async def put_customer(self, customer: Customer) -> bool:
        """Create or replace a profile, durably; True when it was created."""
        self._check_open()
        profile = encode_customer(customer)
        loop = asyncio.get_running_loop()
        created = await loop.run_in_executor(
            self._executor, self._db.put_customer, customer.id, profile, datetime.now(UTC)
        )
        self.customers[customer.id] = customer
        return created

    # event log
    async def find_event(self, event_id: str) -> EventRecord | None:
        """The committed record of the event; waits for it if it is being committed now."""
        pending = self._in_flight.get(event_id)
        if pending is not None:
            try:
                return await pending.wait()
            except Unavailable:
                return None  # its commit failed, so nothing of it was written
        if not self._seen.might_contain(event_id):
            return None
        return self._db.find_event(event_id)

    async def commit(self, record: EventRecord) -> EventRecord:
        """Write the record durably in the writer's next transaction; the first writer wins."""
        self._check_open()
        waiter = self._enqueue(record)
        self._wake.set()
        return await waiter

    async def commit_many(self, records: Sequence[EventRecord]) -> list[EventRecord | Exception]:
        """Write the records durably, in order, in the writer's next transactions.

        Per record, the record that stands or the error that kept it out, as `commit`;
        one call queues them all before it waits, so they share transactions.
        """
        self._check_open()
        waiters = [self._enqueue(record) for record in records]
        self._wake.set()
        out: list[EventRecord | Exception] = []
        for waiter in waiters:
            # Once the first is answered most others are too: awaiting a done future
            # does not suspend.
            try:
                out.append(await waiter)
            except Unavailable as exc:
                out.append(exc)
        return out

    def _enqueue(self, record: EventRecord) -> asyncio.Future[EventRecord]:
        """Queue a record for the writer; the future gets the record that stands."""
        event_id = record.event.id
        pending = self._in_flight.get(event_id)
        if pending is None:
            pending = _Pending(
                record, _row(record), grantees_of(record.event.customer_id, record.decision)
            )
            self._in_flight[event_id] = pending
            self._queue.append(pending)
        # Otherwise the same event is being committed now: share its outcome, so the
        # first writer wins, and a failure fails both (the claims were released once).
        return pending.wait()

    # configuration
    async def record_campaign(self, version: CampaignVersion) -> bool:
        """Keep a campaign version in the file the first time it runs."""
        self._check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._db.record_campaign, version)

    async def campaign_versions(self) -> Sequence[CampaignVersion]:
        return self._db.campaign_versions()

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]:
        """The customer's ledger entries, in commit order, read from the file."""
        seqs = self._granting.get(customer_id)
        return self._db.ledger_for(customer_id, seqs) if seqs else ()

    def _granted(self, customer_id: str, seq: int) -> None:
        """Note that the customer's event at `seq` granted, for `ledger_for`."""
        seqs = self._granting.get(customer_id)
        if seqs is None:
            self._granting[customer_id] = [seq]
        else:
            seqs.append(seq)

    async def close(self) -> None:
        """Write every queued commit, stop the writer and close the file."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        if self._writer_task is not None:
            # Waits without raising: if the writer died, its waiters got the error,
            # and the file and its lock must be let go all the same.
            await asyncio.wait([self._writer_task])
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._db.close)
        self._executor.shutdown(wait=True)

    # the writer
    def _check_open(self) -> None:
        if self._closing:
            raise Unavailable("the SQLite store is closed")

    async def _write_forever(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                try:
                    stored = await loop.run_in_executor(self._executor, self._db.write_batch, batch)
                except Exception as exc:
                    self._fail(batch, exc)
                else:
                    await self._settle(batch, stored)
        except BaseException as exc:
            # The writer is gone (cancelled with its loop, or a bug): nobody may wait
            # for it forever. Whether the batch in hand was written is unknown here;
            # reopening the file rebuilds memory from what was.
            self._closing = True
            self._fail(list(self._in_flight.values()), exc)
            self._queue.clear()
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("the SQLite writer stopped; the store refuses further commits")
            raise

    async def _settle(self, batch: list[_Pending], stored: list[EventRecord | None]) -> None:
        """Apply a written batch to memory and answer its waiters (nothing here suspends)."""
        results: list[EventRecord] = []
        for pending, existing in zip(batch, stored, strict=True):
            del self._in_flight[pending.record.event.id]
            if existing is None:
                record = pending.record
                self.settled(record)
                if record.decision.grants:
                    for customer_id in (record.event.customer_id, *pending.others):
                        self._granted(customer_id, pending.seq)
                results.append(record)
            else:
                # The event was already in the file: this attempt's claims were
                # never written, so they go back, and the stored record stands.
                await self.release(pending.record.event, pending.record.claims)
                self.settled(existing)
                results.append(existing)
        self.stats.batches += 1
        self.stats.events += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for pending, result in zip(batch, results, strict=True):
            pending.resolve(result)

    def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        """Fail every waiter of a batch whose transaction rolled back."""
        for pending in batch:
            self._in_flight.pop(pending.record.event.id, None)
            pending.fail(exc)


class _Database:
    """The file, its lock, its two connections and the compiled statements.

    The writer connection is used only on the store's writer thread; the reader
    connection only on the event loop's thread, for point lookups.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sql = _Statements(sqlite_dialect.dialect(paramstyle="qmark"))
        self._lock_fd: int | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._next_seq = 1

    # opening and closing (writer thread)
    def open(self, synchronous: str) -> None:
        self._lock()
        migrate.upgrade(f"sqlite:///{self.path}")
        writer = self._writer = self._connect()
        mode = writer.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
        if str(mode).lower() != "wal":
            raise Unavailable(f"{self.path}: SQLite would not use WAL mode (got {mode!r})")
        writer.execute(f"PRAGMA synchronous={synchronous}")
        writer.execute(f"PRAGMA cache_size={-_WRITER_CACHE_KIB}")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        self.sql.variables = writer.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._reader = self._connect()
        self._checkpointer = _Checkpointer(self)
        self._checkpointer.start()
        top = writer.execute(self.sql.max_seq).fetchall()[0][0]
        self._next_seq = (top or 0) + 1

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._writer is not None:
            # Everything into the file, and the WAL emptied, before letting go.
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # last: the file is no longer in use
            self._lock_fd = None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; the writer says BEGIN and
        # COMMIT itself, and every read is its own snapshot of the newest commit.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        return connection

    def _lock(self) -> None:
        """Lock the file for this store: the in-memory state is right only for one owner.

        The lock is on `<file>.lock`, not on the database: closing any descriptor
        of the database would drop the POSIX locks SQLite holds on it.
        """
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._lock_fd = fd
        if sys.platform == "win32":
            return  # no flock there: the one-owner rule is not enforced on Windows
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Unavailable(
                f"{self.path} is open in another double11 store; one process owns the file"
            ) from None

    # loading state (writer thread, before the store serves)
    def restore(self, book: SqliteStore) -> None:
        """Rebuild counts, limits, perks and the customer index in `book`, in commit order."""
        rows = self.writer.execute(self.sql.restore)
        while chunk := list(islice(rows, _RESTORE_CHUNK)):
            book.restore([_counting_record(row) for row in chunk])
            # `restore` files records and ledgers too; the store keeps those on disk.
            book.events.clear()
            book.ledger.clear()
            for _, _, customer_id, _, _, seq, granted in chunk:
                if granted:
                    book._granted(customer_id, seq)
        # Grants to customers besides the event's own: merged into those customers' lists,
        # which `ledger_for` reads in ascending order.
        touched: set[str] = set()
        for customer_id, seq in self.writer.execute(self.sql.grantees).fetchall():
            book._granted(customer_id, seq)
            touched.add(customer_id)
        for customer_id in touched:
            book._granting[customer_id].sort()

    # writing (writer thread)
    def write_batch(self, batch: Sequence[_Pending]) -> list[EventRecord | None]:
        """Write a batch in one transaction; per record, None if written, else the stored one."""
        try:
            self._insert(batch)
        except sqlite3.IntegrityError:
            # Usually an event already in the file: a retry that raced its
            # original past `find_event`. Write the rest; the stored ones stand.
            stored = self._existing([p.record.event.id for p in batch])
            if not stored:
                raise
            self._insert([p for p in batch if p.record.event.id not in stored])
            return [
                self.find_event(p.record.event.id, self.writer)
                if p.record.event.id in stored
                else None
                for p in batch
            ]
        return [None] * len(batch)

    def _insert(self, batch: Sequence[_Pending]) -> None:
        sql = self.sql
        seq = self._next_seq
        for offset, pending in enumerate(batch):
            pending.row[_SEQ] = seq + offset
        with self._transaction() as connection:
            sql.insert_events.run(connection, [p.row for p in batch])
            others = [(c, p.seq) for p in batch for c in p.others]
            if others:
                sql.insert_grantees.run(connection, others)
        self._next_seq = seq + len(batch)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer's connection inside BEGIN IMMEDIATE: committed, or rolled back."""
        connection = self.writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _existing(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(event_ids), self.sql.variables):
            chunk = event_ids[start : start + self.sql.variables]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id FROM events WHERE id IN ({marks})"  # noqa: S608 - only '?' marks
            found.update(row[0] for row in self.writer.execute(query, chunk).fetchall())
        return found

    def put_customer(self, customer_id: str, profile: str, now: datetime) -> bool:
        with self._transaction() as connection:
            created = not connection.execute(self.sql.customer_exists, (customer_id,)).fetchall()
            connection.execute(self.sql.upsert_customer, (customer_id, profile, instant_in(now)))
        return created

    def record_campaign(self, version: CampaignVersion) -> bool:
        with self._transaction() as connection:
            cursor = connection.execute(
                self.sql.record_campaign,
                (
                    version.digest,
                    version.campaign_id,
                    version.source,
                    instant_in(version.loaded_at),
                    version.loaded_by,
                ),
            )
        return cursor.rowcount == 1

    # reading (event loop, or the writer thread with its own connection)
    def campaign_versions(self) -> list[CampaignVersion]:
        rows = self.reader.execute(self.sql.campaign_versions).fetchall()
        return [
            CampaignVersion(digest, campaign_id, source, instant_out(at), by)
            for digest, campaign_id, source, at, by in rows
        ]

    def find_event(
        self, event_id: str, connection: sqlite3.Connection | None = None
    ) -> EventRecord | None:
        connection = connection or self.reader
        sql = self.sql
        # fetchall, always: a statement left unfinished would pin the reader to an
        # old snapshot and stop checkpoints from recycling the WAL.
        found = connection.execute(sql.find_event, (event_id,)).fetchall()
        if not found:
            return None
        event_type, customer_id, at, phase, fingerprint, decision, data, claims = found[0]
        event = Event(event_id, event_type, customer_id, instant_out(at), decode_event_data(data))
        taken = decode_claims(event_id, customer_id, claims)
        return EventRecord(event, fingerprint, phase, decode_decision(decision), taken)

    def ledger_for(self, customer_id: str, seqs: Sequence[int]) -> tuple[LedgerEntry, ...]:
        """The customer's grants in the events at `seqs` (ascending), in commit order."""
        entries: list[LedgerEntry] = []
        for start in range(0, len(seqs), self.sql.variables):
            chunk = seqs[start : start + self.sql.variables]
            marks = ",".join("?" * len(chunk))
            # Only '?' marks are formatted in; ix_events_seq finds each row.
            query = f"SELECT decision FROM events WHERE seq IN ({marks}) ORDER BY seq"  # noqa: S608
            for (decision,) in self.reader.execute(query, chunk).fetchall():
                entries.extend(
                    g for g in decode_decision(decision).grants if g.customer_id == customer_id
                )
        return tuple(entries)

    def get_customer(self, customer_id: str) -> Customer | None:
        rows = self.reader.execute(self.sql.get_customer, (customer_id,)).fetchall()
        return decode_customer(rows[0][0]) if rows else None

    @property
    def writer(self) -> sqlite3.Connection:
        if self._writer is None:
            raise Unavailable("the SQLite store is closed")
        return self._writer

    @property
    def reader(self) -> sqlite3.Connection:
        if self._reader is None:
            raise Unavailable("the SQLite store is closed")
        return self._reader


class _Checkpointer:
    """A thread that copies the WAL into the file, PASSIVE, every `_CHECKPOINT_EVERY_S`.

    PASSIVE never waits for the writer nor blocks it, so commits go on beside it;
    once a checkpoint has caught up, SQLite starts the WAL again from its beginning.
    """

    def __init__(self, db: _Database) -> None:
        self._db = db
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="double11-sqlite-checkpoint", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connection = self._db._connect()
        try:
            while not self._stop.wait(_CHECKPOINT_EVERY_S):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # The next round tries again; the WAL only grows meanwhile.
                    log.warning("a WAL checkpoint failed", exc_info=True)
        finally:
            connection.close()


class _Statements:
    """SQL compiled once from the Core tables."""

    def __init__(self, dialect: Dialect) -> None:
        def sql(statement: ClauseElement, literal_binds: bool = False) -> str:
            kwargs = {"literal_binds": literal_binds}
            return str(statement.compile(dialect=dialect, compile_kwargs=kwargs))

        # SQLite's limit on '?' in one statement; read from the connection at open.
        self.variables = 999
        self.insert_events = _MultiInsert(events, _EVENT_COLUMNS, dialect, self)
        self.insert_grantees = _MultiInsert(grantees, ("customer_id", "seq"), dialect, self)
        self.grantees = sql(select(grantees.c.customer_id, grantees.c.seq))
        self.max_seq = sql(select(func.max(events.c.seq)))
        e, cu = events.c, customers.c
        self.find_event = sql(
            select(
                e.type, e.customer_id, e.at, e.phase, e.fingerprint, e.decision, e.data, e.claims
            ).where(e.id == bindparam("id"))
        )
        # What counting needs, not the decision: decoding every decision would make
        # opening a large file slow for nothing.
        granted = func.instr(e.decision, literal(NO_GRANTS)) == 0
        self.restore = sql(
            select(e.id, e.type, e.customer_id, e.phase, e.claims, e.seq, granted).order_by(e.seq),
            literal_binds=True,
        )
        self.get_customer = sql(select(cu.profile).where(cu.id == bindparam("id")))
        v = campaign_versions.c
        self.record_campaign = sql(
            sqlite_dialect.insert(campaign_versions)
            .values(
                digest=bindparam("digest"),
                campaign_id=bindparam("campaign_id"),
                source=bindparam("source"),
                loaded_at=bindparam("loaded_at"),
                loaded_by=bindparam("loaded_by"),
            )
            .on_conflict_do_nothing(index_elements=[v.digest])
        )
        self.campaign_versions = sql(
            select(v.digest, v.campaign_id, v.source, v.loaded_at, v.loaded_by).order_by(
                v.loaded_at, v.digest
            )
        )
        self.customer_exists = sql(select(cu.id).where(cu.id == bindparam("id")))
        upsert = sqlite_dialect.insert(customers)
        self.upsert_customer = sql(
            upsert.values(
                id=bindparam("id"), profile=bindparam("profile"), updated_at=bindparam("at")
            ).on_conflict_do_update(
                index_elements=[cu.id],
                set_={"profile": upsert.excluded.profile, "updated_at": upsert.excluded.updated_at},
            )
        )


class _MultiInsert:
    """An INSERT of many rows in ONE statement, for one table.

    `executemany` steps SQLite once a row and gives the GIL back and takes it
    again each time; while the event loop is busy, taking it back waits up to
    the interpreter's switch interval (5 ms). One multi-row statement does a
    whole batch's SQLite work in one step, with the GIL released, beside the loop.
    """

    def __init__(
        self, table: Table, columns: tuple[str, ...], dialect: Dialect, limits: _Statements
    ) -> None:
        compiled = insert(table).compile(dialect=dialect)
        if tuple(compiled.positiontup or ()) != columns:
            raise RuntimeError(f"the {table.name} table's columns moved: {compiled.positiontup}")
        head, _, row = str(compiled).partition(" VALUES ")
        self._head = head + " VALUES "
        self._row = row
        self._width = len(columns)
        self._limits = limits

    def run(self, connection: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        per_statement = max(1, self._limits.variables // self._width)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            # Built each time (microseconds); sqlite3's own cache keeps the prepared
            # statements of the batch sizes in use.
            statement = self._head + ",".join([self._row] * len(chunk))
            connection.execute(statement, list(chain.from_iterable(chunk)))


# An events row holds these columns in this order; `_MultiInsert` checks them.
_EVENT_COLUMNS = (
    "id",
    "seq",
    "type",
    "customer_id",
    "at",
    "phase",
    "fingerprint",
    "decision",
    "decided_at",
    "data",
    "claims",
)
_SEQ = 1


def _row(record: EventRecord) -> list[Any]:
    """The events row of a record; `seq` is set when it is written."""
    event, decision = record.event, record.decision
    return [
        event.id,
        None,
        event.type,
        event.customer_id,
        instant_in(event.at),
        record.phase,
        record.fingerprint,
        encode_decision(decision).decode(),
        instant_in(decision.decided_at),
        encode_event_data(event.data),
        encode_claims(record.claims, event.customer_id),
    ]


# Conversions of `schema.Instant` on SQLite, written out: the type's own processors
# (through SQLAlchemy's DATETIME) cost ~13 µs an instant here, two per event; these
# give the same text and values (a unit test holds them to the processors) in ~1 µs.


def instant_in(value: datetime) -> str:
    """An aware instant as `schema.Instant` stores it on SQLite: naive UTC text."""
    if value.tzinfo is None:
        raise ValueError("instants must be time-zone aware")
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    # msgspec writes '"YYYY-MM-DDTHH:MM:SS[.ffffff]Z"' in 0.05 µs where isoformat() took
    # 1.2; its six digits of microseconds are left out when they are all zero.
    text = _instant_encoder.encode(utc).decode()
    fraction = text[21:27] if text[20] == "." else "000000"
    return f"{text[1:11]} {text[12:20]}.{fraction}"


def instant_out(value: str) -> datetime:
    """An instant as `schema.Instant` reads it back on SQLite: aware, in UTC."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _counting_record(row: Sequence[Any]) -> EventRecord:
    """A record carrying what counting needs (a row of `restore`): no decision, no data."""
    event_id, event_type, customer_id, phase, claims = row[:5]
    event = Event(event_id, event_type, customer_id, _EPOCH)
    decision = Decision(event_id, customer_id, event_type, phase, _UNREAD, (), (), _EPOCH)
    return EventRecord(event, "", phase, decision, decode_claims(event_id, customer_id, claims))


# Placeholders in the records built only for counting (see `_counting_record`).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNREAD = RiskAssessment(Verdict.ALLOW, ("decision not read: rebuilding counts",))


__all__ = [
    "DEFAULT_PATH",
    "MAX_BATCH",
    "SYNCHRONOUS_MODES",
    "SqliteStore",
    "WriterStats",
    "open_sqlite_store",
    "sqlite_path",
]
