"""Deciding one event, without saving anything.

`Rules(campaign)` indexes a campaign's mechanics once: for each event type and
phase, the mechanics the type triggers in campaign order, and every outcome
that does not depend on the event itself (not in this phase, outside the
window, condition false, fired, ...), made once and shared by the decisions.
Per event, `plan` finds which triggered mechanics may fire and what each would
grant; the engine then takes the candidates' claims on their limits through a
store, and `settle` turns the outcome into a `Decision`. Keeping deciding apart
from committing lets a quote or a rehearsal run the same code and write nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

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

_CLAIM_OUTCOMES = {
    ClaimOutcome.TAKEN: Outcome.FIRED,
    ClaimOutcome.CAP_REACHED: Outcome.CAP_REACHED,
    ClaimOutcome.QUOTA_EXHAUSTED: Outcome.QUOTA_EXHAUSTED,
    ClaimOutcome.BUDGET_EXHAUSTED: Outcome.BUDGET_EXHAUSTED,
}


class Candidate(NamedTuple):
    """A mechanic whose phase and condition hold: the claim it needs and what it would write."""

    place: int  # its place among the decision's outcomes
    rule: _Rule
    claim: Claim
    entries: tuple[LedgerEntry, ...]


class Plan(NamedTuple):
    """The mechanics an event triggers, in campaign order, and the candidates among them.

    `outcomes` has one outcome per mechanic; a candidate's reads as if its claim
    were taken, and `settle` puts the real one in its place.
    """

    phase: str | None
    outcomes: tuple[MechanicOutcome, ...]
    candidates: tuple[Candidate, ...]
    claims: tuple[Claim, ...]


class _Route(NamedTuple):
    """What an event of one type does in one phase: outcomes so far, mechanics left to check."""

    outcomes: tuple[MechanicOutcome, ...]
    pending: tuple[tuple[int, _Rule], ...]  # (place in outcomes, rule) of those in the phase


class _NotEligible(Exception):
    """A grant cannot be valued for this event, e.g. an amount below every tier."""


class Rules:
    """A campaign's mechanics, indexed once, deciding events: `plan`, then `settle`."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self._rules = {m.id: _Rule(campaign, m) for m in campaign.mechanics}
        self._phases = tuple((p.start, p.end, p.name) for p in campaign.phases)
        types = {*campaign.event_types, *campaign.by_trigger}
        self._routes = {
            phase: {t: self._route(t, phase) for t in types}
            for phase in (*(p.name for p in campaign.phases), None)
        }

    def _route(self, event_type: str, phase: str | None) -> _Route:
        outcomes: list[MechanicOutcome] = []
        pending: list[tuple[int, _Rule]] = []
        for index, mechanic in enumerate(self.campaign.mechanics_for(event_type)):
            rule = self._rules.get(mechanic.id) or _Rule(self.campaign, mechanic)
            if phase is None or phase not in mechanic.phases:
                where = phase or "no phase"
                outcomes.append(
                    MechanicOutcome(mechanic.id, Outcome.NOT_IN_PHASE, f"event is in {where}")
                )
            else:
                outcomes.append(rule.outcomes[ClaimOutcome.TAKEN])
                pending.append((index, rule))
        return _Route(tuple(outcomes), tuple(pending))

    def phase_at(self, at: datetime) -> str | None:
        """The name of the phase `at` falls in, or None outside every phase."""
        for start, end, name in self._phases:
            if start <= at < end:
                return name
        return None

    def plan(self, facts: Facts) -> Plan:
        """Decide, for every mechanic the event's type triggers, whether it is a candidate."""
        phase = facts.phase
        event_type = facts.event.type
        by_type = self._routes.get(phase)
        route = by_type.get(event_type) if by_type is not None else None
        if route is None:
            route = self._route(event_type, phase)
        outcomes, pending = route
        if not pending:
            return Plan(phase, outcomes, (), ())
        decided: list[MechanicOutcome] | None = None
        candidates: list[Candidate] = []
        claims: list[Claim] = []
        for index, rule in pending:
            outcome = rule.precondition(facts)
            if outcome is None:
                try:
                    entries = rule.entries(facts)
                except _NotEligible as exc:
                    outcome = MechanicOutcome(rule.id, Outcome.NOT_ELIGIBLE, str(exc))
                else:
                    claim = rule.claim(facts, entries)
                    candidates.append(Candidate(index, rule, claim, entries))
                    claims.append(claim)
                    continue
            if decided is None:
                decided = list(outcomes)
            decided[index] = outcome
        return Plan(
            phase,
            outcomes if decided is None else tuple(decided),
            tuple(candidates),
            tuple(claims),
        )

    def settle(
        self,
        plan: Plan,
        facts: Facts,
        risk: RiskAssessment,
        taken: Mapping[str, ClaimOutcome],
        decided_at: datetime,
    ) -> Decision:
        """Turn a plan and the outcome of its claims into the decision, in campaign order."""
        outcomes = plan.outcomes
        grants: tuple[LedgerEntry, ...] = ()
        if plan.candidates:
            settled: list[MechanicOutcome] | None = None
            verdict = risk.verdict
            for candidate in plan.candidates:
                rule = candidate.rule
                if verdict is Verdict.ALLOW:
                    result = taken[rule.id]
                    if result is ClaimOutcome.TAKEN:
                        # A candidate's place already reads "fired".
                        grants = grants + candidate.entries if grants else candidate.entries
                        continue
                    outcome = rule.outcomes[result]
                else:
                    outcome = MechanicOutcome(rule.id, Outcome.RISK_REJECTED, verdict.value)
                if settled is None:
                    settled = list(outcomes)
                settled[candidate.place] = outcome
            if settled is not None:
                outcomes = tuple(settled)
        event = facts.event
        return Decision(
            event.id, facts.customer.id, event.type, plan.phase, risk, outcomes, grants, decided_at
        )


