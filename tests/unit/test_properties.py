"""Properties of the pure domain, checked on many generated cases with hypothesis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from double11.domain.campaign import RateBoostCouponGrant, RateTier
from double11.domain.ledger import Asset, EntryKind, LedgerEntry
from double11.domain.limits import Claim, ClaimOutcome, LimitCounters
from double11.domain.money import CENT, ZERO, yuan, yuan_str
from double11.domain.rules import coupon_cost, rate_tier
from double11.domain.wallet import CouponState, fold

T0 = datetime(2026, 10, 27, tzinfo=UTC)
# Enough cases to find an edge, few enough to keep the unit suite quick; no deadline, as a
# shared CI machine can stall any one example.
checked = settings(max_examples=50, deadline=None)

# ---------------------------------------------------------------- strategies

cents = st.integers(min_value=0, max_value=10**12).map(lambda n: Decimal(n) / 100)
amounts = st.integers(min_value=0, max_value=10**10).map(lambda n: Decimal(n) / 100)
offsets = st.integers(min_value=0, max_value=40 * 24 * 3600).map(lambda s: timedelta(seconds=s))
CLOSING = [EntryKind.REDEEM, EntryKind.EXPIRE, EntryKind.REVERSE]


def grant(
    n: int, at: datetime, points: int = 0, asset: Asset = Asset.POINTS, **attrs: str
) -> LedgerEntry:
    return LedgerEntry(
        id=f"e{n}/m/0",
        event_id=f"e{n}",
        mechanic_id="m",
        customer_id="c",
        kind=EntryKind.GRANT,
        asset=asset,
        at=at,
        points=points,
        attributes=attrs,
    )


def closing(of: LedgerEntry, kind: EntryKind, after: timedelta, points: int) -> LedgerEntry:
    return LedgerEntry(
        id=f"{of.id}/{kind.value}",
        event_id=f"{of.event_id}-{kind.value}",
        mechanic_id=of.mechanic_id,
        customer_id=of.customer_id,
        kind=kind,
        asset=of.asset,
        at=of.at + after,
        points=points,
        refers_to=of.id,
    )


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[list[LedgerEntry], int]:
    """Points grants, some closed later by one entry that takes their points back."""
    n = draw(st.integers(min_value=0, max_value=20))
    entries: list[LedgerEntry] = []
    balance = 0
    for i in range(n):
        points = draw(st.integers(min_value=1, max_value=10_000))
        g = grant(i, T0 + draw(offsets), points)
        entries.append(g)
        balance += points
        if draw(st.booleans()):
            kind = draw(st.sampled_from(CLOSING))
            after = draw(
                st.integers(min_value=1, max_value=10**6).map(lambda s: timedelta(seconds=s))
            )
            entries.append(closing(g, kind, after, points))
            balance -= points
    return entries, balance


# ---------------------------------------------------------------- the wallet fold


@checked
@given(ledgers(), st.randoms(use_true_random=False))
def test_the_points_balance_is_the_grants_less_what_closing_entries_take_back(
    case: tuple[list[LedgerEntry], int], rnd: Any
) -> None:
    entries, balance = case
    wallet = fold("c", entries, T0)
    assert wallet.points == balance
    assert wallet.points == sum(e.points for e in entries if e.kind is EntryKind.GRANT) - sum(
        e.points for e in entries if e.kind is not EntryKind.GRANT
    )
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert fold("c", shuffled, T0) == wallet
    assert fold("c", reversed(entries), T0) == wallet


@checked
@given(ledgers())
def test_a_closing_entry_for_an_unknown_grant_changes_nothing(
    case: tuple[list[LedgerEntry], int],
) -> None:
    entries, _ = case
    stray = closing(grant(999, T0, 5), EntryKind.REVERSE, timedelta(seconds=1), 5)
    assert fold("c", [*entries, stray], T0) == fold("c", entries, T0)


@checked
@given(
    expires_in=st.integers(min_value=-(10**6), max_value=10**6),
    now_in=st.integers(min_value=-(10**6), max_value=2 * 10**6),
    redeemed_after=st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
)
def test_a_coupon_is_active_until_it_expires_unless_redeemed(
    expires_in: int, now_in: int, redeemed_after: int | None
) -> None:
    expires = T0 + timedelta(seconds=expires_in)
    coupon = grant(1, T0, asset=Asset.COUPON, expires_at=expires.isoformat())
    entries = [coupon]
    if redeemed_after is not None:
        entries.append(closing(coupon, EntryKind.REDEEM, timedelta(seconds=redeemed_after), 0))
    now = T0 + timedelta(seconds=now_in)
    (item,) = fold("c", entries, now).coupons
    if redeemed_after is not None:
        assert item.state == CouponState.REDEEMED
    elif now >= expires:
        assert item.state == CouponState.EXPIRED
    else:
        assert item.state == CouponState.ACTIVE


@checked
@given(st.lists(st.tuples(st.integers(1, 5), st.booleans()), max_size=20))
def test_the_ticket_count_is_the_quantity_of_active_tickets(
    tickets: list[tuple[int, bool]],
) -> None:
    entries: list[LedgerEntry] = []
    for n, (quantity, reversed_) in enumerate(tickets):
        ticket = replace(grant(n, T0, asset=Asset.LOTTERY_TICKET), quantity=quantity)
        entries.append(ticket)
        if reversed_:
            entries.append(closing(ticket, EntryKind.REVERSE, timedelta(seconds=1), 0))
    wallet = fold("c", entries, T0)
    assert wallet.ticket_count == sum(q for q, r in tickets if not r)
    assert len(wallet.lottery_tickets) == len(tickets)


def test_a_redemption_stamped_at_the_same_instant_as_its_grant_closes_it() -> None:
    points = grant(9, T0, 100)  # id "e9/m/0"
    redeem = replace(
        closing(points, EntryKind.REDEEM, timedelta(0), 100), id="e10/redeem"
    )  # "e10/redeem" < "e9/m/0"
    wallet = fold("c", [points, redeem], T0)
    assert wallet.points == 0


# ---------------------------------------------------------------- limit counters

MECHANICS = ["m1", "m2", "m3"]
CUSTOMERS = ["a", "b", "c", "d"]


@st.composite
def claims(draw: st.DrawFn) -> Claim:
    mechanic = draw(st.sampled_from(MECHANICS))
    # each mechanic keeps the same limits on every claim, as a campaign does
    limits = {
        "m1": {"quota": 5, "budget": None, "cap": None},
        "m2": {"quota": None, "budget": Decimal("100.00"), "cap": 2},
        "m3": {"quota": 7, "budget": Decimal("50.00"), "cap": 3},
    }[mechanic]
    return Claim(
        event_id=f"e{draw(st.integers(0, 10**6))}",
        mechanic_id=mechanic,
        customer_id=draw(st.sampled_from(CUSTOMERS)),
        cost=draw(st.integers(0, 3000).map(lambda n: Decimal(n) / 100)),
        cap_bucket=draw(st.sampled_from(["", "2026-11-01", "2026-11-02"])),
        **limits,  # type: ignore[arg-type]
    )


def state(counters: LimitCounters) -> tuple[dict[str, tuple[int, Decimal]], dict[str, int]]:
    """The counters' meaning, ignoring mechanics and keys that count nothing."""
    usage = {m: (u.granted, u.spent) for m, u in counters.usage.items() if u.granted or u.spent}
    caps = {k: n for k, n in counters.caps.items() if n}
    return usage, caps


