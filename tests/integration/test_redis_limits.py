"""The Redis limit book behaves exactly like the memory store, atomically, in integer cents."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from double11.adapters.memory import MemoryStore
from double11.adapters.redis_limits import LimitsNotReady, RedisLimitBook, cents, yuan_of
from double11.adapters.scaleout import connect_redis
from double11.domain.events import Event
from double11.domain.limits import Claim, ClaimOutcome

from .conftest import Services

pytestmark = pytest.mark.scaleout

AT = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)
MECHANICS = ("quota", "budget", "capped", "perk")


def _claim(event: int, mechanic: str) -> Claim:
    """The claim event `event` makes on `mechanic`: always the same, as a retry's would be."""
    customer = f"c{event % 2}"
    if mechanic == "quota":
        return Claim(f"e{event}", mechanic, customer, Decimal("0.10"), quota=3)
    if mechanic == "budget":
        cost = Decimal(event % 4) + Decimal("0.50")  # two can fill the budget exactly
        return Claim(f"e{event}", mechanic, customer, cost, budget=Decimal("5.00"))
    if mechanic == "capped":
        return Claim(f"e{event}", mechanic, customer, cap=1, cap_bucket="day" if event < 5 else "")
    return Claim(f"e{event}", mechanic, customer, quota=4, perks=("double_points", "vip_lane"))


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("observe"), st.integers(0, 6), st.sampled_from(["warmup", "main", None])),
        st.tuples(st.just("take"), st.integers(0, 6), st.sets(st.sampled_from(MECHANICS))),
        st.tuples(st.just("release"), st.integers(0, 6), st.sets(st.sampled_from(MECHANICS))),
    ),
    max_size=40,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=_steps)
async def test_every_sequence_of_steps_gives_what_the_memory_store_gives(
    clean: Services, steps: list[tuple[str, int, object]]
) -> None:
    memory = MemoryStore()
    book = connect_redis(clean.redis_url, prefix=f"h{uuid.uuid4().hex[:8]}:")
    await book.client.set(book.ready_key, "test")
    try:
        for kind, event, arg in steps:
            seen = Event(
                f"e{event}", "deposit" if event % 2 else "reservation", f"c{event % 2}", AT
            )
            if kind == "observe":
                phase = arg if isinstance(arg, str) else None
                assert await book.observe(seen, phase) == await memory.observe(seen, phase)
            else:
                assert isinstance(arg, set)
                claims = [_claim(event, m) for m in sorted(arg)]
                if kind == "take":
                    assert await book.take(claims) == await memory.take(claims)
                else:
                    await book.release(seen, claims)
                    await memory.release(seen, claims)
            assert await book.usage() == await memory.usage()
    finally:
        keys = [k async for k in book.client.scan_iter(match=book.prefix + "*")]
        if keys:
            await book.client.delete(*keys)
        await book.close()


async def test_budgets_are_counted_in_exact_cents(book: RedisLimitBook) -> None:
    # 0.1 + 0.2 > 0.3 in floating point; in cents, three claims of 0.10 fill 0.30 exactly.
    claims = [
        Claim(f"e{i}", "cashback", f"c{i}", Decimal("0.10"), budget=Decimal("0.30"))
        for i in range(4)
    ]
    outcomes = [(await book.take([c]))["cashback"] for c in claims]
    assert outcomes == [ClaimOutcome.TAKEN] * 3 + [ClaimOutcome.BUDGET_EXHAUSTED]
    assert (await book.usage())["cashback"].spent == Decimal("0.30")

    huge = Decimal("123456789012.34")  # beyond a float's 15 exact digits once in cents
    assert await book.take([Claim("big", "grand", "c1", huge, budget=huge)]) == {
        "grand": ClaimOutcome.TAKEN
    }
    assert (await book.usage())["grand"].spent == huge


