"""Events, claims, grants and records for the contract tests, built from the domain types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import msgspec

from double11.domain.decision import (
    Decision,
    MechanicOutcome,
    Outcome,
    RiskAssessment,
    Verdict,
)
from double11.domain.events import Event
from double11.domain.ledger import Asset, EntryKind, LedgerEntry
from double11.domain.limits import Claim, ClaimOutcome, MechanicUsage
from double11.engine.pipeline import fingerprint
from double11.engine.ports import EventRecord, Stores

SHANGHAI = timezone(timedelta(hours=8))
MAIN_DAY = datetime(2026, 11, 11, 10, 0, tzinfo=SHANGHAI)


def event(
    event_id: str,
    customer_id: str = "c1",
    type_: str = "deposit",
    at: datetime = MAIN_DAY,
    amount: str = "1000.00",
) -> Event:
    """An event as a bank system reports it, with money in its data."""
    return Event(event_id, type_, customer_id, at, {"amount": Decimal(amount)})


def claim(
    event_id: str,
    mechanic_id: str = "m1",
    customer_id: str = "c1",
    *,
    cost: str = "0.00",
    quota: int | None = None,
    budget: str | None = None,
    cap: int | None = None,
    cap_bucket: str = "",
    perks: tuple[str, ...] = (),
) -> Claim:
    """A claim on one mechanic's limits."""
    return Claim(
        event_id,
        mechanic_id,
        customer_id,
        Decimal(cost),
        quota,
        None if budget is None else Decimal(budget),
        cap,
        cap_bucket,
        perks,
    )


def grant(
    of: Event,
    mechanic_id: str = "m1",
    *,
    customer_id: str | None = None,
    points: int = 10,
    cost: str = "0.00",
    seq: int = 0,
    attributes: dict[str, str] | None = None,
) -> LedgerEntry:
    """A grant of points the event earns, by default to its own customer."""
    return LedgerEntry(
        f"{of.id}/{mechanic_id}/{seq}",
        of.id,
        mechanic_id,
        customer_id or of.customer_id,
        EntryKind.GRANT,
        Asset.POINTS,
        of.at,
        points=points,
        cost=Decimal(cost),
        attributes=attributes or {"source": "contract"},
    )


def record(
    of: Event,
    claims: Sequence[Claim] = (),
    grants: Sequence[LedgerEntry] = (),
    *,
    phase: str | None = "main",
    decided_after: timedelta = timedelta(milliseconds=3),
) -> EventRecord:
    """The record of an event decided with these grants and taken claims."""
    mechanics = dict.fromkeys([c.mechanic_id for c in claims] + [g.mechanic_id for g in grants])
    decision = Decision(
        of.id,
        of.customer_id,
        of.type,
        phase,
        RiskAssessment(Verdict.ALLOW, ("contract test",)),
        tuple(MechanicOutcome(m, Outcome.FIRED, "granted") for m in mechanics),
        tuple(grants),
        of.at + decided_after,
    )
    return EventRecord(of, fingerprint(of), phase, decision, tuple(claims))


async def decide(stores: Stores, rec: EventRecord) -> EventRecord:
    """Observe, take and commit a record the way the engine does; return what stands."""
    await stores.limits.observe(rec.event, rec.phase)
    taken = await stores.limits.take(rec.claims)
    assert all(taken[c.mechanic_id] is ClaimOutcome.TAKEN for c in rec.claims), taken
    return await stores.events.commit(rec)


def essence(rec: EventRecord | None) -> object:
    """What a stored record must keep: everything, the event's data as JSON values (a store
    gives amounts back as the strings it kept; `normalise_data` types them again)."""
    if rec is None:
        return None
    e = rec.event
    data = msgspec.to_builtins(e.data)
    return (
        *(e.id, e.type, e.customer_id, e.at, data),
        *(rec.fingerprint, rec.phase, rec.decision, rec.claims),
    )


def used(usage: Mapping[str, MechanicUsage], mechanic_id: str) -> tuple[int, Decimal]:
    """(granted, spent) of one mechanic; nothing used when the store reports nothing for it."""
    found = usage.get(mechanic_id)
    return (0, Decimal("0.00")) if found is None else (found.granted, found.spent)
