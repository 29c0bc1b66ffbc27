"""Campaign files: the example loads with the plan's numbers; broken files say where they break."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from double11.campaign_file import digest, load_campaign, parse_campaign
from double11.cli import app
from double11.domain.campaign import (
    Campaign,
    CapPeriod,
    LotteryTicketGrant,
    PerkGrant,
    PointsGrant,
    RateBoostCouponGrant,
)
from double11.errors import CampaignFileError

SHANGHAI = timezone(timedelta(hours=8))


def edit(text: str, old: str, new: str) -> str:
    """Replace the one occurrence of `old`; fail loudly if the example changed under the test."""
    assert text.count(old) == 1, f"the example campaign no longer has exactly one {old!r}"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """The 1-based line on which the only occurrence of `needle` starts."""
    assert text.count(needle) == 1, f"{needle!r} is not unique"
    return text.count("\n", 0, text.index(needle)) + 1


def problems_of(text: str) -> list[str]:
    with pytest.raises(CampaignFileError) as refused:
        parse_campaign(text)
    return refused.value.problems


# ---------------------------------------------------------------- the example


def test_the_example_declares_the_four_mechanics_of_the_plan(example_campaign: Campaign) -> None:
    assert [m.id for m in example_campaign.mechanics] == [
        "early_bird_double_points",
        "early_bird_lottery",
        "new_customer_rate_boost",
        "checkin_points",
    ]


def test_the_example_runs_in_shanghai_with_a_warm_up_of_fifteen_days_before_the_main_day(
    example_campaign: Campaign,
) -> None:
    assert example_campaign.id == "bank-double11-2026"
    assert example_campaign.timezone == "Asia/Shanghai"
    phases = {p.name: p for p in example_campaign.phases}
    assert list(phases) == ["warmup", "main_day", "review"]
    warmup, main_day = phases["warmup"], phases["main_day"]
    assert warmup.start == datetime(2026, 10, 27, tzinfo=SHANGHAI)
    assert warmup.end == main_day.start == datetime(2026, 11, 11, tzinfo=SHANGHAI)
    assert main_day.end == datetime(2026, 11, 12, tzinfo=SHANGHAI)
    assert main_day.start - warmup.start == timedelta(days=15)


def test_the_first_ten_thousand_reservers_get_double_points(example_campaign: Campaign) -> None:
    mechanic = example_campaign.mechanic("early_bird_double_points")
    assert mechanic.triggers == {"reservation"}
    assert mechanic.phases == {"warmup"}
    assert mechanic.grants == (PerkGrant("double_points"),)
    assert mechanic.limits.quota == 10000
    assert mechanic.limits.per_customer == 1
    assert example_campaign.perks["double_points"].points_multiplier == 2


def test_the_first_fifty_thousand_who_reserve_and_assess_get_a_lottery_draw(
    example_campaign: Campaign,
) -> None:
    mechanic = example_campaign.mechanic("early_bird_lottery")
    assert mechanic.triggers == {"reservation", "risk_assessment"}
    assert mechanic.limits.quota == 50000
    assert mechanic.limits.per_customer == 1
    assert mechanic.grants == (LotteryTicketGrant(1, Decimal("3.00")),)
    assert mechanic.condition is not None
    assert "state.phase.reservation" in mechanic.condition.source
    assert "state.phase.risk_assessment" in mechanic.condition.source


def test_new_customers_get_a_rate_boost_of_half_a_percent_to_one_percent(
    example_campaign: Campaign,
) -> None:
    mechanic = example_campaign.mechanic("new_customer_rate_boost")
    assert mechanic.triggers == {"deposit", "wealth_purchase"}
    assert mechanic.phases == {"warmup"}
    (grant,) = mechanic.grants
    assert isinstance(grant, RateBoostCouponGrant)
    boosts = [t.boost for t in grant.tiers]
    assert boosts == [Decimal("0.005"), Decimal("0.008"), Decimal("0.010")]
    assert min(boosts) == Decimal("0.005") and max(boosts) == Decimal("0.01")
    assert [t.min_amount for t in grant.tiers] == [
        Decimal("10000.00"),
        Decimal("50000.00"),
        Decimal("100000.00"),
    ]
    assert grant.principal_cap == Decimal("200000.00")
    assert grant.days == 30
    # valid for the whole campaign: until the end of the main day
    assert grant.valid_until == datetime(2026, 11, 12, tzinfo=SHANGHAI)
    assert mechanic.limits.budget == Decimal("2000000.00")
    assert mechanic.limits.per_customer == 1


def test_check_ins_give_ten_points_once_a_day(example_campaign: Campaign) -> None:
    mechanic = example_campaign.mechanic("checkin_points")
    assert mechanic.grants == (PointsGrant(10),)
    assert mechanic.phases == {"warmup", "main_day"}
    assert mechanic.limits.per_customer == 1
    assert mechanic.limits.per is CapPeriod.DAY
    assert example_campaign.point_value == Decimal("0.01")


def test_the_example_declares_every_event_type_of_the_plan(example_campaign: Campaign) -> None:
    assert {
        "reservation",
        "risk_assessment",
        "deposit",
        "wealth_purchase",
        "card_spend",
        "loan_application",
        "invite_accepted",
        "checkin",
        "live_comment",
        "scan_pay",
    } <= set(example_campaign.event_types)


def test_load_campaign_reads_the_example_from_its_path(example_path: Path) -> None:
    assert load_campaign(example_path).id == "bank-double11-2026"


def test_the_digest_versions_the_exact_text(example_text: str) -> None:
    # A known answer: stored versions must keep their digest across processes and releases.
    assert digest("id: tiny\n") == "8f2484e03cf93aa78f17f76e72bc7ee3"  # sha256, 32 hex digits
    assert digest(example_text) != digest(example_text + "\n")
    # A comment is part of the text: the version records what was reviewed, byte for byte.
    assert digest(example_text) != digest(example_text.replace("# ", "#", 1))


# ---------------------------------------------------------------- broken files

# (old text in the example, new text, the exact problem, text on the line it names)
BROKEN = {
    "quota zero": (
        "quota: 10000 ",
        "quota: 0 ",
        "mechanics[0].limits.quota: must be a positive integer",
        "quota: 0 ",
    ),
    "quota negative": (
        "quota: 50000 ",
        "quota: -5 ",
        "mechanics[1].limits.quota: must be a positive integer",
        "quota: -5 ",
    ),
    "unknown key in limits": (
        "      per: day",
        "      per: day\n      quotaa: 3",
        "mechanics[3].limits: unknown key 'quotaa'",
        "per_customer: 1\n      per: day",
    ),
    "unknown key at the top": (
        "timezone: Asia/Shanghai",
        "timezone: Asia/Shanghai\nowner: marketing",
        "<file>: unknown key 'owner'",
        "id: bank-double11-2026",
    ),
    "key at the wrong level": (
        "      per: day",
        "    per: day",
        "mechanics[3]: unknown key 'per'",
        "- id: checkin_points",
    ),
    "required key missing": (
        "  - id: checkin_points\n",
        "  - \n",
        "mechanics[3].id: is required",
        "name: Daily community check-in points",
    ),
    "unknown phase": (
        "phases: [warmup, main_day]",
        "phases: [warmup, mainday]",
        "mechanics[3].phases[1]: 'mainday' is not a declared phase",
        "phases: [warmup, mainday]",
    ),
    "unknown event type": (
        "triggers: [checkin]",
        "triggers: [check_in]",
        "mechanics[3].triggers[0]: 'check_in' is not declared in event_types",
        "triggers: [check_in]",
    ),
    "unknown perk": (
        "- perk: double_points",
        "- perk: triple_points",
        "mechanics[0].grants[0].perk: 'triple_points' is not declared in perks",
        "- perk: triple_points",
    ),
    "overlapping phases": (
        "end: 2026-11-11T00:00:00+08:00",
        "end: 2026-11-11T01:00:00+08:00",
        "phases[1]: overlaps phase 'warmup'",
        "name: main_day",
    ),
    "end before start": (
        "end: 2026-11-12T00:00:00+08:00",
        "end: 2026-11-10T23:00:00+08:00",
        "phases[1].end: must be after start",
        "end: 2026-11-10T23:00:00+08:00",
    ),
    "empty phase": (
        "end: 2026-12-12T00:00:00+08:00",
        "end: 2026-11-12T00:00:00+08:00",
        "phases[2].end: must be after start",
        "end: 2026-11-12T00:00:00+08:00\n\n",
    ),
    "naive phase start": (
        "start: 2026-10-27T00:00:00+08:00",
        "start: 2026-10-27T00:00:00",
        "phases[0].start: must be an instant with an offset",
        "start: 2026-10-27T00:00:00\n",
    ),
    "naive limit window": (
        "      per: day",
        "      per: day\n      valid_from: 2026-10-28T00:00:00",
        "mechanics[3].limits.valid_from: must be an instant with an offset",
        "valid_from:",
    ),
    "window ends before it starts": (
        "      per: day",
        "      per: day\n      valid_from: 2026-10-28T00:00:00+08:00"
        "\n      valid_until: 2026-10-27T00:00:00+08:00",
        "mechanics[3].limits.valid_until: must be after valid_from",
        "valid_until: 2026-10-27",
    ),
    "duplicate phase": (
        "- name: review",
        "- name: warmup",
        "phases[2].name: duplicate phase 'warmup'",
        "- name: warmup\n    start: 2026-11-12",
    ),
    "phase name not a name": (
        "- name: warmup ",
        "- name: Warm-Up ",
        "phases[0].name: must be a lower-case name (a-z, 0-9, _)",
        "- name: Warm-Up",
    ),
    "duplicate mechanic": (
        "id: checkin_points",
        "id: early_bird_lottery",
        "mechanics[3].id: duplicate mechanic id 'early_bird_lottery'",
        "id: early_bird_lottery\n    name: Daily",
    ),
    "unknown field in a condition": (
        "when: customer.is_new and",
        "when: customer.is_neww and",
        "mechanics[2].when: customer has no 'is_neww'",
        "when: customer.is_neww",
    ),
    "escape in a condition": (
        "when: state.phase.reservation >= 1 and",
        "when: __import__('os').system('id') and",
        "mechanics[1].when: Call to function __import__() is not allowed",
        "when: __import__",
    ),
    "syntax error in a condition": (
        "when: customer.is_new and",
        "when: customer.is_new and and",
        "mechanics[2].when: syntax error at column",
        "when: customer.is_new and and",
    ),
    "bad segment": (
        "young_online: customer.age is not None",
        "young_online: customer.agee is not None",
        "segments.young_online: customer has no 'agee'",
        "young_online:",
    ),
    "unknown time zone": (
        "timezone: Asia/Shanghai",
        "timezone: Mars/Olympus",
        "timezone: unknown time zone 'Mars/Olympus'",
        "timezone: Mars/Olympus",
    ),
    "time zone path": (
        "timezone: Asia/Shanghai",
        "timezone: ../../etc/passwd",
        "timezone: unknown time zone '../../etc/passwd'",
        "timezone: ../../etc/passwd",
    ),
    "grant with two kinds": (
        "- points: 10 ",
        "- points: 10\n        perk: double_points ",
        "mechanics[3].grants[0]: must set exactly one of points, perk, lottery_tickets, "
        "rate_boost_coupon",
        "- points: 10",
    ),
    "grant with no kind": (
        "- perk: double_points",
        "- unit_cost: '1.00'",
        "mechanics[0].grants[0]: must set exactly one of points, perk, lottery_tickets, "
        "rate_boost_coupon",
        "- unit_cost: '1.00'",
    ),
    "unit cost on points": (
        "- points: 10 ",
        '- points: 10\n        unit_cost: "1.00" ',
        "mechanics[3].grants[0].unit_cost: only lottery tickets have a unit_cost",
        'unit_cost: "1.00"',
    ),
    "negative unit cost": (
        'unit_cost: "3.00"',
        'unit_cost: "-3.00"',
        "mechanics[1].grants[0].unit_cost: must not be negative",
        'unit_cost: "-3.00"',
    ),
    "negative points": (
        "- points: 10 ",
        "- points: -10 ",
        "mechanics[3].grants[0].points: must be a positive integer",
        "- points: -10",
    ),
    "budget with three decimals": (
        'budget: "2000000.00"',
        'budget: "2000000.001"',
        "mechanics[2].limits.budget: must have at most two decimal places",
        "budget:",
    ),
    "budget zero": (
        'budget: "2000000.00"',
        'budget: "0.00"',
        "mechanics[2].limits.budget: must be a positive amount in yuan",
        "budget:",
    ),
    "budget not an amount": (
        'budget: "2000000.00"',
        'budget: "lots"',
        'mechanics[2].limits.budget: must be an amount, e.g. "1000.00"',
        "budget:",
    ),
    "cap period unknown": (
        "per: day",
        "per: week",
        "mechanics[3].limits.per: must be one of campaign, phase, day",
        "per: week",
    ),
    "quota not a number": (
        "quota: 10000 ",
        "quota: lots ",
        "mechanics[0].limits.quota: must be a positive integer",
        "quota: lots ",
    ),
    "quota a fraction": (
        "quota: 50000 ",
        "quota: 1.5 ",
        "mechanics[1].limits.quota: must be a positive integer",
        "quota: 1.5 ",
    ),
    "lottery tickets not a number": (
        "- lottery_tickets: 1",
        "- lottery_tickets: many",
        "mechanics[1].grants[0].lottery_tickets: must be a positive integer",
        "- lottery_tickets: many",
    ),
    "field type unknown": (
        "  checkin: {}",
        "  checkin:\n    fields:\n      day: {type: date}",
        "event_types.checkin.fields.day.type: must be one of string, money, integer, boolean",
        "day: {type: date}",
    ),
    "field required not a boolean": (
        "invitee_id: {type: string, required: true}",
        "invitee_id: {type: string, required: maybe}",
        "event_types.invite_accepted.fields.invitee_id.required: must be true or false",
        "required: maybe",
    ),
    "phase start not an instant": (
        "start: 2026-10-27T00:00:00+08:00",
        "start: tomorrow",
        "phases[0].start: must be an instant with an offset, e.g. 2026-11-11T00:00:00+08:00",
        "start: tomorrow",
    ),
    "triggers not a list": (
        "triggers: [checkin]",
        "triggers: checkin",
        "mechanics[3].triggers: must be a list",
        "triggers: checkin",
    ),
    "perk not a name": (
        "- perk: double_points",
        "- perk: 2",
        "mechanics[0].grants[0].perk: must be a lower-case name (a-z, 0-9, _)",
        "- perk: 2",
    ),
    "campaign id not an id": (
        "id: bank-double11-2026",
        "id: -bank",
        "id: must be letters, digits, '_', '.' or '-', starting with a letter or digit",
        "id: -bank",
    ),
    "event type key not a name": (
        "  checkin: {}",
        "  Check-in: {}",
        "event_types: key 'Check-in' must be a lower-case name (a-z, 0-9, _)",
        "Check-in: {}",
    ),
    "perk key read as a boolean": (
        "  double_points:\n",
        "  on:\n",
        "perks: key 'on' is read as a bool, not text; quote it",
        "  on:\n",
    ),
    "boost beyond twenty percent": (
        'boost: "0.005"',
        'boost: "0.5"',
        "mechanics[2].grants[0].rate_boost_coupon.tiers[0].boost: must be a rate in (0, 0.2]",
        'boost: "0.5"',
    ),
    "coupon valid until an unknown phase": (
        "valid_until: main_day ",
        "valid_until: mainday ",
        "mechanics[2].grants[0].rate_boost_coupon.valid_until: must be a phase name or an "
        "instant with an offset",
        "valid_until: mainday",
    ),
    "coupon amount field not money": (
        "valid_until: main_day ",
        "valid_until: main_day\n          amount_field: product ",
        "mechanics[2].grants[0].rate_boost_coupon.amount_field: deposit must declare "
        "'product' as required money",
        "amount_field: product",
    ),
    "coupon for zero days": (
        "days: 30 ",
        "days: 0 ",
        "mechanics[2].grants[0].rate_boost_coupon.days: must be a positive integer",
        "days: 0 ",
    ),
    "point value zero": (
        'point_value: "0.01"',
        'point_value: "0"',
        "point_value: must be a positive amount in yuan",
        "point_value:",
    ),
}


@pytest.mark.parametrize(("old", "new", "problem", "line_text"), BROKEN.values(), ids=BROKEN)
def test_a_broken_file_is_rejected_with_the_path_the_message_and_the_line(
    example_text: str, old: str, new: str, problem: str, line_text: str
) -> None:
    text = edit(example_text, old, new)
    problems = problems_of(text)
    line = line_of(text, line_text)
    located = [p for p in problems if p.startswith(problem)]
    assert located, f"{problem!r} not in {problems}"
    assert located[0].endswith(f" (line {line})"), located[0]


def test_every_problem_is_listed_not_only_the_first(example_text: str) -> None:
    text = edit(example_text, "phases: [warmup, main_day]", "phases: [warmup, mainday]")
    text = edit(text, "- perk: double_points", "- perk: triple_points")
    text = edit(text, "timezone: Asia/Shanghai", "timezone: Mars/Olympus")
    problems = problems_of(text)
    assert len(problems) == 3
    assert any(p.startswith("timezone: unknown time zone") for p in problems)
    assert any(p.startswith("mechanics[0].grants[0].perk:") for p in problems)
    assert any(p.startswith("mechanics[3].phases[1]:") for p in problems)


@pytest.mark.parametrize(
    ("old", "new", "line_text"),
    [
        ("  checkin: {}", "  checkin: {]", "  checkin: {]"),
        ("      quota: 10000 ", "\tquota: 10000 ", "\tquota: 10000"),
        ("name: Bank Double-11 2026", "name: Bank: Double-11: 2026", "name: Bank: Double"),
    ],
    ids=["bracket", "tab", "colon"],
)
def test_bad_yaml_syntax_is_rejected_with_its_line(
    example_text: str, old: str, new: str, line_text: str
) -> None:
    text = edit(example_text, old, new)
    (problem,) = problems_of(text)
    assert problem.startswith("YAML syntax error at ")
    assert f"line {line_of(text, line_text)}," in problem


@pytest.mark.parametrize("text", ["", "# nothing\n", "- a list\n", "just text\n", "42\n"])
def test_a_file_that_is_not_a_mapping_is_rejected(text: str) -> None:
    assert problems_of(text) == ["the file must be a mapping of campaign fields"]


MINIMAL = """\
id: tiny
name: Tiny
timezone: UTC
phases:
  - {name: only, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}
