"""The API served by a real uvicorn on a free localhost port, spoken to over TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from double11.adapters.memory import MemoryStore
from double11.api import create_app
from double11.domain.customer import Customer
from double11.engine.pipeline import Engine
from double11.settings import Settings

EVENT = {
    "id": "e-1",
    "type": "reservation",
    "customer_id": "c-1",
    "at": "2026-11-01T09:30:00+08:00",
}


@dataclass
class Served:
    """A running server: its base URL and its port."""

    url: str
    port: int


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[Served]:
    """Serve `app` with uvicorn on a free localhost port until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", access_log=False, ws="none", http="h11"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            # uvicorn tells that it has started only through this flag.
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        yield Served(f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()


@pytest.fixture
async def served(engine: Engine, settings: Settings, store: MemoryStore) -> AsyncIterator[Served]:
    store.customers["c-1"] = Customer(id="c-1", age=30)
    async with serving(create_app(engine, settings)) as server:
        yield server


async def test_an_event_is_decided_and_replayed_over_tcp(
    served: Served, keys: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {keys['producer']}"}
    async with httpx.AsyncClient(base_url=served.url) as client:
        first = await client.post("/v1/events", json=EVENT, headers=headers)
        again = await client.post("/v1/events", json=EVENT, headers=headers)
        wallet = await client.get("/v1/customers/c-1/wallet", headers={"X-API-Key": keys["reader"]})
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert [p["perk"] for p in wallet.json()["perks"]] == ["double_points"]


async def test_a_missing_key_is_401_over_tcp(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        response = await client.post("/v1/events", json=EVENT)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    served: Served, keys: dict[str, str], settings: Settings, store: MemoryStore
) -> None:
    # Only the head goes out: the answer must come without the server waiting for a body.
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    head = (
        "POST /v1/events HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {keys['producer']}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {settings.body_limit * 100}\r\n"
        "\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    async with asyncio.timeout(5):
        status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert not store.events


async def test_a_chunked_body_over_the_limit_is_refused_over_tcp(
    served: Served, keys: dict[str, str], settings: Settings, store: MemoryStore
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.body_limit // 512 + 4):
            yield b" " * 1024

    async with httpx.AsyncClient(base_url=served.url) as client:
        response = await client.post(
            "/v1/events",
            content=chunks(),
            headers={
                "Authorization": f"Bearer {keys['producer']}",
                "Content-Type": "application/json",
            },
        )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert not store.events


async def test_the_docs_assets_are_served_over_tcp(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        page = await client.get("/docs")
        script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert page.status_code == 200 and script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))


async def test_stopping_the_server_runs_the_shutdown_hook(
    engine: Engine, settings: Settings
) -> None:
    closed: list[str] = []

    async def on_shutdown() -> None:
        closed.append("closed")

    async with serving(create_app(engine, settings, on_shutdown=on_shutdown)):
        assert closed == []
    assert closed == ["closed"]
