"""Decisions, event data, claims and profiles to and from JSON: the wire, the event log
and `customers.profile`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import msgspec

from double11.domain.customer import Customer
from double11.domain.decision import Decision
from double11.domain.limits import Claim

_encoder = msgspec.json.Encoder(decimal_format="string")
# What a decision that granted nothing holds, as `encode_decision` writes it (compact
# JSON; a quote inside a string value is escaped): the stores tell granting events from
# the others by this text, without decoding every decision.
NO_GRANTS = '"grants":[]'
_decoder = msgspec.json.Decoder(Decision)


def encode_decision(decision: Decision) -> bytes:
    return _encoder.encode(decision)


def decode_decision(raw: bytes | str) -> Decision:
    return _decoder.decode(raw)


_customer_decoder = msgspec.json.Decoder(Customer)


def encode_customer(customer: Customer) -> str:
    """A profile as every store keeps it in `customers.profile`."""
    return _encoder.encode(customer).decode()


def decode_customer(raw: str | bytes) -> Customer:
    return _customer_decoder.decode(raw)


_data_decoder = msgspec.json.Decoder(dict[str, Any])


def encode_event_data(data: Mapping[str, Any]) -> str:
    """An event's `data` as every store keeps it in `events.data`: amounts as strings."""
    return _encoder.encode(data).decode()


def decode_event_data(raw: str | bytes) -> dict[str, Any]:
    """`events.data` read back as JSON values: amounts come back as the strings they were
    stored as, which `normalise_data` turns into `Decimal` again for a campaign's event type."""
    return _data_decoder.decode(raw)


# One claim in `events.claims`: [mechanic_id, cost, quota, budget, cap, cap_bucket, perks,
# customer_id]. The event id is the event's own and so, nearly always, is the customer:
# then the last is null. An array rather than an object keeps the row short; the
# `claims` view names the fields.
_StoredClaim = tuple[str, str, int | None, str | None, int | None, str, list[str], str | None]
_claims_decoder = msgspec.json.Decoder(list[_StoredClaim])
NO_CLAIMS = "[]"


def encode_claims(claims: Iterable[Claim], customer_id: str) -> str:
    """The claims an event of `customer_id` took, as every store keeps them in `events.claims`."""
    stored = [
        (
            c.mechanic_id,
            f"{c.cost:f}",
            c.quota,
            None if c.budget is None else f"{c.budget:f}",
            c.cap,
            c.cap_bucket,
            c.perks,
            None if c.customer_id == customer_id else c.customer_id,
        )
        for c in claims
    ]
    return _encoder.encode(stored).decode() if stored else NO_CLAIMS


def decode_claims(event_id: str, customer_id: str, raw: str | bytes) -> tuple[Claim, ...]:
    """`events.claims` read back as the claims of the event `event_id` of `customer_id`."""
    if raw == NO_CLAIMS:
        return ()
    return tuple(
        Claim(
            event_id,
            mechanic_id,
            whose or customer_id,
            Decimal(cost),
            quota,
            None if budget is None else Decimal(budget),
            cap,
            bucket,
            tuple(perks),
        )
        for mechanic_id, cost, quota, budget, cap, bucket, perks, whose in _claims_decoder.decode(
            raw
        )
    )


def grantees_of(customer_id: str, decision: Decision) -> list[str]:
    """The customers other than the event's own that the decision granted to, once each."""
    others = [g.customer_id for g in decision.grants if g.customer_id != customer_id]
    # Nearly always none: spare the de-duplication then (it was most of the cost).
    return list(dict.fromkeys(others)) if others else others