def test_money_converts_to_cents_and_back_without_rounding() -> None:
    assert cents(Decimal("12.34")) == 1234
    assert cents(Decimal("0")) == 0
    assert yuan_of(1234) == Decimal("12.34")
    assert str(yuan_of("0")) == "0.00"
    with pytest.raises(ValueError, match="cents"):
        cents(Decimal("0.001"))


async def test_a_fraction_of_a_cent_is_refused_and_takes_nothing(book: RedisLimitBook) -> None:
    with pytest.raises(ValueError, match="cents"):
        await book.take([Claim("e1", "cashback", "c1", Decimal("0.005"), budget=Decimal("1.00"))])
    assert await book.usage() == {}


async def test_without_its_ready_marker_the_book_counts_nothing(book: RedisLimitBook) -> None:
    await book.client.delete(book.ready_key)
    with pytest.raises(LimitsNotReady):
        await book.observe(Event("e1", "reservation", "c1", AT), "main")
    with pytest.raises(LimitsNotReady):
        await book.take([Claim("e1", "m", "c1", quota=1)])
    with pytest.raises(LimitsNotReady):
        await book.usage()  # rather than report nothing used
    assert [k async for k in book.client.scan_iter(match=book.prefix + "*")] == []


async def test_scripts_are_loaded_again_after_redis_forgets_them(book: RedisLimitBook) -> None:
    assert await book.take([Claim("e1", "m", "c1", quota=2)]) == {"m": ClaimOutcome.TAKEN}
    await book.client.script_flush()
    assert await book.take([Claim("e2", "m", "c2", quota=2)]) == {"m": ClaimOutcome.TAKEN}
    assert await book.take([Claim("e3", "m", "c3", quota=2)]) == {"m": ClaimOutcome.QUOTA_EXHAUSTED}


async def test_books_under_different_prefixes_do_not_share_limits(
    book: RedisLimitBook, clean: Services
) -> None:
    other = connect_redis(clean.redis_url, prefix="other:")
    await other.client.set(other.ready_key, "test")
    try:
        claim = Claim("e1", "m", "c1", quota=1)
        assert await book.take([claim]) == {"m": ClaimOutcome.TAKEN}
        assert await other.take([claim]) == {"m": ClaimOutcome.TAKEN}
        assert await other.take([Claim("e2", "m", "c2", quota=1)]) == {
            "m": ClaimOutcome.QUOTA_EXHAUSTED
        }
        assert (await book.usage())["m"].granted == 1
    finally:
        await other.close()


async def test_a_claim_reused_by_a_retry_is_not_released_as_old(book: RedisLimitBook) -> None:
    claim = Claim("e1", "m", "c1", quota=1, perks=("double_points",))
    await book.take([claim])
    taken_at = (await book.held_claims())[0].taken_ms
    cutoff = await book.server_ms()
    await asyncio.sleep(0.01)
    await book.take([claim])  # the retry: takes nothing more, but marks the claim in use
    assert (await book.held_claims())[0].taken_ms > taken_at
    assert await book.release_held([("m", "e1", "c1")], taken_at_or_before_ms=cutoff) == 0
    assert (await book.usage())["m"].granted == 1
    assert await book.release_held([("m", "e1", "c1")]) == 1
    assert (await book.usage())["m"].granted == 0
    state = await book.observe(Event("e2", "reservation", "c1", AT), "main")
    assert state.perks == frozenset()


async def test_many_concurrent_calls_share_pipelines_and_stay_atomic(book: RedisLimitBook) -> None:
    claims = [Claim(f"e{i}", "first", f"c{i % 50}", quota=100, cap=2) for i in range(1000)]
    results = await asyncio.gather(*(book.take([c]) for c in claims))
    taken = [c for c, r in zip(claims, results, strict=True) if r["first"] is ClaimOutcome.TAKEN]
    assert len(taken) == 100
    per_customer: dict[str, int] = {}
    for c in taken:
        per_customer[c.customer_id] = per_customer.get(c.customer_id, 0) + 1
    assert max(per_customer.values()) <= 2