@checked
@given(st.lists(claims(), max_size=40))
def test_taking_claims_never_passes_a_quota_a_budget_or_a_cap(batch: list[Claim]) -> None:
    counters = LimitCounters()
    taken: list[Claim] = []
    for claim in batch:
        if counters.take(claim) is ClaimOutcome.TAKEN:
            taken.append(claim)
        for mechanic, used in counters.usage.items():
            limits = next(c for c in batch if c.mechanic_id == mechanic)
            if limits.quota is not None:
                assert used.granted <= limits.quota
            if limits.budget is not None:
                assert used.spent <= limits.budget
        for key, count in counters.caps.items():
            cap = next(c.cap for c in batch if c.cap_key == key)
            assert cap is not None and count <= cap
    for mechanic in MECHANICS:
        mine = [c for c in taken if c.mechanic_id == mechanic]
        total = counters.usage.get(mechanic)
        assert (total.granted if total else 0) == len(mine)
        assert (total.spent if total else ZERO) == sum((c.cost for c in mine), ZERO)


@checked
@given(st.lists(claims(), max_size=40), claims())
def test_checking_a_claim_changes_nothing_and_foretells_taking_it(
    history: list[Claim], claim: Claim
) -> None:
    counters = LimitCounters()
    for c in history:
        counters.take(c)
    before = state(counters)
    foretold = counters.check(claim)
    assert counters.check(claim) is foretold
    assert state(counters) == before
    assert counters.take(claim) is foretold
    if foretold is not ClaimOutcome.TAKEN:
        assert state(counters) == before


