"""HTTP throughput and latency of `POST /v1/events`, against a bare ASGI hello-world.

    uv run python -m benchmarks.bench_http [--scaleout] [--runs 3] [--customers 10000]

Cases come in groups, a hello-world baseline and the double11 servers compared with it:

  1 worker, each server pinned to core 0, wrk and the generator to core 1:
    hello     benchmarks/hello_asgi.py under uvicorn: the baseline
    sqlite    double11 serve examples/double11-bank.yaml --db sqlite:///TMP --now WARMUP_NOW
    memory    the same on the memory store (only if named in --cases): HTTP and the
              pipeline without storage
  2 workers (--scaleout), nothing pinned but wrk and the generator (core 1), which
  therefore share the cores with the servers, PostgreSQL and Redis:
    hello2    the hello-world under uvicorn --workers 2
    scaleout  double11 serve ... --db postgresql://127.0.0.1/double11_bench_http
              --redis redis://127.0.0.1:6379/13 --workers 2 (that database is dropped
              and created again, that Redis db flushed)

All the servers of a group are started together (an idle one costs nothing), the
customers are created through the API (PUT /v1/customers/{id}), and then:

1. maximum rate: `wrk -t1 -c64` with benchmarks/wrk_events.lua (a unique event id
   per request): a short warm-up, then `--runs` runs of each server taking turns,
   so a burst of other work on this shared machine hits them alike; the median is quoted;
2. latency: benchmarks/openloop.py sends on a fixed schedule at 80% of that median
   for `--openloop-seconds`, latency counted from each scheduled send; the
   hello-world is also measured at each double11 server's rate, for latency at the
   same load.

Each double11 case is reported with its ratio to the hello-world of the same run.
The CPU used by each server, by the load and by every other process is sampled
during each measurement and reported: this machine is shared, and `nice` does
not help (autogroup scheduling shares the CPU between sessions first).
Prints a JSON summary and markdown table rows for the README, and writes the
JSON to benchmarks/results/ (not committed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.openloop import closed_loop, customer_requests, run
from benchmarks.workload import WARMUP_NOW

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benchmarks" / "wrk_events.lua"
CAMPAIGN = ROOT / "examples" / "double11-bank.yaml"
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"
SERVER_CORE = "0"
LOAD_CORE = "1"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "double11_bench_http"
REDIS_URL = "redis://127.0.0.1:6379/13"
EVENT_AT = (WARMUP_NOW - timedelta(minutes=1)).isoformat()
CLK_TCK = os.sysconf("SC_CLK_TCK")
GROUPS = (("hello", "sqlite", "memory"), ("hello2", "scaleout"))
STORE_PROCESSES = frozenset({"postgres", "redis-server"})


# ---------------------------------------------------------------- what else runs here


def _proc_stat(pid: str) -> tuple[int, str, float] | None:
    """(parent pid, name, CPU seconds) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), name, (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_snapshot() -> dict[int, tuple[int, str, float]]:
    """Every process's parent, name and CPU seconds so far."""
    snap = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(entry)) is not None:
            snap[int(entry)] = stat
    return snap


