"""The `double11` command: serve, check, demo, reconcile."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from double11.campaign_file import load_campaign
from double11.domain.campaign import Campaign
from double11.engine.pipeline import DEFAULT_MAX_AHEAD
from double11.errors import CampaignFileError
from double11.settings import DEFAULT_BODY_LIMIT, DEFAULT_DB, MAX_AHEAD_LIMIT, Settings

app = typer.Typer(
    help="double11: decide a bank's Singles' Day campaign in real time.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)
out = Console()

WORKER_HEALTHCHECK_S = 30

CampaignArg = Annotated[Path, typer.Argument(help="The campaign file (YAML).")]


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise typer.BadParameter("the instant needs an offset, e.g. 2026-11-01T10:00:00+08:00")
    return value


def _positive_seconds(value: float) -> float:
    # Positive, not merely non-negative: with 0 an event stamped a microsecond after
    # the engine's clock reads it would be refused. NaN fails this test too.
    if not value > 0:
        raise typer.BadParameter(f"must be a positive number of seconds, not {value}")
    if value > MAX_AHEAD_LIMIT.total_seconds():
        raise typer.BadParameter(
            f"must be at most {MAX_AHEAD_LIMIT.total_seconds():.0f} seconds, not {value}"
        )
    return value


def _api_keys() -> dict[str, str]:
    from double11.api.auth import parse_api_keys

    text = os.environ.get("DOUBLE11_API_KEYS", "")
    try:
        return parse_api_keys(text) if text else {}
    except ValueError as exc:
        err.print(f"[red]DOUBLE11_API_KEYS: {exc}[/red]")
        raise typer.Exit(2) from None


def _load_or_exit(campaign: Path) -> Campaign:
    """The campaign in the file, or exit 1 printing each problem on a line of its own."""
    try:
        return load_campaign(campaign)
    except CampaignFileError as exc:
        for problem in exc.problems:
            err.print(f"{campaign}: {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@app.command()
def check(campaign: CampaignArg) -> None:
    """Validate a campaign file; exit non-zero naming each broken field."""
    loaded = _load_or_exit(campaign)
    out.print(
        f"{campaign}: OK: campaign {loaded.id!r}, {len(loaded.phases)} phases, "
        f"{len(loaded.event_types)} event types, {len(loaded.mechanics)} mechanics",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def serve(
    campaign: CampaignArg,
    db: Annotated[str, typer.Option(help="sqlite:///FILE, or postgresql://...")] = DEFAULT_DB,
    redis: Annotated[str | None, typer.Option(help="redis://... (with PostgreSQL)")] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    now: Annotated[str | None, typer.Option(help="start the engine clock at this instant")] = None,
    speed: Annotated[
        float, typer.Option(min=0.001, help="with --now: clock seconds per real second")
    ] = 1.0,
    synchronous: Annotated[str, typer.Option(help="SQLite synchronous: FULL or NORMAL")] = "FULL",
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "warning",
    max_ahead: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            callback=_positive_seconds,
            help="refuse an event whose `at` is more than this far ahead of the engine's clock",
        ),
    ] = DEFAULT_MAX_AHEAD.total_seconds(),
    body_limit: Annotated[
        int,
        typer.Option(
            metavar="BYTES",
            min=1,
            help="refuse a request body larger than this with 413",
        ),
    ] = DEFAULT_BODY_LIMIT,
) -> None:
    """Serve the HTTP API for a campaign."""
    import uvicorn

    from double11.serving import SETTINGS_ENV, settings_to_env

    _load_or_exit(campaign)
    if workers > 1 and not db.startswith(("postgresql", "postgres:")):
        err.print("[red]--workers > 1 needs PostgreSQL and Redis: SQLite has one writer[/red]")
        raise typer.Exit(2)
    if speed != 1.0 and now is None:
        raise typer.BadParameter("--speed needs --now: the system clock runs at its own pace")
    if synchronous.upper() not in ("FULL", "NORMAL"):
        raise typer.BadParameter("--synchronous must be FULL or NORMAL")
    keys = _api_keys()
    if not keys:
        key = secrets.token_urlsafe(24)
        keys = {key: "admin"}
        # One line whatever the terminal's width, so the key can be copied (and read by tests).
        err.print(
            f"DOUBLE11_API_KEYS is not set; this run's admin key is: {key}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    settings = Settings(
        campaign_path=str(campaign.resolve()),
        db_url=db,
        redis_url=redis,
        now=_instant(now),
        clock_speed=speed,
        now_read_at=datetime.now(UTC) if now is not None else None,
        max_ahead=timedelta(seconds=max_ahead),
        body_limit=body_limit,
        api_keys=keys,
        sqlite_synchronous=synchronous.upper(),
    )
    # Every worker process builds its settings from this one variable (serving.py).
    os.environ[SETTINGS_ENV] = settings_to_env(settings)
    uvicorn.run(
        "double11.serving:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        # Nothing reads the client's address (bank systems report the customer's IP and
        # device in the event), so the proxy-headers layer is ~3% of a request for nothing.
        proxy_headers=False,
        # uvicorn kills a worker that misses a health check for this long. Its default,
        # 5 s, kills busy but healthy workers on a saturated machine, dropping their
        # in-flight requests at the worst moment; a hung worker is still replaced.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


@app.command()
def reconcile(
    db: Annotated[str, typer.Option(help="postgresql://...")],
    redis: Annotated[str, typer.Option(help="redis://...")],
    grace: Annotated[float, typer.Option(help="seconds a claim may be in flight")] = 30.0,
) -> None:
    """Make Redis's quotas, budgets and caps agree with the PostgreSQL ledger."""
    from double11.adapters.reconcile import reconcile_urls

    report = asyncio.run(reconcile_urls(db, redis, grace_s=grace))
    out.print(str(report), markup=False, highlight=False)


@app.command()
def versions(
    db: Annotated[str, typer.Option(help="sqlite:///FILE, or postgresql://...")] = DEFAULT_DB,
    show: Annotated[
        str | None,
        typer.Option(help="print this version's file (a digest or its start), to serve it again"),
    ] = None,
) -> None:
    """List the campaign versions a store has run (digest, when, by whom), or print one."""
    from sqlalchemy.exc import SQLAlchemyError

    from double11.adapters.versions import read_versions

    try:
        kept = read_versions(db)
    except (SQLAlchemyError, ValueError) as exc:
        err.print(f"{db}: cannot read campaign versions: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    if show is None:
        table = Table("version", "campaign", "first run", "by")
        for v in kept:
            table.add_row(v.digest, v.campaign_id, v.loaded_at.isoformat(), v.loaded_by)
        out.print(table)
        return
    matches = [v for v in kept if v.digest.startswith(show)]
    if len(matches) != 1:
        found = "no version" if not matches else f"{len(matches)} versions"
        err.print(f"{found} starts with {show!r}", markup=False, highlight=False)
        raise typer.Exit(1)
    sys.stdout.write(matches[0].source)


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=10, help="synthetic customers")] = 3000,
    seconds: Annotated[float, typer.Option(min=5, help="how long the simulation runs")] = 60.0,
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 0,
    keep_serving: Annotated[
        bool | None, typer.Option(help="keep the API up afterwards (default: if a terminal)")
    ] = None,
) -> None:
    """Serve the example campaign on a temporary store and drive synthetic customers through it."""
    from double11.demo import run_demo

    stay = sys.stdin.isatty() if keep_serving is None else keep_serving
    asyncio.run(run_demo(customers=customers, seconds=seconds, port=port, keep_serving=stay))


def main() -> None:
    app()