@checked
@given(st.lists(claims(), max_size=40), claims(), st.lists(claims(), max_size=10))
def test_releasing_a_taken_claim_restores_the_counters_exactly(
    history: list[Claim], claim: Claim, probes: list[Claim]
) -> None:
    counters = LimitCounters()
    for c in history:
        counters.take(c)
    before = state(counters)
    answers = [counters.check(p) for p in probes]
    assume(counters.take(claim) is ClaimOutcome.TAKEN)
    counters.release(claim)
    assert state(counters) == before
    assert [counters.check(p) for p in probes] == answers


@checked
@given(st.integers(1, 50), st.integers(0, 100))
def test_a_quota_of_n_is_taken_exactly_n_times_when_more_qualify(quota: int, extra: int) -> None:
    counters = LimitCounters()
    outcomes = [
        counters.take(Claim(f"e{i}", "m", f"c{i}", quota=quota, cap=1))
        for i in range(quota + extra)
    ]
    assert outcomes.count(ClaimOutcome.TAKEN) == quota
    assert outcomes[quota:] == [ClaimOutcome.QUOTA_EXHAUSTED] * extra


@checked
@given(st.lists(cents.filter(lambda c: c <= 1000), min_size=1, max_size=40), cents)
def test_a_budget_is_never_passed_and_a_claim_that_fits_is_taken(
    costs: list[Decimal], budget: Decimal
) -> None:
    assume(budget > 0)
    counters = LimitCounters()

    def spent() -> Decimal:
        return counters.usage["m"].spent if "m" in counters.usage else ZERO

    for n, cost in enumerate(costs):
        before = spent()
        outcome = counters.take(Claim(f"e{n}", "m", f"c{n}", cost=cost, budget=budget))
        assert outcome is (
            ClaimOutcome.TAKEN if before + cost <= budget else ClaimOutcome.BUDGET_EXHAUSTED
        )
        assert spent() <= budget


def test_a_customer_at_their_cap_does_not_use_up_the_quota() -> None:
    counters = LimitCounters()
    assert counters.take(Claim("e1", "m", "a", quota=2, cap=1)) is ClaimOutcome.TAKEN
    assert counters.take(Claim("e2", "m", "a", quota=2, cap=1)) is ClaimOutcome.CAP_REACHED
    assert counters.take(Claim("e3", "m", "b", quota=2, cap=1)) is ClaimOutcome.TAKEN
    # both full: the cap is reported first
    assert counters.take(Claim("e4", "m", "a", quota=2, cap=1)) is ClaimOutcome.CAP_REACHED
    assert counters.take(Claim("e5", "m", "c", quota=2, cap=1)) is ClaimOutcome.QUOTA_EXHAUSTED


def test_caps_count_per_bucket() -> None:
    counters = LimitCounters()
    day1 = Claim("e1", "m", "a", cap=1, cap_bucket="2026-11-01")
    day2 = Claim("e2", "m", "a", cap=1, cap_bucket="2026-11-02")
    assert counters.take(day1) is ClaimOutcome.TAKEN
    assert counters.take(replace(day1, event_id="e3")) is ClaimOutcome.CAP_REACHED
    assert counters.take(day2) is ClaimOutcome.TAKEN


# ---------------------------------------------------------------- rate-boost coupons


@st.composite
def coupon_specs(draw: st.DrawFn) -> RateBoostCouponGrant:
    """Tiers whose boosts rise with their minimum amounts, as a bank's ladder does."""
    mins = sorted(set(draw(st.lists(amounts, min_size=1, max_size=5))))
    boosts = sorted(
        draw(
            st.lists(
                st.integers(1, 200).map(lambda n: Decimal(n) / 1000),
                min_size=len(mins),
                max_size=len(mins),
            )
        )
    )
    tiers = [RateTier(m, b) for m, b in zip(mins, boosts, strict=True)]
    order = draw(st.permutations(tiers))
    return RateBoostCouponGrant(
        tiers=tuple(order),
        principal_cap=draw(amounts.filter(lambda a: a > 0)),
        days=draw(st.integers(1, 3650)),
        valid_until=T0,
    )


def boost_of(spec: RateBoostCouponGrant, amount: Decimal) -> Decimal:
    boost = rate_tier(spec, amount)
    return boost if boost is not None else ZERO


@checked
@given(coupon_specs(), amounts, amounts)
def test_the_tier_and_the_cost_rise_with_the_amount(
    spec: RateBoostCouponGrant, a: Decimal, b: Decimal
) -> None:
    low, high = sorted((a, b))
    assert boost_of(spec, low) <= boost_of(spec, high)
    boost = boost_of(spec, high)
    assume(boost > 0)
    assert coupon_cost(spec, low, boost) <= coupon_cost(spec, high, boost)
    assert coupon_cost(spec, low, boost_of(spec, low)) <= coupon_cost(spec, high, boost)


