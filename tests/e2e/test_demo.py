"""`double11 demo`, the README's main command: run for real, and the parts it is made of."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal

import pytest

from double11.api.metrics import Metrics
from double11.campaign_file import digest, parse_campaign
from double11.campaigns import example_campaign_path
from double11.demo import histogram_p99
from double11.demo_campaign import scale_campaign
from double11.domain.campaign import Campaign

CUSTOMERS = 60


@pytest.fixture(scope="module")
def demo_output() -> str:
    """What a short demo prints; it must exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOUBLE11_")}
    before = digest(example_campaign_path().read_text(encoding="utf-8"))
    args = ["demo", "--customers", str(CUSTOMERS), "--seconds", "5", "--no-keep-serving"]
    done = subprocess.run(
        [sys.executable, "-m", "double11", *args],
        env={**env, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        encoding="utf-8",
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert digest(example_campaign_path().read_text(encoding="utf-8")) == before
    return done.stdout


@pytest.mark.slow
def test_the_demo_prints_the_api_url_a_key_and_curl_lines_that_use_them(demo_output: str) -> None:
    url = re.search(r"API +(http://127\.0\.0\.1:\d+) ", demo_output)
    key = re.search(r"API key +(\S+) +\(role admin\)", demo_output)
    assert url and key, demo_output
    curls = [line.strip() for line in demo_output.splitlines() if line.strip().startswith("curl")]
    assert len(curls) == 4
    for line in curls:
        assert f"Authorization: Bearer {key[1]}" in line and url[1] in line


@pytest.mark.slow
def test_the_demo_shows_live_counts_with_every_event_decided_and_no_error(
    demo_output: str,
) -> None:
    live = re.findall(r"events (\d+)/(\d+) .*? errors (\d+)", demo_output, re.S)
    assert live, demo_output
    sent, planned, errors = live[-1]
    assert int(sent) == int(planned) > CUSTOMERS and errors == "0"
    done = re.search(r"Done: (\d+) events decided, (\d+) grants, errors: none;", demo_output)
    assert done and int(done[1]) == int(sent) and int(done[2]) > 0, demo_output


@pytest.mark.slow
def test_the_demo_says_its_quotas_are_scaled_and_shows_them_running_out(demo_output: str) -> None:
    assert "demo quotas scaled" in demo_output
    assert f"early_bird_double_points quota 10,000 -> {CUSTOMERS // 3}" in demo_output
    assert f"early_bird_lottery quota 50,000 -> {CUSTOMERS // 2}" in demo_output
    assert re.search(r"early_bird_double_points +│ +\d+ │ +\d+/\d+ sold out", demo_output)
    assert "quota_exhausted" in demo_output


@pytest.mark.slow
def test_the_demo_shows_the_servers_own_latency(demo_output: str) -> None:
    assert re.search(r"server p99 <= [\d.]+ ms \(POST /v1/events, from /metrics\)", demo_output)


# ---------------------------------------------------------------- its parts


def test_the_demo_copy_admits_a_third_then_a_half_of_the_customers(
    example_text: str, example_campaign: Campaign
) -> None:
    text, changes = scale_campaign(example_text, example_campaign, 3000, [])
    scaled = parse_campaign(text)
    double_points = scaled.mechanic("early_bird_double_points")
    assert double_points.limits.quota == 1000
    assert double_points.name == "First 1,000 reservers get double points"
    assert scaled.mechanic("early_bird_lottery").limits.quota == 1500
    assert [str(c) for c in changes][:2] == [
        "early_bird_double_points quota 10,000 -> 1,000 (a third of the customers)",
        "early_bird_lottery quota 50,000 -> 1,500 (half of the customers)",
    ]


def test_the_demo_budget_covers_half_of_the_coupons_its_customers_will_earn(
    example_text: str, example_campaign: Campaign
) -> None:
    # 20,000 at 0.5% and 400,000 (capped at 200,000) at 1%, for 30 days; 5,000 earns nothing.
    amounts = [Decimal("20000.00"), Decimal("400000.00"), Decimal("5000.00")]
    text, changes = scale_campaign(example_text, example_campaign, 3000, amounts)
    cost = Decimal("8.22") + Decimal("164.38")
    assert parse_campaign(text).mechanic("new_customer_rate_boost").limits.budget == cost / 2
    assert str(changes[-1]).startswith("new_customer_rate_boost budget 2,000,000.00 -> 86.30 yuan")


def test_the_demo_copy_changes_nothing_but_the_limits_and_names(
    example_text: str, example_campaign: Campaign
) -> None:
    scaled = parse_campaign(scale_campaign(example_text, example_campaign, 3000, [])[0])
    assert scaled.phases == example_campaign.phases
    assert scaled.event_types == example_campaign.event_types
    for mine, shipped in zip(scaled.mechanics, example_campaign.mechanics, strict=True):
        assert (mine.id, mine.triggers, mine.phases, mine.grants) == (
            shipped.id,
            shipped.triggers,
            shipped.phases,
            shipped.grants,
        )
        assert mine.limits.per_customer == shipped.limits.per_customer


def test_the_servers_p99_is_the_bucket_of_its_99th_percentile_of_posted_events() -> None:
    metrics = Metrics(["checkin"], ["checkin_points"])
    events, wallet = metrics.route("POST", "/v1/events"), metrics.route("GET", "/v1/campaign")
    for _ in range(99):
        events.observe(200, 0.0004)
    events.observe(200, 0.2)
    wallet.observe(200, 2.0)  # another route, however slow, is not counted
    assert histogram_p99(metrics.render(None)[0].decode()) == 0.0005
    events.observe(200, 0.2)
    assert histogram_p99(metrics.render(None)[0].decode()) == 0.25


def test_the_servers_p99_is_unknown_before_any_event() -> None:
    metrics = Metrics(["checkin"], ["checkin_points"])
    metrics.route("GET", "/v1/campaign").observe(200, 0.01)
    assert histogram_p99(metrics.render(None)[0].decode()) is None
