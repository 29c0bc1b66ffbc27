"""Decisions to and from JSON, for the wire and for the event log."""

from __future__ import annotations

import msgspec

from double11.domain.decision import Decision

_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder = msgspec.json.Decoder(Decision)


def encode_decision(decision: Decision) -> bytes:
    return _encoder.encode(decision)


def decode_decision(raw: bytes | str) -> Decision:
    return _decoder.decode(raw)