@checked
@given(coupon_specs(), amounts)
def test_the_tier_is_the_highest_one_the_amount_reaches(
    spec: RateBoostCouponGrant, amount: Decimal
) -> None:
    reached = [t for t in spec.tiers if amount >= t.min_amount]
    expected = max(reached, key=lambda t: t.min_amount).boost if reached else None
    assert rate_tier(spec, amount) == expected


@checked
@given(coupon_specs(), amounts, st.integers(1, 200).map(lambda n: Decimal(n) / 1000))
def test_the_cost_is_capped_at_the_principal_cap(
    spec: RateBoostCouponGrant, amount: Decimal, boost: Decimal
) -> None:
    cost = coupon_cost(spec, amount, boost)
    assert cost <= coupon_cost(spec, spec.principal_cap, boost)
    if amount >= spec.principal_cap:
        assert cost == coupon_cost(spec, spec.principal_cap, boost)


@checked
@given(coupon_specs(), amounts, st.integers(1, 200).map(lambda n: Decimal(n) / 1000))
def test_the_cost_is_the_exact_interest_rounded_half_up_to_the_cent(
    spec: RateBoostCouponGrant, amount: Decimal, boost: Decimal
) -> None:
    cost = coupon_cost(spec, amount, boost)
    assert cost.as_tuple().exponent == -2
    exact = min(amount, spec.principal_cap) * boost * spec.days / Decimal(365)
    assert abs(cost - exact) <= Decimal("0.005")
    assert cost == exact.quantize(CENT, rounding=ROUND_HALF_UP)


def test_the_cost_of_the_examples_coupon_in_cents() -> None:
    spec = RateBoostCouponGrant(
        tiers=(RateTier(Decimal("10000.00"), Decimal("0.005")),),
        principal_cap=Decimal("200000.00"),
        days=30,
        valid_until=T0,
    )
    assert coupon_cost(spec, Decimal("10000.00"), Decimal("0.005")) == Decimal("4.11")
    assert coupon_cost(spec, Decimal("9999999.99"), Decimal("0.01")) == Decimal("164.38")
    assert rate_tier(spec, Decimal("9999.99")) is None


# ---------------------------------------------------------------- money

decimals = st.decimals(
    min_value=Decimal("-1e15"), max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False
)


@checked
@given(decimals)
def test_yuan_rounds_half_up_to_the_cent(value: Decimal) -> None:
    amount = yuan(value)
    assert amount.as_tuple().exponent == -2
    assert abs(amount - value) <= Decimal("0.005")
    if abs(amount - value) == Decimal("0.005"):
        assert abs(amount) > abs(value)  # a half cent rounds away from zero
    assert yuan(amount) == amount
    assert yuan(str(value)) == amount


@checked
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_of_an_integer_is_exact(value: int) -> None:
    assert yuan(value) == Decimal(value)
    assert yuan_str(yuan(value)) == f"{value}.00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.005", "1.01"), ("2.675", "2.68"), ("1.004", "1.00"), ("-1.005", "-1.01"), ("0", "0.00")],
)
def test_yuan_rounds_the_classic_cases(value: str, expected: str) -> None:
    assert yuan_str(yuan(value)) == expected


@checked
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_yuan_refuses_every_float(value: float) -> None:
    with pytest.raises(TypeError):
        yuan(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_yuan_refuses_booleans(value: bool) -> None:
    with pytest.raises(TypeError):
        yuan(value)


@pytest.mark.parametrize("value", ["", "abc", "1,00", "NaN", "Infinity", "-Infinity", "sNaN"])
def test_yuan_refuses_what_is_not_a_finite_amount(value: str) -> None:
    with pytest.raises(ValueError):
        yuan(value)


@pytest.mark.parametrize("value", ["1e26", "1e30", 10**30, Decimal("1E+40")])
def test_yuan_refuses_an_amount_too_large_to_hold_in_cents_with_a_value_error(
    value: str | int | Decimal,
) -> None:
    with pytest.raises(ValueError):
        yuan(value)


@checked
@given(decimals)
def test_yuan_str_writes_two_places_and_never_an_exponent(value: Decimal) -> None:
    text = yuan_str(value)
    assert "E" not in text and "e" not in text
    assert len(text.rpartition(".")[2]) == 2
    assert Decimal(text) == yuan(value)
