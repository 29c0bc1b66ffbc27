"""POST /v1/events answered straight from ASGI, in front of the Starlette app.

On the hot route Starlette's middleware, routing, `Request` and `Response` cost
about 40 µs a request in process, two thirds of what the engine itself spends on
the memory store (`benchmarks/bench_asgi.py`). So `create_app` returns this app:
it answers `POST /v1/events` itself and passes every other request on to
Starlette, including other methods on `/v1/events`, which get Starlette's 405
with `Allow`.

The fast path answers exactly as the Starlette route does, because it runs the
same code: `KeyRing.check` and `presented_key` for the key, `EventsEndpoint.decide`
for the content type, the body limit, decoding, the engine and the event counts,
`error_response` for every problem, and `RouteMetrics` for latency and responses.
Only the headers are read and the answer sent without Starlette's objects.
"""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from double11.api.auth import PRODUCERS, KeyRing, presented_key
from double11.api.events import REPLAY_HEADER, EventsEndpoint
from double11.api.metrics import Metrics
from double11.api.problems import INTERNAL, error_response, problem_response

EVENTS_PATH = "/v1/events"

# Response headers as Starlette's `Response` writes them, in its order: the constant
# ones made once, so an answer builds only its Content-Length.
_REPLAYED = (REPLAY_HEADER.lower().encode("latin-1"), b"true")
_CONTENT_TYPE = (b"content-type", b"application/json")


class EventsFastPath:
    """The API's ASGI app: `POST /v1/events` on the fast path, all else to `starlette`."""

    def __init__(
        self, starlette: Starlette, events: EventsEndpoint, keys: KeyRing, metrics: Metrics
    ) -> None:
        self.starlette = starlette
        self._decide = events.decide
        self._check = keys.check
        self._route = metrics.route("POST", EVENTS_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The request Starlette would route to the POST /v1/events endpoint. Behind a
        # root path, Starlette's own routing decides: it strips the prefix.
        if (
            scope["type"] == "http"
            and scope["path"] == EVENTS_PATH
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            await self._post(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500  # what is counted if no answer could be sent
        started = False
        try:
            try:
                # The first of each header, as Starlette's `Headers.get` finds it, decoded as
                # it decodes them; ASGI names are lower case.
                authorization = api_key = content_type = content_length = None
                for name, value in scope["headers"]:
                    if name == b"authorization" and authorization is None:
                        authorization = value.decode("latin-1")
                    elif name == b"content-type" and content_type is None:
                        content_type = value.decode("latin-1")
                    elif name == b"content-length" and content_length is None:
                        content_length = value.decode("latin-1")
                    elif name == b"x-api-key" and api_key is None:
                        api_key = value.decode("latin-1")
                self._check(presented_key(authorization, api_key), PRODUCERS)
                body, replayed = await self._decide(receive, content_type, content_length)
            except Exception as exc:
                response = error_response(exc, Request(scope, receive), EVENTS_PATH)
                status = response.status_code
                started = True
                await response(scope, receive, send)
                return
            length = (b"content-length", b"%d" % len(body))
            headers = [_REPLAYED, length, _CONTENT_TYPE] if replayed else [length, _CONTENT_TYPE]
            status = 200
            started = True
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except Exception:
            # As Starlette's ServerErrorMiddleware does: a 500 problem if nothing was sent
            # yet, and the error raised on for the server to log.
            if not started:
                await problem_response(INTERNAL, Request(scope))(scope, receive, send)
            raise
        finally:
            self._route.observe(status, time.perf_counter() - start)
