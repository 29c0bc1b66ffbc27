"""The customer profile that conditions read."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

RISK_TOLERANCES = ("C1", "C2", "C3", "C4", "C5")


@dataclass(frozen=True, slots=True)
class Customer:
    """A bank customer as the campaign sees them; `extra` holds fields the bank adds."""

    id: str
    age: int | None = None
    aum: Decimal = Decimal("0.00")
    is_new: bool = False
    tier: str | None = None
    credit_grade: str | None = None
    risk_tolerance: str | None = None
    segments: frozenset[str] = frozenset()
    devices: tuple[str, ...] = ()
    holdout: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
