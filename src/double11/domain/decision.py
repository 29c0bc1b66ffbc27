"""The engine's typed answer to one event."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from double11.domain.ledger import LedgerEntry
from double11.domain.values import value


class Verdict(StrEnum):
    """The risk step's verdict; the spine only ever produces ALLOW."""

    ALLOW = "allow"
    CHALLENGE = "challenge"
    BLOCK = "block"
    HOLD = "hold"


class Outcome(StrEnum):
    """Why a mechanic that the event's type triggers did or did not grant."""

    FIRED = "fired"
    NOT_IN_PHASE = "not_in_phase"
    OUTSIDE_WINDOW = "outside_window"
    CONDITION_FALSE = "condition_false"
    NOT_ELIGIBLE = "not_eligible"
    QUOTA_EXHAUSTED = "quota_exhausted"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CAP_REACHED = "cap_reached"
    RISK_REJECTED = "risk_rejected"
    # The customer is in the holdout group, which ROI is measured against: the event is
    # recorded and would have earned this, but nothing is granted.
    HOLDOUT = "holdout"


@value
class RiskAssessment:
    """A verdict with the rules or model outputs that led to it."""

    verdict: Verdict
    reasons: tuple[str, ...] = ()


@value
class MechanicOutcome:
    mechanic_id: str
    outcome: Outcome
    detail: str = ""


@value
class Decision:
    """What the engine decided for one event, with a reason for every mechanic considered."""

    event_id: str
    customer_id: str
    event_type: str
    phase: str | None
    risk: RiskAssessment
    outcomes: tuple[MechanicOutcome, ...]
    grants: tuple[LedgerEntry, ...]
    decided_at: datetime

    @property
    def granted(self) -> bool:
        return bool(self.grants)
