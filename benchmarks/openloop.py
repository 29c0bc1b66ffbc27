"""An open-loop HTTP load generator: latency at a given rate, stalls included.

    uv run python -m benchmarks.openloop --port 8000 --rate 5000 --duration 15 \\
        --customers 20000 --key KEY [--connections 64] [--prefix ol1]

Request i is due at t0 + i/rate, whatever the answers to earlier ones; it goes
out on the next free keep-alive connection, and its latency is counted from
when it was DUE, not from when it was written. A server that stalls for 100 ms
therefore shows it in the percentiles instead of silently slowing the sender
(the "coordinated omission" of closed-loop tools such as wrk and hey).

Every request is built before the clock starts (POST /v1/events, one unique
event id each, the mix of `workload.event_bodies`); the hot loop only writes
bytes and parses a status line and a Content-Length, over raw asyncio streams.
The run is bounded: rate x duration requests, then at most `--drain` seconds
for the last answers; whatever is unanswered by then counts as a timeout.

The JSON it prints says how much the generator itself can be trusted:
`send_lag` (due -> written: waiting for a free connection, or the generator
lagging) and `generator_cpu` (its own CPU use; near 1.0 it was the limit).
Only loopback addresses are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from benchmarks.workload import customers, event_bodies

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REQUESTS = 3_000_000
MAX_DURATION_S = 300.0
MAX_DRAIN_S = 60.0
HEAD_END = b"\r\n\r\n"
_encode = msgspec.json.encode


def require_loopback(host: str) -> None:
    """Refuse any target but this machine: this tool generates real load."""
    if host not in LOOPBACK:
        raise ValueError(f"only loopback targets are allowed, not {host!r}")


def build_request(
    method: str, path: str, host: str, port: int, headers: dict[str, str], body: bytes
) -> bytes:
    """One HTTP/1.1 keep-alive request, as bytes on the wire."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _json_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def event_requests(
    n: int, n_customers: int, key: str, host: str, port: int, prefix: str, seed: int = 11
) -> list[bytes]:
    """`n` POST /v1/events requests with unique ids `{prefix}{i}`, from workload.event_bodies."""
    headers = _json_headers(key)
    return [
        build_request("POST", "/v1/events", host, port, headers, _encode(body))
        for body in event_bodies(n, n_customers, seed=seed, prefix=prefix)
    ]


def customer_requests(n: int, key: str, host: str, port: int) -> list[bytes]:
    """PUT /v1/customers/{id} for workload.customers(n): the ids the events refer to."""
    headers = _json_headers(key)
    requests = []
    for c in customers(n):
        profile = {
            "age": c.age,
            "aum": f"{c.aum:.2f}",
            "is_new": c.is_new,
            "tier": c.tier,
            "risk_tolerance": c.risk_tolerance,
        }
        path = f"/v1/customers/{c.id}"
        requests.append(build_request("PUT", path, host, port, headers, _encode(profile)))
    return requests


class ResponseError(Exception):
    """A response this generator cannot frame (no Content-Length)."""


