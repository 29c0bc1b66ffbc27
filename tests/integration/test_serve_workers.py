"""`double11 serve --workers N` on PostgreSQL + Redis, driven through HTTP like a bank would."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from double11.adapters.scaleout import connect_postgres
from double11.campaigns import example_campaign_path
from double11.domain.customer import Customer

from .conftest import Services

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

WORKERS = 3
CUSTOMERS = 12_000
QUOTA = 10_000
REPLAYS = 1_000
KEY = "workers-test-key"
NOW = "2026-11-01T10:00:00+08:00"
AT = "2026-11-01T09:00:00+08:00"
RETRIES = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (uvicorn's worker processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def server(clean: Services, tmp_path: Path) -> Iterator[str]:
    """A multi-worker server on the test's database and Redis; its base URL."""
    port = _free_port()
    log = tmp_path / "server.log"
    out = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "double11", "serve", str(example_campaign_path()),
            "--db", clean.pg_url, "--redis", clean.redis_url, "--workers", str(WORKERS),
            "--port", str(port), "--now", NOW, "--log-level", "info",
        ],
        env={**os.environ, "DOUBLE11_API_KEYS": f"{KEY}:admin"},
        stdout=out,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server exited during start-up"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.2)
        assert len(_children(process.pid)) >= WORKERS
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        out.close()
        # Shown with the test's report if it failed: worker restarts, tracebacks.
        sys.stderr.write(log.read_text(errors="replace")[-20_000:])


async def _enrol(pg_url: str) -> None:
    store = await connect_postgres(pg_url)
    try:
        sem = asyncio.Semaphore(200)

        async def put(i: int) -> None:
            async with sem:
                await store.put_customer(Customer(id=f"w{i:05d}", age=30))

        await asyncio.gather(*(put(i) for i in range(CUSTOMERS)))
    finally:
        await store.close()


async def _post_all(url: str, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        sem = asyncio.Semaphore(64)

        async def post(body: dict[str, object]) -> httpx.Response:
            # Like the bank's systems, retry an event whose answer was lost: the same
            # id makes the retry safe, and that is part of what this test checks.
            for attempt in range(RETRIES):
                try:
                    async with sem:
                        return await c.post("/v1/events", json=body)
                except httpx.TransportError:
                    if attempt == RETRIES - 1:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
            raise AssertionError("unreachable")

        return await asyncio.gather(*(post(b) for b in bodies))


def _fired(response: httpx.Response) -> bool:
    return any(
        o["mechanic_id"] == "early_bird_double_points" and o["outcome"] == "fired"
        for o in response.json()["outcomes"]
    )


async def test_twelve_thousand_reservers_across_workers_get_exactly_ten_thousand_perks(
    server: str, clean: Services
) -> None:
    await _enrol(clean.pg_url)
    bodies: list[dict[str, object]] = [
        {"id": f"res-{i}", "type": "reservation", "customer_id": f"w{i:05d}", "at": AT, "data": {}}
        for i in range(CUSTOMERS)
    ]
    first = await _post_all(server, bodies)
    assert [r.status_code for r in first] == [200] * CUSTOMERS
    assert sum(_fired(r) for r in first) == QUOTA

    replayed = await _post_all(server, bodies[:REPLAYS])
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in replayed)
    assert [r.content for r in replayed] == [r.content for r in first[:REPLAYS]]

    async with httpx.AsyncClient(base_url=server) as client:
        view = (await client.get("/v1/campaign", headers={"Authorization": f"Bearer {KEY}"})).json()
    perks = next(m for m in view["mechanics"] if m["id"] == "early_bird_double_points")
    assert perks["quota"] == {"used": QUOTA, "limit": QUOTA}
