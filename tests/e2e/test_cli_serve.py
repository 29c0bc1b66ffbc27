"""`double11 serve` on embedded SQLite, started as a process and spoken to over HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from double11.cli import app
from double11.serving import SETTINGS_ENV, settings_from_env
from double11.settings import Settings

from .conftest import CAMPAIGN_FILE

NOW = datetime.fromisoformat("2026-11-01T10:00:00+08:00")  # in the warm-up
MAX_AHEAD_S = 60
BODY_LIMIT = 4096
KEY_LINE = re.compile(r"DOUBLE11_API_KEYS is not set; this run's admin key is: (\S+)")


@dataclass(frozen=True)
class Served:
    """A `double11 serve` process: where it listens and the admin key it printed."""

    url: str
    key: str
    process: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_env() -> dict[str, str]:
    """This environment without any double11 setting, API keys included."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOUBLE11_")}


def double11(*args: str) -> list[str]:
    return [sys.executable, "-m", "double11", *args]


def wait_until_served(process: subprocess.Popen[bytes], url: str, log: Path) -> str:
    """Wait for /healthz to answer; return the admin key the server printed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                found = KEY_LINE.search(log.read_text())
                assert found, log.read_text()
                return found[1]
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"serve did not answer /healthz in 60 s: {log.read_text()}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server with its clock at NOW, a 60 s bound ahead of it, a 4 KiB body limit."""
    folder = tmp_path_factory.mktemp("serve")
    log = folder / "serve.log"
    url = f"http://127.0.0.1:{(port := free_port())}"
    args = [
        "serve", str(CAMPAIGN_FILE), "--db", f"sqlite:///{folder / 'serve.db'}",
        "--port", str(port), "--now", NOW.isoformat(),
        "--max-ahead", str(MAX_AHEAD_S), "--body-limit", str(BODY_LIMIT),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            double11(*args),
            env={**serve_env(), "COLUMNS": "80"},
            cwd=folder,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Served(url, wait_until_served(process, url, log), process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def event(event_id: str, at: datetime, **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "reservation",
        "customer_id": "c-serve",
        "at": at.isoformat(),
        "data": data,
    }


@pytest.fixture(scope="module")
def customer(served: Served) -> str:
    with served.client() as client:
        assert client.put("/v1/customers/c-serve", json={"age": 30}).status_code == 201
    return "c-serve"


def test_without_api_keys_serve_prints_an_admin_key_that_opens_the_api(served: Served) -> None:
    with served.client() as client:
        assert client.get("/v1/campaign").status_code == 200
    wrong = httpx.get(f"{served.url}/v1/campaign", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_the_engine_clock_starts_at_now_and_runs_on(served: Served) -> None:
    with served.client() as client:
        campaign = client.get("/v1/campaign").json()
    assert NOW <= datetime.fromisoformat(campaign["now"]) < NOW + timedelta(minutes=2)
    assert campaign["current_phase"] == "warmup"


def test_a_reservation_at_now_earns_the_early_bird_perk_on_the_sqlite_store(
    served: Served, customer: str
) -> None:
    with served.client() as client:
        decision = client.post("/v1/events", json=event("e-now", NOW)).json()
        wallet = client.get(f"/v1/customers/{customer}/wallet").json()
    assert "early_bird_double_points" in [g["mechanic_id"] for g in decision["grants"]]
    assert [p["perk"] for p in wallet["perks"]] == ["double_points"]


def test_max_ahead_refuses_an_event_further_ahead_of_the_clock_than_it_allows(
    served: Served, customer: str
) -> None:
    # Two minutes ahead: inside the default bound of five, outside the 60 s given.
    with served.client() as client:
        refused = client.post("/v1/events", json=event("e-ahead", NOW + timedelta(minutes=2)))
        near = client.post("/v1/events", json=event("e-near", NOW + timedelta(seconds=30)))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "at"
    assert near.status_code == 200, near.text


def test_body_limit_refuses_a_larger_body_with_413(served: Served, customer: str) -> None:
    small = event("e-small", NOW, product="x" * (BODY_LIMIT // 2))
    large = event("e-large", NOW, product="x" * BODY_LIMIT)
    with served.client() as client:
        assert client.post("/v1/events", json=large).status_code == 413
        profile = {"age": 30, "tier": "x" * BODY_LIMIT}
        assert client.put(f"/v1/customers/{customer}", json=profile).status_code == 413
        assert client.post("/v1/events", json=small).status_code == 200


def test_serve_refuses_a_broken_campaign_naming_the_field_and_its_line(tmp_path: Path) -> None:
    text = CAMPAIGN_FILE.read_text(encoding="utf-8").replace("quota: 10000 ", "quota: 0 ", 1)
    broken = tmp_path / "broken.yaml"
    broken.write_text(text, encoding="utf-8")
    line = text[: text.index("quota: 0 ")].count("\n") + 1
    done = subprocess.run(
        double11("serve", str(broken), "--db", f"sqlite:///{tmp_path / 'x.db'}"),
        env={**serve_env(), "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    problem = f"{broken}: mechanics[0].limits.quota: must be a positive integer (line {line})"
    assert problem in done.stderr.splitlines()
    assert not (tmp_path / "x.db").exists()  # refused before any store was opened


# ---------------------------------------------------------------- the options, checked


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--max-ahead", "0"),
        ("--max-ahead", "-5"),
        ("--max-ahead", "nan"),
        ("--max-ahead", "1e300"),
        ("--body-limit", "0"),
        ("--body-limit", "-1"),
    ],
)
def test_serve_refuses_a_bound_that_is_not_positive_naming_the_option(
    option: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(a))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["serve", str(CAMPAIGN_FILE), f"{option}={value}"]
    )
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert served == []


def settings_every_worker_gets(monkeypatch: pytest.MonkeyPatch, *options: str) -> Settings:
    """`serve` on PostgreSQL with these options, uvicorn not started: the workers' settings.

    uvicorn starts each of the N workers by importing `app_factory`, which reads its
    settings from this variable: what is in it is what every worker runs with.
    """
    monkeypatch.setenv(SETTINGS_ENV, "")
    monkeypatch.setenv("DOUBLE11_API_KEYS", "k:admin")
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: runs.append(k))
    args = ["serve", str(CAMPAIGN_FILE), "--db", "postgresql://db/x", "--redis", "redis://r"]
    result = CliRunner().invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    assert len(runs) == 1
    workers = runs[0]["workers"]
    assert isinstance(workers, int) and workers > 1
    return settings_from_env(os.environ[SETTINGS_ENV])


def test_every_worker_gets_the_max_ahead_and_body_limit_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_every_worker_gets(
        monkeypatch, "--workers", "3", "--max-ahead", "42.5", "--body-limit", "2048"
    )
    assert settings.max_ahead == timedelta(seconds=42.5)
    assert settings.body_limit == 2048


def test_serve_help_documents_the_bounds() -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--max-ahead" in result.output and "SECONDS" in result.output
    assert "--body-limit" in result.output and "BYTES" in result.output


def test_serve_with_now_anchors_every_workers_clock_to_when_it_read_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = datetime.now(UTC)
    settings = settings_every_worker_gets(
        monkeypatch, "--workers", "2", "--now", "2026-11-10T23:59:00+08:00", "--speed", "60"
    )
    assert settings.now == datetime.fromisoformat("2026-11-10T23:59:00+08:00")
    assert settings.now_read_at is not None
    assert before <= settings.now_read_at <= datetime.now(UTC)
