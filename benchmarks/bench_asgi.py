"""In-process cost of one `POST /v1/events`, layer by layer, with no network and no server.

    uv run python -m benchmarks.bench_asgi [--requests 20000] [--rounds 7] [--core 0]

Each case calls an ASGI app (or the engine) directly with requests prepared before the
clock starts, one at a time, on a fresh memory store per run:

- `hello`: the bare ASGI hello-world of `hello_asgi.py`, the floor of this harness;
- `starlette`: the Starlette app behind `create_app` (routing, middleware, endpoint);
- `app`: what `create_app` returns, which answers `POST /v1/events` on its fast path;
- `engine`: `Engine.submit` alone, on events decoded beforehand.

Before each timed loop the heap is settled as `double11 serve` settles it once started
(`runtime.settle_heap`: frozen, young generation collected less often); `--default-gc`
keeps CPython's defaults instead. The machine is shared, so the cases take turns within
each round (in a rotating order) and the median of the rounds is reported, in
microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import msgspec

from benchmarks import hello_asgi
from benchmarks.workload import WARMUP_NOW, customers, event_bodies
from double11.api import create_app
from double11.bootstrap import open_stores
from double11.campaign_file import load_campaign
from double11.campaigns import example_campaign_path
from double11.domain.campaign import Campaign
from double11.domain.events import Event
from double11.engine.clock import StartedClock
from double11.engine.pipeline import Engine
from double11.risk.step import NoRiskRules
from double11.runtime import settle_heap
from double11.settings import Settings

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]

KEY = "bench-producer-key"
CASES = ("hello", "starlette", "app", "engine")
# What uvicorn puts in a scope, give or take; the headers are those of wrk_events.lua's requests.
_BASE_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 51000),
    "scheme": "http",
    "method": "POST",
    "root_path": "",
    "path": "/v1/events",
    "raw_path": b"/v1/events",
    "query_string": b"",
}


def _receiver(body: bytes) -> Receive:
    message: Message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> Message:
        return message

    return receive


def _requests(bodies: list[bytes]) -> list[tuple[Scope, Receive]]:
    """One scope (a fresh dict: apps write into it) and one `receive` per body."""
    prepared: list[tuple[Scope, Receive]] = []
    for body in bodies:
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        prepared.append(({**_BASE_SCOPE, "headers": headers, "state": {}}, _receiver(body)))
    return prepared


async def _engine(campaign: Campaign, n_customers: int) -> Engine:
    stores = await open_stores("memory://")
    for customer in customers(n_customers):
        await stores.customers.put_customer(customer)
    return Engine(campaign, stores, StartedClock(WARMUP_NOW), NoRiskRules())


def _starlette(app: ASGI) -> ASGI:
    """The Starlette app inside what `create_app` returned: itself in commits before the
    fast path, so the harness measures those too."""
    inner: ASGI = getattr(app, "starlette", app)
    return inner


async def run_case(
    case: str, campaign: Campaign, n_requests: int, n_customers: int, tag: str, server_gc: bool
) -> float:
    """Microseconds per request of one case, on a store of its own."""
    engine = await _engine(campaign, n_customers)
    settings = Settings(
        campaign_path=str(example_campaign_path()), db_url="memory://", api_keys={KEY: "producer"}
    )
    raw = event_bodies(n_requests, n_customers, prefix=f"{tag}-")
    statuses: Counter[int] = Counter()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    threshold = gc.get_threshold()
    if server_gc:
        settle_heap()
    else:
        gc.collect()
    if case == "engine":
        events = [
            Event(b["id"], b["type"], b["customer_id"], datetime.fromisoformat(b["at"]), b["data"])
            for b in raw
        ]
        submit = engine.submit
        began = time.perf_counter()
        for event in events:
            await submit(event)
        elapsed = time.perf_counter() - began
        statuses[200] = len(events)
    else:
        app: ASGI
        if case == "hello":
            app = hello_asgi.app
        else:
            built = create_app(engine, settings)
            app = _starlette(built) if case == "starlette" else built
        requests = _requests([msgspec.json.encode(b) for b in raw])
        began = time.perf_counter()
        for scope, receive in requests:
            await app(scope, receive, send)
        elapsed = time.perf_counter() - began
    gc.unfreeze()  # so the next case starts from the same heap
    gc.set_threshold(*threshold)
    await engine.stores.close()
    if statuses != {200: n_requests}:
        raise RuntimeError(f"{case}: expected {n_requests} answers of 200, got {dict(statuses)}")
    return elapsed / n_requests * 1e6


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    campaign = load_campaign(example_campaign_path())
    cases = [c for c in CASES if c in args.cases.split(",")]
    server_gc = not args.default_gc
    results: dict[str, list[float]] = {c: [] for c in cases}
    # One round unmeasured, to warm caches and the allocator.
    for case in cases:
        await run_case(
            case, campaign, min(args.requests, 2000), args.customers, f"w-{case}", server_gc
        )
    for round_ in range(args.rounds):
        shift = round_ % len(cases)
        for case in cases[shift:] + cases[:shift]:
            tag = f"r{round_}-{case}"
            us = await run_case(case, campaign, args.requests, args.customers, tag, server_gc)
            results[case].append(us)
            print(f"round {round_ + 1} {case}: {us:.1f} µs/request", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's gc settings")
    parser.add_argument("--core", type=int, default=-1, help="pin to this core; -1 to not pin")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    results = asyncio.run(run(args))
    medians = {case: statistics.median(us) for case, us in results.items()}
    print(
        json.dumps(
            {
                "benchmark": "in-process µs per POST /v1/events, memory store, one at a time",
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "python": platform.python_version(),
                "date": datetime.now().isoformat(timespec="minutes"),
                "requests": args.requests,
                "rounds": args.rounds,
                "gc": "default" if args.default_gc else "settled as by double11 serve",
                "median_us_per_request": {k: round(v, 1) for k, v in medians.items()},
                "all_us_per_request": {k: [round(x, 1) for x in v] for k, v in results.items()},
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
