"""In-process decisions per second on one core, SQLite, every decision committed first.

    uv run python -m benchmarks.bench_inprocess [--events 200000] [--core 0]

Runs the example campaign through `Engine.submit` with many events in flight,
as an HTTP server would, on: the memory store (the pipeline alone), SQLite
with synchronous=NORMAL and with synchronous=FULL. Each decision is answered
only after its group-commit transaction returns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.workload import WARMUP_NOW, customers, event_bodies
from double11.bootstrap import open_stores
from double11.campaign_file import load_campaign
from double11.campaigns import example_campaign_path
from double11.domain.events import Event
from double11.engine.clock import StartedClock
from double11.engine.pipeline import Engine
from double11.risk.step import NoRiskRules
from double11.runtime import settle_heap


async def run_once(
    db_url: str, sync: str, n_events: int, n_customers: int, in_flight: int, batch: int
) -> float:
    campaign = load_campaign(example_campaign_path())
    stores = await open_stores(db_url, sqlite_synchronous=sync)
    engine = Engine(campaign, stores, StartedClock(WARMUP_NOW), NoRiskRules())
    for c in customers(n_customers):
        await stores.customers.put_customer(c)
    events = [
        Event(b["id"], b["type"], b["customer_id"], datetime.fromisoformat(b["at"]), b["data"])
        for b in event_bodies(n_events, n_customers)
    ]
    queue = iter(events)
    settle_heap()  # as `double11 serve` does once its stores are open

    async def worker() -> None:
        for event in queue:
            await engine.submit(event)

    began = time.perf_counter()
    if batch:
        for start in range(0, len(events), batch):
            answers = await engine.submit_many(events[start : start + batch])
            assert not any(isinstance(a, Exception) for a in answers)
    else:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - began
    await stores.close()
    return n_events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--in-flight", type=int, default=2000, help="events in flight (submit)")
    parser.add_argument("--batch", type=int, default=500, help="events per submit_many call")
    parser.add_argument("--modes", default="submit,submit_many")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--core", type=int, default=0, help="pin to this core; -1 to not pin")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("memory", "memory://", "FULL")] + [
            (f"sqlite-{s.lower()}", f"sqlite:///{Path(tmp) / s}.db", s) for s in ("NORMAL", "FULL")
        ]
        for mode in args.modes.split(","):
            batch = args.batch if mode == "submit_many" else 0
            for name, url, sync in cases:
                rates = []
                for run in range(args.runs):
                    run_url = url if url == "memory://" else url.replace(".db", f"-{mode}{run}.db")
                    rate = asyncio.run(
                        run_once(run_url, sync, args.events, args.customers, args.in_flight, batch)
                    )
                    rates.append(rate)
                    print(f"{mode} {name} run {run + 1}: {rate:,.0f} decisions/s", flush=True)
                results[f"{mode} {name}"] = statistics.median(rates)
    print(
        json.dumps(
            {
                "benchmark": "in-process decisions/s, one core",
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "python": platform.python_version(),
                "date": datetime.now().isoformat(timespec="minutes"),
                "events": args.events,
                "median_decisions_per_s": {k: round(v) for k, v in results.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
