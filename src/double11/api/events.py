"""POST /v1/events: the hot route, kept to one decode, one engine call and one encode."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from double11.api.body import read_json_body
from double11.api.metrics import Metrics
from double11.api.problems import invalid_body, malformed_json
from double11.api.schemas import EventIn
from double11.domain.events import Event
from double11.engine.codec import encode_decision
from double11.engine.pipeline import Engine

REPLAY_HEADER = "Idempotent-Replayed"
_REPLAYED = {REPLAY_HEADER: "true"}
# Untyped JSON numbers in `data` become Decimal straight from their digits, so an
# amount is never rounded through a float on its way in.
_decoder = msgspec.json.Decoder(EventIn, float_hook=Decimal)


class EventsEndpoint:
    """Decides each posted event; a replay of a decided one gets the same body back.

    The answer is 200 whether or not the event was new: a decision is an
    answer, not a resource with an address, and a retry must read the same.
    """

    def __init__(self, engine: Engine, metrics: Metrics, body_limit: int) -> None:
        self.engine = engine
        self.metrics = metrics
        self.body_limit = body_limit

    async def post(self, request: Request) -> Response:
        """Decode the event, submit it, and answer with the decision."""
        event_type: str | None = None
        try:
            body = await read_json_body(request, self.body_limit)
            try:
                incoming = _decoder.decode(body)
            except msgspec.ValidationError as exc:
                raise invalid_body(exc) from None
            except msgspec.DecodeError as exc:
                raise malformed_json(exc) from None
            event_type = incoming.type
            event = Event(
                incoming.id, incoming.type, incoming.customer_id, incoming.at, incoming.data
            )
            submitted = await self.engine.submit(event)
        except Exception:
            self.metrics.failed(event_type)
            raise
        self.metrics.decided(submitted.decision, submitted.replayed)
        return Response(
            encode_decision(submitted.decision),
            headers=_REPLAYED if submitted.replayed else None,
            media_type="application/json",
        )
