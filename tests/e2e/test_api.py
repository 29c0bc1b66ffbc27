"""The HTTP API, through httpx against the ASGI app on a memory store."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

from double11.adapters.memory import MemoryStore
from double11.api import create_app, parse_api_keys
from double11.api.auth import API_KEYS_ENV, KeyRing, api_keys_from_env
from double11.api.fastpath import EventsFastPath
from double11.campaign_file import digest
from double11.domain.customer import Customer
from double11.domain.ledger import Asset
from double11.engine.codec import decode_decision
from double11.engine.pipeline import Engine
from double11.engine.ports import Stores
from double11.settings import Settings

from .conftest import CAMPAIGN_FILE
from .doubles import FailingEventLog

PROBLEM_JSON = "application/problem+json"
WARMUP_AT = "2026-11-01T09:30:00+08:00"  # half an hour before the engine's clock starts
Written = Callable[[], Any]


def event(
    event_id: str, event_type: str = "reservation", customer_id: str = "c-1", **data: Any
) -> dict[str, Any]:
    """An event body in the warm-up."""
    return {
        "id": event_id,
        "type": event_type,
        "customer_id": customer_id,
        "at": WARMUP_AT,
        "data": data,
    }


@pytest.fixture
def producer(keys: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys['producer']}"}


@pytest.fixture
def reader(keys: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys['reader']}"}


@pytest.fixture
def admin(keys: dict[str, str]) -> dict[str, str]:
    return {"X-API-Key": keys["admin"]}


def assert_problem(
    response: httpx.Response, status: int, field: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`, naming `field` if given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"] and problem["title"] and problem["detail"]
    if field is not None:
        assert [e["field"] for e in problem["errors"]] == [field], problem
        assert all(e["message"] for e in problem["errors"])
    return problem


# ---- POST /v1/events ----------------------------------------------------------------------


async def test_a_warm_up_reservation_is_decided_with_the_double_points_perk(
    client: httpx.AsyncClient, customer: Customer, store: MemoryStore, producer: dict[str, str]
) -> None:
    response = await client.post("/v1/events", json=event("e-1"), headers=producer)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "idempotent-replayed" not in response.headers
    decision = decode_decision(response.content)
    assert decision.event_id == "e-1" and decision.phase == "warmup"
    assert [g.mechanic_id for g in decision.grants] == ["early_bird_double_points"]
    assert store.events["e-1"].decision == decision


async def test_a_replayed_event_gets_the_identical_body_and_grants_nothing(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    producer: dict[str, str],
    written: Written,
) -> None:
    first = await client.post("/v1/events", json=event("e-1"), headers=producer)
    before = written()
    again = await client.post("/v1/events", json=event("e-1"), headers=producer)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert written() == before


async def test_an_event_id_reused_with_another_body_is_a_conflict_that_writes_nothing(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    producer: dict[str, str],
    written: Written,
) -> None:
    await client.post("/v1/events", json=event("e-1"), headers=producer)
    before = written()
    response = await client.post("/v1/events", json=event("e-1", "checkin"), headers=producer)
    problem = assert_problem(response, 409, "id")
    assert problem["type"] == "urn:double11:problem:event-id-reused"
    assert problem["detail"] == "id: event 'e-1' was already sent with a different body"
    assert written() == before


async def test_a_money_amount_sent_as_a_json_number_is_read_exactly(
    client: httpx.AsyncClient, customer: Customer, producer: dict[str, str]
) -> None:
    body = b'{"id":"d-1","type":"deposit","customer_id":"c-1","at":"%s","data":{"amount":60000.10}}'
    response = await client.post(
        "/v1/events",
        content=body % event("x")["at"].encode(),
        headers={**producer, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    [coupon] = decode_decision(response.content).grants
    assert coupon.asset is Asset.COUPON and coupon.attributes["boost"] == "0.008"


# ---- bad events change nothing ------------------------------------------------------------


BAD_EVENTS: list[tuple[str, bytes, int, str | None]] = [
    ("malformed JSON", b'{"id": "e-9", ', 400, None),
    ("empty body", b"", 400, None),
    ("array body", b"[]", 422, "body"),
    ("id of the wrong type", msgspec.json.encode({**event("e-9"), "id": 9}), 422, "id"),
    ("empty id", msgspec.json.encode({**event("e-9"), "id": ""}), 422, "id"),
    (
        "missing customer",
        msgspec.json.encode({k: v for k, v in event("e-9").items() if k != "customer_id"}),
        422,
        "customer_id",
    ),
    ("unknown field", msgspec.json.encode({**event("e-9"), "colour": "red"}), 422, "colour"),
    (
        "naive instant",
        msgspec.json.encode({**event("e-9"), "at": "2026-11-01T09:30:00"}),
        422,
        "at",
    ),
    ("not an instant", msgspec.json.encode({**event("e-9"), "at": "yesterday"}), 422, "at"),
    ("data not an object", msgspec.json.encode({**event("e-9"), "data": [1]}), 422, "data"),
    ("amount missing", msgspec.json.encode(event("e-9", "deposit")), 422, "data.amount"),
    (
        "amount a word",
        msgspec.json.encode(event("e-9", "deposit", amount="lots")),
        422,
        "data.amount",
    ),
    (
        "amount an object",
        msgspec.json.encode(event("e-9", "deposit", amount={})),
        422,
        "data.amount",
    ),
    (
        "amount of 3 places",
        b'{"id":"e-9","type":"deposit","customer_id":"c-1",'
        b'"at":"2026-11-01T09:30:00+08:00","data":{"amount":1.005}}',
        422,
        "data.amount",
    ),
    (
        "negative amount",
        msgspec.json.encode(event("e-9", "deposit", amount="-1.00")),
        422,
        "data.amount",
    ),
    # Past Decimal's 28-digit precision: refused, not a 500 from quantizing.
    (
        "amount of 10^30",
        msgspec.json.encode(event("e-9", "deposit", amount="1e30")),
        422,
        "data.amount",
    ),
    (
        "amount of 10^30 as a number",
        b'{"id":"e-9","type":"deposit","customer_id":"c-1",'
        b'"at":"2026-11-01T09:30:00+08:00","data":{"amount":1e30}}',
        422,
        "data.amount",
    ),
    ("unknown event type", msgspec.json.encode(event("e-9", "teleport")), 422, "type"),
    (
        "unknown customer",
        msgspec.json.encode(event("e-9", customer_id="nobody")),
        422,
        "customer_id",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [pytest.param(b, s, f, id=name) for name, b, s, f in BAD_EVENTS],
)
async def test_a_bad_event_is_a_problem_that_writes_nothing(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    body: bytes,
    status: int,
    field: str | None,
    producer: dict[str, str],
    written: Written,
) -> None:
    before = written()
    response = await client.post(
        "/v1/events", content=body, headers={**producer, "content-type": "application/json"}
    )
    assert_problem(response, status, field)
    assert written() == before


async def test_unknown_types_and_customers_have_their_own_problem_types(
    client: httpx.AsyncClient, customer: Customer, producer: dict[str, str]
) -> None:
    unknown_type = await client.post("/v1/events", json=event("e-1", "teleport"), headers=producer)
    assert unknown_type.json()["type"] == "urn:double11:problem:unknown-event-type"
    unknown_customer = await client.post(
        "/v1/events", json=event("e-1", customer_id="nobody"), headers=producer
    )
    assert unknown_customer.json()["type"] == "urn:double11:problem:unknown-customer"


async def test_an_event_too_far_ahead_of_the_clock_is_refused(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    producer: dict[str, str],
    written: Written,
    now: datetime,
) -> None:
    before = written()
    ahead = (now + timedelta(hours=1)).isoformat()
    response = await client.post("/v1/events", json={**event("e-1"), "at": ahead}, headers=producer)
    problem = assert_problem(response, 422, "at")
    assert problem["type"] == "urn:double11:problem:event-too-far-ahead"
    assert written() == before


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_not_declared_as_json_is_415(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    content_type: str | None,
    producer: dict[str, str],
    written: Written,
) -> None:
    before = written()
    headers = dict(producer)
    if content_type is not None:
        headers["content-type"] = content_type
    response = await client.post(
        "/v1/events", content=msgspec.json.encode(event("e-1")), headers=headers
    )
    assert_problem(response, 415)
    assert written() == before


async def test_a_json_subtype_content_type_is_accepted(
    client: httpx.AsyncClient, customer: Customer, producer: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/events",
        content=msgspec.json.encode(event("e-1")),
        headers={**producer, "content-type": "application/vnd.bank+json; charset=utf-8"},
    )
    assert response.status_code == 200


def _oversized(settings: Settings, times: int = 1) -> bytes:
    return msgspec.json.encode(event("e-1", note="x" * settings.body_limit * times))


async def test_a_body_over_the_limit_is_refused_by_its_content_length(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    producer: dict[str, str],
    written: Written,
    settings: Settings,
) -> None:
    before = written()
    response = await client.post(
        "/v1/events",
        content=_oversized(settings),
        headers={**producer, "content-type": "application/json"},
    )
    assert_problem(response, 413)
    assert written() == before


async def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    producer: dict[str, str],
    written: Written,
    settings: Settings,
) -> None:
    body = _oversized(settings, times=4)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024):
            sent.append(start)
            yield body[start : start + 1024]

    before = written()
    response = await client.post(
        "/v1/events", content=chunks(), headers={**producer, "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert len(sent) < len(body) // 1024  # the server stopped reading once past the limit
    assert written() == before


async def test_a_body_exactly_at_the_limit_is_read(
    client: httpx.AsyncClient, customer: Customer, producer: dict[str, str], settings: Settings
) -> None:
    body = msgspec.json.encode(event("e-1", note=""))
    padded = msgspec.json.encode(event("e-1", note="x" * (settings.body_limit - len(body))))
    assert len(padded) == settings.body_limit
    response = await client.post(
        "/v1/events", content=padded, headers={**producer, "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def broken_client(engine: Engine, settings: Settings, store: MemoryStore) -> httpx.AsyncClient:
    broken = Engine(
        engine.campaign,
        Stores(store, FailingEventLog(store), store),
        engine.clock,
        engine.risk,
    )
    transport = httpx.ASGITransport(app=create_app(broken, settings))
    return httpx.AsyncClient(transport=transport, base_url="http://double11.test")


async def test_an_unavailable_store_is_503_with_retry_after_and_keeps_no_claim(
    broken_client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    producer: dict[str, str],
) -> None:
    async with broken_client:
        response = await broken_client.post("/v1/events", json=event("e-1"), headers=producer)
        health = await broken_client.get("/healthz")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:double11:problem:unavailable"
    assert response.headers["retry-after"] == "1"
    assert not store.events
    assert store.counters.usage["early_bird_double_points"].granted == 0
    assert health.status_code == 200  # finding events still works


class FailingCustomerStore:
    """A customer store that fails with the customer's data in its message, as drivers do."""

    async def get_customer(self, customer_id: str) -> Customer | None:
        return None

    async def put_customer(self, customer: Customer) -> bool:
        raise RuntimeError(f"insert failed: parameters ({customer.id!r}, {customer.extra!r})")