class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read one response."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> int:
        """Send `request` and return the response's status; the body is read and dropped."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(HEAD_END)
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            self.close()
            raise ResponseError("response without Content-Length")
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
        if length:
            await self.reader.readexactly(length)
        if b"\r\nconnection: close" in lower:
            self.close()
        return status


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list; NaN when empty."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def _ms(ordered: list[float]) -> dict[str, float]:
    return {f"p{p:g}": round(percentile(ordered, p) * 1000, 3) for p in (50, 90, 99, 99.9)} | {
        "max": round(ordered[-1] * 1000, 3) if ordered else math.nan
    }


@dataclass
class Tally:
    """What came back, request by request (indexes into the schedule)."""

    n: int
    t0: float
    latency: list[float] = field(default_factory=list)  # due -> answered, 2xx only
    lag: list[float] = field(default_factory=list)  # due -> written
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    last_sent: float = 0.0
    last_done: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(v for k, v in self.statuses.items() if 200 <= k < 300)


async def _open_pool(host: str, port: int, connections: int) -> list[Connection]:
    pool = [Connection(host, port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in pool))
    return pool


async def open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    rate: float,
    connections: int = 64,
    drain_s: float = 10.0,
) -> dict[str, Any]:
    """Send `requests[i]` at t0 + i/rate over a pool of connections; return the figures."""
    require_loopback(host)
    n = len(requests)
    if rate <= 0 or n > MAX_REQUESTS or n / rate > MAX_DURATION_S:
        raise ValueError(f"{n} requests at {rate}/s is outside the bounds of this tool")
    pool = await _open_pool(host, port, connections)
    clock = time.perf_counter
    next_index = 0
    t0 = clock() + 0.05
    tally = Tally(n, t0)

    async def worker(conn: Connection) -> None:
        nonlocal next_index
        while next_index < n:
            i = next_index
            next_index = i + 1
            due = t0 + i / rate
            # Never early: uvloop's timers count whole milliseconds and may fire
            # before `due`; a request sent early would make its latency look shorter.
            while (delay := due - clock()) > 0:  # noqa: ASYNC110 - a deadline, not an event
                await asyncio.sleep(delay)
            sent = clock()
            tally.sent += 1
            tally.lag.append(sent - due)
            tally.last_sent = sent
            try:
                status = await conn.exchange(requests[i])
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                # ValueError: a malformed status line or header, or asyncio's LimitOverrunError.
                tally.failures[type(exc).__name__] += 1
                conn.close()
                continue
            done = clock()
            tally.statuses[status] += 1
            tally.last_done = done
            if 200 <= status < 300:
                tally.latency.append(done - due)

    cpu0 = time.process_time()
    tasks = [asyncio.create_task(worker(c)) for c in pool]
    finished, pending = await asyncio.wait(tasks, timeout=n / rate + drain_s + 0.05)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in finished:
        if task.exception() is not None:
            tally.failures[type(task.exception()).__name__] += 1
    wall = clock() - t0
    cpu = time.process_time() - cpu0
    for conn in pool:
        conn.close()
    return _report(tally, rate, n / rate, connections, wall, cpu)


def _report(
    tally: Tally, rate: float, duration: float, connections: int, wall: float, cpu: float
) -> dict[str, Any]:
    latency = sorted(tally.latency)
    lag = sorted(tally.lag)
    answered = tally.answered
    failed = sum(tally.failures.values())
    unanswered = max(0, tally.sent - answered - failed)
    # Answers per second over the schedule, or over longer if the last answers came late.
    span = max(duration, tally.last_done - tally.t0)
    return {
        "offered_rate": rate,
        "duration_s": round(duration, 3),
        "connections": connections,
        "scheduled": tally.n,
        "sent": tally.sent,
        "not_sent": tally.n - tally.sent,
        "ok": tally.ok,
        "errors": (answered - tally.ok) + failed + unanswered + (tally.n - tally.sent),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "failures": dict(tally.failures),
        "timeouts": unanswered,
        "achieved_rate": round(tally.ok / span, 1),
        "latency_ms": _ms(latency),
        "send_lag_ms": _ms(lag),
        "generator_cpu": round(cpu / wall, 3) if wall > 0 else math.nan,
        "wall_s": round(wall, 3),
    }


async def closed_loop(
    host: str, port: int, requests: list[bytes], connections: int = 32
) -> dict[str, Any]:
    """Send every request as soon as a connection is free (set-up work, not a measurement)."""
    require_loopback(host)
    pool = await _open_pool(host, port, connections)
    statuses: Counter[int] = Counter()
    queue = iter(requests)
    began = time.perf_counter()

    async def worker(conn: Connection) -> None:
        for request in queue:
            statuses[await conn.exchange(request)] += 1

    await asyncio.gather(*(worker(c) for c in pool))
    for conn in pool:
        conn.close()
    elapsed = time.perf_counter() - began
    return {
        "requests": len(requests),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 3),
        "rate": round(len(requests) / elapsed, 1) if elapsed > 0 else math.nan,
    }


def run(coro: Any, loop: str = "uvloop") -> Any:
    """Run a coroutine on uvloop (the default; the fastest sender) or plain asyncio."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of schedule")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=20_000, help="ids c0000000..")
    parser.add_argument("--key", default="", help="API key, sent as a Bearer token")
    parser.add_argument("--prefix", default=f"ol{int(time.time())}-", help="event id prefix")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait at the end")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    require_loopback(args.host)
    n = round(args.rate * args.duration)
    if not 0 < args.duration <= MAX_DURATION_S or not 0 < n <= MAX_REQUESTS:
        parser.error(f"at most {MAX_DURATION_S:g} s and {MAX_REQUESTS} requests")
    if not 0 <= args.drain <= MAX_DRAIN_S:
        parser.error(f"--drain is at most {MAX_DRAIN_S:g} s")
    requests = event_requests(
        n, args.customers, args.key, args.host, args.port, args.prefix, args.seed
    )
    # No collector pauses in the middle of the schedule: they would read as server latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    result = run(
        open_loop(args.host, args.port, requests, args.rate, args.connections, args.drain),
        args.loop,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
