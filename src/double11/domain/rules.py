"""Deciding one event, without saving anything.

`plan` finds which mechanics the event may fire and what each would grant;
the engine then takes the candidates' claims on their limits through a store,
and `settle` turns the outcome into a `Decision`. Keeping deciding apart from
committing lets a quote or a rehearsal run the same code and write nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from double11.domain.campaign import (
    Campaign,
    CapPeriod,
    GrantSpec,
    LotteryTicketGrant,
    Mechanic,
    PerkGrant,
    PointsGrant,
    RateBoostCouponGrant,
)
from double11.domain.decision import (
    Decision,
    MechanicOutcome,
    Outcome,
    RiskAssessment,
    Verdict,
)
from double11.domain.errors import ConditionError
from double11.domain.facts import Facts
from double11.domain.ledger import Asset, EntryKind, LedgerEntry
from double11.domain.limits import Claim, ClaimOutcome
from double11.domain.money import ZERO, yuan, yuan_str

DAYS_PER_YEAR = Decimal(365)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A mechanic whose phase and condition hold: the claim it needs and what it would write."""

    mechanic: Mechanic
    claim: Claim
    entries: tuple[LedgerEntry, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """The mechanics an event triggers, each either already decided or a candidate."""

    phase: str | None
    decided: tuple[MechanicOutcome, ...]
    candidates: tuple[Candidate, ...]
    order: tuple[str, ...]
    claims: tuple[Claim, ...]


class _NotEligible(Exception):
    """A grant cannot be valued for this event, e.g. an amount below every tier."""


def plan(campaign: Campaign, facts: Facts) -> Plan:
    """Decide, for every mechanic the event's type triggers, whether it is a candidate."""
    event = facts.event
    decided: list[MechanicOutcome] = []
    candidates: list[Candidate] = []
    mechanics = campaign.mechanics_for(event.type)
    for mechanic in mechanics:
        reason = _precondition(mechanic, facts)
        if reason is not None:
            decided.append(reason)
            continue
        try:
            entries = _entries(campaign, mechanic, facts)
        except _NotEligible as exc:
            decided.append(MechanicOutcome(mechanic.id, Outcome.NOT_ELIGIBLE, str(exc)))
            continue
        candidates.append(Candidate(mechanic, _claim(campaign, mechanic, facts, entries), entries))
    return Plan(
        facts.phase,
        tuple(decided),
        tuple(candidates),
        tuple(m.id for m in mechanics),
        tuple(c.claim for c in candidates),
    )


def _precondition(mechanic: Mechanic, facts: Facts) -> MechanicOutcome | None:
    at = facts.event.at
    if facts.phase is None or facts.phase not in mechanic.phases:
        where = facts.phase or "no phase"
        return MechanicOutcome(mechanic.id, Outcome.NOT_IN_PHASE, f"event is in {where}")
    limits = mechanic.limits
    if (limits.valid_from is not None and at < limits.valid_from) or (
        limits.valid_until is not None and at >= limits.valid_until
    ):
        return MechanicOutcome(mechanic.id, Outcome.OUTSIDE_WINDOW, "outside validity window")
    if mechanic.condition is not None:
        try:
            holds = mechanic.condition(facts)
        except ConditionError as exc:
            return MechanicOutcome(mechanic.id, Outcome.CONDITION_FALSE, str(exc))
        if not holds:
            return MechanicOutcome(
                mechanic.id, Outcome.CONDITION_FALSE, f"false: {mechanic.condition.source}"
            )
    return None


def _claim(
    campaign: Campaign, mechanic: Mechanic, facts: Facts, entries: tuple[LedgerEntry, ...]
) -> Claim:
    limits = mechanic.limits
    if limits.per is CapPeriod.DAY:
        bucket = campaign.local_day(facts.event.at).isoformat()
    elif limits.per is CapPeriod.PHASE:
        bucket = facts.phase or ""
    else:
        bucket = ""
    perks = tuple(e.attributes["perk"] for e in entries if e.asset is Asset.PERK)
    # Positional: this runs for every candidate of every event.
    return Claim(
        facts.event.id,
        mechanic.id,
        facts.customer.id,
        entries[0].cost if len(entries) == 1 else sum((e.cost for e in entries), ZERO),
        limits.quota,
        limits.budget,
        limits.per_customer,
        bucket,
        perks,
    )


def _entries(campaign: Campaign, mechanic: Mechanic, facts: Facts) -> tuple[LedgerEntry, ...]:
    return tuple(
        _entry(campaign, mechanic, facts, seq, spec) for seq, spec in enumerate(mechanic.grants)
    )


def points_multiplier(campaign: Campaign, perks: frozenset[str]) -> int:
    """The product of the points multipliers of the perks held."""
    multiplier = 1
    if not perks:
        return multiplier
    for name in sorted(perks):
        perk = campaign.perks.get(name)
        if perk is not None:
            multiplier *= perk.points_multiplier
    return multiplier


def coupon_cost(spec: RateBoostCouponGrant, amount: Decimal, boost: Decimal) -> Decimal:
    """The most extra interest a rate-boost coupon can pay: the budget it must reserve."""
    principal = min(amount, spec.principal_cap)
    return yuan(principal * boost * spec.days / DAYS_PER_YEAR)


def rate_tier(spec: RateBoostCouponGrant, amount: Decimal) -> Decimal | None:
    """The boost of the highest tier whose minimum `amount` reaches, or None."""
    boost: Decimal | None = None
    for tier in sorted(spec.tiers, key=lambda t: t.min_amount):
        if amount >= tier.min_amount:
            boost = tier.boost
    return boost


def _entry(
    campaign: Campaign, mechanic: Mechanic, facts: Facts, seq: int, spec: GrantSpec
) -> LedgerEntry:
    event = facts.event
    # Built positionally (id, event, mechanic, customer, kind, asset, at, points,
    # quantity, cost, attributes): every grant of every event passes here.
    entry_id = f"{event.id}/{mechanic.id}/{seq}"
    head = (entry_id, event.id, mechanic.id, facts.customer.id, EntryKind.GRANT)
    if isinstance(spec, PointsGrant):
        points = spec.points * points_multiplier(campaign, facts.state.perks)
        cost = yuan(points * campaign.point_value)
        return LedgerEntry(*head, Asset.POINTS, event.at, points, 1, cost)
    if isinstance(spec, PerkGrant):
        return LedgerEntry(*head, Asset.PERK, event.at, 0, 1, ZERO, {"perk": spec.perk})
    if isinstance(spec, LotteryTicketGrant):
        cost = yuan(spec.unit_cost * spec.tickets)
        return LedgerEntry(*head, Asset.LOTTERY_TICKET, event.at, 0, spec.tickets, cost)
    amount = event.data.get(spec.amount_field)
    if not isinstance(amount, Decimal):
        raise _NotEligible(f"event has no {spec.amount_field}")
    boost = rate_tier(spec, amount)
    if boost is None:
        lowest = min(t.min_amount for t in spec.tiers)
        raise _NotEligible(f"{spec.amount_field} {yuan_str(amount)} is below {yuan_str(lowest)}")
    attributes = {
        "coupon": "rate_boost",
        "boost": f"{boost:f}",
        "principal_cap": yuan_str(spec.principal_cap),
        "days": str(spec.days),
        "expires_at": spec.valid_until.isoformat(),
    }
    cost = coupon_cost(spec, amount, boost)
    return LedgerEntry(*head, Asset.COUPON, event.at, 0, 1, cost, attributes)


_CLAIM_OUTCOMES = {
    ClaimOutcome.TAKEN: Outcome.FIRED,
    ClaimOutcome.CAP_REACHED: Outcome.CAP_REACHED,
    ClaimOutcome.QUOTA_EXHAUSTED: Outcome.QUOTA_EXHAUSTED,
    ClaimOutcome.BUDGET_EXHAUSTED: Outcome.BUDGET_EXHAUSTED,
}


def settle(
    plan: Plan,
    facts: Facts,
    risk: RiskAssessment,
    taken: Mapping[str, ClaimOutcome],
    decided_at: datetime,
) -> Decision:
    """Turn a plan and the outcome of its claims into the decision, in campaign order."""
    outcomes = {o.mechanic_id: o for o in plan.decided}
    grants: list[LedgerEntry] = []
    for candidate in plan.candidates:
        mid = candidate.mechanic.id
        if risk.verdict is not Verdict.ALLOW:
            outcomes[mid] = MechanicOutcome(mid, Outcome.RISK_REJECTED, risk.verdict.value)
            continue
        result = _CLAIM_OUTCOMES[taken[mid]]
        outcomes[mid] = MechanicOutcome(mid, result)
        if result is Outcome.FIRED:
            grants.extend(candidate.entries)
    return Decision(
        event_id=facts.event.id,
        customer_id=facts.customer.id,
        event_type=facts.event.type,
        phase=plan.phase,
        risk=risk,
        outcomes=tuple(outcomes[mid] for mid in plan.order),
        grants=tuple(grants),
        decided_at=decided_at,
    )
