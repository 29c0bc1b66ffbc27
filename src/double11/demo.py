"""`double11 demo`: the example campaign served on a temporary SQLite store, with a
simulated clock racing through the warm-up into the main day while synthetic
customers act on it through the real HTTP API, shown live in the terminal.

The campaign served is a copy with its quotas and budget scaled to the synthetic
crowd (`double11.demo_campaign`), so that they run out as the real ones would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import socket
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from double11.api.customers import to_customer
from double11.api.metrics import LATENCY_BUCKETS
from double11.bootstrap import open_stores
from double11.campaign_file import load_campaign
from double11.campaigns import example_campaign_path
from double11.demo_campaign import Scaling, scale_campaign
from double11.domain.campaign import Campaign
from double11.engine.clock import StartedClock

CONCURRENCY = 32
FIRST_PURCHASES = ("deposit", "wealth_purchase")
# The server's own latency histogram, as `GET /metrics` exposes it (double11.api.metrics).
LATENCY_METRIC = "double11_request_duration_seconds"
EVENTS_ROUTE = {"method": "POST", "route": "/v1/events"}
# Why a mechanic turned an event away because a limit had run out.
RAN_OUT = frozenset({"quota_exhausted", "budget_exhausted"})


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    at: datetime
    body: dict[str, Any]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def synthetic_customers(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Profiles shaped like the campaign's audiences: young online, mid/high net worth, SMEs."""
    people = []
    for i in range(n):
        age = rng.choice([rng.randint(25, 35), rng.randint(22, 70)])
        aum = Decimal(rng.choice([rng.randint(0, 50_000), rng.randint(50_000, 3_000_000)]))
        people.append(
            {
                "id": f"demo-{i:05d}",
                "age": age,
                "aum": f"{aum}.00",
                "is_new": rng.random() < 0.3,
                "tier": rng.choice(["standard", "gold", "platinum"]),
                "credit_grade": rng.choice(["A", "B", "C"]),
                "risk_tolerance": rng.choice(["C1", "C2", "C3", "C4", "C5"]),
                "segments": [],
                "devices": [f"dev-{rng.randrange(n * 2)}"],
            }
        )
    return people


def plan_events(
    campaign: Campaign, people: list[dict[str, Any]], rng: random.Random
) -> list[PlannedEvent]:
    """Each customer's campaign: reserve, assess, first deposit, daily check-ins."""
    warmup = next(p for p in campaign.phases if p.name == "warmup")
    main_day = next(p for p in campaign.phases if p.name == "main_day")
    span = (warmup.end - warmup.start).total_seconds()
    events: list[PlannedEvent] = []

    def at_in_warmup() -> datetime:
        # Reservations crowd into the first days, as early-bird perks make them.
        return warmup.start + timedelta(seconds=span * rng.random() ** 2.5)

    for person in people:
        mine: list[PlannedEvent] = []
        if rng.random() < 0.8:
            mine.append(PlannedEvent(at_in_warmup(), {"type": "reservation", "data": {}}))
        # Three in five both reserve and assess: more than the demo's lottery admits.
        if rng.random() < 0.75:
            mine.append(PlannedEvent(at_in_warmup(), {"type": "risk_assessment", "data": {}}))
        if person["is_new"] and rng.random() < 0.8:
            amount = rng.choice([5_000, 20_000, 60_000, 150_000, 400_000])
            kind = rng.choice(["deposit", "wealth_purchase"])
            mine.append(
                PlannedEvent(at_in_warmup(), {"type": kind, "data": {"amount": f"{amount}.00"}})
            )
        day = warmup.start
        while day < main_day.end:
            if rng.random() < 0.15:
                moment = day + timedelta(seconds=rng.randrange(86_400))
                mine.append(PlannedEvent(moment, {"type": "checkin", "data": {}}))
            day += timedelta(days=1)
        for e in mine:
            e.body["customer_id"] = person["id"]
        events += mine
    events.sort(key=lambda e: e.at)
    for n, e in enumerate(events):
        e.body["id"] = f"demo-evt-{n:07d}"
        e.body["at"] = e.at.isoformat()
    return events


class Tally:
    """What the demo has seen, for the live view."""

    def __init__(self) -> None:
        self.sent = 0
        self.by_outcome: Counter[str] = Counter()
        self.grants: Counter[str] = Counter()
        self.errors: Counter[int] = Counter()
        self.ran_out: Counter[str] = Counter()  # mechanic id -> events it turned away
        self.samples: dict[int, str] = {}
        self.campaign: dict[str, Any] = {}
        self.server_p99: float | None = None  # seconds, from the server's histogram

    def p99_text(self) -> str:
        """The server's p99 for POST /v1/events, as the bound of its histogram bucket."""
        if self.server_p99 is None:
            return "server p99 -"
        if math.isinf(self.server_p99):
            return f"server p99 > {max(LATENCY_BUCKETS) * 1000:g} ms"
        return f"server p99 <= {self.server_p99 * 1000:g} ms"


