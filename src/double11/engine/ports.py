"""The small interfaces the engine needs; adapters implement them.

Embedded mode has one object behind all three stores; scale-out puts customers
and the event log in PostgreSQL and the limit book in Redis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from double11.domain.customer import Customer
from double11.domain.decision import Decision, RiskAssessment
from double11.domain.events import Event
from double11.domain.facts import CustomerState, Facts
from double11.domain.ledger import LedgerEntry
from double11.domain.limits import Claim, ClaimOutcome, MechanicUsage
from double11.domain.values import value


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, time-zone aware."""
        ...


@value
class EventRecord:
    """An event as committed: its body's fingerprint, its phase and the decision it got."""

    event: Event
    fingerprint: str
    phase: str | None
    decision: Decision
    claims: tuple[Claim, ...] = ()


class CustomerStore(Protocol):
    async def get_customer(self, customer_id: str) -> Customer | None: ...

    async def put_customer(self, customer: Customer) -> bool:
        """Create or replace a profile; True when it was created."""
        ...


class EventLog(Protocol):
    async def find_event(self, event_id: str) -> EventRecord | None: ...

    async def commit(self, record: EventRecord) -> EventRecord:
        """Append the event, its decision and its ledger entries in one transaction.

        If the event id is already committed, write nothing and return the
        record that is there: the first writer wins.
        """
        ...

    async def commit_many(self, records: Sequence[EventRecord]) -> list[EventRecord | Exception]:
        """Commit each record as `commit` does, together, in order.

        Per record, the record that stands, or the error that kept it out: one
        record's failure is its own, not the batch's.
        """
        ...

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]: ...


class LimitBook(Protocol):
    async def observe(self, event: Event, phase: str | None) -> CustomerState:
        """Count the event into its customer's state and return the state.

        Idempotent per id while the event is in flight (a concurrent duplicate sees
        the same state); once it is committed, `find_event` answers for it.
        """
        ...

    async def take(self, claims: Sequence[Claim]) -> Mapping[str, ClaimOutcome]:
        """Take each claim atomically, by mechanic id; idempotent per (event, mechanic)."""
        ...

    async def release(self, event: Event, claims: Sequence[Claim]) -> None:
        """Undo an event that will not be committed: the count it added to its customer's
        state (if it was counted afresh) and the claims it took. Twice undoes once."""
        ...

    async def usage(self) -> Mapping[str, MechanicUsage]: ...


@dataclass(frozen=True, slots=True)
class CampaignVersion:
    """A campaign file as a store first ran it: its exact text, when, and who ran it."""

    digest: str
    campaign_id: str
    source: str
    loaded_at: datetime
    loaded_by: str


class ConfigLog(Protocol):
    """Where the campaign versions a store has run are kept, so a change can be traced
    and an earlier version served again."""

    async def record_campaign(self, version: CampaignVersion) -> bool:
        """Keep a version the first time it runs (by digest); True when it was new."""
        ...

    async def campaign_versions(self) -> Sequence[CampaignVersion]:
        """Every version kept, the first run first."""
        ...


class RiskStep(Protocol):
    async def assess(self, facts: Facts) -> RiskAssessment:
        """Return a verdict with reasons for the event in `facts`."""
        ...


@dataclass(frozen=True, slots=True)
class Stores:
    """The adapters one engine runs on, and what closes them."""

    customers: CustomerStore
    events: EventLog
    limits: LimitBook
    closers: tuple[Closer, ...] = ()
    # None only for test doubles that wrap a store: every store keeps versions.
    config: ConfigLog | None = None

    async def close(self) -> None:
        for closer in self.closers:
            await closer.close()


class Closer(Protocol):
    async def close(self) -> None: ...
