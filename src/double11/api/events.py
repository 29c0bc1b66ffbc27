"""POST /v1/events: the hot route, kept to one decode, one engine call and one encode.

`EventsEndpoint.decide` is the route's whole work after authentication; the Starlette
route (`post`) and the raw ASGI fast path (`fastpath.py`) both call it.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from double11.api.body import check_json_type, receive_body
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
        headers = request.headers
        body, replayed = await self.decide(
            request.receive, headers.get("content-type"), headers.get("content-length")
        )
        return Response(
            body, headers=_REPLAYED if replayed else None, media_type="application/json"
        )

    async def decide(
        self, receive: Receive, content_type: str | None, content_length: str | None
    ) -> tuple[bytes, bool]:
        """Check, read and decode the body, submit the event and count the answer.

        Takes the Content-Type and Content-Length header values; returns the
        decision as JSON and whether it was a replay. Raises a `ProblemError` or
        a `Double11Error` for a bad request, counted as an error.
        """
        event_type: str | None = None
        try:
            check_json_type(content_type)
            body = await receive_body(receive, content_length, self.body_limit)
            try:
                incoming = _decoder.decode(body)
            except msgspec.ValidationError as exc:
                raise invalid_body(exc, EventIn) from None
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
        return encode_decision(submitted.decision), submitted.replayed
