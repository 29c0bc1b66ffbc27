"""Decisions, event data and profiles to and from JSON: the wire, the event log and
`customers.profile`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from double11.domain.customer import Customer
from double11.domain.decision import Decision

_encoder = msgspec.json.Encoder(decimal_format="string")
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
