"""`double11 versions`: every campaign file a store has served, and the way back to one."""

from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from double11.campaign_file import digest
from double11.cli import app

from .conftest import CAMPAIGN_FILE
from .test_cli_serve import double11, free_port, serve_env, wait_until_served


def serve_once(campaign: Path, db: Path) -> None:
    """Start `double11 serve` on the file until it answers, then stop it."""
    url = f"http://127.0.0.1:{(port := free_port())}"
    log = db.with_suffix(f".{campaign.stem}.log")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            double11("serve", str(campaign), "--db", f"sqlite:///{db}", "--port", str(port)),
            env=serve_env(),
            cwd=db.parent,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_served(process, url, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_each_campaign_file_served_is_kept_once_and_can_be_printed_to_serve_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.db"
    first = CAMPAIGN_FILE.read_text(encoding="utf-8")
    changed = first + "# budget raised by the marketing desk\n"
    (tmp_path / "v1.yaml").write_text(first, encoding="utf-8")
    (tmp_path / "v2.yaml").write_text(changed, encoding="utf-8")

    serve_once(tmp_path / "v1.yaml", db)
    serve_once(tmp_path / "v2.yaml", db)
    serve_once(tmp_path / "v1.yaml", db)  # rolled back: the same version, not a new one

    listed = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["versions", "--db", f"sqlite:///{db}"])
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "bank-double11-2026" in line]
    assert [row.split()[1] for row in rows] == [digest(first), digest(changed)]
    assert all("@" in row for row in rows)  # who served it

    shown = CliRunner().invoke(
        app, ["versions", "--db", f"sqlite:///{db}", "--show", digest(changed)[:8]]
    )
    assert shown.exit_code == 0
    assert shown.stdout == changed


def test_versions_of_a_file_that_does_not_exist_is_an_error_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere.db"
    result = CliRunner().invoke(app, ["versions", "--db", f"sqlite:///{missing}"])
    assert result.exit_code == 1
    assert "no SQLite file" in result.stderr
    assert not missing.exists()


def test_show_of_an_unknown_version_says_so(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    serve_once(CAMPAIGN_FILE, db)
    result = CliRunner().invoke(app, ["versions", "--db", f"sqlite:///{db}", "--show", "ffff"])
    assert result.exit_code == 1
    assert "no version starts with 'ffff'" in result.stderr
