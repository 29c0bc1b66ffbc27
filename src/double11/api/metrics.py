"""Prometheus metrics for one app, in a registry of its own.

A registry per app (not prometheus-client's global one) lets several apps live
in one process, as they do in tests, without their counts mixing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from double11.domain.decision import Decision, Outcome

# What happened to one event, as the `decision` label says it.
FIRED = "fired"
NO_GRANT = "no_grant"
REPLAYED = "replayed"
ERROR = "error"
DECISIONS = (FIRED, NO_GRANT, REPLAYED, ERROR)
# Event types outside the campaign share one label, so a client cannot grow the series.
UNKNOWN_TYPE = "_unknown"

_FIRED = Outcome.FIRED  # bound once: a lookup on the enum class costs ten times more

# Any other method is labelled "other": a client may send whatever it likes there.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The counters and histograms of one app."""

    def __init__(self, event_types: Iterable[str], mechanic_ids: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._types = frozenset(event_types)
        self.events = Counter(
            "double11_events",
            "Events answered, by event type and decision.",
            ["type", "decision"],
            registry=self.registry,
        )
        self.grants = Counter(
            "double11_grants",
            "Mechanics that fired, by mechanic.",
            ["mechanic"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "double11_request_duration_seconds",
            "Time to answer an HTTP request, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "double11_http_responses",
            "HTTP responses, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        # Children made once: looking a label set up costs a lock and a dict per call.
        self._event_children = {
            (t, d): self.events.labels(t, d)
            for t in (*self._types, UNKNOWN_TYPE)
            for d in DECISIONS
        }
        self._grant_children = {m: self.grants.labels(m) for m in mechanic_ids}
        self._routes: dict[tuple[str, str], RouteMetrics] = {}

    def route(self, method: str, template: str) -> RouteMetrics:
        """The latency and response counts of `method` on the route `template`."""
        found = self._routes.get((method, template))
        if found is None:
            found = self._routes[method, template] = RouteMetrics(self, method, template)
        return found

    def event_type(self, name: str | None) -> str:
        """The `type` label for an event type name: itself if the campaign has it."""
        return name if name in self._types else UNKNOWN_TYPE

    def decided(self, decision: Decision, replayed: bool) -> None:
        """Count one answered event and the mechanics that fired for it."""
        label = decision.event_type
        if label not in self._types:
            label = UNKNOWN_TYPE
        if replayed:
            self._event_children[label, REPLAYED].inc()
            return
        self._event_children[label, FIRED if decision.grants else NO_GRANT].inc()
        for outcome in decision.outcomes:
            if outcome.outcome is _FIRED:
                child = self._grant_children.get(outcome.mechanic_id)
                if child is None:
                    child = self._grant_children[outcome.mechanic_id] = self.grants.labels(
                        outcome.mechanic_id
                    )
                child.inc()

    def failed(self, event_type: str | None) -> None:
        """Count an event that got an error instead of a decision."""
        self._event_children[self.event_type(event_type), ERROR].inc()

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper's Accept header asks for, and its media type.

        Prometheus text format 0.0.4 unless OpenMetrics or a newer text version is asked for.
        """
        encode, media_type = choose_encoder(accept or "")
        return encode(self.registry), media_type


class RouteMetrics:
    """The latency and response counts of one method on one route template.

    Children are made on first use, so a route's series appear once it is called,
    and looked up once: a label lookup takes a lock and a dict.
    """

    __slots__ = ("_latency", "_method", "_metrics", "_responses", "_template")

    def __init__(self, metrics: Metrics, method: str, template: str) -> None:
        self._metrics = metrics
        self._method = method
        self._template = template
        self._latency: Histogram | None = None
        self._responses: dict[int, Counter] = {}

    def observe(self, status: int, seconds: float) -> None:
        """Count one response of `status` that took `seconds` to answer."""
        latency = self._latency
        if latency is None:
            latency = self._latency = self._metrics.latency.labels(self._method, self._template)
        latency.observe(seconds)
        responses = self._responses.get(status)
        if responses is None:
            responses = self._responses[status] = self._metrics.responses.labels(
                self._method, self._template, str(status)
            )
        responses.inc()


class LatencyMiddleware:
    """Times every HTTP request and counts responses, labelled by route template.

    Labels use the route's template (`/v1/customers/{id}/wallet`), never the
    path, so ids neither grow the series nor reach the metrics.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.route(method, template).observe(status, time.perf_counter() - start)
