"""Reading a campaign file: YAML, validated into the domain's typed `Campaign`.

Every problem is reported as `path: what is wrong (line N)`, e.g.
`mechanics[3].limits.quota: must be a positive integer (line 42)`. Unknown
keys are errors: a misspelt limit must never be silently ignored on the
busiest day of the year.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from double11.domain.campaign import (
    Campaign,
    CapPeriod,
    EventType,
    FieldKind,
    FieldSpec,
    GrantSpec,
    Limits,
    LotteryTicketGrant,
    Mechanic,
    Perk,
    PerkGrant,
    Phase,
    PointsGrant,
    RateBoostCouponGrant,
    RateTier,
    Segment,
)
from double11.errors import CampaignFileError
from double11.expressions import CompiledCondition, ExpressionError, Vocabulary, compile_condition
from double11.validation import expectation, read_problem

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
CAMPAIGN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
_T = TypeVar("_T")


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    """File sections: unknown keys are errors."""


class PhaseDoc(_Strict):
    name: Name
    start: Instant
    end: Instant


class FieldDoc(_Strict):
    type: FieldKind
    required: bool = False


class EventTypeDoc(_Strict):
    fields: dict[Name, FieldDoc] = {}


class PerkDoc(_Strict):
    points_multiplier: Positive = 1


class TierDoc(_Strict):
    min_amount: Decimal
    boost: Decimal


class RateBoostDoc(_Strict):
    tiers: list[TierDoc]
    principal_cap: Decimal
    days: Positive
    valid_until: Any  # a phase name (its end) or an instant; YAML gives either
    amount_field: Name = "amount"


class GrantDoc(_Strict):
    """One grant: exactly one of its keys is set."""

    points: Positive | None = None
    perk: Name | None = None
    lottery_tickets: Positive | None = None
    unit_cost: Decimal = Decimal("0.00")
    rate_boost_coupon: RateBoostDoc | None = None


class LimitsDoc(_Strict):
    quota: Positive | None = None
    budget: Decimal | None = None
    per_customer: Positive | None = None
    per: CapPeriod = CapPeriod.CAMPAIGN
    valid_from: Instant | None = None
    valid_until: Instant | None = None


class MechanicDoc(_Strict):
    id: Name
    triggers: list[Name]
    phases: list[Name]
    grants: list[GrantDoc]
    name: str = ""
    when: str | None = None
    limits: LimitsDoc = msgspec.field(default_factory=LimitsDoc)


class CampaignDoc(_Strict):
    id: Annotated[str, msgspec.Meta(pattern=CAMPAIGN_ID_PATTERN)]
    name: str
    timezone: str
    phases: list[PhaseDoc]
    event_types: dict[Name, EventTypeDoc]
    mechanics: list[MechanicDoc]
    segments: dict[Name, str] = {}
    perks: dict[Name, PerkDoc] = {}
    point_value: Decimal = Decimal("0.01")


# Named sections (mappings of name -> value) and the type of each value.
_Section = tuple[type, dict[str, Any]]
_SECTIONS: dict[str, _Section] = {
    "event_types": (EventTypeDoc, {"fields": (FieldDoc, {})}),
    "perks": (PerkDoc, {}),
}


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file; raise CampaignFileError listing every problem."""
    return parse_campaign(read_campaign(path))