def histogram_p99(metrics_text: str) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of POST /v1/events.

    Read from the server's own histogram: a latency timed by the demo's client would
    count the time its requests wait behind the burst the same event loop generates.
    A bucket's bound, not an interpolation: the buckets are too coarse to say more.
    """
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics_text):
        if family.name != LATENCY_METRIC:
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_bucket") and all(
                labels.get(k) == v for k, v in EVENTS_ROUTE.items()
            ):
                buckets.append((float(labels["le"]), sample.value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= 0.99 * total)


async def run_demo(customers: int, seconds: float, port: int, keep_serving: bool) -> None:
    """Run the demo end to end; optionally keep serving afterwards."""
    console = Console()
    example_path = example_campaign_path()
    example = load_campaign(example_path)
    warmup = example.phases[0]
    main_day = next(p for p in example.phases if p.name == "main_day")
    start = warmup.start + timedelta(hours=8)
    speed = (main_day.end - start).total_seconds() / seconds
    key = secrets.token_urlsafe(18)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    rng = random.Random(11)
    people = synthetic_customers(customers, rng)
    planned = plan_events(example, people, rng)
    text, scaled = scale_campaign(
        example_path.read_text(encoding="utf-8"),
        example,
        customers,
        (Decimal(e.body["data"]["amount"]) for e in planned if e.body["type"] in FIRST_PURCHASES),
    )
    with tempfile.TemporaryDirectory(prefix="double11-demo-") as tmp:
        campaign_path = Path(tmp) / "demo-campaign.yaml"
        campaign_path.write_text(text, encoding="utf-8")
        campaign = load_campaign(campaign_path)
        db_url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        await _enrol(db_url, people)
        # The server runs in its own process, as in production, so the load this
        # demo generates does not share an event loop with what it measures.
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "double11", "serve", str(campaign_path),
            "--db", db_url, "--port", str(port), "--now", start.isoformat(),
            "--speed", f"{speed:.3f}", "--synchronous", "NORMAL",
            env={**os.environ, "DOUBLE11_API_KEYS": f"{key}:admin"},
        )  # fmt: skip
        try:
            await _wait_healthy(url, server)
            _introduce(console, url, key, db_url, customers, seconds, scaled)
            await _drive(console, campaign, planned, speed, url, key)
            if keep_serving:
                console.print(f"\nStill serving {url} (key {key}); Ctrl-C to stop.")
                await server.wait()
        finally:
            if server.returncode is None:
                server.terminate()
                await server.wait()


async def _enrol(db_url: str, people: list[dict[str, Any]]) -> None:
    """Create the synthetic customers in the store before the server opens it."""
    stores = await open_stores(db_url)
    try:
        for person in people:
            await stores.customers.put_customer(
                to_customer(person["id"], json.dumps(person).encode())
            )
    finally:
        await stores.close()


async def _wait_healthy(url: str, server: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(300):
            if server.returncode is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become healthy in 30 s")


def _introduce(
    console: Console,
    url: str,
    key: str,
    db_url: str,
    customers: int,
    seconds: float,
    scaled: list[Scaling],
) -> None:
    console.print(
        Panel.fit(
            f"API      {url}   (OpenAPI: {url}/docs)\n"
            f"API key  {key}   (role admin)\n"
            f"store    {db_url}\n"
            f"plan     {customers} synthetic customers, warm-up to main day in {seconds:.0f} s",
            title="double11 demo",
        )
    )
    # Said plainly: a reader who knows the plan's "first 10,000" must not think it changed.
    console.print(
        f"demo quotas scaled to {customers:,} customers, so that they run out "
        "(the shipped examples/double11-bank.yaml is unchanged):",
        markup=False,
        highlight=False,
    )
    for change in scaled:
        console.print(f"  {change}", markup=False, highlight=False, soft_wrap=True)
    auth = f"-H 'Authorization: Bearer {key}'"
    json_type = "-H 'Content-Type: application/json'"
    event = (
        '{"id": "my-1", "type": "checkin", "customer_id": "me", '
        '"at": "2026-10-28T10:00:00+08:00", "data": {}}'
    )
    console.print("Try, while it runs:")
    for line in (
        f"curl -s {auth} {url}/v1/campaign",
        f"curl -s {auth} {url}/v1/customers/demo-00001/wallet",
        f'curl -s -X PUT {auth} {json_type} -d \'{{"age": 30, "is_new": true}}\' '
        f"{url}/v1/customers/me",
        f"curl -s -X POST {auth} {json_type} -d '{event}' {url}/v1/events",
    ):
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


async def _drive(
    console: Console,
    campaign: Campaign,
    planned: list[PlannedEvent],
    speed: float,
    url: str,
    key: str,
) -> None:
    tally = Tally()
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        sem = asyncio.Semaphore(CONCURRENCY)
        # Run the demo's clock in step with the server's, whatever start-up took.
        server_now = datetime.fromisoformat((await client.get("/v1/campaign")).json()["now"])
        clock = StartedClock(server_now, speed=speed)
        end = campaign.phases[1].end
        with Live(_view(campaign, clock, tally, len(planned)), console=console) as live:
            refresher = asyncio.create_task(_refresh(live, campaign, clock, client, tally, planned))
            await _send_all(client, clock, planned, tally, sem)
            left = (end - clock.now()).total_seconds() / clock.speed
            await asyncio.sleep(max(left, 0.0))
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await _poll(client, tally)
            live.update(_view(campaign, clock, tally, len(planned)))
    errors = ", ".join(f"{n} x HTTP {code}" for code, n in sorted(tally.errors.items()))
    console.print(
        f"\nDone: {tally.sent} events decided, {sum(tally.grants.values())} grants, "
        f"errors: {errors or 'none'}; {tally.p99_text()} (POST /v1/events, from /metrics).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for code, sample in tally.samples.items():
        console.print(f"  e.g. HTTP {code}: {sample}", markup=False, highlight=False)


async def _send_all(
    client: httpx.AsyncClient,
    clock: StartedClock,
    planned: list[PlannedEvent],
    tally: Tally,
    sem: asyncio.Semaphore,
) -> None:
    async def send(event: PlannedEvent) -> None:
        async with sem:
            response = await client.post("/v1/events", json=event.body)
            tally.sent += 1
            if response.status_code != 200:
                tally.errors[response.status_code] += 1
                tally.samples.setdefault(response.status_code, response.text[:300])
                return
            decision = response.json()
            for outcome in decision["outcomes"]:
                tally.by_outcome[outcome["outcome"]] += 1
                if outcome["outcome"] in RAN_OUT:
                    tally.ran_out[outcome["mechanic_id"]] += 1
            for grant in decision["grants"]:
                tally.grants[grant["mechanic_id"]] += 1

    pending: set[asyncio.Task[None]] = set()
    for event in planned:
        wait = (event.at - clock.now()).total_seconds()
        if wait > 0:
            # The simulated clock runs fast; sleep in real seconds until the event is due.
            await asyncio.sleep(min(wait / clock.speed, 1.0))
        task = asyncio.create_task(send(event))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)


async def _refresh(
    live: Live,
    campaign: Campaign,
    clock: StartedClock,
    client: httpx.AsyncClient,
    tally: Tally,
    planned: list[PlannedEvent],
) -> None:
    while True:
        with contextlib.suppress(httpx.HTTPError):
            await _poll(client, tally)
        live.update(_view(campaign, clock, tally, len(planned)))
        await asyncio.sleep(0.5)


async def _poll(client: httpx.AsyncClient, tally: Tally) -> None:
    """Read the campaign's usage and the server's latency histogram."""
    tally.campaign = (await client.get("/v1/campaign")).json()
    tally.server_p99 = histogram_p99((await client.get("/metrics")).text)


def _view(campaign: Campaign, clock: StartedClock, tally: Tally, total: int) -> Group:
    now = clock.now().astimezone(campaign.zone)
    phase = campaign.phase_at(clock.now())
    head = (
        f"campaign time {now:%Y-%m-%d %H:%M} ({campaign.timezone})   "
        f"phase [bold]{phase.name if phase else '-'}[/bold]   "
        f"events {tally.sent}/{total}   {tally.p99_text()}   "
        f"errors {sum(tally.errors.values())}"
    )
    table = Table(title="mechanics (live from GET /v1/campaign)", expand=False)
    table.add_column("mechanic")
    for column in ("granted", "limit", "ran out for"):
        table.add_column(column, justify="right")
    for m in tally.campaign.get("mechanics", []):
        table.add_row(
            m["id"], f"{m['quota']['used']:,}", _limit_text(m), f"{tally.ran_out[m['id']]:,}"
        )
    outcomes = Table(title="decisions by reason")
    outcomes.add_column("reason")
    outcomes.add_column("count", justify="right")
    for reason, count in tally.by_outcome.most_common():
        outcomes.add_row(reason, str(count))
    return Group(head, table, outcomes)


def _limit_text(mechanic: dict[str, Any]) -> str:
    """A mechanic's quota or budget as used so far, e.g. "1,000/1,000 sold out"."""
    quota, budget = mechanic["quota"], mechanic["budget"]
    if quota["limit"] is not None:
        used, limit = quota["used"], quota["limit"]
        return f"{used:,}/{limit:,}" + (" [bold red]sold out[/]" if used >= limit else "")
    if budget["limit"] is not None:
        return f"{Decimal(budget['spent']):,.2f}/{Decimal(budget['limit']):,.2f} yuan"
    return "-"
