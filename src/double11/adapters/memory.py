"""The in-process store: every port in plain dictionaries, owned by one event loop.

It is the reference behaviour the contract tests hold every store to, and the
in-memory half of the SQLite store, which adds durability underneath.
Each method does its work without awaiting in the middle, so on one event
loop each is atomic.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic

from double11.domain.customer import Customer
from double11.domain.events import Event
from double11.domain.facts import CustomerState
from double11.domain.ledger import LedgerEntry
from double11.domain.limits import Claim, ClaimOutcome, LimitCounters, MechanicUsage
from double11.engine.ports import CampaignVersion, EventRecord

RETAIN_S = 120.0
_GENERATIONS = 4
# Bound to a name: looking an enum member up on its class costs ~70 ns on Python 3.11.
_TAKEN = ClaimOutcome.TAKEN


@dataclass(slots=True)
class _Counts:
    """One customer's event counts and perks."""

    phase: dict[str, dict[str, int]] = field(default_factory=dict)  # phase -> type -> n
    campaign: dict[str, int] = field(default_factory=dict)
    perks: dict[str, str] = field(default_factory=dict)

    def count(self, event_type: str, phase: str | None, by: int = 1) -> dict[str, int]:
        """Count `by` events of a type in a phase; return the phase's counts."""
        self.campaign[event_type] = self.campaign.get(event_type, 0) + by
        if phase is None:
            return _NO_COUNTS
        in_phase = self.phase.get(phase)
        if in_phase is None:
            in_phase = self.phase[phase] = {}
        in_phase[event_type] = in_phase.get(event_type, 0) + by
        return in_phase

    def uncount(self, event_type: str, phase: str | None) -> None:
        """Take back one event counted by `count`; a count back at zero goes."""
        for counts in (self.campaign, self.phase.get(phase) if phase is not None else None):
            if counts is not None:
                left = counts.get(event_type, 0) - 1
                if left > 0:
                    counts[event_type] = left
                else:
                    counts.pop(event_type, None)


# An in-flight event's observation: the state it saw, and what it counted (customer,
# type, phase) for a release to take back.
_Observed = tuple[CustomerState, str, str, str | None]

# Shared, never written: the counts of "no phase", and no perks.
_NO_COUNTS: dict[str, int] = {}
_NO_PERKS: frozenset[str] = frozenset()


