"""Requests and responses as msgspec Structs; the OpenAPI document is generated from them.

Request Structs validate as they decode, so a wrong type or a missing field is
reported with its path before anything reaches the engine. Money is a decimal
string on the wire and `Decimal` inside.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

MAX_ID_LENGTH = 128  # the width of id columns in the relational schema

Identifier = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Yuan = Annotated[Decimal, Meta(description="An amount in yuan with at most two decimal places.")]


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    """Something a customer did, reported by a trusted bank system."""

    id: Annotated[Identifier, Meta(description="Unique per event; resending it is idempotent.")]
    type: Annotated[str, Meta(min_length=1, max_length=64, description="An event type.")]
    customer_id: Identifier
    at: Annotated[datetime, Meta(tz=True, description="RFC 3339 instant with an offset.")]
    data: Annotated[
        dict[str, Any], Meta(description="Fields of the event type; money as yuan strings.")
    ] = {}


RiskTolerance = Literal["C1", "C2", "C3", "C4", "C5"]
FieldKindName = Literal["string", "money", "integer", "boolean"]
CapPeriodName = Literal["campaign", "phase", "day"]


class CustomerIn(msgspec.Struct):
    """A customer profile. Other fields are kept as they are, if they are scalars or lists."""

    id: Annotated[Identifier | None, Meta(description="If sent, must equal the path's id.")] = None
    age: Annotated[int, Meta(ge=0, le=150)] | None = None
    aum: Annotated[Yuan, Meta(description="Assets under management in yuan, >= 0.")] = Decimal(0)
    is_new: bool = False
    tier: str | None = None
    credit_grade: str | None = None
    risk_tolerance: RiskTolerance | None = None
    segments: list[str] = []
    devices: list[str] = []
    holdout: Annotated[bool, Meta(description="In the holdout group: recorded, never granted.")] = (
        False
    )


class CustomerOut(msgspec.Struct):
    """A customer profile as stored; extra fields follow the named ones."""

    id: str
    age: int | None
    aum: Yuan
    is_new: bool
    tier: str | None
    credit_grade: str | None
    risk_tolerance: str | None  # as stored: a profile loaded by other means may hold any text
    segments: list[str]
    devices: list[str]
    holdout: bool


class Granted(msgspec.Struct):
    """What granted a wallet item: the ledger entry, its mechanic and its event."""

    entry_id: str
    mechanic_id: str
    event_id: str
    granted_at: datetime
    state: Annotated[str, Meta(description="active, expired, redeemed or reversed")]


class PerkItem(Granted):
    """A lasting advantage, such as double points."""

    perk: str


class CouponItem(Granted):
    """A coupon; `attributes` say what it is worth (e.g. boost, principal_cap, days)."""

    coupon: str
    expires_at: datetime | None
    attributes: dict[str, str]


class TicketItem(Granted):
    """Lottery tickets granted together."""

    quantity: int


class WalletOut(msgspec.Struct):
    """A customer's wallet, folded from their ledger as of `as_of`."""

    customer_id: str
    as_of: datetime
    points: int
    perks: list[PerkItem]
    coupons: list[CouponItem]
    lottery_tickets: list[TicketItem]
    active_tickets: int


class PhaseOut(msgspec.Struct):
    """A named time window [start, end)."""

    name: str
    start: datetime
    end: datetime


class FieldOut(msgspec.Struct):
    """A field of an event type's `data`."""

    name: str
    kind: FieldKindName
    required: bool


class EventTypeOut(msgspec.Struct):
    """An event type the campaign accepts."""

    name: str
    fields: list[FieldOut]


class QuotaOut(msgspec.Struct):
    """Grants made against a mechanic's quota; `limit` is null when it has none."""

    used: int
    limit: int | None


class BudgetOut(msgspec.Struct):
    """Yuan spent against a mechanic's budget; `limit` is null when it has none."""

    spent: Yuan
    limit: Yuan | None


class MechanicOut(msgspec.Struct):
    """A mechanic and how much of its limits is used."""

    id: str
    name: str
    triggers: list[str]
    phases: list[str]
    quota: QuotaOut
    budget: BudgetOut
    per_customer: int | None
    per: CapPeriodName


class CampaignOut(msgspec.Struct):
    """The running campaign: its phases, the current one, and every mechanic's usage."""

    id: str
    name: str
    version: Annotated[str, Meta(description="The campaign file's version: its digest.")]
    timezone: str
    now: datetime
    current_phase: str | None
    phases: list[PhaseOut]
    event_types: list[EventTypeOut]
    mechanics: list[MechanicOut]


class HealthOut(msgspec.Struct):
    """The stores answered."""

    status: Literal["ok"]


encoder = msgspec.json.Encoder(decimal_format="string")
