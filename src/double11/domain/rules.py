"""Deciding one event, without saving anything.

`Rules(campaign)` indexes a campaign's mechanics once: for each event type and
phase, the mechanics the type triggers in campaign order, and every outcome
that does not depend on the event itself (not in this phase, outside the
window, condition false, fired, ...), made once and shared by the decisions.
Per event, `plan` finds which triggered mechanics may fire and what each would
grant; the engine then takes the candidates' claims on their limits through a
store, and `settle` turns the outcome into a `Decision`. Keeping deciding apart
from committing lets a quote or a rehearsal run the same code and write nothing.

Instants are compared in UTC: two aware datetimes with different tzinfo
objects take ~15x longer to compare (each side's offset is asked for) than two
in UTC. Enum members used per event are bound to module names, since looking
one up on its class costs ~70 ns on Python 3.11.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta, tzinfo
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
from double11.domain.values import value

DAYS_PER_YEAR = Decimal(365)

_CLAIM_OUTCOMES = {
    ClaimOutcome.TAKEN: Outcome.FIRED,
    ClaimOutcome.CAP_REACHED: Outcome.CAP_REACHED,
    ClaimOutcome.QUOTA_EXHAUSTED: Outcome.QUOTA_EXHAUSTED,
    ClaimOutcome.BUDGET_EXHAUSTED: Outcome.BUDGET_EXHAUSTED,
}
_ALLOW = Verdict.ALLOW
_TAKEN = ClaimOutcome.TAKEN
_GRANT = EntryKind.GRANT


@value
class Candidate:
    """A mechanic whose phase and condition hold: the claim it needs and what it would write."""

    place: int  # its place among the decision's outcomes
    rule: _Rule
    claim: Claim
    entries: tuple[LedgerEntry, ...]


@value
class Plan:
    """The mechanics an event triggers, in campaign order, and the candidates among them.

    `outcomes` has one outcome per mechanic; a candidate's reads as if its claim
    were taken, and `settle` puts the real one in its place.
    """

    phase: str | None
    outcomes: tuple[MechanicOutcome, ...]
    candidates: tuple[Candidate, ...] = ()
    claims: tuple[Claim, ...] = ()


@value
class _Route:
    """What an event of one type does in one phase: outcomes so far, mechanics left to check."""

    plan: Plan  # the plan when no mechanic is left to check
    pending: tuple[tuple[int, _Rule], ...]  # (place in outcomes, rule) of those in the phase


class _NotEligible(Exception):
    """A grant cannot be valued for this event, e.g. an amount below every tier."""


class Rules:
    """A campaign's mechanics, indexed once, deciding events: `plan`, then `settle`.

    It remembers a little between events (what points cost, the last local day),
    so, like the stores, it belongs to one event loop.
    """

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        days = _LocalDays(campaign.zone)
        self._rules = {m.id: _Rule(campaign, m, days) for m in campaign.mechanics}
        self._phases = tuple(
            (p.start.astimezone(UTC), p.end.astimezone(UTC), p.name) for p in campaign.phases
        )
        types = {*campaign.event_types, *campaign.by_trigger}
        self._routes = {
            phase: {t: self._route(t, phase) for t in types}
            for phase in (*(p.name for p in campaign.phases), None)
        }

    def _route(self, event_type: str, phase: str | None) -> _Route:
        outcomes: list[MechanicOutcome] = []
        pending: list[tuple[int, _Rule]] = []
        for place, mechanic in enumerate(self.campaign.mechanics_for(event_type)):
            rule = self._rules[mechanic.id]
            if phase is None or phase not in mechanic.phases:
                where = phase or "no phase"
                outcomes.append(
                    MechanicOutcome(mechanic.id, Outcome.NOT_IN_PHASE, f"event is in {where}")
                )
            else:
                outcomes.append(rule.outcomes[_TAKEN])
                pending.append((place, rule))
        return _Route(Plan(phase, tuple(outcomes)), tuple(pending))

    def phase_at(self, at: datetime) -> str | None:
        """The name of the phase `at` falls in, or None outside every phase."""
        if at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        for start, end, name in self._phases:
            if start <= at < end:
                return name
        return None

    def plan(self, facts: Facts, at: datetime | None = None) -> Plan:
        """Decide, for every mechanic the event's type triggers, whether it is a candidate.

        `at` is the event's instant in UTC, if the caller has it already.
        """
        phase = facts.phase
        event_type = facts.event.type
        by_type = self._routes.get(phase)
        route = by_type.get(event_type) if by_type is not None else None
        if route is None:
            route = self._route(event_type, phase)
        if not route.pending:
            return route.plan
        if at is None or at.tzinfo is not UTC:
            at = facts.event.at.astimezone(UTC)
        outcomes = route.plan.outcomes
        decided: list[MechanicOutcome] | None = None
        candidates: list[Candidate] = []
        for place, rule in route.pending:
            found = rule.consider(facts, at, place)
            if isinstance(found, Candidate):
                candidates.append(found)
                continue
            if decided is None:
                decided = list(outcomes)
            decided[place] = found
        if decided is not None:
            outcomes = tuple(decided)
        if len(candidates) == 1:
            only = candidates[0]
            return Plan(phase, outcomes, (only,), (only.claim,))
        return Plan(phase, outcomes, tuple(candidates), tuple(c.claim for c in candidates))

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
                if verdict is _ALLOW:
                    result = taken[rule.id]
                    if result is _TAKEN:
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


# Makes one grant's ledger entry for an event.
_Maker = Callable[[Facts], LedgerEntry]


class _Rule:
    """One mechanic, ready to decide: its limits, grants and shared outcomes, looked up once."""

    __slots__ = (
        "budget",
        "cap",
        "condition",
        "days",
        "false",
        "holdout",
        "id",
        "makers",
        "outcomes",
        "outside",
        "per_day",
        "per_phase",
        "perks",
        "quota",
        "valid_from",
        "valid_until",
    )

    def __init__(self, campaign: Campaign, mechanic: Mechanic, days: _LocalDays) -> None:
        mid = self.id = mechanic.id
        limits = mechanic.limits
        self.valid_from = None if limits.valid_from is None else limits.valid_from.astimezone(UTC)
        self.valid_until = (
            None if limits.valid_until is None else limits.valid_until.astimezone(UTC)
        )
        self.quota = limits.quota
        self.budget = limits.budget
        self.cap = limits.per_customer
        self.per_day = limits.per is CapPeriod.DAY
        self.per_phase = limits.per is CapPeriod.PHASE
        self.days = days
        self.condition = mechanic.condition
        self.outside = MechanicOutcome(mid, Outcome.OUTSIDE_WINDOW, "outside validity window")
        source = mechanic.condition.source if mechanic.condition is not None else ""
        self.false = MechanicOutcome(mid, Outcome.CONDITION_FALSE, f"false: {source}")
        self.holdout = MechanicOutcome(
            mid, Outcome.HOLDOUT, "in the holdout group: would have fired, grants nothing"
        )
        self.outcomes = {c: MechanicOutcome(mid, o) for c, o in _CLAIM_OUTCOMES.items()}
        self.makers = tuple(
            _maker(campaign, mid, seq, spec) for seq, spec in enumerate(mechanic.grants)
        )
        self.perks = tuple(g.perk for g in mechanic.grants if isinstance(g, PerkGrant))

    def consider(self, facts: Facts, at: datetime, place: int) -> Candidate | MechanicOutcome:
        """The event's candidate for this mechanic, in its phase, or why it is none.

        `at` is the event's instant in UTC.
        """
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
        makers = self.makers
        try:
            if len(makers) == 1:
                entries: tuple[LedgerEntry, ...] = (makers[0](facts),)
            else:
                entries = tuple([make(facts) for make in makers])
        except _NotEligible as exc:
            return MechanicOutcome(self.id, Outcome.NOT_ELIGIBLE, str(exc))
        if facts.customer.holdout:
            # No claim either: a holdout customer uses no quota, budget or cap.
            return self.holdout
        if self.per_day:
            bucket = self.days.of(at)
        elif self.per_phase:
            bucket = facts.phase or ""
        else:
            bucket = ""
        claim = Claim(
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
        return Candidate(place, self, claim, entries)


def _maker(campaign: Campaign, mechanic_id: str, seq: int, spec: GrantSpec) -> _Maker:
    """The function that writes grant `seq` of a mechanic for an event."""
    suffix = f"/{mechanic_id}/{seq}"  # the entry id is `{event_id}/{mechanic_id}/{seq}`
    if isinstance(spec, PointsGrant):
        points_granted, points_asset = spec.points, Asset.POINTS
        # What a number of points costs the bank; few distinct numbers ever occur.
        costs: dict[int, Decimal] = {}

        def points(facts: Facts) -> LedgerEntry:
            perks = facts.state.perks
            n = points_granted * points_multiplier(campaign, perks) if perks else points_granted
            cost = costs.get(n)
            if cost is None:
                cost = costs[n] = yuan(n * campaign.point_value)
            return _entry(facts, mechanic_id, suffix, points_asset, n, 1, cost, {})

        return points
    if isinstance(spec, PerkGrant):
        perk_name, perk_asset = spec.perk, Asset.PERK

        def perk(facts: Facts) -> LedgerEntry:
            return _entry(facts, mechanic_id, suffix, perk_asset, 0, 1, ZERO, {"perk": perk_name})

        return perk
    if isinstance(spec, LotteryTicketGrant):
        tickets, ticket_asset = spec.tickets, Asset.LOTTERY_TICKET
        ticket_cost = yuan(spec.unit_cost * spec.tickets)

        def lottery(facts: Facts) -> LedgerEntry:
            return _entry(facts, mechanic_id, suffix, ticket_asset, 0, tickets, ticket_cost, {})

        return lottery
    coupon_spec = spec

    def coupon(facts: Facts) -> LedgerEntry:
        amount = facts.event.data.get(coupon_spec.amount_field)
        if not isinstance(amount, Decimal):
            raise _NotEligible(f"event has no {coupon_spec.amount_field}")
        boost = rate_tier(coupon_spec, amount)
        if boost is None:
            lowest = min(t.min_amount for t in coupon_spec.tiers)
            raise _NotEligible(
                f"{coupon_spec.amount_field} {yuan_str(amount)} is below {yuan_str(lowest)}"
            )
        attributes = {
            "coupon": "rate_boost",
            "boost": f"{boost:f}",
            "principal_cap": yuan_str(coupon_spec.principal_cap),
            "days": str(coupon_spec.days),
            "expires_at": coupon_spec.valid_until.isoformat(),
        }
        cost = coupon_cost(coupon_spec, amount, boost)
        return _entry(facts, mechanic_id, suffix, Asset.COUPON, 0, 1, cost, attributes)

    return coupon


def _entry(
    facts: Facts,
    mechanic_id: str,
    suffix: str,
    asset: Asset,
    points: int,
    quantity: int,
    cost: Decimal,
    attributes: dict[str, str],
) -> LedgerEntry:
    """A grant's ledger entry, built positionally: every grant of every event passes here."""
    event = facts.event
    event_id = event.id
    return LedgerEntry(
        event_id + suffix,
        event_id,
        mechanic_id,
        facts.customer.id,
        _GRANT,
        asset,
        event.at,
        points,
        quantity,
        cost,
        attributes,
    )


class _LocalDays:
    """The campaign's calendar day of an instant, as per-day caps count it.

    The day last asked for is remembered with the UTC instants of its two
    midnights, so the events of one day (nearly all of them, in turn) cost two
    comparisons instead of a conversion into the zone (~0.65 µs here).
    """

    __slots__ = ("day", "end", "start", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self.start = self.end = datetime.min.replace(tzinfo=UTC)
        self.day = ""

    def of(self, at: datetime) -> str:
        """The local day of `at` (in UTC, for the cheap comparisons) in ISO format."""
        if self.start <= at < self.end:
            return self.day
        day = at.astimezone(self.zone).date()
        text = day.isoformat()
        start = datetime.combine(day, time(), self.zone)
        end = datetime.combine(day + timedelta(days=1), time(), self.zone)
        # Only a day whose two midnights have one offset is remembered: then no
        # change of offset moves an instant between them onto another day.
        if start.utcoffset() == end.utcoffset():
            self.start, self.end, self.day = start.astimezone(UTC), end.astimezone(UTC), text
        return text


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