class MemoryStore:
    """Customers, event log, ledger and limit book in memory: every port at once."""

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.versions: dict[str, CampaignVersion] = {}  # by digest, first run first
        self.events: dict[str, EventRecord] = {}
        self.ledger: defaultdict[str, list[LedgerEntry]] = defaultdict(list)
        self.counters = LimitCounters()
        self.counts: defaultdict[str, _Counts] = defaultdict(_Counts)
        # What each event observed and counted (customer, type, phase), kept while it
        # is in flight: a concurrent duplicate sees the same state and does not count
        # again, and a released event takes its count back. Once the event is
        # committed `find_event` answers for it, and nothing between that lookup and
        # `observe` waits, so a duplicate cannot miss both; dropping the entry at the
        # commit keeps the heap (and the collector's full passes) small.
        self._observed: dict[str, _Observed] = {}
        # Claims taken by events in flight (a failed commit releases them), and by
        # events committed in the last RETAIN_S seconds (never released again): a
        # duplicate that passed `find_event` while its original was in flight may take
        # after the original committed (when the risk step waits), and gets the same
        # claims instead of taking twice. Only (event, mechanic) keys are kept: tuples of
        # strings, which the collector stops tracking after its first look.
        self._claimed: dict[tuple[str, str], Claim] = {}
        self._recent: set[tuple[str, str]] = set()
        # Those keys by generations of RETAIN_S / _GENERATIONS seconds: one is forgotten
        # when _GENERATIONS newer ones have begun, so at least RETAIN_S after its
        # commit. This costs an append per claim, where a deque of times cost a clock
        # reading, a tuple and a check each.
        self._generations: deque[list[tuple[str, str]]] = deque([[]])
        self._generation_ends = monotonic() + RETAIN_S / _GENERATIONS

    # customers
    async def get_customer(self, customer_id: str) -> Customer | None:
        return self.customers.get(customer_id)

    async def put_customer(self, customer: Customer) -> bool:
        created = customer.id not in self.customers
        self.customers[customer.id] = customer
        return created

    # event log
    async def find_event(self, event_id: str) -> EventRecord | None:
        return self.events.get(event_id)

    async def commit(self, record: EventRecord) -> EventRecord:
        return self.apply(record)

    async def commit_many(self, records: Sequence[EventRecord]) -> list[EventRecord | Exception]:
        return [self.apply(record) for record in records]

    def apply(self, record: EventRecord) -> EventRecord:
        """Append a record unless its id is there; return the record that stands."""
        event_id = record.event.id
        existing = self.events.get(event_id)
        if existing is not None:
            # A duplicate that counted afresh (its original's marks were forgotten):
            # the original's count stands, so the duplicate's goes.
            self._uncount(event_id)
            return existing
        self.events[event_id] = record
        for entry in record.decision.grants:
            self.ledger[entry.customer_id].append(entry)
        self.settled(record)
        return record

    def settled(self, record: EventRecord) -> None:
        """The limit book's part of a commit: the record's count and claims now stand.

        `apply` calls it; a store that keeps records elsewhere calls it alone.
        """
        event_id = record.event.id
        self._observed.pop(event_id, None)
        # The event's in-flight claims are now committed ones.
        if record.claims:
            claimed, recent, generation = self._claimed, self._recent, self._generations[-1]
            for claim in record.claims:
                key = (claim.event_id, claim.mechanic_id)
                claimed.pop(key, None)
                recent.add(key)
                generation.append(key)
            if monotonic() >= self._generation_ends:
                self._next_generation()

    def _next_generation(self) -> None:
        """Begin a generation of committed claims; forget the oldest one's."""
        generations = self._generations
        generations.append([])
        self._generation_ends = monotonic() + RETAIN_S / _GENERATIONS
        if len(generations) > _GENERATIONS + 1:
            self._recent.difference_update(generations.popleft())

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]:
        return tuple(self.ledger.get(customer_id, ()))

    # configuration
    async def record_campaign(self, version: CampaignVersion) -> bool:
        if version.digest in self.versions:
            return False
        self.versions[version.digest] = version
        return True

    async def campaign_versions(self) -> Sequence[CampaignVersion]:
        return tuple(self.versions.values())

    # limit book
    async def observe(self, event: Event, phase: str | None) -> CustomerState:
        seen = self._observed.get(event.id)
        if seen is not None:
            return seen[0]
        counts = self.counts[event.customer_id]
        in_phase = counts.count(event.type, phase)
        perks = frozenset(counts.perks) if counts.perks else _NO_PERKS
        # Copies: a state is a snapshot as of one event, and later events count on.
        state = CustomerState(dict(in_phase), dict(counts.campaign), perks)
        self._observed[event.id] = (state, event.customer_id, event.type, phase)
        return state

    async def take(self, claims: Sequence[Claim]) -> Mapping[str, ClaimOutcome]:
        results: dict[str, ClaimOutcome] = {}
        claimed = self._claimed
        for claim in claims:
            key = (claim.event_id, claim.mechanic_id)
            if key in claimed:
                results[claim.mechanic_id] = _TAKEN
                continue
            if key in self._recent:
                results[claim.mechanic_id] = _TAKEN
                continue
            outcome = self.counters.take(claim)
            if outcome is _TAKEN:
                claimed[key] = claim
                if claim.perks:
                    self._hold_perks(claim)
            results[claim.mechanic_id] = outcome
        return results

    async def release(self, event: Event, claims: Sequence[Claim]) -> None:
        self._uncount(event.id)
        for claim in claims:
            if self._claimed.pop((claim.event_id, claim.mechanic_id), None) is not None:
                self.counters.release(claim)
                counts = self.counts[claim.customer_id]
                for perk in claim.perks:
                    if counts.perks.get(perk) == claim.event_id:
                        del counts.perks[perk]

    async def usage(self) -> Mapping[str, MechanicUsage]:
        return {mid: MechanicUsage(u.granted, u.spent) for mid, u in self.counters.usage.items()}

    async def close(self) -> None:
        return None

    # rebuilding, used by stores that keep this state on disk
    def restore(self, records: Iterable[EventRecord]) -> None:
        """Rebuild counts, limits and perks from committed records, in commit order."""
        for record in records:
            if record.event.id in self.events:
                continue
            self.events[record.event.id] = record
            for entry in record.decision.grants:
                self.ledger[entry.customer_id].append(entry)
            self.counts[record.event.customer_id].count(record.event.type, record.phase)
            for claim in record.claims:
                self.counters.add(claim)
                self._hold_perks(claim)

    def _uncount(self, event_id: str) -> None:
        """Take back the count an uncommitted event added, and forget what it observed."""
        observed = self._observed.pop(event_id, None)
        if observed is not None:
            _, customer_id, event_type, phase = observed
            self.counts[customer_id].uncount(event_type, phase)

    def _hold_perks(self, claim: Claim) -> None:
        perks = self.counts[claim.customer_id].perks
        for perk in claim.perks:
            perks.setdefault(perk, claim.event_id)