event_types:
  ping: {}
mechanics:
  - {id: pong, triggers: [ping], phases: [only], grants: [{points: 1}]}
"""


def test_a_minimal_campaign_loads() -> None:
    campaign = parse_campaign(MINIMAL)
    assert [m.id for m in campaign.mechanics] == ["pong"]
    assert campaign.mechanics_for("ping")[0].grants == (PointsGrant(1),)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "  - {id: pong, triggers: [ping], phases: [only], grants: [{points: 1}]}\n",
            "  []\n",
            "mechanics: must declare at least one mechanic",
        ),
        (
            "  - {name: only, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}\n",
            "  []\n",
            "phases: must declare at least one phase",
        ),
        ("triggers: [ping]", "triggers: []", "mechanics[0].triggers: must name at least one"),
        ("phases: [only]", "phases: []", "mechanics[0].phases: must name at least one phase"),
        ("grants: [{points: 1}]", "grants: []", "mechanics[0].grants: must grant something"),
    ],
)
def test_a_campaign_that_declares_nothing_to_do_is_rejected(
    old: str, new: str, problem: str
) -> None:
    problems = problems_of(edit(MINIMAL, old, new))
    assert any(p.startswith(problem) for p in problems), problems


def test_a_missing_file_is_rejected_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CampaignFileError) as refused:
        load_campaign(missing)
    (problem,) = refused.value.problems
    assert problem.startswith(f"{missing}: cannot be read")


def test_a_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CampaignFileError) as refused:
        load_campaign(path)
    assert refused.value.problems == [f"{path}: is not UTF-8 text"]


def test_a_coupon_may_be_valid_until_an_instant(example_text: str) -> None:
    text = edit(example_text, "valid_until: main_day ", "valid_until: 2026-11-20T00:00:00+08:00 ")
    (grant,) = parse_campaign(text).mechanic("new_customer_rate_boost").grants
    assert isinstance(grant, RateBoostCouponGrant)
    assert grant.valid_until == datetime(2026, 11, 20, tzinfo=SHANGHAI)


# ---------------------------------------------------------------- bugs found in review, fixed


@pytest.mark.parametrize("value", ["[main_day]", "{phase: main_day}"])
def test_a_coupon_valid_until_a_list_is_a_located_problem_not_a_crash(
    example_text: str, value: str
) -> None:
    text = edit(example_text, "valid_until: main_day ", f"valid_until: {value} ")
    problems = problems_of(text)
    assert problems[0].startswith("mechanics[2].grants[0].rate_boost_coupon.valid_until:")


# ---------------------------------------------------------------- instants

OFFSET_NEEDED = "must be an instant with an offset, e.g. 2026-11-11T00:00:00+08:00"
# A Unix timestamp of the warm-up's start: msgspec's lax mode would have read it as one.
TIMESTAMP = "1793030400"


def located(text: str, path: str, message: str, line_text: str) -> str:
    return f"{path}: {message} (line {line_of(text, line_text)})"


@pytest.mark.parametrize(
    "written",
    [
        TIMESTAMP,
        f"{TIMESTAMP}.5",
        "-1",
        f'"{TIMESTAMP}"',
        "2026-10-27",
        "2026-10-27T00:00:00",
        '"2026-10-27T00:00:00"',
    ],
    ids=["integer", "float", "negative", "quoted number", "date", "naive", "quoted naive"],
)
def test_a_phase_start_that_is_not_an_instant_with_an_offset_is_refused_at_its_line(
    example_text: str, written: str
) -> None:
    text = edit(example_text, "start: 2026-10-27T00:00:00+08:00", f"start: {written}")
    problem = located(text, "phases[0].start", OFFSET_NEEDED, f"start: {written}\n")
    assert problems_of(text) == [problem]


@pytest.mark.parametrize("key", ["valid_from", "valid_until"])
def test_a_limit_window_given_as_a_number_is_refused_at_its_line(
    example_text: str, key: str
) -> None:
    text = edit(example_text, "      per: day", f"      per: day\n      {key}: {TIMESTAMP}")
    problem = located(text, f"mechanics[3].limits.{key}", OFFSET_NEEDED, f"{key}: {TIMESTAMP}")
    assert problems_of(text) == [problem]


def test_a_coupon_valid_until_a_number_is_refused_at_its_line(example_text: str) -> None:
    text = edit(example_text, "valid_until: main_day ", f"valid_until: {TIMESTAMP} ")
    path = "mechanics[2].grants[0].rate_boost_coupon.valid_until"
    message = "must be a phase name or an instant with an offset, e.g. 2026-11-11T00:00:00+08:00"
    assert problems_of(text) == [located(text, path, message, f"valid_until: {TIMESTAMP}")]


def test_a_quoted_number_is_text_and_the_problem_says_so(example_text: str) -> None:
    text = edit(example_text, "quota: 10000 ", 'quota: "10000" ')
    message = "must be a positive integer, not text in quotes"
    problem = located(text, "mechanics[0].limits.quota", message, 'quota: "10000"')
    assert problems_of(text) == [problem]


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ('budget: "2000000.00"', 'budget: "NaN"', "mechanics[2].limits.budget"),
        ('budget: "2000000.00"', 'budget: "Infinity"', "mechanics[2].limits.budget"),
        ('point_value: "0.01"', 'point_value: "NaN"', "point_value"),
        (
            'principal_cap: "200000.00"',
            'principal_cap: "NaN"',
            "mechanics[2].grants[0].rate_boost_coupon.principal_cap",
        ),
        (
            'min_amount: "10000.00"',
            'min_amount: "NaN"',
            "mechanics[2].grants[0].rate_boost_coupon.tiers[0].min_amount",
        ),
        (
            'boost: "0.005"',
            'boost: "NaN"',
            "mechanics[2].grants[0].rate_boost_coupon.tiers[0].boost",
        ),
        ('unit_cost: "3.00"', 'unit_cost: "NaN"', "mechanics[1].grants[0].unit_cost"),
    ],
)
def test_a_non_finite_amount_is_a_located_problem_not_a_crash(
    example_text: str, old: str, new: str, path: str
) -> None:
    problems = problems_of(edit(example_text, old, new))
    assert any(p.startswith(f"{path}:") for p in problems), problems


def test_a_key_given_twice_is_rejected_in_one_message_naming_both_lines(
    example_text: str,
) -> None:
    text = edit(example_text, "quota: 10000 ", "quota: 10000\n      quota: 20000 ")
    first, second = line_of(text, "quota: 10000"), line_of(text, "quota: 20000")
    assert problems_of(text) == [
        f"mechanics[0].limits: key 'quota' is given twice (lines {first} and {second})"
    ]


def test_a_top_level_key_given_twice_names_the_file(example_text: str) -> None:
    text = edit(example_text, "timezone: Asia/Shanghai", "timezone: Asia/Shanghai\ntimezone: UTC")
    first, second = line_of(text, "timezone: Asia"), line_of(text, "timezone: UTC")
    assert problems_of(text) == [
        f"<file>: key 'timezone' is given twice (lines {first} and {second})"
    ]


def test_a_coupon_may_be_valid_until_a_quoted_instant(example_text: str) -> None:
    text = edit(example_text, "valid_until: main_day ", "valid_until: '2026-11-20T00:00:00+08:00' ")
    (grant,) = parse_campaign(text).mechanic("new_customer_rate_boost").grants
    assert isinstance(grant, RateBoostCouponGrant)
    assert grant.valid_until == datetime(2026, 11, 20, tzinfo=SHANGHAI)


def test_a_problem_inside_a_named_section_names_the_key_and_its_line(example_text: str) -> None:
    text = edit(example_text, "points_multiplier: 2 ", "points_multiplier: 0 ")
    (problem,) = problems_of(text)
    line = line_of(text, "points_multiplier: 0")
    assert problem == (
        f"perks.double_points.points_multiplier: must be a positive integer (line {line})"
    )


# ---------------------------------------------------------------- the command line


def _invoke(args: list[str], columns: int = 200) -> tuple[int, str, str]:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_double11_check_accepts_the_example(example_path: Path) -> None:
    code, out, _ = _invoke(["check", str(example_path)])
    assert code == 0
    assert "OK" in out


def test_double11_check_rejects_a_broken_file_with_the_located_message(
    example_text: str, tmp_path: Path
) -> None:
    text = edit(example_text, "quota: 10000 ", "quota: 0 ")
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    code, _, err = _invoke(["check", str(path)])
    assert code != 0
    line = line_of(text, "quota: 0 ")
    assert f"mechanics[0].limits.quota: must be a positive integer (line {line})" in " ".join(
        err.split()
    )


def test_double11_check_rejects_a_missing_file(tmp_path: Path) -> None:
    code, _, err = _invoke(["check", str(tmp_path / "nope.yaml")])
    assert code != 0
    assert "nope.yaml" in err


def test_double11_check_prints_each_problem_on_one_line_whatever_the_width(
    example_text: str, tmp_path: Path
) -> None:
    text = edit(example_text, "quota: 10000 ", "quota: 0 ")
    folder = tmp_path / "a-folder-with-a-rather-long-name-as-ci-checkouts-often-have"
    folder.mkdir()
    path = folder / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    code, _, err = _invoke(["check", str(path)], columns=80)
    assert code != 0
    line = line_of(text, "quota: 0 ")
    expected = f"{path}: mechanics[0].limits.quota: must be a positive integer (line {line})"
    assert expected in err.splitlines()
