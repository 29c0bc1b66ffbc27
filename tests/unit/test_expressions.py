"""The condition language: what it evaluates, and every way out of the sandbox it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from double11.domain.customer import Customer
from double11.domain.errors import ConditionError
from double11.domain.events import Event
from double11.domain.facts import CustomerState, Facts
from double11.expressions import (
    CompiledCondition,
    ExpressionError,
    Vocabulary,
    compile_condition,
)

VOCAB = Vocabulary(
    data_fields=frozenset({"amount", "product"}),
    numeric_fields=frozenset({"amount"}),
    event_types=frozenset({"reservation", "risk_assessment", "deposit"}),
    segments=frozenset({"young_online", "high_net_worth"}),
)
SEGMENT_VOCAB = Vocabulary(allow_state=False)


def _segments() -> dict[str, CompiledCondition]:
    return {
        "young_online": compile_condition(
            "customer.age is not None and 25 <= customer.age <= 35", SEGMENT_VOCAB
        ),
        "high_net_worth": compile_condition("customer.aum >= 1000000", SEGMENT_VOCAB),
    }


SEGMENTS = _segments()


def compile_(source: str, vocab: Vocabulary = VOCAB) -> CompiledCondition:
    return compile_condition(source, vocab, SEGMENTS)


def facts(
    customer: Customer | None = None,
    data: dict[str, object] | None = None,
    phase_counts: dict[str, int] | None = None,
    campaign_counts: dict[str, int] | None = None,
    perks: frozenset[str] = frozenset(),
) -> Facts:
    customer = customer or Customer(
        id="c-1",
        age=30,
        aum=Decimal("1500000.00"),
        is_new=True,
        tier="gold",
        credit_grade="A",
        risk_tolerance="C3",
        segments=frozenset({"vip"}),
        devices=("phone-1", "tablet-2"),
        extra={"channel": "app"},
    )
    event = Event(
        id="e-1",
        type="deposit",
        customer_id=customer.id,
        at=datetime(2026, 11, 1, 2, 0, tzinfo=UTC),
        data={"amount": Decimal("0.30")} if data is None else dict(data),
    )
    state = CustomerState(
        phase_counts={"reservation": 1} if phase_counts is None else phase_counts,
        campaign_counts=(
            {"reservation": 2, "deposit": 1} if campaign_counts is None else campaign_counts
        ),
        perks=perks,
    )
    return Facts(customer, event, state, "warmup")


# ---------------------------------------------------------------- what it evaluates


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # the customer profile
        ("customer.age == 30", True),
        ("25 <= customer.age <= 35", True),
        ("customer.age > 30", False),
        ("customer.is_new", True),
        ("not customer.is_new", False),
        ("customer.tier == 'gold' and customer.credit_grade == 'A'", True),
        ("customer.risk_tolerance in ('C3', 'C4', 'C5')", True),
        ("'vip' in customer.segments", True),
        ("'student' in customer.segments", False),
        ("customer.aum >= 1000000", True),
        ("customer.aum > 1500000.00", False),
        ("customer.id == 'c-1'", True),
        ("customer.extra['channel'] == 'app'", True),
        ("customer.devices[0] == 'phone-1'", True),
        ("customer.tier if customer.is_new else 'none'", True),
        # event data money against float literals, exactly
        ("event.data.amount == 0.3", True),
        ("event.data.amount == 0.1 + 0.2", True),
        ("0.1 + 0.2 == 0.3", True),
        ("event.data.amount + 0.1 == 0.4", True),
        ("event.data.amount * 3 == 0.9", True),
        ("event.data.amount / 3 == 0.1", True),
        ("event.data.amount - 0.3 == 0", True),
        ("event.data.amount > 0.29 and event.data.amount < 0.31", True),
        ("event.data.amount >= 0.31", False),
        ("event.data.product is None", True),
        ("event.type == 'deposit' and event.customer_id == customer.id", True),
        ("event.id == 'e-1'", True),
        # campaign state
        ("state.phase.reservation >= 1", True),
        ("state.phase.reservation >= 1 and state.phase.risk_assessment >= 1", False),
        ("state.phase.deposit == 0", True),
        ("state.campaign.reservation == 2", True),
        ("state.campaign.deposit + state.campaign.reservation == 3", True),
        ("state.campaign.risk_assessment == 0", True),
        ("'double_points' in state.perks", False),
        ("len(state.perks) == 0", True),
        # segments
        ("segment.young_online", True),
        ("segment.high_net_worth and segment.young_online", True),
        ("not segment.young_online", False),
        # the few pure functions
        ("len(customer.devices) == 2", True),
        ("len(customer.segments) == 1", True),
        ("min(customer.age, 20) == 20", True),
        ("max(customer.age, 40) == 40", True),
        ("max(event.data.amount, 0.5) == 0.5", True),
        ("abs(-5) == 5", True),
        ("abs(0.1 - 0.3) == 0.2", True),
        ("abs(event.data.amount - 0.5) == 0.2", True),
    ],
)
def test_allowed_conditions_evaluate_right(source: str, expected: bool) -> None:
    assert compile_(source)(facts()) is expected


def test_float_literals_become_decimal_so_money_compares_exactly() -> None:
    # In floats 0.1 + 0.2 != 0.3 and 0.30 * 3 != 0.9; in the condition language both hold.
    condition = compile_("event.data.amount * 3 == 0.1 + 0.2 + 0.6")
    assert condition(facts(data={"amount": Decimal("0.30")}))
    assert not condition(facts(data={"amount": Decimal("0.31")}))


def test_perks_held_are_visible_to_conditions() -> None:
    condition = compile_("'double_points' in state.perks")
    assert condition(facts(perks=frozenset({"double_points"})))
    assert not condition(facts())


def test_state_counts_of_event_types_not_seen_read_zero() -> None:
    condition = compile_("state.phase.risk_assessment == 0 and state.campaign.deposit == 0")
    assert condition(facts(phase_counts={}, campaign_counts={}))


def test_segment_references_follow_the_customer_profile() -> None:
    condition = compile_("segment.young_online")
    assert not condition(facts(customer=Customer(id="c-2", age=50)))
    assert not condition(facts(customer=Customer(id="c-3", age=None)))
    assert condition(facts(customer=Customer(id="c-4", age=25)))


def test_a_compiled_condition_keeps_its_stripped_source() -> None:
    condition = compile_("  customer.is_new  ")
    assert condition.source == "customer.is_new"
    assert "customer.is_new" in repr(condition)


# ---------------------------------------------------------------- what it refuses

ESCAPES = [
    ("().__class__.__bases__[0].__subclasses__()", "may be called"),
    ("().__class__", "must follow a name"),
    ("__import__('os').system('id')", "not allowed"),
    ("__import__('os')", "not allowed"),
    ("open('/etc/passwd').read()", "not allowed"),
    ("open('/etc/passwd')", "not allowed"),
    ("eval('1')", "not allowed"),
    ("exec('x')", "not allowed"),
    ("compile('1', 'x', 'eval')", "not allowed"),
    ("getattr(customer, '__class__')", "not allowed"),
    ("vars(customer)", "not allowed"),
    ("customer.__class__", "'_'"),
    ("customer.__dict__", "'_'"),
    ("customer.__class__.__init__.__globals__", "'_'"),
    ("customer._x", "'_'"),
    ("event.data.__class__", "'_'"),
    ("event.__class__", "'_'"),
    ("state.__class__", "'_'"),
    ("segment.__class__", "'_'"),
    ("[c for c in ()]", "comprehension"),
    ("{c for c in ()}", "comprehension"),
    ("{c: c for c in ()}", "comprehension"),
    ("any(c for c in ())", "not allowed"),
    ("lambda: 0", "lambda"),
    ("(x := 1)", "assignment"),
    ("f'{customer}'", "f-string"),
    ("f'{customer.__class__}'", "f-string"),
    ("'%s' % customer", "numbers only"),
    ("'{}'.format(customer)", "may be called"),
    ('"a" * 10**9', "power"),
    ('"a" * 100000000', "numbers only"),
    ('100000000 * "a"', "numbers only"),
    ("[0] * 100000000", "numbers only"),
    ("(0,) * 100000000", "numbers only"),
    ("customer.segments.pop()", "may be called"),
    ("customer.extra.clear()", "may be called"),
    ("customer.extra.get('x')", "may be called"),
    ("event.data.amount.as_tuple()", "may be called"),
    ("type(customer)", "not allowed"),
    ("globals()", "not allowed"),
    ("locals()", "not allowed"),
    ("__builtins__", "unknown name '__builtins__'"),
    ("__builtins__['eval']", "unknown name '__builtins__'"),
    ("{}.keys()", "dict"),
    ("{}", "dict"),
    ("len(*customer.devices)", "unpacking"),
    ("min(customer.age, key=abs)", "keyword"),
    ("customer.devices[::-1]", "slicing"),
    ("1 << 1000000", "bitwise"),
    ("7 // 2", "floor division"),
    ("_decimal_0", "unknown name"),
    ("_data", "unknown name"),
    ("_facts", "unknown name"),
    # unknown names and fields
    ("foo", "unknown name 'foo'"),
    ("customer.nope", "customer has no 'nope'"),
    ("customer.holdout", "customer has no 'holdout'"),
    ("customer.age.real", "is not a known field"),
    ("event.nope", "event has no 'nope'"),
    ("event.data.nope", "event.data has no declared field 'nope'"),
    ("state.phase.nope >= 1", "'nope' is not one"),
    ("state.nope", "state has no 'nope'"),
    ("segment.nope", "segment has no 'nope'"),
    ("customer.extra['a'].b", "must follow a name"),
    ("min(customer.devices).upper", "must follow a name"),
    # not a condition at all
    ("", "non-empty"),
    ("   ", "non-empty"),
    ("customer.age >", "syntax error"),
    ("import os", "syntax error"),
    ("customer.age > 1; import os", "syntax error"),
    ("customer.is_new and " * 120 + "customer.is_new", "longer than 2000"),
]


@pytest.mark.parametrize(("source", "message"), ESCAPES)
def test_known_sandbox_escapes_are_refused_at_compile_time_with_a_clear_message(
    source: str, message: str
) -> None:
    with pytest.raises(ExpressionError) as refused:
        compile_(source)
    assert message in str(refused.value)


def test_the_expression_error_is_a_value_error_not_a_condition_error() -> None:
    # A broken file is the author's mistake at load time, never an event-time failure.
    assert issubclass(ExpressionError, ValueError)
    assert not issubclass(ExpressionError, ConditionError)


def test_state_is_unknown_to_segments() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'state'"):
        compile_condition("state", SEGMENT_VOCAB)
    with pytest.raises(ExpressionError):
        compile_condition("state.phase.reservation >= 1", SEGMENT_VOCAB)


@pytest.mark.parametrize("source", ["state.perks", "'double_points' in state.perks"])
def test_segments_cannot_read_campaign_state_through_an_attribute(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_condition(source, SEGMENT_VOCAB)


@pytest.mark.parametrize(
    "source", ["state", "segment", "state.phase", "state.campaign", "len(state.phase) > 0"]
)
def test_names_that_cannot_be_evaluated_are_refused_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_(source)


def test_a_non_string_condition_is_refused() -> None:
    with pytest.raises(ExpressionError, match="non-empty"):
        compile_condition(42, VOCAB)  # type: ignore[arg-type]


# A sequence or a string coming from a field (or from a function, a subscript or an
# if-expression) can be repeated as surely as a literal: each of these, evaluated on
# one event, allocates about 10**8 times the length of a profile or event string.
# Nothing here evaluates them; compiling must be enough to refuse them.
STRING_REPETITION_VIA_NON_LITERALS = [
    "customer.id * 100000000",
    "event.id * 100000000",
    "event.data.product * 100000000",
    "customer.devices * 100000000",
    "customer.extra['channel'] * 100000000",
    "min('a', 'b') * 100000000",
    "'abc'[0] * 100000000",
    "('a' if customer.is_new else 'b') * 100000000",
]


@pytest.mark.parametrize("source", STRING_REPETITION_VIA_NON_LITERALS)
def test_repeating_a_string_from_a_field_is_refused_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_(source)


@pytest.mark.parametrize(
    "source",
    [
        "(" * 500,
        "(" * 500 + "1" + ")" * 500,
        "-" * 1000 + "1",
        "not " * 450 + "customer.is_new",
        "+".join(["1"] * 900),
        "abs(" * 300 + "1" + ")" * 300,
        "customer.extra" + "['a']" * 400,
        "customer" + ".a" * 600,
        "[" * 500 + "]" * 500,
    ],
    ids=[
        "open-parens",
        "balanced-parens",
        "unary",
        "not",
        "sum",
        "calls",
        "subscripts",
        "attrs",
        "lists",
    ],
)
def test_deep_nesting_is_refused_without_crashing(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_(source)


def test_moderate_nesting_still_compiles() -> None:
    source = "(" * 50 + "customer.age" + ")" * 50 + " == " + "-" * 50 + "30"
    assert compile_(source)(facts())


# ---------------------------------------------------------------- runtime errors


@pytest.mark.parametrize(
    ("source", "customer", "data"),
    [
        ("customer.age > 1", Customer(id="c-9", age=None), None),
        ("event.data.amount > 1", None, {}),
        ("event.data.amount / 0 > 1", None, {"amount": Decimal("1.00")}),
        ("customer.extra['missing'] == 1", None, None),
        ("customer.devices[5] == 'x'", None, None),
        ("len(customer.age) == 1", None, None),
        ("customer.age % 0 == 1", None, None),
        ("min(customer.devices, customer.segments)", None, None),
    ],
)
def test_a_runtime_error_raises_condition_error_not_a_crash(
    source: str, customer: Customer | None, data: dict[str, object] | None
) -> None:
    condition = compile_(source)
    with pytest.raises(ConditionError) as failed:
        condition(facts(customer=customer, data=data))
    assert source in str(failed.value)


def test_a_failing_segment_raises_condition_error_from_the_referring_condition() -> None:
    segments = {"old": compile_condition("customer.age > 60", SEGMENT_VOCAB)}
    condition = compile_condition("segment.old", Vocabulary(segments=frozenset(segments)), segments)
    with pytest.raises(ConditionError):
        condition(facts(customer=Customer(id="c-10", age=None)))
