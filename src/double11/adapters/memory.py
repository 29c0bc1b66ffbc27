"""The in-process store: every port in plain dictionaries, owned by one event loop.

It is the reference behaviour the contract tests hold every store to, and the
in-memory half of the SQLite store, which adds durability underneath.
Each method does its work without awaiting in the middle, so on one event
loop each is atomic.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from double11.domain.customer import Customer
from double11.domain.events import Event
from double11.domain.facts import CustomerState
from double11.domain.ledger import LedgerEntry
from double11.domain.limits import Claim, ClaimOutcome, LimitCounters, MechanicUsage
from double11.engine.ports import EventRecord

RETAIN_S = 120.0


@dataclass(slots=True)
class _Counts:
    """One customer's event counts and perks."""

    phase: dict[str, dict[str, int]] = field(default_factory=dict)  # phase -> type -> n
    campaign: dict[str, int] = field(default_factory=dict)
    perks: dict[str, str] = field(default_factory=dict)

    def count(self, event_type: str, phase: str | None, by: int = 1) -> None:
        self.campaign[event_type] = self.campaign.get(event_type, 0) + by
        if phase is not None:
            in_phase = self.phase.setdefault(phase, {})
            in_phase[event_type] = in_phase.get(event_type, 0) + by

    def state(self, phase: str | None) -> CustomerState:
        # Copies: a state is a snapshot as of one event, and later events count on.
        in_phase = self.phase.get(phase, {}) if phase is not None else {}
        return CustomerState(dict(in_phase), dict(self.campaign), frozenset(self.perks))


class MemoryStore:
    """Customers, event log, ledger and limit book in memory: every port at once."""

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.events: dict[str, EventRecord] = {}
        self.ledger: defaultdict[str, list[LedgerEntry]] = defaultdict(list)
        self.counters = LimitCounters()
        self.counts: defaultdict[str, _Counts] = defaultdict(_Counts)
        # Observations and claims of events not yet committed, so a concurrent
        # duplicate of an in-flight event sees the same state and the same claims.
        self._observed: dict[str, CustomerState] = {}
        self._claimed: dict[tuple[str, str], Claim] = {}
        # The same for events committed in the last RETAIN_S seconds: a duplicate that
        # looked for its event just before the original committed must not count or
        # take again. Older duplicates find the committed event first.
        self._recent_observed: dict[str, CustomerState] = {}
        self._recent_claimed: set[tuple[str, str]] = set()
        self._recent: deque[tuple[float, str, tuple[tuple[str, str], ...]]] = deque()

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

    def apply(self, record: EventRecord) -> EventRecord:
        """Append a record unless its id is there; return the record that stands."""
        existing = self.events.get(record.event.id)
        if existing is not None:
            return existing
        self.events[record.event.id] = record
        for entry in record.decision.grants:
            self.ledger[entry.customer_id].append(entry)
        self._retire(record)
        return record

    def _retire(self, record: EventRecord) -> None:
        """Move a committed event's in-flight marks to the recent ones; forget old ones."""
        now = time.monotonic()
        event_id = record.event.id
        observed = self._observed.pop(event_id, None)
        if observed is not None:
            self._recent_observed[event_id] = observed
        keys = tuple((c.event_id, c.mechanic_id) for c in record.claims)
        for key in keys:
            self._claimed.pop(key, None)
        self._recent_claimed.update(keys)
        self._recent.append((now, event_id, keys))
        while self._recent and now - self._recent[0][0] > RETAIN_S:
            _, old_id, old_keys = self._recent.popleft()
            self._recent_observed.pop(old_id, None)
            self._recent_claimed.difference_update(old_keys)

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]:
        return tuple(self.ledger.get(customer_id, ()))

    # limit book
    async def observe(self, event: Event, phase: str | None) -> CustomerState:
        seen = self._observed.get(event.id) or self._recent_observed.get(event.id)
        if seen is not None:
            return seen
        counts = self.counts[event.customer_id]
        counts.count(event.type, phase)
        state = counts.state(phase)
        self._observed[event.id] = state
        return state

    async def take(self, claims: Sequence[Claim]) -> Mapping[str, ClaimOutcome]:
        results: dict[str, ClaimOutcome] = {}
        for claim in claims:
            key = (claim.event_id, claim.mechanic_id)
            if key in self._claimed or key in self._recent_claimed:
                results[claim.mechanic_id] = ClaimOutcome.TAKEN
                continue
            outcome = self.counters.take(claim)
            if outcome is ClaimOutcome.TAKEN:
                self._claimed[key] = claim
                self._hold_perks(claim)
            results[claim.mechanic_id] = outcome
        return results

    async def release(self, claims: Sequence[Claim]) -> None:
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

    def _hold_perks(self, claim: Claim) -> None:
        perks = self.counts[claim.customer_id].perks
        for perk in claim.perks:
            perks.setdefault(perk, claim.event_id)
