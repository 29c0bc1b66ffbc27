"""`create_app(engine, settings)`: the ASGI app, built from nothing held at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from double11.api.auth import PRODUCERS, READERS, KeyRing, Role
from double11.api.campaign import CampaignEndpoint
from double11.api.customers import CustomersEndpoint
from double11.api.docs import ASSETS_PATH, assets_app, docs_page
from double11.api.events import EventsEndpoint
from double11.api.fastpath import EVENTS_PATH, EventsFastPath
from double11.api.health import HealthEndpoint
from double11.api.metrics import LatencyMiddleware, Metrics
from double11.api.openapi import build_openapi
from double11.api.problems import INTERNAL, ProblemError, error_response, problem_response
from double11.engine.pipeline import Engine
from double11.settings import Settings

Handler = Callable[[Request], Awaitable[Response]]
ShutdownHook = Callable[[], Awaitable[None]]


def _endpoint(
    handler: Handler, template: str, keys: KeyRing, roles: frozenset[Role] | None
) -> Handler:
    """Wrap a handler: check the caller's role, and answer every error as a problem.

    Errors are logged with the route's `template`, never the path: paths carry
    customer ids, which are personal.
    """

    async def endpoint(request: Request) -> Response:
        try:
            if roles is not None:
                keys.authorize(request, roles)
            return await handler(request)
        except Exception as exc:
            return error_response(exc, request, template)

    return endpoint


_DETAILS = {
    404: "no route matches this path",
    405: "this route does not allow the method; see the Allow header",
}


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Starlette's own 404 (no route, no static file) and 405 (wrong method), as problems.
    assert isinstance(exc, HTTPException)
    detail = _DETAILS.get(exc.status_code, exc.detail)
    problem = ProblemError(exc.status_code, exc.detail, detail, headers=exc.headers)
    return problem_response(problem, request)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Only failures outside the endpoints land here (they catch their own).
    return problem_response(INTERNAL, request)


def create_app(
    engine: Engine, settings: Settings, *, on_shutdown: ShutdownHook | None = None
) -> EventsFastPath:
    """The HTTP API over `engine`; `on_shutdown` runs when the server stops (e.g. close stores).

    The app answers `POST /v1/events` on a fast path and hands every other request to
    the Starlette app it holds as `.starlette`.
    """
    keys = KeyRing(settings.api_keys)
    metrics = Metrics(engine.campaign.event_types, (m.id for m in engine.campaign.mechanics))
    events = EventsEndpoint(engine, metrics, settings.body_limit)
    customers = CustomersEndpoint(engine, settings.body_limit)
    campaign = CampaignEndpoint(engine)
    health = HealthEndpoint(engine)
    openapi = msgspec.json.encode(build_openapi())

    async def openapi_document(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def metrics_page(request: Request) -> Response:
        body, media_type = metrics.render(request.headers.get("accept"))
        return Response(body, media_type=media_type)

    def route(path: str, handler: Handler, method: str, roles: frozenset[Role] | None) -> Route:
        return Route(path, _endpoint(handler, path, keys, roles), methods=[method])

    routes: list[BaseRoute] = [
        # The hot route first: routes are matched in order. Requests for it mostly take the
        # fast path in front; this route answers the rest (behind a root path, other methods).
        route(EVENTS_PATH, events.post, "POST", PRODUCERS),
        route("/v1/customers/{id}", customers.put, "PUT", PRODUCERS),
        route("/v1/customers/{id}/wallet", customers.wallet, "GET", READERS),
        route("/v1/campaign", campaign.get, "GET", READERS),
        route("/healthz", health.get, "GET", None),
        route("/metrics", metrics_page, "GET", None),
        route("/openapi.json", openapi_document, "GET", None),
        route("/docs", docs_page, "GET", None),
        Mount(ASSETS_PATH, app=assets_app(), name="docs-assets"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    starlette = Starlette(
        routes=routes,
        middleware=[Middleware(LatencyMiddleware, metrics=metrics)],
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        lifespan=lifespan,
    )
    return EventsFastPath(starlette, events, keys, metrics)
