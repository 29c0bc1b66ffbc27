"""The demo's copy of the example campaign, its limits scaled to the synthetic crowd.

The shipped file's "first 10,000" and "first 50,000" never run out for a few
thousand synthetic customers, so the demo would never show the campaign's
point: early birds get what latecomers do not. The demo serves a copy whose
quotas are fractions of its customers and whose subsidy budget covers half of
the coupons its customers will earn; the shipped file is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import yaml

from double11.domain.campaign import Campaign, RateBoostCouponGrant
from double11.domain.rules import coupon_cost, rate_tier

# mechanic id -> (the share of the customers its quota admits, that share in words)
QUOTA_SHARES = {
    "early_bird_double_points": (Fraction(1, 3), "a third of the customers"),
    "early_bird_lottery": (Fraction(1, 2), "half of the customers"),
}
BUDGETED = "new_customer_rate_boost"
BUDGET_SHARE = Decimal("0.5")  # of what the planned coupons would cost


@dataclass(frozen=True, slots=True)
class Scaling:
    """One limit the demo's copy changes."""

    mechanic_id: str
    limit: str  # "quota" or "budget"
    shipped: Decimal
    demo: Decimal
    why: str

    def __str__(self) -> str:
        unit = " yuan" if self.limit == "budget" else ""
        places = ",.2f" if self.limit == "budget" else ","
        return (
            f"{self.mechanic_id} {self.limit} {self.shipped:{places}} -> "
            f"{self.demo:{places}}{unit} ({self.why})"
        )


def scale_campaign(
    text: str, campaign: Campaign, customers: int, first_purchases: Iterable[Decimal]
) -> tuple[str, list[Scaling]]:
    """The example's YAML with its limits scaled to `customers`, and what was changed.

    `campaign` is `text` parsed; `first_purchases` are the amounts of the new customers'
    first deposits and wealth purchases in the warm-up that the demo will send.
    """
    doc: dict[str, Any] = yaml.safe_load(text)
    mechanics = {m["id"]: m for m in doc["mechanics"]}
    changes: list[Scaling] = []
    for mechanic_id, (share, why) in QUOTA_SHARES.items():
        limits = mechanics[mechanic_id]["limits"]
        shipped = int(limits["quota"])
        demo = max(1, int(customers * share))
        limits["quota"] = demo
        # The name says "First 10,000 ..."; it must not contradict the limit served.
        name = mechanics[mechanic_id].get("name", "")
        mechanics[mechanic_id]["name"] = name.replace(f"{shipped:,}", f"{demo:,}")
        changes.append(Scaling(mechanic_id, "quota", Decimal(shipped), Decimal(demo), why))
    budgeted = mechanics[BUDGETED]["limits"]
    planned = _planned_cost(campaign, first_purchases)
    budget = max(Decimal("0.01"), (planned * BUDGET_SHARE).quantize(Decimal("0.01")))
    changes.append(
        Scaling(
            BUDGETED,
            "budget",
            Decimal(budgeted["budget"]),
            budget,
            f"half of the {planned:,.2f} yuan the planned coupons would cost",
        )
    )
    budgeted["budget"] = str(budget)
    header = "".join(f"# {change}\n" for change in changes)
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    return f"# double11 demo: the example campaign with its limits scaled\n{header}{body}", changes


def _planned_cost(campaign: Campaign, amounts: Iterable[Decimal]) -> Decimal:
    """What the coupons for these purchases would take from the budget, were it unlimited."""
    (grant,) = campaign.mechanic(BUDGETED).grants
    assert isinstance(grant, RateBoostCouponGrant)
    total = Decimal("0.00")
    for amount in amounts:
        boost = rate_tier(grant, amount)
        if boost is not None:
            total += coupon_cost(grant, amount, boost)
    return total