def read_campaign(path: str | Path) -> str:
    """A campaign file's text; CampaignFileError if it cannot be read as UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignFileError([f"{path}: cannot be read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise CampaignFileError([f"{path}: is not UTF-8 text"]) from None


def digest(text: str) -> str:
    """The version of a campaign file: a digest of its exact text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def parse_campaign(text: str) -> Campaign:
    """Validate campaign YAML text into a `Campaign`."""
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        raise CampaignFileError([f"YAML syntax error at {where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise CampaignFileError([f"YAML error: {exc}"]) from None
    if not isinstance(raw, dict):
        raise CampaignFileError(["the file must be a mapping of campaign fields"])
    repeated = _repeated_keys(tree, "")
    if repeated:
        raise CampaignFileError([_locate(tree, p) for p in repeated])
    # Values inside named sections first, so a problem there names its key (msgspec
    # would say `perks[...]`), then the whole document.
    problems: list[Problem] = []
    _check_sections(raw, tree, _SECTIONS, "", problems)
    if not problems:
        try:
            doc = _convert(raw, CampaignDoc)
        except msgspec.ValidationError as exc:
            problems.append(_msgspec_problem(str(exc), CampaignDoc, "", tree))
    if problems:
        raise CampaignFileError([_locate(tree, p) for p in problems])
    campaign = _build(doc, problems, digest(text))
    if problems:
        raise CampaignFileError([_locate(tree, p) for p in problems])
    assert campaign is not None
    return campaign


class Problem(NamedTuple):
    """One thing wrong with the file: where, what, and the lines to show if not the path's."""

    path: str
    message: str
    lines: tuple[int, ...] = ()


def _repeated_keys(node: yaml.Node | None, path: str) -> list[Problem]:
    """Keys given twice in one mapping: YAML keeps the last silently, we refuse both."""
    found: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name, line = str(key.value), key.start_mark.line + 1
            if name in first:
                found.append(Problem(path, f"key {name!r} is given twice", (first[name], line)))
            first.setdefault(name, line)
            found += _repeated_keys(value, f"{path}.{name}" if path else name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _repeated_keys(item, f"{path}[{i}]")
    return found


def _check_sections(
    raw: Any,
    tree: yaml.Node | None,
    sections: dict[str, _Section],
    path: str,
    problems: list[Problem],
) -> None:
    if not isinstance(raw, dict):
        return
    for section, (kind, inner) in sections.items():
        values = raw.get(section)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            where = f"{path}{section}.{key}"
            # Inner sections first, for the same reason as at the top.
            before = len(problems)
            _check_sections(value, tree, inner, f"{where}.", problems)
            if len(problems) > before:
                continue
            try:
                _convert(value, kind)
            except msgspec.ValidationError as exc:
                problems.append(_msgspec_problem(str(exc), kind, where, tree))


def _convert(raw: Any, kind: type[_T]) -> _T:
    """YAML's values as `kind`, strictly: YAML has already typed every scalar.

    msgspec's lax mode would read `start: 5`, or `start: "5"`, as a Unix
    timestamp and `quota: "100"` as a number; a campaign file says what it means.
    """
    return msgspec.convert(raw, kind, strict=True)


# What the file's string patterns mean, in words.
_PATTERNS = {
    NAME_PATTERN: "a lower-case name (a-z, 0-9, _)",
    CAMPAIGN_ID_PATTERN: "letters, digits, '_', '.' or '-', starting with a letter or digit",
}
_TEXT_TAG = "tag:yaml.org,2002:str"


def _msgspec_problem(message: str, root: type, prefix: str, tree: yaml.Node | None) -> Problem:
    """Turn msgspec's 'Expected `int` >= 1 - at `$.a[0].b`' into ('a[0].b', 'must be ...').

    `root` is the type msgspec was converting to, found at `prefix` in the file.
    """
    problem = read_problem(message)
    path = f"{prefix}.{problem.path}" if prefix and problem.path else prefix or problem.path
    if problem.missing is not None:
        return Problem(f"{path}.{problem.missing}" if path else problem.missing, "is required")
    if problem.unknown is not None:
        return Problem(path, f"unknown key {problem.unknown!r}")
    if problem.in_key:
        return _bad_key(path, tree)
    words = expectation(root, problem.path, _PATTERNS)
    msg = problem.message
    if words is not None and "got `str`" in msg and _quoted(tree, path):
        # Converted strictly, `quota: "100"` is text; the file's amounts are quoted, so
        # say why a quoted number is not one.
        words += ", not text in quotes"
    return Problem(path, words or (msg[0].lower() + msg[1:] if msg else msg))


def _quoted(tree: yaml.Node | None, path: str) -> bool:
    node = _node_at(tree, path)
    return isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')


def _bad_key(path: str, tree: yaml.Node | None) -> Problem:
    """The first key of the mapping at `path` that is not a name, and why, at its own line."""
    node = _node_at(tree, path)
    for key, _ in node.value if isinstance(node, yaml.MappingNode) else ():
        line = (key.start_mark.line + 1,)
        if key.tag != _TEXT_TAG:
            # YAML reads unquoted on/off/yes/no as booleans and digits as numbers.
            kind = key.tag.rsplit(":", 1)[-1]
            return Problem(path, f"key {key.value!r} is read as a {kind}, not text; quote it", line)
        if not re.fullmatch(NAME_PATTERN, key.value):
            return Problem(path, f"key {key.value!r} must be {_PATTERNS[NAME_PATTERN]}", line)
    return Problem(path, f"every key must be {_PATTERNS[NAME_PATTERN]}")


def _locate(tree: yaml.Node | None, problem: Problem) -> str:
    """`path: message (line N)`, with the line of the node the path names when found."""
    lines = problem.lines or tuple(n for n in (_line_of(tree, problem.path),) if n)
    if len(lines) > 1:
        where = f" (lines {', '.join(map(str, lines[:-1]))} and {lines[-1]})"
    else:
        where = f" (line {lines[0]})" if lines else ""
    return f"{problem.path or '<file>'}: {problem.message}{where}"


def _line_of(tree: yaml.Node | None, path: str) -> int | None:
    """The line of the node `path` names, or of the nearest node above it that exists."""
    last = _node_at(tree, path, nearest=True)
    return last.start_mark.line + 1 if last is not None else None


def _node_at(tree: yaml.Node | None, path: str, *, nearest: bool = False) -> yaml.Node | None:
    node = tree
    last = node
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if node is None:
            break
        if part.startswith("[") and isinstance(node, yaml.SequenceNode):
            index = int(part[1:-1])
            node = node.value[index] if index < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        else:
            node = None
        if node is not None:
            last = node
    return last if nearest else node


def _amount_ok(path: str, value: Decimal | None, bad: Any, *, cents: bool = True) -> bool:
    """Refuse NaN, infinities and (for yuan) sub-cent amounts before any arithmetic on them."""
    if value is None:
        return True
    if not value.is_finite():
        bad(path, "must be a finite amount")
        return False
    exponent = value.normalize().as_tuple().exponent
    if cents and isinstance(exponent, int) and exponent < -2:
        bad(path, "must have at most two decimal places")
        return False
    return True


def _build(doc: CampaignDoc, problems: list[Problem], version: str) -> Campaign | None:
    def bad(path: str, message: str) -> None:
        problems.append(Problem(path, message))

    try:
        ZoneInfo(doc.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        bad("timezone", f"unknown time zone {doc.timezone!r}")
    if _amount_ok("point_value", doc.point_value, bad, cents=False) and doc.point_value <= 0:
        bad("point_value", "must be a positive amount in yuan")

    phases = _phases(doc, bad)
    event_types = {
        name: EventType(name, tuple(FieldSpec(f, d.type, d.required) for f, d in et.fields.items()))
        for name, et in doc.event_types.items()
    }
    perks = {name: Perk(name, p.points_multiplier) for name, p in doc.perks.items()}
    segments: dict[str, CompiledCondition] = {}
    for name, source in doc.segments.items():
        try:
            segments[name] = compile_condition(source, Vocabulary(allow_state=False))
        except ExpressionError as exc:
            bad(f"segments.{name}", str(exc))
    mechanics: list[Mechanic] = []
    seen: set[str] = set()
    for i, m in enumerate(doc.mechanics):
        where = f"mechanics[{i}]"
        if m.id in seen:
            bad(f"{where}.id", f"duplicate mechanic id {m.id!r}")
        seen.add(m.id)
        mechanic = _mechanic(where, m, doc, phases, event_types, segments, bad)
        if mechanic is not None:
            mechanics.append(mechanic)
    if not doc.mechanics:
        bad("mechanics", "must declare at least one mechanic")
    if problems:
        return None
    return Campaign(
        id=doc.id,
        name=doc.name,
        timezone=doc.timezone,
        phases=tuple(phases.values()),
        event_types=event_types,
        mechanics=tuple(mechanics),
        segments={n: Segment(n, c) for n, c in segments.items()},
        perks=perks,
        point_value=doc.point_value,
        version=version,
    )


def _phases(doc: CampaignDoc, bad: Any) -> dict[str, Phase]:
    phases: dict[str, Phase] = {}
    for i, p in enumerate(doc.phases):
        if p.name in phases:
            bad(f"phases[{i}].name", f"duplicate phase {p.name!r}")
        if p.end <= p.start:
            bad(f"phases[{i}].end", "must be after start")
        for other in phases.values():
            if p.start < other.end and other.start < p.end:
                bad(f"phases[{i}]", f"overlaps phase {other.name!r}")
        # Instants compare fastest when they share one tzinfo: keep phases in UTC.
        phases[p.name] = Phase(p.name, p.start.astimezone(UTC), p.end.astimezone(UTC))
    if not doc.phases:
        bad("phases", "must declare at least one phase")
    return phases


def _mechanic(
    where: str,
    m: MechanicDoc,
    doc: CampaignDoc,
    phases: dict[str, Phase],
    event_types: dict[str, EventType],
    segments: dict[str, CompiledCondition],
    bad: Any,
) -> Mechanic | None:
    for j, t in enumerate(m.triggers):
        if t not in event_types:
            bad(f"{where}.triggers[{j}]", f"{t!r} is not declared in event_types")
    if not m.triggers:
        bad(f"{where}.triggers", "must name at least one event type")
    for j, p in enumerate(m.phases):
        if p not in phases:
            bad(f"{where}.phases[{j}]", f"{p!r} is not a declared phase")
    if not m.phases:
        bad(f"{where}.phases", "must name at least one phase")
    if not m.grants:
        bad(f"{where}.grants", "must grant something")
    triggers = [event_types[t] for t in m.triggers if t in event_types]
    data_fields = frozenset(f.name for et in triggers for f in et.fields)
    grants = [
        g
        for j, doc_grant in enumerate(m.grants)
        if (g := _grant(f"{where}.grants[{j}]", doc_grant, doc, phases, triggers, bad)) is not None
    ]
    limits = m.limits
    budget_path = f"{where}.limits.budget"
    budget_ok = limits.budget is None or _amount_ok(budget_path, limits.budget, bad)
    if budget_ok and limits.budget is not None and limits.budget <= 0:
        bad(budget_path, "must be a positive amount in yuan")
    if limits.valid_from and limits.valid_until and limits.valid_until <= limits.valid_from:
        bad(f"{where}.limits.valid_until", "must be after valid_from")
    condition = None
    if m.when is not None:
        numeric = frozenset(
            name
            for name in data_fields
            if all(
                f.kind in (FieldKind.MONEY, FieldKind.INTEGER)
                for et in triggers
                for f in et.fields
                if f.name == name
            )
        )
        vocab = Vocabulary(data_fields, numeric, frozenset(event_types), frozenset(segments))
        try:
            condition = compile_condition(m.when, vocab, segments)
        except ExpressionError as exc:
            bad(f"{where}.when", str(exc))
    if len(grants) != len(m.grants):
        return None
    return Mechanic(
        id=m.id,
        name=m.name,
        triggers=frozenset(m.triggers),
        phases=frozenset(m.phases),
        grants=tuple(grants),
        limits=Limits(
            quota=limits.quota,
            budget=limits.budget,
            per_customer=limits.per_customer,
            per=limits.per,
            valid_from=limits.valid_from.astimezone(UTC) if limits.valid_from else None,
            valid_until=limits.valid_until.astimezone(UTC) if limits.valid_until else None,
        ),
        condition=condition,
    )


def _grant(
    where: str,
    g: GrantDoc,
    doc: CampaignDoc,
    phases: dict[str, Phase],
    triggers: list[EventType],
    bad: Any,
) -> GrantSpec | None:
    kinds = [
        k
        for k, v in (
            ("points", g.points),
            ("perk", g.perk),
            ("lottery_tickets", g.lottery_tickets),
            ("rate_boost_coupon", g.rate_boost_coupon),
        )
        if v is not None
    ]
    if len(kinds) != 1:
        bad(where, "must set exactly one of points, perk, lottery_tickets, rate_boost_coupon")
        return None
    if g.unit_cost.is_finite() and g.unit_cost != 0 and g.lottery_tickets is None:
        bad(f"{where}.unit_cost", "only lottery tickets have a unit_cost")
        return None
    if g.points is not None:
        return PointsGrant(g.points)
    if g.perk is not None:
        if g.perk not in doc.perks:
            bad(f"{where}.perk", f"{g.perk!r} is not declared in perks")
            return None
        return PerkGrant(g.perk)
    if g.lottery_tickets is not None:
        if not _amount_ok(f"{where}.unit_cost", g.unit_cost, bad):
            return None
        if g.unit_cost < 0:
            bad(f"{where}.unit_cost", "must not be negative")
            return None
        return LotteryTicketGrant(g.lottery_tickets, g.unit_cost)
    assert g.rate_boost_coupon is not None
    return _rate_boost(
        f"{where}.rate_boost_coupon", g.rate_boost_coupon, phases, triggers, doc.timezone, bad
    )


def _rate_boost(
    where: str,
    c: RateBoostDoc,
    phases: dict[str, Phase],
    triggers: list[EventType],
    zone_name: str,
    bad: Any,
) -> RateBoostCouponGrant | None:
    ok = True
    if not c.tiers:
        bad(f"{where}.tiers", "must list at least one tier")
        ok = False
    for k, tier in enumerate(c.tiers):
        at = f"{where}.tiers[{k}]"
        if not (
            _amount_ok(f"{at}.min_amount", tier.min_amount, bad)
            and _amount_ok(f"{at}.boost", tier.boost, bad, cents=False)
        ):
            ok = False
            continue
        if tier.min_amount < 0:
            bad(f"{where}.tiers[{k}].min_amount", "must not be negative")
            ok = False
        if not Decimal(0) < tier.boost <= Decimal("0.2"):
            bad(f"{where}.tiers[{k}].boost", "must be a rate in (0, 0.2], e.g. 0.005 for 0.5%")
            ok = False
    if not _amount_ok(f"{where}.principal_cap", c.principal_cap, bad):
        ok = False
    elif c.principal_cap <= 0:
        bad(f"{where}.principal_cap", "must be a positive amount in yuan")
        ok = False
    for et in triggers:
        spec = next((f for f in et.fields if f.name == c.amount_field), None)
        if spec is None or spec.kind is not FieldKind.MONEY or not spec.required:
            bad(
                f"{where}.amount_field",
                f"{et.name} must declare {c.amount_field!r} as required money",
            )
            ok = False
    until = _instant_or_phase_end(c.valid_until, phases, zone_name)
    if until is None:
        instant = (expectation(Instant, "") or "").removeprefix("must be ")
        bad(f"{where}.valid_until", f"must be a phase name or {instant}")
    if not ok or until is None:
        return None
    return RateBoostCouponGrant(
        tiers=tuple(RateTier(t.min_amount, t.boost) for t in c.tiers),
        principal_cap=c.principal_cap,
        days=c.days,
        valid_until=until,
        amount_field=c.amount_field,
    )


def _instant_or_phase_end(value: Any, phases: dict[str, Phase], zone_name: str) -> datetime | None:
    """A phase's end (shown in the campaign's zone) or an aware instant, YAML-typed or quoted."""
    if isinstance(value, str) and value in phases:
        end = phases[value].end
        try:
            return end.astimezone(ZoneInfo(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            return end
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return None
