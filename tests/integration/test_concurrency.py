"""A quota holds exactly under heavy concurrency from several worker processes."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
import redis

from double11.adapters.redis_limits import DEFAULT_PREFIX

from .conftest import Services
from .scenario import MECHANIC, run_take_worker, worker_context

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

PROCESSES = 4
CUSTOMERS = 12_000
QUOTA = 10_000


def test_twelve_thousand_customers_racing_from_four_processes_get_exactly_ten_thousand(
    clean: Services,
) -> None:
    client = redis.Redis.from_url(clean.redis_url)
    try:
        client.set(DEFAULT_PREFIX + "ready", "test")  # an initialised, empty book
    finally:
        client.close()
    ids = [f"c{i:05d}" for i in range(CUSTOMERS)]
    ctx = worker_context()
    start = ctx.Barrier(PROCESSES)
    results: multiprocessing.Queue[tuple[dict[str, int], float]] = ctx.Queue()
    workers = [
        ctx.Process(
            target=run_take_worker,
            args=(clean.redis_url, ids[n::PROCESSES], QUOTA, start, results),
        )
        for n in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    reports = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0

    outcomes: Counter[str] = Counter()
    for counts, _ in reports:
        outcomes.update(counts)
    assert outcomes == {"taken": QUOTA, "quota_exhausted": CUSTOMERS - QUOTA}
    # Every process took part in the race, rather than one finishing before the others began.
    assert all(counts.get("taken", 0) > 0 for counts, _ in reports)

    client = redis.Redis.from_url(clean.redis_url, decode_responses=True)
    try:
        assert client.hget(DEFAULT_PREFIX + "granted", MECHANIC) == str(QUOTA)
        assert client.hlen(DEFAULT_PREFIX + "claims:" + MECHANIC) == QUOTA
    finally:
        client.close()
    slowest = max(elapsed for _, elapsed in reports)
    print(f"\n{CUSTOMERS} claims from {PROCESSES} processes in {slowest:.2f} s")
