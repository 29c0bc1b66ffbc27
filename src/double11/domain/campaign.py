"""A campaign: phases, segments, event types, perks and mechanics, as loaded from its file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from double11.domain.facts import Facts


class Condition(Protocol):
    """A compiled, side-effect-free predicate over the facts of one event."""

    source: str

    def __call__(self, facts: Facts) -> bool: ...


@dataclass(frozen=True, slots=True)
class Phase:
    """A named, half-open time window [start, end) in the campaign."""

    name: str
    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


class FieldKind(StrEnum):
    STRING = "string"
    MONEY = "money"
    INTEGER = "integer"
    BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field an event type carries in its `data`."""

    name: str
    kind: FieldKind
    required: bool = False


@dataclass(frozen=True, slots=True)
class EventType:
    """An event type the campaign accepts, with the shape of its `data`."""

    name: str
    fields: tuple[FieldSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Segment:
    """A named condition over the customer profile."""

    name: str
    condition: Condition


@dataclass(frozen=True, slots=True)
class Perk:
    """A lasting advantage a grant confers, such as double points."""

    name: str
    points_multiplier: int = 1


@dataclass(frozen=True, slots=True)
class PointsGrant:
    """Give `points`, multiplied by every multiplier of the perks the customer holds."""

    points: int


@dataclass(frozen=True, slots=True)
class PerkGrant:
    perk: str


@dataclass(frozen=True, slots=True)
class LotteryTicketGrant:
    """Give lottery tickets; `unit_cost` is the expected prize value per ticket, for ROI."""

    tickets: int = 1
    unit_cost: Decimal = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class RateTier:
    min_amount: Decimal
    boost: Decimal


@dataclass(frozen=True, slots=True)
class RateBoostCouponGrant:
    """A rate-boost coupon whose boost is chosen by the event's amount.

    Its cost against a budget is the most extra interest it can ever pay:
    min(amount, principal_cap) x boost x days / 365.
    """

    tiers: tuple[RateTier, ...]
    principal_cap: Decimal
    days: int
    valid_until: datetime
    amount_field: str = "amount"


GrantSpec = PointsGrant | PerkGrant | LotteryTicketGrant | RateBoostCouponGrant


class CapPeriod(StrEnum):
    CAMPAIGN = "campaign"
    PHASE = "phase"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class Limits:
    """What bounds a mechanic: a global quota of grants, a budget in yuan, a per-customer cap."""

    quota: int | None = None
    budget: Decimal | None = None
    per_customer: int | None = None
    per: CapPeriod = CapPeriod.CAMPAIGN
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Mechanic:
    """When an event of a trigger type arrives in a phase and the condition holds, grant."""

    id: str
    triggers: frozenset[str]
    phases: frozenset[str]
    grants: tuple[GrantSpec, ...]
    limits: Limits = Limits()
    condition: Condition | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Campaign:
    """Everything one campaign file declares, validated."""

    id: str
    name: str
    timezone: str
    phases: tuple[Phase, ...]
    event_types: Mapping[str, EventType]
    mechanics: tuple[Mechanic, ...]
    segments: Mapping[str, Segment] = field(default_factory=dict)
    perks: Mapping[str, Perk] = field(default_factory=dict)
    point_value: Decimal = Decimal("0.01")
    # The version of the file it was loaded from (a digest of its exact text), so an
    # answer can say which rules decided; "" for a campaign built in code.
    version: str = ""
    # Derived once: the hot path looks mechanics up by event type on every event.
    by_trigger: Mapping[str, tuple[Mechanic, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        index = {
            t: tuple(m for m in self.mechanics if t in m.triggers)
            for t in {t for m in self.mechanics for t in m.triggers}
        }
        object.__setattr__(self, "by_trigger", index)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def phase_at(self, at: datetime) -> Phase | None:
        """The phase `at` falls in, or None outside every phase."""
        for phase in self.phases:
            if phase.contains(at):
                return phase
        return None

    def local_day(self, at: datetime) -> date:
        """The calendar day of `at` in the campaign's time zone."""
        return at.astimezone(self.zone).date()

    def mechanics_for(self, event_type: str) -> tuple[Mechanic, ...]:
        return self.by_trigger.get(event_type, ())

    def mechanic(self, mechanic_id: str) -> Mechanic:
        for m in self.mechanics:
            if m.id == mechanic_id:
                return m
        raise KeyError(mechanic_id)
