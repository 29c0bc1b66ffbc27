"""Ledger entries: the append-only record every balance is folded from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from double11.domain.money import ZERO
from double11.domain.values import value


class EntryKind(StrEnum):
    """What an entry records. Later kinds refer to a grant; nothing is updated in place."""

    GRANT = "grant"
    REDEEM = "redeem"
    EXPIRE = "expire"
    REVERSE = "reverse"


class Asset(StrEnum):
    POINTS = "points"
    PERK = "perk"
    COUPON = "coupon"
    LOTTERY_TICKET = "lottery_ticket"


@value
class LedgerEntry:
    """One immutable line of the ledger.

    `id` is `{event_id}/{mechanic_id}/{seq}` for grants, which makes a grant
    idempotent by (event, mechanic). `cost` is what the entry costs the bank in
    yuan, so that ROI is a sum.
    """

    id: str
    event_id: str
    mechanic_id: str
    customer_id: str
    kind: EntryKind
    asset: Asset
    at: datetime
    points: int = 0
    quantity: int = 1
    cost: Decimal = ZERO
    attributes: Mapping[str, str] = field(default_factory=dict)
    refers_to: str | None = None