class _Rule:
    """One mechanic, ready to decide: its limits, grants and shared outcomes, looked up once."""

    __slots__ = (
        "budget",
        "campaign",
        "cap",
        "condition",
        "false",
        "grants",
        "id",
        "outcomes",
        "outside",
        "per",
        "perks",
        "point_costs",
        "quota",
        "valid_from",
        "valid_until",
        "zone",
    )

    def __init__(self, campaign: Campaign, mechanic: Mechanic) -> None:
        mid = self.id = mechanic.id
        self.campaign = campaign
        self.zone = campaign.zone
        limits = mechanic.limits
        self.valid_from = limits.valid_from
        self.valid_until = limits.valid_until
        self.quota = limits.quota
        self.budget = limits.budget
        self.cap = limits.per_customer
        self.per = limits.per
        self.condition = mechanic.condition
        self.outside = MechanicOutcome(mid, Outcome.OUTSIDE_WINDOW, "outside validity window")
        source = mechanic.condition.source if mechanic.condition is not None else ""
        self.false = MechanicOutcome(mid, Outcome.CONDITION_FALSE, f"false: {source}")
        self.outcomes = {c: MechanicOutcome(mid, o) for c, o in _CLAIM_OUTCOMES.items()}
        # (entry id suffix, grant): the suffix makes `{event_id}/{mechanic_id}/{seq}`.
        self.grants = tuple((f"/{mid}/{seq}", spec) for seq, spec in enumerate(mechanic.grants))
        self.perks = tuple(g.perk for g in mechanic.grants if isinstance(g, PerkGrant))
        # What a number of points costs the bank; few distinct numbers ever occur.
        self.point_costs: dict[int, Decimal] = {}

    def precondition(self, facts: Facts) -> MechanicOutcome | None:
        """Why the mechanic cannot fire for this event in its phase, or None if it may."""
        at = facts.event.at
        if (self.valid_from is not None and at < self.valid_from) or (
            self.valid_until is not None and at >= self.valid_until
        ):
            return self.outside
        condition = self.condition
        if condition is not None:
            try:
                holds = condition(facts)
            except ConditionError as exc:
                return MechanicOutcome(self.id, Outcome.CONDITION_FALSE, str(exc))
            if not holds:
                return self.false
        return None

    def claim(self, facts: Facts, entries: tuple[LedgerEntry, ...]) -> Claim:
        """The claim on the mechanic's limits that granting `entries` needs."""
        per = self.per
        if per is CapPeriod.DAY:
            bucket = facts.event.at.astimezone(self.zone).date().isoformat()
        elif per is CapPeriod.PHASE:
            bucket = facts.phase or ""
        else:
            bucket = ""
        return Claim(
            facts.event.id,
            self.id,
            facts.customer.id,
            entries[0].cost if len(entries) == 1 else sum((e.cost for e in entries), ZERO),
            self.quota,
            self.budget,
            self.cap,
            bucket,
            self.perks,
        )

    def entries(self, facts: Facts) -> tuple[LedgerEntry, ...]:
        """The ledger entries the mechanic's grants would write for this event."""
        return tuple([self._entry(facts, suffix, spec) for suffix, spec in self.grants])

    def _entry(self, facts: Facts, suffix: str, spec: GrantSpec) -> LedgerEntry:
        event = facts.event
        event_id = event.id
        # Positional (id, event, mechanic, customer, kind, asset, at, points,
        # quantity, cost, attributes): every grant of every event passes here.
        head = (event_id + suffix, event_id, self.id, facts.customer.id, EntryKind.GRANT)
        if isinstance(spec, PointsGrant):
            points = spec.points * points_multiplier(self.campaign, facts.state.perks)
            cost = self.point_costs.get(points)
            if cost is None:
                cost = self.point_costs[points] = yuan(points * self.campaign.point_value)
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
            raise _NotEligible(
                f"{spec.amount_field} {yuan_str(amount)} is below {yuan_str(lowest)}"
            )
        attributes = {
            "coupon": "rate_boost",
            "boost": f"{boost:f}",
            "principal_cap": yuan_str(spec.principal_cap),
            "days": str(spec.days),
            "expires_at": spec.valid_until.isoformat(),
        }
        cost = coupon_cost(spec, amount, boost)
        return LedgerEntry(*head, Asset.COUPON, event.at, 0, 1, cost, attributes)


def points_multiplier(campaign: Campaign, perks: frozenset[str]) -> int:
    """The product of the points multipliers of the perks held."""
    multiplier = 1
    for name in perks:
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