async def test_an_unexpected_failure_is_a_500_problem_logged_without_personal_data(
    engine: Engine,
    settings: Settings,
    store: MemoryStore,
    producer: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = Engine(
        engine.campaign, Stores(FailingCustomerStore(), store, store), engine.clock, engine.risk
    )
    transport = httpx.ASGITransport(app=create_app(failing, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.put(
            "/v1/customers/c-secret", json={"branch": "Pudong"}, headers=producer
        )
    problem = assert_problem(response, 500)
    assert "c-secret" not in problem["detail"]
    logged = caplog.text
    assert "RuntimeError" in logged and "PUT /v1/customers/{id}" in logged
    assert "c-secret" not in logged and "Pudong" not in logged


# ---- PUT /v1/customers/{id} ----------------------------------------------------------------


PROFILE = {
    "age": 30,
    "aum": "250000.5",
    "is_new": True,
    "tier": "gold",
    "credit_grade": "A",
    "risk_tolerance": "C3",
    "segments": ["young_online"],
    "devices": ["dev-1", "dev-2"],
    "branch": "Pudong",
    "channels": ["app", "sms"],
}


async def test_a_new_profile_is_created_with_201_and_its_location(
    client: httpx.AsyncClient, store: MemoryStore, producer: dict[str, str]
) -> None:
    response = await client.put("/v1/customers/c-7", json=PROFILE, headers=producer)
    assert response.status_code == 201
    assert response.headers["location"] == "/v1/customers/c-7"
    body = response.json()
    assert body["id"] == "c-7" and body["aum"] == "250000.50" and body["risk_tolerance"] == "C3"
    assert body["branch"] == "Pudong" and body["channels"] == ["app", "sms"]
    stored = store.customers["c-7"]
    assert stored.aum == Decimal("250000.50") and stored.segments == frozenset({"young_online"})
    assert stored.devices == ("dev-1", "dev-2")
    assert stored.extra == {"branch": "Pudong", "channels": ["app", "sms"]}


async def test_putting_a_profile_again_replaces_it_with_200(
    client: httpx.AsyncClient, store: MemoryStore, producer: dict[str, str], admin: dict[str, str]
) -> None:
    await client.put("/v1/customers/c-7", json=PROFILE, headers=producer)
    response = await client.put("/v1/customers/c-7", json={"age": 31}, headers=admin)
    assert response.status_code == 200
    assert "location" not in response.headers
    assert response.json()["aum"] == "0.00"
    assert store.customers["c-7"] == Customer(id="c-7", age=31)


async def test_an_aum_sent_as_a_json_number_is_read_exactly(
    client: httpx.AsyncClient, store: MemoryStore, producer: dict[str, str]
) -> None:
    response = await client.put(
        "/v1/customers/c-7",
        content=b'{"aum": 1234567890123.45, "id": "c-7"}',
        headers={**producer, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert store.customers["c-7"].aum == Decimal("1234567890123.45")


BAD_PROFILES: list[tuple[str, dict[str, Any], str]] = [
    ("age too high", {"age": 151}, "age"),
    ("age a string", {"age": "30"}, "age"),
    ("negative aum", {"aum": "-1.00"}, "aum"),
    ("aum of 3 places", {"aum": "1.005"}, "aum"),
    ("aum in exponent form", {"aum": "1e3"}, "aum"),
    ("aum not a number", {"aum": "NaN"}, "aum"),
    ("aum a boolean", {"aum": True}, "aum"),
    ("aum of 10^16", {"aum": "10000000000000000"}, "aum"),
    ("aum of 10^30 as a number", {"aum": 1e30}, "aum"),
    ("risk tolerance unknown", {"risk_tolerance": "C9"}, "risk_tolerance"),
    ("segment not a string", {"segments": ["a", 1]}, "segments[1]"),
    ("is_new not a boolean", {"is_new": "yes"}, "is_new"),
    ("extra field an object", {"address": {"city": "Shanghai"}}, "address"),
    ("extra field a nested list", {"history": [[1, 2]]}, "history"),
    ("id other than the path's", {"id": "c-8"}, "id"),
]


@pytest.mark.parametrize(
    ("profile", "field"), [pytest.param(p, f, id=name) for name, p, f in BAD_PROFILES]
)
async def test_a_bad_profile_is_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient,
    store: MemoryStore,
    profile: dict[str, Any],
    field: str,
    producer: dict[str, str],
) -> None:
    response = await client.put("/v1/customers/c-7", json=profile, headers=producer)
    assert_problem(response, 422, field)
    assert store.customers == {}


# What a field must be, said from the body's type in the campaign file's words, not
# msgspec's ("Invalid enum value 'C9'", "Expected `int | null`, got `str`").
BODY_MESSAGES: list[tuple[str, str, str, Any, str, str]] = [
    ("risk tolerance unknown", "PUT", "/v1/customers/c-7", {"risk_tolerance": "C9"},
     "risk_tolerance", "must be one of C1, C2, C3, C4, C5"),
    ("age a string", "PUT", "/v1/customers/c-7", {"age": "30"},
     "age", "must be a whole number from 0 to 150"),
    ("is_new a word", "PUT", "/v1/customers/c-7", {"is_new": "yes"},
     "is_new", "must be true or false"),
    ("segment a number", "PUT", "/v1/customers/c-7", {"segments": ["a", 1]},
     "segments[1]", "must be text"),
    ("profile an array", "PUT", "/v1/customers/c-7", [], "body", "must be a mapping"),
    ("event id a number", "POST", "/v1/events", {**event("e-9"), "id": 9},
     "id", "must be text of 1 to 128 characters"),
    ("naive instant", "POST", "/v1/events", {**event("e-9"), "at": "2026-11-01T09:30:00"},
     "at", "must be an instant with an offset, e.g. 2026-11-11T00:00:00+08:00"),
    ("instant a number", "POST", "/v1/events", {**event("e-9"), "at": 1793500000},
     "at", "must be an instant with an offset, e.g. 2026-11-11T00:00:00+08:00"),
    ("data an array", "POST", "/v1/events", {**event("e-9"), "data": [1]},
     "data", "must be a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "message"),
    [pytest.param(*case, id=name) for name, *case in BODY_MESSAGES],
)
async def test_a_body_of_the_wrong_shape_says_what_the_field_must_be(
    client: httpx.AsyncClient,
    customer: Customer,
    method: str,
    path: str,
    body: Any,
    field: str,
    message: str,
    producer: dict[str, str],
    written: Written,
) -> None:
    before = written()
    response = await client.request(method, path, json=body, headers=producer)
    problem = assert_problem(response, 422, field)
    assert problem["errors"] == [{"field": field, "message": message}]
    assert problem["detail"] == f"{field}: {message}"
    assert written() == before


async def test_a_customer_id_longer_than_128_characters_is_refused(
    client: httpx.AsyncClient, store: MemoryStore, producer: dict[str, str]
) -> None:
    response = await client.put("/v1/customers/" + "c" * 129, json={}, headers=producer)
    assert_problem(response, 422, "id")
    assert store.customers == {}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{nope", "application/json", 400),
        (b"[]", "application/json", 422),
        (b"{}", "text/plain", 415),
        (b'{"x": "' + b"y" * 9000 + b'"}', "application/json", 413),  # over the 8 KiB limit
    ],
)
async def test_a_profile_body_that_is_not_a_json_object_within_the_limit_is_refused(
    client: httpx.AsyncClient,
    store: MemoryStore,
    body: bytes,
    content_type: str,
    status: int,
    producer: dict[str, str],
) -> None:
    response = await client.put(
        "/v1/customers/c-7", content=body, headers={**producer, "content-type": content_type}
    )
    assert_problem(response, status)
    assert store.customers == {}


# ---- GET /v1/customers/{id}/wallet ---------------------------------------------------------


async def test_the_wallet_lists_points_perks_coupons_and_tickets_with_their_origin(
    client: httpx.AsyncClient, customer: Customer, producer: dict[str, str], reader: dict[str, str]
) -> None:
    for body in (
        event("r-1", "reservation"),
        event("a-1", "risk_assessment", level="C3"),
        event("d-1", "deposit", amount="60000.00"),
        event("k-1", "checkin"),
    ):
        response = await client.post("/v1/events", json=body, headers=producer)
        assert response.status_code == 200, response.text
    response = await client.get("/v1/customers/c-1/wallet", headers=reader)
    assert response.status_code == 200
    wallet = response.json()
    assert wallet["customer_id"] == "c-1"
    assert wallet["points"] == 20  # 10 check-in points, doubled by the early-bird perk
    [perk] = wallet["perks"]
    assert perk == {
        "entry_id": "r-1/early_bird_double_points/0",
        "mechanic_id": "early_bird_double_points",
        "event_id": "r-1",
        "granted_at": "2026-11-01T09:30:00+08:00",
        "state": "active",
        "perk": "double_points",
    }
    [coupon] = wallet["coupons"]
    assert coupon["mechanic_id"] == "new_customer_rate_boost" and coupon["event_id"] == "d-1"
    assert coupon["entry_id"] == "d-1/new_customer_rate_boost/0"
    assert coupon["state"] == "active" and coupon["coupon"] == "rate_boost"
    assert coupon["expires_at"] == "2026-11-12T00:00:00+08:00"
    assert coupon["attributes"]["boost"] == "0.008"
    [ticket] = wallet["lottery_tickets"]
    assert ticket["event_id"] == "a-1" and ticket["mechanic_id"] == "early_bird_lottery"
    assert ticket["quantity"] == 1 and wallet["active_tickets"] == 1


async def test_a_known_customer_without_grants_has_an_empty_wallet(
    client: httpx.AsyncClient, customer: Customer, admin: dict[str, str]
) -> None:
    response = await client.get("/v1/customers/c-1/wallet", headers=admin)
    assert response.status_code == 200
    wallet = response.json()
    assert (wallet["points"], wallet["perks"], wallet["coupons"]) == (0, [], [])


async def test_the_wallet_of_an_unknown_customer_is_404(
    client: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    response = await client.get("/v1/customers/nobody/wallet", headers=reader)
    problem = assert_problem(response, 404)
    assert problem["type"] == "urn:double11:problem:not-found"


# ---- GET /v1/campaign ----------------------------------------------------------------------


async def test_the_campaign_shows_its_phases_the_current_one_and_every_mechanics_usage(
    client: httpx.AsyncClient, customer: Customer, producer: dict[str, str], reader: dict[str, str]
) -> None:
    await client.post("/v1/events", json=event("r-1"), headers=producer)
    await client.post(
        "/v1/events", json=event("d-1", "deposit", amount="60000.00"), headers=producer
    )
    response = await client.get("/v1/campaign", headers=reader)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "bank-double11-2026" and body["timezone"] == "Asia/Shanghai"
    assert body["current_phase"] == "warmup"
    # The version is the digest of the example file's exact text.
    assert body["version"] == digest(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    assert [p["name"] for p in body["phases"]] == ["warmup", "main_day", "review"]
    mechanics = {m["id"]: m for m in body["mechanics"]}
    assert mechanics["early_bird_double_points"]["quota"] == {"used": 1, "limit": 10000}
    boost = mechanics["new_customer_rate_boost"]["budget"]
    assert boost["limit"] == "2000000.00" and Decimal(boost["spent"]) > 0
    assert mechanics["checkin_points"]["quota"] == {"used": 0, "limit": None}
    assert mechanics["checkin_points"]["per"] == "day"
    assert {t["name"] for t in body["event_types"]} >= {"reservation", "deposit", "checkin"}


# ---- operations ----------------------------------------------------------------------------


async def test_healthz_answers_ok_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_metrics_count_events_by_decision_and_grants_by_mechanic(
    client: httpx.AsyncClient, customer: Customer, producer: dict[str, str], reader: dict[str, str]
) -> None:
    await client.post("/v1/events", json=event("r-1"), headers=producer)
    await client.post("/v1/events", json=event("r-1"), headers=producer)
    await client.post("/v1/events", json=event("r-2"), headers=producer)  # already holds the perk
    await client.post("/v1/events", json=event("x-1", "teleport"), headers=producer)
    await client.post(
        "/v1/events", content=b"{", headers={**producer, "content-type": "application/json"}
    )
    await client.get("/v1/customers/c-1/wallet", headers=reader)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'double11_events_total{decision="fired",type="reservation"} 1.0',
        'double11_events_total{decision="replayed",type="reservation"} 1.0',
        'double11_events_total{decision="no_grant",type="reservation"} 1.0',
        'double11_events_total{decision="error",type="_unknown"} 2.0',
        'double11_grants_total{mechanic="early_bird_double_points"} 1.0',
        'double11_request_duration_seconds_count{method="POST",route="/v1/events"} 5.0',
        'double11_request_duration_seconds_count{method="GET",'
        'route="/v1/customers/{id}/wallet"} 1.0',
    ):
        assert line in text, line
    assert "c-1" not in text  # ids never become labels


async def test_each_app_counts_in_its_own_registry(
    engine: Engine, settings: Settings, customer: Customer, producer: dict[str, str]
) -> None:
    first, second = create_app(engine, settings), create_app(engine, settings)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
    ):
        await a.post("/v1/events", json=event("r-1"), headers=producer)
        counted = (await b.get("/metrics")).text
    assert 'double11_events_total{decision="fired",type="reservation"} 0.0' in counted


async def test_metrics_speak_openmetrics_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_the_openapi_document_is_3_1_with_schemas_from_the_structs(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    assert {"EventIn", "Decision", "CustomerIn", "WalletOut", "CampaignOut", "Problem"} <= set(
        schemas
    )
    assert schemas["EventIn"]["additionalProperties"] is False
    assert set(doc["paths"]) == {
        "/v1/events",
        "/v1/customers/{id}",
        "/v1/customers/{id}/wallet",
        "/v1/campaign",
        "/healthz",
        "/metrics",
    }
    assert doc["paths"]["/v1/events"]["post"]["responses"]["409"]


async def test_the_docs_page_runs_swagger_ui_from_assets_the_app_serves(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert "/openapi.json" in page.text and "https://" not in page.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in page.text
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000


async def test_an_unknown_route_is_a_404_problem(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert_problem(await client.get("/v1/nothing-here", headers=admin), 404)
    assert_problem(await client.get("/docs/assets/missing.js"), 404)


async def test_a_wrong_method_is_a_405_problem_that_says_what_is_allowed(
    client: httpx.AsyncClient, store: MemoryStore, admin: dict[str, str]
) -> None:
    response = await client.put("/v1/events", json=event("e-1"), headers=admin)
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"
    assert not store.events


async def test_shutdown_runs_the_hook_it_was_given(engine: Engine, settings: Settings) -> None:
    closed: list[str] = []

    async def close() -> None:
        closed.append("stores")

    app = create_app(engine, settings, on_shutdown=close)
    async with app.starlette.router.lifespan_context(app.starlette):
        assert closed == []
    assert closed == ["stores"]


# ---- authentication and roles --------------------------------------------------------------


PROTECTED: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", "/v1/events", event("e-1"), "producer"),
    ("PUT", "/v1/customers/c-1", {"age": 40}, "producer"),
    ("GET", "/v1/customers/c-1/wallet", None, "reader"),
    ("GET", "/v1/campaign", None, "reader"),
]


def _routes() -> list[Any]:
    return [pytest.param(m, p, b, r, id=f"{m} {p}") for m, p, b, r in PROTECTED]


@pytest.mark.parametrize(("method", "path", "body", "role"), _routes())
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no key"),
        pytest.param({"Authorization": "Bearer wrong-key"}, id="wrong bearer"),
        pytest.param({"X-API-Key": "wrong-key"}, id="wrong x-api-key"),
        pytest.param({"Authorization": "Basic admin-key-0001"}, id="other scheme"),
        pytest.param({"Authorization": "Bearer "}, id="empty bearer"),
    ],
)
async def test_a_request_without_a_valid_key_is_401_with_a_challenge_and_writes_nothing(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    role: str,
    headers: dict[str, str],
    written: Written,
) -> None:
    before = written()
    response = await client.request(method, path, json=body, headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer realm="double11"')
    assert written() == before


@pytest.mark.parametrize(("method", "path", "body", "role"), _routes())
async def test_a_key_of_the_other_role_is_403_and_writes_nothing(
    client: httpx.AsyncClient,
    customer: Customer,
    store: MemoryStore,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    role: str,
    keys: dict[str, str],
    written: Written,
) -> None:
    other = "reader" if role == "producer" else "producer"
    before = written()
    response = await client.request(method, path, json=body, headers={"X-API-Key": keys[other]})
    assert_problem(response, 403)
    assert written() == before


@pytest.mark.parametrize(("method", "path", "body", "role"), _routes())
@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
@pytest.mark.parametrize("as_admin", [False, True], ids=["own role", "admin"])
async def test_a_key_of_the_right_role_or_admin_is_let_in_by_either_header(
    client: httpx.AsyncClient,
    customer: Customer,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    role: str,
    header: str,
    as_admin: bool,
    keys: dict[str, str],
) -> None:
    key = keys["admin" if as_admin else role]
    value = f"Bearer {key}" if header == "Authorization" else key
    response = await client.request(method, path, json=body, headers={header: value})
    assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/docs", "/openapi.json"])
async def test_operations_and_docs_need_no_key(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200


async def test_no_configured_keys_lets_nobody_in(engine: Engine, settings: Settings) -> None:
    bare = Settings(campaign_path=settings.campaign_path, db_url="memory://")
    transport = httpx.ASGITransport(app=create_app(engine, bare))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/v1/campaign", headers={"Authorization": "Bearer "})
    assert_problem(response, 401)


def test_api_keys_are_parsed_from_key_role_pairs() -> None:
    assert parse_api_keys(" p-1:producer , r-1:reader,a-1:admin ") == {
        "p-1": "producer",
        "r-1": "reader",
        "a-1": "admin",
    }
    assert parse_api_keys("") == {}
    assert api_keys_from_env({API_KEYS_ENV: "k:admin"}) == {"k": "admin"}
    assert api_keys_from_env({}) == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("secret-1", "entry 1 has no ':role'"),
        ("secret-1:producer,,r:reader", "entry 2 is empty"),
        ("secret-1:owner", "entry 1 has role 'owner'"),
        (":admin", "entry 1 has an empty key"),
        ("sec ret:admin", "entry 1 has an empty key or one with characters"),
        ("secret-1:admin,secret-1:reader", "entry 2 repeats the key"),
    ],
)
def test_malformed_api_keys_are_refused_without_repeating_the_key(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(says)}") as raised:
        parse_api_keys(text)
    assert "secret" not in str(raised.value)


def test_a_key_ring_refuses_roles_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="has role 'owner'"):
        KeyRing({"k": "owner"})


def test_a_key_ring_finds_the_role_of_every_configured_key() -> None:
    ring = KeyRing({"k-1": "producer", "k-2": "reader"})
    assert (ring.role_of("k-1"), ring.role_of("k-2"), ring.role_of("k-3")) == (
        "producer",
        "reader",
        None,
    )


# ---- exactly once and never oversold, through HTTP -----------------------------------------


async def _post_in_chunks(
    client: httpx.AsyncClient,
    bodies: list[dict[str, Any]],
    headers: dict[str, str],
    chunk: int = 500,
) -> list[httpx.Response]:
    """Post every body, `chunk` at a time concurrently."""
    responses: list[httpx.Response] = []
    for start in range(0, len(bodies), chunk):
        responses += await asyncio.gather(
            *(
                client.post("/v1/events", json=body, headers=headers)
                for body in bodies[start : start + chunk]
            )
        )
    return responses


@pytest.mark.slow
async def test_twelve_thousand_reservers_get_exactly_ten_thousand_perks_and_replays_add_none(
    client: httpx.AsyncClient, store: MemoryStore, written: Written, producer: dict[str, str]
) -> None:
    for n in range(12_000):
        await store.put_customer(Customer(id=f"c-{n}"))
    bodies = [event(f"r-{n}", customer_id=f"c-{n}") for n in range(12_000)]
    responses = await _post_in_chunks(client, bodies, producer)
    assert {r.status_code for r in responses} == {200}
    fired = [r for r in responses if decode_decision(r.content).grants]
    assert len(fired) == 10_000
    assert store.counters.usage["early_bird_double_points"].granted == 10_000
    perks = [e for entries in store.ledger.values() for e in entries if e.asset is Asset.PERK]
    assert len(perks) == 10_000

    before = written()
    replayed = list(range(0, 12_000, 12))  # 1,000 ids, granted and refused alike
    again = await _post_in_chunks(client, [bodies[n] for n in replayed], producer)
    assert all(r.headers["idempotent-replayed"] == "true" for r in again)
    assert [r.content for r in again] == [responses[n].content for n in replayed]
    assert written() == before


# ---- the app is built, not imported --------------------------------------------------------


def test_importing_the_api_builds_nothing() -> None:
    import double11.api.app as app_module
    import double11.api.fastpath as fastpath_module

    for module in (app_module, fastpath_module):
        assert not any(isinstance(v, Starlette | EventsFastPath) for v in vars(module).values())
