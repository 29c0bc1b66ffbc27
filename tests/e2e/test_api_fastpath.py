"""The fast path of POST /v1/events answers exactly as the Starlette route does.

Each request goes, as raw ASGI, both to the app `create_app` returns and to the
Starlette app inside it, each on a store of its own with a stopped clock; the
status, the headers (in order) and the body must be byte for byte the same. The
scope tells which way a request went: Starlette writes its app and route into it,
the fast path writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import pytest

from double11.adapters.memory import MemoryStore
from double11.api import create_app
from double11.api.fastpath import EventsFastPath
from double11.bootstrap import open_stores
from double11.domain.campaign import Campaign
from double11.domain.customer import Customer
from double11.engine.clock import StartedClock
from double11.engine.codec import decode_decision
from double11.engine.pipeline import Engine
from double11.engine.ports import Stores
from double11.risk.step import NoRiskRules
from double11.settings import Settings

from .doubles import FailingEventLog

Message = dict[str, Any]
Header = tuple[bytes, bytes]
EVENT = {
    "id": "e-1",
    "type": "reservation",
    "customer_id": "c-1",
    "at": "2026-11-01T09:30:00+08:00",
    "data": {},
}
JSON = (b"content-type", b"application/json")


def body_of(**changes: Any) -> bytes:
    return msgspec.json.encode({**EVENT, **changes})


@dataclass
class Answer:
    """What an app sent back for one request, the scope it saw and how often it read."""

    status: int = 0
    headers: list[Header] = field(default_factory=list)
    body: bytes = b""
    scope: dict[str, Any] = field(default_factory=dict)
    reads: int = 0

    @property
    def problem(self) -> dict[str, Any]:
        assert (b"content-type", b"application/problem+json") in self.headers
        found: dict[str, Any] = msgspec.json.decode(self.body)
        return found

    @property
    def via_starlette(self) -> bool:
        return "app" in self.scope


@dataclass(frozen=True)
class Request:
    """One raw ASGI request: its head and the body messages it sends."""

    headers: Sequence[Header]
    messages: Sequence[Message]
    method: str = "POST"
    path: str = "/v1/events"
    root_path: str = ""


def post(body: bytes, *headers: Header, length: bool = True) -> Request:
    """A POST of `body` in one message, with a Content-Length unless `length` is false."""
    sized = [(b"content-length", str(len(body)).encode())] if length else []
    return Request([(b"host", b"double11.test"), *headers, *sized], [_message(body)])


def streamed(chunks: Sequence[bytes], *headers: Header) -> Request:
    """A POST whose body comes in `chunks` with no Content-Length, as chunked encoding does."""
    messages = [_message(c, more=True) for c in chunks[:-1]] + [_message(chunks[-1])]
    return Request([(b"host", b"double11.test"), *headers], messages)


def _message(body: bytes, *, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


async def call(app: Any, request: Request) -> Answer:
    """Send `request` to `app` as ASGI and collect the answer."""
    answer = Answer()
    pending = list(request.messages)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": request.root_path,
        "query_string": b"",
        "headers": list(request.headers),
        "client": ("127.0.0.1", 50000),
        "server": ("double11.test", 80),
    }

    async def receive() -> Message:
        answer.reads += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = [(bytes(k), bytes(v)) for k, v in message["headers"]]
        else:
            answer.body += message.get("body", b"")

    await app(scope, receive, send)
    answer.scope = scope
    return answer


@dataclass
class Twins:
    """The app `create_app` returns and the Starlette app inside another, on separate stores."""

    app: EventsFastPath
    other: EventsFastPath

    async def both(self, request: Request) -> Answer:
        """Send `request` down both ways; check the answers are the same and return one."""
        fast = await call(self.app, request)
        slow = await call(self.other.starlette, request)
        assert not fast.via_starlette and slow.via_starlette
        assert (fast.status, fast.headers, fast.body) == (slow.status, slow.headers, slow.body)
        assert fast.reads == slow.reads
        return fast


async def _app(campaign: Campaign, now: datetime, settings: Settings) -> EventsFastPath:
    stores = await open_stores("memory://")
    await stores.customers.put_customer(Customer(id="c-1", age=30, is_new=True))
    # A stopped clock, so the two stores decide at the same instant and answer the same bytes.
    engine = Engine(campaign, stores, StartedClock(now, speed=0), NoRiskRules())
    return create_app(engine, settings)


@pytest.fixture
async def twins(campaign: Campaign, now: datetime, settings: Settings) -> Twins:
    return Twins(await _app(campaign, now, settings), await _app(campaign, now, settings))


@pytest.fixture
def bearer(keys: dict[str, str]) -> Header:
    return (b"authorization", f"Bearer {keys['producer']}".encode())


# ---- answers -------------------------------------------------------------------------------


async def test_a_decision_and_its_replay_are_answered_as_starlette_answers_them(
    twins: Twins, bearer: Header
) -> None:
    first = await twins.both(post(body_of(), bearer, JSON))
    assert first.status == 200
    assert first.headers == [(b"content-length", str(len(first.body)).encode()), JSON]
    assert [g.mechanic_id for g in decode_decision(first.body).grants] == [
        "early_bird_double_points"
    ]
    again = await twins.both(post(body_of(), bearer, JSON))
    assert again.headers[0] == (b"idempotent-replayed", b"true")
    assert again.body == first.body


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        pytest.param((), b'Bearer realm="double11"', id="no key"),
        pytest.param(
            ((b"authorization", b"Bearer wrong-key"),),
            b'Bearer realm="double11", error="invalid_token"',
            id="wrong bearer",
        ),
        pytest.param(
            ((b"x-api-key", b"wrong-key"),),
            b'Bearer realm="double11", error="invalid_token"',
            id="wrong x-api-key",
        ),
        pytest.param(
            ((b"authorization", b"Basic admin-key-0001"),),
            b'Bearer realm="double11", error="invalid_token"',
            id="other scheme",
        ),
        pytest.param(
            ((b"authorization", b"Bearer "),),
            b'Bearer realm="double11", error="invalid_token"',
            id="empty bearer",
        ),
    ],
)
async def test_a_missing_or_wrong_key_is_the_same_401_on_the_fast_path(
    twins: Twins, headers: tuple[Header, ...], challenge: bytes
) -> None:
    answer = await twins.both(post(body_of(), *headers, JSON))
    assert answer.status == 401
    assert answer.headers[0] == (b"www-authenticate", challenge)
    assert answer.problem["instance"] == "/v1/events"
    assert answer.reads == 0  # refused before the body is read


async def test_a_reader_key_is_the_same_403_on_the_fast_path(
    twins: Twins, keys: dict[str, str]
) -> None:
    answer = await twins.both(post(body_of(), (b"x-api-key", keys["reader"].encode()), JSON))
    assert answer.status == 403
    assert answer.problem["detail"] == "this route needs the role admin or producer"


async def test_the_first_of_repeated_headers_counts_as_starlette_counts_it(
    twins: Twins, keys: dict[str, str], bearer: Header
) -> None:
    reader_first = post(
        body_of(), (b"authorization", f"Bearer {keys['reader']}".encode()), bearer, JSON
    )
    assert (await twins.both(reader_first)).status == 403
    text_first = post(body_of(), bearer, (b"content-type", b"text/plain"), JSON)
    assert (await twins.both(text_first)).status == 415
    producer_first = post(body_of(), bearer, (b"authorization", b"Bearer wrong"), JSON)
    assert (await twins.both(producer_first)).status == 200


async def test_an_admin_key_in_x_api_key_is_let_in_on_the_fast_path(
    twins: Twins, keys: dict[str, str]
) -> None:
    answer = await twins.both(post(body_of(), (b"x-api-key", keys["admin"].encode()), JSON))
    assert answer.status == 200


@pytest.mark.parametrize(
    "content_type",
    [None, b"text/plain", b"application/x-www-form-urlencoded", b"application/json-seq"],
)
async def test_a_body_not_declared_as_json_is_the_same_415_on_the_fast_path(
    twins: Twins, bearer: Header, content_type: bytes | None
) -> None:
    declared = [(b"content-type", content_type)] if content_type is not None else []
    answer = await twins.both(post(body_of(), bearer, *declared))
    assert answer.status == 415
    assert answer.reads == 0


async def test_a_json_subtype_is_accepted_on_the_fast_path(twins: Twins, bearer: Header) -> None:
    content_type = (b"content-type", b"application/vnd.bank+json; charset=utf-8")
    assert (await twins.both(post(body_of(), bearer, content_type))).status == 200


async def test_a_declared_length_over_the_limit_is_the_same_413_before_reading(
    twins: Twins, bearer: Header, settings: Settings
) -> None:
    answer = await twins.both(post(body_of(data={"note": "x" * settings.body_limit}), bearer, JSON))
    assert answer.status == 413
    assert answer.problem["detail"] == f"the body is larger than {settings.body_limit} bytes"
    assert answer.reads == 0


async def test_a_streamed_body_over_the_limit_is_the_same_413_once_past_it(
    twins: Twins, bearer: Header, settings: Settings
) -> None:
    body = body_of(data={"note": "x" * settings.body_limit * 4})
    chunks = [body[i : i + 1024] for i in range(0, len(body), 1024)]
    answer = await twins.both(streamed(chunks, bearer, JSON))
    assert answer.status == 413
    assert answer.reads == settings.body_limit // 1024 + 1  # stopped once past the limit


async def test_a_streamed_body_within_the_limit_is_decided_on_the_fast_path(
    twins: Twins, bearer: Header
) -> None:
    body = body_of()
    answer = await twins.both(streamed([body[:10], body[10:40], body[40:]], bearer, JSON))
    assert answer.status == 200


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        pytest.param(
            Request([(b"content-length", b"many")], [_message(body_of())]),
            "Content-Length is not a number",
            id="length not a number",
        ),
        pytest.param(
            Request([], [_message(b"{", more=True), {"type": "http.disconnect"}]),
            "the client went away mid-body",
            id="client gone mid-body",
        ),
    ],
)
async def test_a_broken_request_is_the_same_400_on_the_fast_path(
    twins: Twins, bearer: Header, request_: Request, detail: str
) -> None:
    request = Request([bearer, JSON, *request_.headers], request_.messages)
    answer = await twins.both(request)
    assert answer.status == 400
    assert answer.problem["detail"] == detail


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param(b'{"id": "e-9", ', 400, None, id="malformed"),
        pytest.param(b"", 400, None, id="empty"),
        pytest.param(b"[]", 422, "body", id="array"),
        pytest.param(body_of(id=9), 422, "id", id="id a number"),
        pytest.param(body_of(colour="red"), 422, "colour", id="unknown field"),
        pytest.param(body_of(at="2026-11-01T09:30:00"), 422, "at", id="naive instant"),
        pytest.param(body_of(type="deposit"), 422, "data.amount", id="amount missing"),
        pytest.param(
            body_of(type="deposit", data={"amount": "1.005"}), 422, "data.amount", id="3 places"
        ),
        pytest.param(body_of(type="teleport"), 422, "type", id="unknown type"),
        pytest.param(body_of(customer_id="nobody"), 422, "customer_id", id="unknown customer"),
        pytest.param(body_of(at="2026-11-01T12:00:00+08:00"), 422, "at", id="too far ahead"),
    ],
)
async def test_a_bad_event_is_the_same_problem_on_the_fast_path(
    twins: Twins, bearer: Header, body: bytes, status: int, field: str | None
) -> None:
    answer = await twins.both(post(body, bearer, JSON))
    assert answer.status == status
    problem = answer.problem
    assert problem["instance"] == "/v1/events"
    assert [e["field"] for e in problem.get("errors", [])] == ([field] if field else [])


async def test_the_fast_path_says_what_a_field_must_be_in_the_campaign_files_words(
    twins: Twins, bearer: Header
) -> None:
    answer = await twins.both(post(body_of(id=9), bearer, JSON))
    assert answer.status == 422
    message = "must be text of 1 to 128 characters"  # not msgspec's "Expected `str`, got `int`"
    assert answer.problem["errors"] == [{"field": "id", "message": message}]
    assert answer.problem["detail"] == f"id: {message}"


async def test_a_reused_event_id_is_the_same_409_on_the_fast_path(
    twins: Twins, bearer: Header
) -> None:
    await twins.both(post(body_of(), bearer, JSON))
    answer = await twins.both(post(body_of(type="checkin"), bearer, JSON))
    assert answer.status == 409
    assert answer.problem["type"] == "urn:double11:problem:event-id-reused"


# ---- failing stores ------------------------------------------------------------------------


@pytest.fixture
async def failing(
    campaign: Campaign, now: datetime, settings: Settings, request: pytest.FixtureRequest
) -> Twins:
    """Twins whose event logs fail: on commit (`param` true) or on every lookup."""
    apps = []
    for _ in range(2):
        store = MemoryStore()
        await store.put_customer(Customer(id="c-1", age=30, is_new=True))
        log = FailingEventLog(store, finds=request.param)
        engine = Engine(campaign, Stores(store, log, store), StartedClock(now, 0), NoRiskRules())
        apps.append(create_app(engine, settings))
    return Twins(apps[0], apps[1])


@pytest.mark.parametrize("failing", [True], indirect=True)
async def test_an_unavailable_store_is_the_same_503_with_retry_after(
    failing: Twins, bearer: Header
) -> None:
    answer = await failing.both(post(body_of(), bearer, JSON))
    assert answer.status == 503
    assert answer.headers[0] == (b"retry-after", b"1")


@pytest.mark.parametrize("failing", [False], indirect=True)
async def test_an_unexpected_failure_is_the_same_500_logged_with_the_route(
    failing: Twins, bearer: Header, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await failing.both(post(body_of(id="e-secret-1"), bearer, JSON))
    assert answer.status == 500
    assert answer.problem["title"] == "Internal Server Error"
    # The same first line; the frames below it differ, as the two ways differ.
    [fast, slow] = [r.getMessage().partition("\n")[0] for r in caplog.records]
    assert fast == slow == "unexpected RuntimeError answering POST /v1/events"
    assert "e-secret" not in caplog.text


# ---- what the fast path leaves to Starlette ------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD"])
async def test_another_method_on_the_events_route_is_starlettes_405_with_allow(
    twins: Twins, bearer: Header, method: str
) -> None:
    request = Request([bearer, JSON], [_message(body_of())], method=method)
    answer = await call(twins.app, request)
    assert answer.via_starlette
    assert answer.status == 405
    assert (b"allow", b"POST") in answer.headers
    if method != "HEAD":
        assert answer.problem["instance"] == "/v1/events"


async def test_behind_a_root_path_the_request_is_left_to_starlettes_routing(
    twins: Twins, bearer: Header
) -> None:
    request = post(body_of(), bearer, JSON)
    mounted = Request(request.headers, request.messages, path="/api/v1/events", root_path="/api")
    answer = await call(twins.app, mounted)
    assert answer.via_starlette
    assert answer.status == 200


async def test_other_paths_and_the_lifespan_go_to_starlette(twins: Twins, bearer: Header) -> None:
    answer = await call(twins.app, Request([bearer, JSON], [_message(b"")], "GET", "/healthz"))
    assert answer.via_starlette and answer.status == 200
    slash = await call(
        twins.app, Request([bearer, JSON], [_message(body_of())], "POST", "/v1/events/")
    )
    assert slash.via_starlette


# ---- metrics -------------------------------------------------------------------------------


def _samples(text: str) -> dict[str, float]:
    """Prometheus text: {'name{labels}': value}."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_the_fast_path_counts_events_latency_and_responses_once(
    twins: Twins, bearer: Header, keys: dict[str, str]
) -> None:
    app = twins.app
    await call(app, post(body_of(id="r-1"), bearer, JSON))  # fired
    await call(app, post(body_of(id="r-1"), bearer, JSON))  # replayed
    await call(app, post(body_of(id="r-2"), bearer, JSON))  # no grant: the perk is held
    await call(app, post(body_of(id="x-1", type="teleport"), bearer, JSON))  # 422
    await call(app, post(b"{", bearer, JSON))  # 400
    await call(app, post(body_of(id="x-2"), JSON))  # 401: no event is counted
    await call(app, Request([bearer], [_message(b"")], method="GET"))  # Starlette's 405
    metrics = await call(app, Request([], [_message(b"")], "GET", "/metrics"))
    samples = _samples(metrics.body.decode())
    post_route = 'method="POST",route="/v1/events"'
    assert samples[f"double11_request_duration_seconds_count{{{post_route}}}"] == 6
    for status, count in (("200", 3), ("422", 1), ("400", 1), ("401", 1)):
        key = f'double11_http_responses_total{{{post_route},status="{status}"}}'
        assert samples[key] == count, key
    get_route = 'method="GET",route="/v1/events"'
    assert samples[f'double11_http_responses_total{{{get_route},status="405"}}'] == 1
    for labels, count in (
        ('decision="fired",type="reservation"', 1),
        ('decision="replayed",type="reservation"', 1),
        ('decision="no_grant",type="reservation"', 1),
        ('decision="error",type="_unknown"', 2),
    ):
        assert samples[f"double11_events_total{{{labels}}}"] == count, labels
    assert samples['double11_grants_total{mechanic="early_bird_double_points"}'] == 1


async def test_a_route_has_no_latency_series_until_it_is_called(twins: Twins) -> None:
    metrics = await call(twins.app, Request([], [_message(b"")], "GET", "/metrics"))
    assert 'route="/v1/events"' not in metrics.body.decode()