def _tree(snap: dict[int, tuple[int, str, float]], root: int) -> set[int]:
    """`root` and its descendants."""
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in snap.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def _children_cpu() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def core_times() -> list[tuple[int, int]]:
    """(busy, total) clock ticks of each core so far, from /proc/stat."""
    cores = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            ticks = [int(x) for x in line.split()[1:]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            cores.append((sum(ticks[:8]) - idle, sum(ticks[:8])))
    return cores


@dataclass
class CpuUse:
    """Who used the CPU while the benchmark measured: the server, the load, everyone else."""

    seconds: float = 0.0
    server: float = 0.0
    load: float = 0.0
    stores: float = 0.0  # PostgreSQL and Redis, whoever they work for
    others: dict[str, float] = field(default_factory=dict)  # name -> CPU seconds
    busy: list[int] = field(default_factory=list)  # ticks per core
    total: list[int] = field(default_factory=list)

    def add(
        self,
        before: dict[int, tuple[int, str, float]],
        cores_before: list[tuple[int, int]],
        children_before: float,
        wall: float,
        server_pid: int | None,
    ) -> None:
        after = cpu_snapshot()
        cores_after = core_times()
        ours = _tree(after, os.getpid()) | _tree(before, os.getpid())
        server = set()
        if server_pid is not None:
            server = _tree(after, server_pid) | _tree(before, server_pid)
        self.seconds += wall
        # wrk and the generator have exited and been waited for by now: they count here.
        self.load += _children_cpu() - children_before
        for pid, (_, name, cpu) in after.items():
            used = cpu - before[pid][2] if pid in before else cpu
            if used <= 0:
                continue
            if pid in server:
                self.server += used
            elif name in STORE_PROCESSES:
                self.stores += used
            elif pid not in ours:
                self.others[name] = self.others.get(name, 0.0) + used
        if not self.busy:
            self.busy = [0] * len(cores_after)
            self.total = [0] * len(cores_after)
        for i, ((b0, t0), (b1, t1)) in enumerate(zip(cores_before, cores_after, strict=True)):
            self.busy[i] += b1 - b0
            self.total[i] += t1 - t0

    def summary(self) -> dict[str, Any]:
        """In cores (1.0 = one core all the time): the server, the load, others (top five)."""
        if not self.seconds:
            return {}
        top = sorted(self.others.items(), key=lambda kv: -kv[1])[:5]
        return {
            "server_cores": round(self.server / self.seconds, 3),
            "load_cores": round(self.load / self.seconds, 3),
            "stores_cores": round(self.stores / self.seconds, 3),
            "others_cores": round(sum(self.others.values()) / self.seconds, 3),
            "others_top": {name: round(cpu / self.seconds, 3) for name, cpu in top if cpu > 0.01},
            "core_busy": [
                round(b / t, 3) if t else None for b, t in zip(self.busy, self.total, strict=True)
            ],
        }


@contextlib.contextmanager
def sampled(use: CpuUse, server_pid: int | None = None) -> Iterator[None]:
    """Count CPU use over the block."""
    before = cpu_snapshot()
    cores = core_times()
    children = _children_cpu()
    began = time.perf_counter()
    try:
        yield
    finally:
        use.add(before, cores, children, time.perf_counter() - began, server_pid)


def quiet_wait(limit_s: float, busy_below: float = 0.15) -> dict[str, Any]:
    """Wait (at most `limit_s`) until other processes use less than `busy_below` of a core."""
    waited = 0.0
    while True:
        probe = CpuUse()
        with sampled(probe):
            time.sleep(1.0)
        state = probe.summary()
        if state["others_cores"] < busy_below or waited >= limit_s:
            return state | {"waited_s": waited}
        waited += 1.0


def machine() -> dict[str, Any]:
    """The CPU model and count, the kernel, the Python, and the date."""
    model = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Case:
    """One server to measure."""

    name: str
    command: list[str]
    port: int
    ready_path: str  # answers 200 once the server is up
    pinned: bool  # the server runs on SERVER_CORE alone
    baseline: str | None = None  # the hello-world case this one is compared with
    customers: bool = False  # create the customers before measuring
    stores: str = "-"
    key: str = field(default_factory=lambda: secrets.token_urlsafe(18))


def cases(tmp: Path, names: list[str], synchronous: str | None) -> dict[str, Case]:
    """The cases named, each with a port of its own and its server's command line."""
    port = {name: free_port() for name in names}

    def hello(name: str) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "benchmarks.hello_asgi:app", "--host", HOST,
            "--port", str(port[name]), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip

    def serve(name: str) -> list[str]:
        return [
            str(Path(sys.executable).parent / "double11"), "serve", str(CAMPAIGN),
            "--now", WARMUP_NOW.isoformat(), "--host", HOST, "--port", str(port[name]),
        ]  # fmt: skip

    sync = ["--synchronous", synchronous] if synchronous else []
    pin = ["taskset", "-c", SERVER_CORE]
    sqlite = f"sqlite:///{tmp / 'bench.db'}"
    pg = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
    build = {
        "hello": lambda: Case("hello", [*pin, *hello("hello")], port["hello"], "/", pinned=True),
        "sqlite": lambda: Case(
            "sqlite", [*pin, *serve("sqlite"), "--db", sqlite, *sync, "--workers", "1"],
            port["sqlite"], "/healthz", pinned=True, baseline="hello", customers=True,
            stores=f"SQLite (synchronous={synchronous or 'FULL'})",
        ),
        "memory": lambda: Case(
            "memory", [*pin, *serve("memory"), "--db", "memory://", "--workers", "1"],
            port["memory"], "/healthz", pinned=True, baseline="hello", customers=True,
            stores="memory",
        ),
        "hello2": lambda: Case(
            "hello2", [*hello("hello2"), "--workers", "2"], port["hello2"], "/", pinned=False
        ),
        "scaleout": lambda: Case(
            "scaleout",
            [*serve("scaleout"), "--db", pg, "--redis", REDIS_URL, "--workers", "2"],
            port["scaleout"], "/healthz", pinned=False, baseline="hello2", customers=True,
            stores="PostgreSQL + Redis",
        ),
    }  # fmt: skip
    return {name: build[name]() for name in names}


def reset_scaleout_stores() -> None:
    """A fresh PostgreSQL database and an empty Redis db for the scale-out case."""
    import psycopg
    import redis

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def server(case: Case, log: Path) -> Iterator[int]:
    """Run the case's server until the block ends, yielding its pid; fail if it never answers."""
    env = dict(os.environ, DOUBLE11_API_KEYS=f"{case.key}:producer")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            case.command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        url = f"http://{HOST}:{case.port}{case.ready_path}"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{case.name} exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{case.name} did not answer {url}: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        # The server runs in a session of its own: its group is the server and its workers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- load


@dataclass
class Options:
    """How long and how hard to load each case."""

    runs: int
    wrk_seconds: int
    warmup_seconds: int
    openloop_seconds: float
    load: float
    connections: int
    customers: int


ON_LOAD_CORE = ("taskset", "-c", LOAD_CORE)


def wrk(opts: Options, case: Case, tag: str, seconds: int) -> dict[str, Any]:
    """One wrk run on the load core: the rate of 2xx answers, the errors, wrk's latencies."""
    command = [
        *ON_LOAD_CORE, "wrk", "-t1", f"-c{opts.connections}", f"-d{seconds}s", "-s", str(LUA),
        f"http://{HOST}:{case.port}", "--", tag, str(opts.customers), case.key, EVENT_AT,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors: dict[str, int] = raw["errors"]
    duration = raw["duration_us"] / 1e6
    return {
        "rate": round((raw["requests"] - errors["status"]) / duration, 1),
        "requests": raw["requests"],
        "errors": sum(errors.values()),
        "error_kinds": {k: v for k, v in errors.items() if v},
        # Closed-loop latencies: what 64 callers waiting on each other see, not a service level.
        "latency_ms": {k: round(v / 1000, 3) for k, v in raw["latency_us"].items()},
        "seconds": round(duration, 3),
    }


def openloop(opts: Options, case: Case, prefix: str, rate: float) -> dict[str, Any]:
    """One run of benchmarks/openloop.py on the load core."""
    seconds = opts.openloop_seconds
    command = [
        *ON_LOAD_CORE, sys.executable, "-m", "benchmarks.openloop",
        "--host", HOST, "--port", str(case.port), "--rate", f"{rate:.1f}",
        "--duration", str(seconds), "--customers", str(opts.customers), "--key", case.key,
        "--prefix", prefix, "--connections", str(opts.connections),
    ]  # fmt: skip
    out = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=seconds + 120
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _log(case: Case, text: str) -> None:
    print(f"[{case.name}] {text}", file=sys.stderr, flush=True)


def _describe(case: Case, tmp: Path) -> dict[str, Any]:
    command = " ".join(case.command).replace(str(ROOT) + "/", "").replace(str(tmp), "TMP")
    return {
        "command": command.replace(str(case.port), "PORT"),
        "stores": case.stores,
        "server_core": SERVER_CORE if case.pinned else "any",
        "load_core": LOAD_CORE,
    }


def measure_group(group: list[Case], opts: Options, tmp: Path) -> dict[str, dict[str, Any]]:
    """Start a group's servers together, create the customers, and load them by turns."""
    stamp = secrets.token_hex(3)  # event ids never repeat, within a run or across runs
    results = {case.name: _describe(case, tmp) for case in group}
    with contextlib.ExitStack() as stack:
        pids = {}
        for case in group:
            if case.name == "scaleout":
                reset_scaleout_stores()
            _log(case, f"starting: {results[case.name]['command']}")
            pids[case.name] = stack.enter_context(server(case, tmp / f"{case.name}.log"))
        for case in group:
            if case.customers:
                requests = customer_requests(opts.customers, case.key, HOST, case.port)
                made = run(closed_loop(HOST, case.port, requests))
                created = sum(v for status, v in made["statuses"].items() if status[0] == "2")
                if created != opts.customers:
                    raise RuntimeError(f"{case.name}: not every customer was created: {made}")
                results[case.name]["customers"] = made
                _log(case, f"customers: {made}")
            if opts.warmup_seconds:
                wrk(opts, case, f"w{stamp}", opts.warmup_seconds)
        runs: dict[str, list[dict[str, Any]]] = {case.name: [] for case in group}
        uses = {case.name: CpuUse() for case in group}
        for i in range(opts.runs):
            for case in group:
                with sampled(uses[case.name], pids[case.name]):
                    runs[case.name].append(wrk(opts, case, f"r{stamp}{i}", opts.wrk_seconds))
                _log(case, f"wrk run {i + 1}: {runs[case.name][-1]}")
        for case in group:
            median = statistics.median(r["rate"] for r in runs[case.name])
            answered = sum(r["requests"] for r in runs[case.name])
            use = uses[case.name]
            results[case.name]["wrk"] = {
                "median_rate": median,
                # What one request costs the server, robust to sharing the core with others.
                "server_cpu_us_per_request": round(use.server / answered * 1e6, 1),
                "runs": runs[case.name],
                "cpu": use.summary(),
            }
            results[case.name]["openloop"] = {}
        # Each double11 server at its own rate, then its baseline at that rate; then the
        # baselines at their own.
        plan = []
        for case in sorted(group, key=lambda c: c.baseline is None):
            rate = opts.load * results[case.name]["wrk"]["median_rate"]
            plan.append((case, "own", rate))
            base = next((c for c in group if c.name == case.baseline), None)
            if base is not None:
                plan.append((base, case.name, rate))
        for case, label, rate in plan:
            use = CpuUse()
            with sampled(use, pids[case.name]):
                ol = openloop(opts, case, f"o{stamp}{label}-", rate)
            results[case.name]["openloop"][label] = ol | {"cpu": use.summary()}
            _log(case, f"open loop at {rate:.0f}/s ({label}): {ol}")
    return results


# ---------------------------------------------------------------- report


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ratios(results: dict[str, dict[str, Any]], all_cases: dict[str, Case]) -> dict[str, Any]:
    """Each double11 case over its hello-world: max rate, and latency at the same offered rate."""
    out = {}
    for name, case in all_cases.items():
        base = case.baseline
        if base is None or base not in results or name not in results:
            continue
        mine, hello = results[name], results[base]
        own = mine["openloop"]["own"]["latency_ms"]
        same = hello["openloop"].get(name, {}).get("latency_ms", {})
        out[name] = {
            "baseline": base,
            "max_rate": _ratio(mine["wrk"]["median_rate"], hello["wrk"]["median_rate"]),
            "server_cpu_per_request": _ratio(
                mine["wrk"]["server_cpu_us_per_request"], hello["wrk"]["server_cpu_us_per_request"]
            ),
            "p50_over_baseline_at_same_rate": _ratio(own["p50"], same.get("p50")),
            "p99_over_baseline_at_same_rate": _ratio(own["p99"], same.get("p99")),
        }
    return out


def _row(summary: dict[str, Any], name: str, r: dict[str, Any], label: str) -> str:
    own = label == "own"
    ol = r["openloop"][label]
    lat = ol["latency_ms"]
    ratio = summary["ratios"].get(name, {}).get("max_rate")
    errors = ol["errors"] + (sum(x["errors"] for x in r["wrk"]["runs"]) if own else 0)
    # The server's CPU while wrk ran (own row) or during this open loop, in cores.
    server_cpu = (r["wrk"] if own else ol)["cpu"].get("server_cores", 0)
    others = max(r["wrk"]["cpu"].get("others_cores", 0), ol["cpu"].get("others_cores", 0))
    per_request = f"{r['wrk']['server_cpu_us_per_request']:,.0f}" if own else ""
    title = name if own else f"{name} at {label}'s rate"
    top = f"{r['wrk']['median_rate']:,.0f}" if own else ""
    times = f"{ratio:.2f}" if own and ratio is not None else ""
    return (
        f"| {title} | {r['stores']} | {top} | {times} | {ol['achieved_rate']:,.0f} "
        f"| {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | {lat['max']:.1f} "
        f"| {errors} | {server_cpu:.2f} | {per_request} | {others:.2f} |"
    )


def markdown(summary: dict[str, Any]) -> str:
    """Table rows for the README, preceded by the conditions."""
    m, o = summary["machine"], summary["options"]
    rows = [
        f"Measured {m['date'][:10]} on {m['cpu']} ({m['cores']} cores, KVM guest), "
        f"Python {m['python']}, uvicorn + uvloop + httptools: `{summary['how']}`. "
        f"1-worker servers pinned to core {SERVER_CORE}, wrk and the open-loop generator to "
        f"core {LOAD_CORE}; the 2-worker servers are not pinned and share both cores with "
        "PostgreSQL, Redis and the load. Max rate: median of "
        f"{o['runs']} wrk runs of {o['wrk_seconds']} s (-t1 -c{o['connections']}, a unique "
        f"event id per request, {o['customers']:,} customers), a group's servers taking turns. "
        f"Latency: open loop at {o['load']:.0%} of that rate for {o['openloop_seconds']:g} s "
        f"over {o['connections']} keep-alive connections, counted from each request's "
        "scheduled send. CPU in cores (1.0 = one core all the time): 'server' is what the "
        "server got while wrk ran (or during that open loop), 'others' what processes outside "
        "the benchmark used meanwhile (the larger of the two phases; PostgreSQL and Redis "
        "not included); 'server µs/req' is the server's CPU time per request under wrk "
        "(its worker processes, not PostgreSQL or Redis): the figure least disturbed by "
        "sharing the machine.",
        "",
        "| case | stores | max req/s | × hello | open-loop req/s | p50 ms | p90 ms | p99 ms "
        "| max ms | errors | server CPU | server µs/req | others' CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cases = summary["cases"]
    for name, r in cases.items():
        # A hello-world's row, or a double11 row followed by its hello-world at its rate.
        lines = [(name, r, "own")]
        base = summary["ratios"].get(name, {}).get("baseline")
        if base is not None and name in cases[base]["openloop"]:
            lines.append((base, cases[base], name))
        for case, result, label in lines:
            rows.append(_row(summary, case, result, label))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scaleout", action="store_true", help="add hello2 and scaleout")
    parser.add_argument("--cases", help="comma-separated, of: hello,sqlite,memory,hello2,scaleout")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=int, default=3)
    parser.add_argument("--openloop-seconds", type=float, default=15.0)
    parser.add_argument("--load", type=float, default=0.8, help="open-loop rate / max rate")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument(
        "--synchronous", choices=("FULL", "NORMAL"), help="SQLite; default: serve's"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, help="wait up to this many s for an idle machine"
    )
    args = parser.parse_args()
    names = args.cases.split(",") if args.cases else ["hello", "sqlite"]
    if args.scaleout:
        names += [n for n in ("hello2", "scaleout") if n not in names]
    known = {"hello", "sqlite", "memory", "hello2", "scaleout"}
    if not set(names) <= known:
        parser.error(f"--cases are among {', '.join(sorted(known))}")
    if not 1 <= args.runs <= 9 or not 1 <= args.wrk_seconds <= 60:
        parser.error("--runs 1..9 and --wrk-seconds 1..60")
    if not 0 < args.load <= 1.5 or not 1 <= args.openloop_seconds <= 120:
        parser.error("--load in (0, 1.5] and --openloop-seconds 1..120")
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        parser.error("needs wrk and taskset on PATH")
    if (os.cpu_count() or 1) < 2:
        parser.error("needs two cores: one for the server, one for the load")
    # The orchestrator's own work (creating customers) stays off the server's core.
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    opts = Options(
        args.runs, args.wrk_seconds, args.warmup_seconds, args.openloop_seconds, args.load,
        args.connections, args.customers,
    )  # fmt: skip
    before = quiet_wait(args.wait_quiet)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="double11-bench-http-") as name:
        tmp = Path(name)
        all_cases = cases(tmp, names, args.synchronous)
        for group in GROUPS:
            members = [all_cases[n] for n in group if n in all_cases]
            if members:
                results |= measure_group(members, opts, tmp)
    summary: dict[str, Any] = {
        "machine": machine(),
        "how": "uv run python -m benchmarks.bench_http " + " ".join(sys.argv[1:]),
        "options": vars(opts),
        "others_before": before,
        "cases": results,
        "ratios": ratios(results, all_cases),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"http-{stamp}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print()
    print(markdown(summary))


if __name__ == "__main__":
    main()
