"""A synthetic campaign workload shared by the benchmarks: customers and warm-up events."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from double11.domain.customer import Customer

WARMUP_NOW = datetime.fromisoformat("2026-11-03T20:00:00+08:00")


def customers(n: int, seed: int = 11) -> list[Customer]:
    """`n` profiles, about a third of them new to the bank."""
    rng = random.Random(seed)
    return [
        Customer(
            id=f"c{i:07d}",
            age=rng.randint(20, 70),
            aum=Decimal(rng.randint(0, 2_000_000)),
            is_new=rng.random() < 0.33,
            tier=rng.choice(["standard", "gold"]),
            risk_tolerance=rng.choice(["C1", "C2", "C3", "C4", "C5"]),
        )
        for i in range(n)
    ]


def event_bodies(
    n: int, n_customers: int, seed: int = 11, prefix: str = "e"
) -> list[dict[str, Any]]:
    """`n` warm-up events as the HTTP API receives them: reservations, risk assessments,
    check-ins and first deposits, in the proportions the campaign expects."""
    rng = random.Random(seed)
    at = (WARMUP_NOW - timedelta(minutes=1)).isoformat()
    bodies = []
    for i in range(n):
        cid = f"c{rng.randrange(n_customers):07d}"
        roll = rng.random()
        if roll < 0.4:
            kind, data = "reservation", {}
        elif roll < 0.6:
            kind, data = "risk_assessment", {"level": "C3"}
        elif roll < 0.9:
            kind, data = "checkin", {}
        else:
            kind, data = "deposit", {"amount": f"{rng.choice([20000, 60000, 150000])}.00"}
        bodies.append(
            {"id": f"{prefix}{i}", "type": kind, "customer_id": cid, "at": at, "data": data}
        )
    return bodies
