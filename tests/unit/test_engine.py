"""The engine on the memory store, running the example campaign of the plan."""

from __future__ import annotations

import asyncio
import copy
import gc
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from double11.adapters.memory import MemoryStore
from double11.bootstrap import open_stores
from double11.campaign_file import parse_campaign
from double11.domain.campaign import Campaign, FieldKind, RateBoostCouponGrant
from double11.domain.customer import Customer
from double11.domain.decision import Decision, Outcome, RiskAssessment, Verdict
from double11.domain.errors import (
    EventIdReused,
    EventTooFarAhead,
    InvalidInput,
    UnknownCustomer,
    UnknownEventType,
)
from double11.domain.events import Event
from double11.domain.facts import Facts
from double11.domain.ledger import Asset, LedgerEntry
from double11.domain.rules import coupon_cost, rate_tier
from double11.domain.wallet import CouponState, fold
from double11.engine.clock import StartedClock
from double11.engine.pipeline import Engine, Submitted
from double11.engine.ports import EventRecord, Stores
from double11.errors import Unavailable
from double11.risk.step import NO_RULES, NoRiskRules

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI)  # inside the warm-up
IN_WARMUP = datetime(2026, 11, 1, 9, 0, tzinfo=SHANGHAI)
MAIN_DAY_END = datetime(2026, 11, 12, tzinfo=SHANGHAI)
LATER = datetime(2026, 11, 13, 10, tzinfo=SHANGHAI)  # after the main day

DOUBLE_POINTS = "early_bird_double_points"
LOTTERY = "early_bird_lottery"
RATE_BOOST = "new_customer_rate_boost"
CHECKIN = "checkin_points"


class YieldingRisk:
    """Allows every event, as NoRiskRules does, after yielding to the event loop.

    Any real risk step does I/O here, so concurrent events interleave between
    observing their state and taking their limits; this makes them do so.
    """

    async def assess(self, facts: Facts) -> RiskAssessment:
        await asyncio.sleep(0)
        return NO_RULES


@dataclass
class Bench:
    """An engine on a fresh memory store, and that store, to look inside."""

    engine: Engine
    store: MemoryStore

    async def customers(self, *ids: str, is_new: bool = False) -> None:
        for cid in ids:
            await self.store.put_customer(Customer(id=cid, is_new=is_new))

    async def submit(self, event: Event) -> Submitted:
        return await self.engine.submit(event)

    async def submit_all(self, events: Iterable[Event]) -> list[Submitted]:
        return list(await asyncio.gather(*(self.engine.submit(e) for e in events)))

    async def usage(self, mechanic_id: str) -> tuple[int, Decimal]:
        used = (await self.engine.stores.limits.usage()).get(mechanic_id)
        return (used.granted, used.spent) if used else (0, Decimal("0.00"))

    def entries(self, asset: Asset | None = None) -> list[LedgerEntry]:
        return [e for rows in self.store.ledger.values() for e in rows if asset in (None, e.asset)]


async def bench(
    campaign: Campaign, now: datetime = NOW, risk: NoRiskRules | YieldingRisk | None = None
) -> Bench:
    stores = await open_stores("memory://")
    store = stores.events
    assert isinstance(store, MemoryStore)
    engine = Engine(campaign, stores, StartedClock(now), risk or NoRiskRules())
    return Bench(engine, store)


def outcome(decision: Decision, mechanic_id: str) -> Outcome:
    (found,) = [o.outcome for o in decision.outcomes if o.mechanic_id == mechanic_id]
    return found


def snapshot(store: MemoryStore) -> Any:
    """Everything the store holds, deep-copied, to prove that nothing was written."""
    return copy.deepcopy(
        (
            store.customers,
            store.events,
            dict(store.ledger),
            store.counters,
            dict(store.counts),
            store._observed,
            store._claimed,
        )
    )


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the example campaign no longer has exactly one {old!r}"
    return text.replace(old, new)


def reservation(cid: str, at: datetime = IN_WARMUP) -> Event:
    return Event(f"res-{cid}", "reservation", cid, at, {"product": "cd-3y"})


def assessment(cid: str, at: datetime = IN_WARMUP) -> Event:
    return Event(f"risk-{cid}", "risk_assessment", cid, at, {"level": "C3"})


def deposit(event_id: str, cid: str, amount: str, at: datetime = IN_WARMUP) -> Event:
    return Event(event_id, "deposit", cid, at, {"amount": amount, "product": "cd-3y"})


def checkin(event_id: str, cid: str, at: datetime) -> Event:
    return Event(event_id, "checkin", cid, at)


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: its full passes over tens of thousands of live
    records, not the engine, would take most of the time of the large tests."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


RISK_STEPS = pytest.mark.parametrize(
    "risk", [NoRiskRules(), YieldingRisk()], ids=["in-turn", "interleaved"]
)


# ---------------------------------------------------------------- first 10,000 reservers


@RISK_STEPS
@pytest.mark.usefixtures("no_gc")
async def test_eleven_thousandth_reserver_gets_no_double_points(
    example_campaign: Campaign, risk: NoRiskRules | YieldingRisk
) -> None:
    b = await bench(example_campaign, risk=risk)
    ids = [f"c{i:05d}" for i in range(12_000)]
    await b.customers(*ids)
    events = [reservation(cid) for cid in ids]

    results = await b.submit_all(events)

    perks = [g for r in results for g in r.decision.grants if g.asset is Asset.PERK]
    assert len(perks) == 10_000
    assert len({g.customer_id for g in perks}) == 10_000
    assert Counter(outcome(r.decision, DOUBLE_POINTS) for r in results) == {
        Outcome.FIRED: 10_000,
        Outcome.QUOTA_EXHAUSTED: 2_000,
    }
    # first come, first served: the quota goes to the first 10,000 to arrive
    assert outcome(results[9_999].decision, DOUBLE_POINTS) is Outcome.FIRED
    assert outcome(results[10_999].decision, DOUBLE_POINTS) is Outcome.QUOTA_EXHAUSTED
    assert {g.customer_id for g in perks} == set(ids[:10_000])
    assert await b.usage(DOUBLE_POINTS) == (10_000, Decimal("0.00"))
    assert len(b.entries(Asset.PERK)) == 10_000

    # replaying 1,000 of the events grants nothing more and answers as the first time
    replayed = random.Random(11).sample(range(len(events)), 1_000)
    again = await b.submit_all(events[i] for i in replayed)
    assert all(r.replayed for r in again)
    assert [r.decision for r in again] == [results[i].decision for i in replayed]
    assert await b.usage(DOUBLE_POINTS) == (10_000, Decimal("0.00"))
    assert len(b.entries(Asset.PERK)) == 10_000
    assert len(b.store.events) == 12_000


@pytest.mark.slow
@pytest.mark.usefixtures("no_gc")
async def test_the_first_fifty_thousand_to_reserve_and_assess_each_get_one_lottery_ticket(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign, risk=YieldingRisk())
    ids = [f"c{i:05d}" for i in range(60_000)]
    await b.customers(*ids)
    events = [reservation(cid) for cid in ids] + [assessment(cid) for cid in ids]
    random.Random(1111).shuffle(events)
    arrival = {e.id: n for n, e in enumerate(events)}

    results: list[Submitted] = []
    for start in range(0, len(events), 4_000):
        results += await b.submit_all(events[start : start + 4_000])

    tickets = [
        (r.decision.event_id, g)
        for r in results
        for g in r.decision.grants
        if g.asset is Asset.LOTTERY_TICKET
    ]
    assert len(tickets) == 50_000
    assert len({g.customer_id for _, g in tickets}) == 50_000
    # each ticket is granted on whichever of the customer's two events came second
    for event_id, grant in tickets:
        cid = grant.customer_id
        second = max(f"res-{cid}", f"risk-{cid}", key=arrival.__getitem__)
        assert event_id == second
    # and the quota goes to the first 50,000 customers to have done both
    done_both_at = {cid: max(arrival[f"res-{cid}"], arrival[f"risk-{cid}"]) for cid in ids}
    first = sorted(ids, key=done_both_at.__getitem__)[:50_000]
    assert {g.customer_id for _, g in tickets} == set(first)
    assert Counter(outcome(r.decision, LOTTERY) for r in results) == {
        Outcome.CONDITION_FALSE: 60_000,
        Outcome.FIRED: 50_000,
        Outcome.QUOTA_EXHAUSTED: 10_000,
    }
    assert await b.usage(LOTTERY) == (50_000, Decimal("150000.00"))
    assert await b.usage(DOUBLE_POINTS) == (10_000, Decimal("0.00"))
    assert len(b.entries(Asset.LOTTERY_TICKET)) == 50_000


async def test_a_reservation_before_the_assessment_explains_the_missing_ticket(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign)
    await b.customers("c1")
    first = (await b.submit(reservation("c1"))).decision
    lottery = next(o for o in first.outcomes if o.mechanic_id == LOTTERY)
    assert lottery.outcome is Outcome.CONDITION_FALSE
    assert "state.phase.risk_assessment" in lottery.detail
    second = (await b.submit(assessment("c1"))).decision
    assert outcome(second, LOTTERY) is Outcome.FIRED
    (ticket,) = second.grants
    assert ticket.asset is Asset.LOTTERY_TICKET
    assert ticket.cost == Decimal("3.00")
    # a later reservation of the same customer finds the ticket already given
    third = (await b.submit(Event("res-c1-again", "reservation", "c1", IN_WARMUP))).decision
    assert outcome(third, LOTTERY) is Outcome.CAP_REACHED


# ---------------------------------------------------------------- rate-boost coupons


@pytest.mark.parametrize(
    ("amount", "boost", "cost"),
    [
        ("10000.00", "0.005", "4.11"),  # 10,000 x 0.5% x 30/365 = 4.1096
        ("49999.99", "0.005", "20.55"),  # 49,999.99 x 0.5% x 30/365 = 20.5479
        ("50000.00", "0.008", "32.88"),  # 50,000 x 0.8% x 30/365 = 32.8767
        ("60000.00", "0.008", "39.45"),  # 60,000 x 0.8% x 30/365 = 39.4520
        ("100000.00", "0.010", "82.19"),  # 100,000 x 1% x 30/365 = 82.1917
        ("150000.00", "0.010", "123.29"),  # 150,000 x 1% x 30/365 = 123.2876
        ("200000.00", "0.010", "164.38"),  # 200,000 x 1% x 30/365 = 164.3835
        ("5000000.00", "0.010", "164.38"),  # capped at a principal of 200,000
    ],
)
async def test_a_new_customers_first_deposit_earns_a_tier_coupon_until_the_main_day_ends(
    example_campaign: Campaign, amount: str, boost: str, cost: str
) -> None:
    b = await bench(example_campaign)
    await b.customers("new", is_new=True)

    decision = (await b.submit(deposit("d1", "new", amount))).decision

    assert [(o.mechanic_id, o.outcome) for o in decision.outcomes] == [(RATE_BOOST, Outcome.FIRED)]
    (coupon,) = decision.grants
    assert coupon.asset is Asset.COUPON
    assert coupon.mechanic_id == RATE_BOOST
    assert coupon.customer_id == "new"
    assert coupon.cost == Decimal(cost)
    assert coupon.cost.as_tuple().exponent == -2
    assert coupon.attributes["boost"] == boost
    assert coupon.attributes["principal_cap"] == "200000.00"
    assert coupon.attributes["days"] == "30"
    assert datetime.fromisoformat(coupon.attributes["expires_at"]) == MAIN_DAY_END
    assert await b.usage(RATE_BOOST) == (1, Decimal(cost))

    ledger = await b.engine.stores.events.ledger_for("new")
    (active,) = fold("new", ledger, NOW).coupons
    assert active.state == CouponState.ACTIVE
    (expired,) = fold("new", ledger, MAIN_DAY_END).coupons
    assert expired.state == CouponState.EXPIRED
    (still,) = fold("new", ledger, MAIN_DAY_END - timedelta(microseconds=1)).coupons
    assert still.state == CouponState.ACTIVE


async def test_a_first_wealth_purchase_earns_the_coupon_too(example_campaign: Campaign) -> None:
    b = await bench(example_campaign)
    await b.customers("new", is_new=True)
    event = Event("w1", "wealth_purchase", "new", IN_WARMUP, {"amount": "60000.00"})
    (coupon,) = (await b.submit(event)).decision.grants
    assert coupon.cost == Decimal("39.45")


async def test_a_new_customers_second_deposit_gets_nothing(example_campaign: Campaign) -> None:
    b = await bench(example_campaign)
    await b.customers("new", is_new=True)
    assert (await b.submit(deposit("d1", "new", "60000.00"))).decision.granted
    second = (await b.submit(deposit("d2", "new", "150000.00"))).decision
    assert second.grants == ()
    assert outcome(second, RATE_BOOST) is Outcome.CONDITION_FALSE
    # nor does a wealth purchase after the first deposit
    third = Event("w3", "wealth_purchase", "new", IN_WARMUP, {"amount": "150000.00"})
    assert (await b.submit(third)).decision.grants == ()
    assert await b.usage(RATE_BOOST) == (1, Decimal("39.45"))


async def test_an_existing_customer_gets_no_coupon(example_campaign: Campaign) -> None:
    b = await bench(example_campaign)
    await b.customers("old", is_new=False)
    decision = (await b.submit(deposit("d1", "old", "150000.00"))).decision
    assert decision.grants == ()
    assert outcome(decision, RATE_BOOST) is Outcome.CONDITION_FALSE
    assert await b.usage(RATE_BOOST) == (0, Decimal("0.00"))


async def test_an_amount_below_the_lowest_tier_is_not_eligible(example_campaign: Campaign) -> None:
    b = await bench(example_campaign)
    await b.customers("new", is_new=True)
    decision = (await b.submit(deposit("d1", "new", "9999.99"))).decision
    assert decision.grants == ()
    (reason,) = decision.outcomes
    assert reason.outcome is Outcome.NOT_ELIGIBLE
    assert "9999.99" in reason.detail and "10000.00" in reason.detail
    assert await b.usage(RATE_BOOST) == (0, Decimal("0.00"))


async def test_a_first_deposit_on_the_main_day_gets_no_coupon(example_campaign: Campaign) -> None:
    main_day = datetime(2026, 11, 11, 10, tzinfo=SHANGHAI)
    b = await bench(example_campaign, now=main_day)
    await b.customers("new", is_new=True)
    decision = (await b.submit(deposit("d1", "new", "60000.00", at=main_day))).decision
    assert decision.phase == "main_day"
    assert outcome(decision, RATE_BOOST) is Outcome.NOT_IN_PHASE


@RISK_STEPS
async def test_concurrent_coupons_stop_exactly_at_the_budget(
    example_text: str, risk: NoRiskRules | YieldingRisk
) -> None:
    # 10 coupons of 4.11 fill a budget of 41.10 exactly; the other 20 must be refused
    campaign = parse_campaign(edit(example_text, 'budget: "2000000.00"', 'budget: "41.10"'))
    b = await bench(campaign, risk=risk)
    ids = [f"n{i:02d}" for i in range(30)]
    await b.customers(*ids, is_new=True)

    results = await b.submit_all(deposit(f"d-{cid}", cid, "10000.00") for cid in ids)

    assert Counter(outcome(r.decision, RATE_BOOST) for r in results) == {
        Outcome.FIRED: 10,
        Outcome.BUDGET_EXHAUSTED: 20,
    }
    assert await b.usage(RATE_BOOST) == (10, Decimal("41.10"))
    assert sum(e.cost for e in b.entries(Asset.COUPON)) == Decimal("41.10")


async def test_concurrent_coupons_of_every_size_never_pass_the_budget(example_text: str) -> None:
    budget = Decimal("1000.00")
    campaign = parse_campaign(edit(example_text, 'budget: "2000000.00"', f'budget: "{budget}"'))
    (spec,) = campaign.mechanic(RATE_BOOST).grants
    assert isinstance(spec, RateBoostCouponGrant)
    rng = random.Random(1111)
    amounts = {f"n{i:03d}": Decimal(rng.randrange(1_000_000, 30_000_000)) / 100 for i in range(200)}
    b = await bench(campaign, risk=YieldingRisk())
    await b.customers(*amounts, is_new=True)

    results = await b.submit_all(deposit(f"d-{cid}", cid, f"{a:.2f}") for cid, a in amounts.items())

    granted = b.entries(Asset.COUPON)
    spent = sum((e.cost for e in granted), Decimal("0.00"))
    assert spent <= budget
    assert await b.usage(RATE_BOOST) == (len(granted), spent)
    refused = [r.decision for r in results if outcome(r.decision, RATE_BOOST) is not Outcome.FIRED]
    assert refused, "the budget should run out in this test"
    for decision in refused:
        assert outcome(decision, RATE_BOOST) is Outcome.BUDGET_EXHAUSTED
        amount = amounts[decision.customer_id]
        boost = rate_tier(spec, amount)
        assert boost is not None
        # stops at the budget: nothing refused would still have fitted
        assert coupon_cost(spec, amount, boost) > budget - spent


# ---------------------------------------------------------------- daily check-ins

AFTER_CHECKINS = datetime(2026, 11, 3, 10, tzinfo=SHANGHAI)


async def test_two_check_ins_on_the_same_local_day_give_one_grant(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign, now=AFTER_CHECKINS)
    await b.customers("c1")
    morning = datetime(2026, 11, 1, 0, 30, tzinfo=SHANGHAI)  # 16:30 UTC the day before
    evening = datetime(2026, 11, 1, 23, 30, tzinfo=SHANGHAI)
    first = (await b.submit(checkin("k1", "c1", morning))).decision
    second = (await b.submit(checkin("k2", "c1", evening))).decision
    assert outcome(first, CHECKIN) is Outcome.FIRED
    assert outcome(second, CHECKIN) is Outcome.CAP_REACHED
    assert second.grants == ()
    next_day = (await b.submit(checkin("k3", "c1", evening + timedelta(hours=1)))).decision
    assert outcome(next_day, CHECKIN) is Outcome.FIRED
    assert fold("c1", await b.engine.stores.events.ledger_for("c1"), AFTER_CHECKINS).points == 20


async def test_the_check_in_day_turns_at_midnight_in_shanghai_not_in_utc(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign, now=AFTER_CHECKINS)
    await b.customers("c1", "c2")
    before_midnight = datetime(2026, 11, 1, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Shanghai
    midnight = datetime(2026, 11, 1, 16, 0, tzinfo=UTC)  # 00:00 on 2 November in Shanghai
    late = datetime(2026, 11, 2, 15, 59, 59, tzinfo=UTC)  # 23:59:59 on 2 November

    a = (await b.submit(checkin("a1", "c1", before_midnight))).decision
    c = (await b.submit(checkin("a2", "c1", midnight))).decision
    assert (outcome(a, CHECKIN), outcome(c, CHECKIN)) == (Outcome.FIRED, Outcome.FIRED)

    d = (await b.submit(checkin("b1", "c2", midnight))).decision
    e = (await b.submit(checkin("b2", "c2", late))).decision
    assert (outcome(d, CHECKIN), outcome(e, CHECKIN)) == (Outcome.FIRED, Outcome.CAP_REACHED)


async def test_a_double_points_holder_gets_twenty_points_per_check_in(example_text: str) -> None:
    campaign = parse_campaign(edit(example_text, "quota: 10000 ", "quota: 1 "))
    b = await bench(campaign, now=LATER)
    await b.customers("holder", "too_late", "never_reserved")
    assert (await b.submit(reservation("holder"))).decision.granted
    late = (await b.submit(reservation("too_late"))).decision
    assert outcome(late, DOUBLE_POINTS) is Outcome.QUOTA_EXHAUSTED

    points = {}
    for day in (2, 11):  # a day of the warm-up and the main day
        at = datetime(2026, 11, day, 8, tzinfo=SHANGHAI)
        for cid in ("holder", "too_late", "never_reserved"):
            (grant,) = (await b.submit(checkin(f"k-{cid}-{day}", cid, at))).decision.grants
            points[cid, day] = (grant.points, grant.cost)
    assert points == {
        ("holder", 2): (20, Decimal("0.20")),
        ("too_late", 2): (10, Decimal("0.10")),
        ("never_reserved", 2): (10, Decimal("0.10")),
        ("holder", 11): (20, Decimal("0.20")),
        ("too_late", 11): (10, Decimal("0.10")),
        ("never_reserved", 11): (10, Decimal("0.10")),
    }
    ledger = await b.engine.stores.events.ledger_for("holder")
    assert fold("holder", ledger, LATER).points == 40


# ---------------------------------------------------------------- outside every phase


@pytest.mark.parametrize(
    ("at", "phase"),
    [
        (datetime(2026, 10, 26, 23, 59, 59, tzinfo=SHANGHAI), None),
        (datetime(2026, 11, 11, 0, 0, tzinfo=SHANGHAI), "main_day"),
        (datetime(2026, 11, 12, 9, 0, tzinfo=SHANGHAI), "review"),
    ],
    ids=["before-the-warm-up", "main-day", "review"],
)
async def test_a_reservation_outside_the_warm_up_is_decided_with_no_grants(
    example_campaign: Campaign, at: datetime, phase: str | None
) -> None:
    b = await bench(example_campaign, now=LATER)
    await b.customers("c1")
    submitted = await b.submit(reservation("c1", at=at))
    decision = submitted.decision
    assert not submitted.replayed
    assert decision.phase == phase
    assert decision.grants == ()
    assert [(o.mechanic_id, o.outcome) for o in decision.outcomes] == [
        (DOUBLE_POINTS, Outcome.NOT_IN_PHASE),
        (LOTTERY, Outcome.NOT_IN_PHASE),
    ]
    assert all((phase or "no phase") in o.detail for o in decision.outcomes)
    assert await b.usage(DOUBLE_POINTS) == (0, Decimal("0.00"))


async def test_the_warm_up_starts_at_its_first_instant(example_campaign: Campaign) -> None:
    b = await bench(example_campaign, now=LATER)
    await b.customers("c1")
    opening = datetime(2026, 10, 27, 0, 0, tzinfo=SHANGHAI)
    decision = (await b.submit(reservation("c1", at=opening))).decision
    assert decision.phase == "warmup"
    assert outcome(decision, DOUBLE_POINTS) is Outcome.FIRED


async def test_a_check_in_in_the_review_is_not_in_phase(example_campaign: Campaign) -> None:
    b = await bench(example_campaign, now=LATER)
    await b.customers("c1")
    at = datetime(2026, 11, 12, 0, 0, tzinfo=SHANGHAI)
    decision = (await b.submit(checkin("k1", "c1", at))).decision
    assert decision.phase == "review"
    assert [(o.mechanic_id, o.outcome) for o in decision.outcomes] == [
        (CHECKIN, Outcome.NOT_IN_PHASE)
    ]


# ---------------------------------------------------------------- bad input writes nothing


async def _bench_with_history(campaign: Campaign) -> Bench:
    """A store that already holds a customer, an event and a grant, so changes would show."""
    b = await bench(campaign)
    await b.customers("c1", is_new=True)
    await b.customers("c2")
    assert (await b.submit(reservation("c2"))).decision.granted
    return b


async def test_an_event_more_than_five_minutes_ahead_of_the_clock_is_refused(
    example_campaign: Campaign,
) -> None:
    b = await _bench_with_history(example_campaign)
    before = snapshot(b.store)
    with pytest.raises(EventTooFarAhead) as refused:
        await b.submit(reservation("c1", at=NOW + timedelta(minutes=6)))
    assert refused.value.field == "at"
    assert isinstance(refused.value, InvalidInput)
    assert snapshot(b.store) == before
    # within five minutes it is decided
    assert (await b.submit(reservation("c1", at=NOW + timedelta(minutes=4)))).decision.granted


BAD_INPUT: dict[str, tuple[Event, type[InvalidInput], str]] = {
    "unknown event type": (
        Event("bad", "teleport", "c1", IN_WARMUP),
        UnknownEventType,
        "type",
    ),
    "unknown customer": (reservation("nobody"), UnknownCustomer, "customer_id"),
    "missing amount": (
        Event("bad", "deposit", "c1", IN_WARMUP, {"product": "cd"}),
        InvalidInput,
        "data.amount",
    ),
    "null amount": (
        Event("bad", "deposit", "c1", IN_WARMUP, {"amount": None}),
        InvalidInput,
        "data.amount",
    ),
    "missing invitee": (
        Event("bad", "invite_accepted", "c1", IN_WARMUP, {}),
        InvalidInput,
        "data.invitee_id",
    ),
    "string field not a string": (
        Event("bad", "deposit", "c1", IN_WARMUP, {"amount": "1.00", "product": 5}),
        InvalidInput,
        "data.product",
    ),
    "naive instant": (
        Event("bad", "reservation", "c1", datetime(2026, 11, 1, 9)),
        InvalidInput,
        "at",
    ),
    **{
        f"amount {value!r}": (
            Event("bad", "deposit", "c1", IN_WARMUP, {"amount": value}),
            InvalidInput,
            "data.amount",
        )
        for value in [
            "abc",
            "",
            "1.001",
            "0.005",
            "-5.00",
            "NaN",
            "sNaN",
            "Infinity",
            "-Infinity",
            "1,000.00",
            "¥100",
            True,
            [],
            {"yuan": 1},
            -1,
            1.005,
        ]
    },
}


@pytest.mark.parametrize(("event", "error", "field"), BAD_INPUT.values(), ids=BAD_INPUT)
async def test_bad_input_raises_invalid_input_naming_the_field_and_writes_nothing(
    example_campaign: Campaign, event: Event, error: type[InvalidInput], field: str
) -> None:
    b = await _bench_with_history(example_campaign)
    before = snapshot(b.store)
    with pytest.raises(error) as refused:
        await b.submit(event)
    assert type(refused.value) is error
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert snapshot(b.store) == before


@pytest.mark.parametrize("value", ["1e30", "100000000000000000000000000", 10**30, 1e30])
async def test_an_absurdly_large_amount_is_invalid_input(
    example_campaign: Campaign, value: object
) -> None:
    b = await _bench_with_history(example_campaign)
    before = snapshot(b.store)
    with pytest.raises(InvalidInput) as refused:
        await b.submit(Event("bad", "deposit", "c1", IN_WARMUP, {"amount": value}))
    assert refused.value.field == "data.amount"
    assert snapshot(b.store) == before


async def test_a_refused_event_id_can_be_sent_again_with_a_good_body(
    example_campaign: Campaign,
) -> None:
    b = await _bench_with_history(example_campaign)
    with pytest.raises(InvalidInput):
        await b.submit(deposit("d1", "c1", "12.345"))
    submitted = await b.submit(deposit("d1", "c1", "12345.00"))
    assert not submitted.replayed
    assert outcome(submitted.decision, RATE_BOOST) is Outcome.FIRED


async def test_money_arrives_as_decimal_from_strings_integers_and_json_numbers(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign)
    await b.customers("a", "b", "c", is_new=True)
    for cid, amount in (("a", "60000.00"), ("b", 60000), ("c", 60000.0)):
        event = Event(f"d-{cid}", "deposit", cid, IN_WARMUP, {"amount": amount})
        (coupon,) = (await b.submit(event)).decision.grants
        assert coupon.cost == Decimal("39.45")


# ---------------------------------------------------------------- exactly once


async def test_the_same_event_twice_grants_once_and_answers_the_same(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign)
    await b.customers("new", is_new=True)
    first = await b.submit(deposit("d1", "new", "60000.00"))
    second = await b.submit(deposit("d1", "new", "60000.00"))
    assert (first.replayed, second.replayed) == (False, True)
    assert second.decision == first.decision
    assert await b.usage(RATE_BOOST) == (1, Decimal("39.45"))
    assert len(await b.engine.stores.events.ledger_for("new")) == 1


async def test_concurrent_copies_of_one_event_grant_once(example_campaign: Campaign) -> None:
    b = await bench(example_campaign, risk=YieldingRisk())
    await b.customers("c1")
    results = await b.submit_all([reservation("c1")] * 5)
    assert sorted(r.replayed for r in results) == [False, True, True, True, True]
    assert all(r.decision == results[0].decision for r in results)
    assert await b.usage(DOUBLE_POINTS) == (1, Decimal("0.00"))
    assert len(b.entries()) == 1


async def test_concurrent_copies_of_one_event_take_a_quota_without_a_cap_once(
    example_text: str,
) -> None:
    text = edit(
        example_text, "quota: 10000            # plan\n      per_customer: 1\n", "quota: 10\n"
    )
    b = await bench(parse_campaign(text), risk=YieldingRisk())
    await b.customers("c1")
    results = await b.submit_all([reservation("c1")] * 2)
    assert sorted(r.replayed for r in results) == [False, True]
    assert len(b.entries(Asset.PERK)) == 1
    assert await b.usage(DOUBLE_POINTS) == (1, Decimal("0.00"))


@pytest.mark.parametrize(
    "reused",
    [
        deposit("d1", "c1", "200.00"),
        deposit("d1", "c2", "100.00"),
        deposit("d1", "c1", "100.00", at=IN_WARMUP + timedelta(seconds=1)),
        Event("d1", "wealth_purchase", "c1", IN_WARMUP, {"amount": "100.00", "product": "cd-3y"}),
        Event("d1", "deposit", "c1", IN_WARMUP, {"amount": "100.00", "product": "other"}),
    ],
    ids=["amount", "customer", "time", "type", "extra data"],
)
async def test_an_event_id_reused_with_a_different_body_is_a_conflict(
    example_campaign: Campaign, reused: Event
) -> None:
    b = await bench(example_campaign)
    await b.customers("c1", "c2", is_new=True)
    first = await b.submit(deposit("d1", "c1", "100.00"))
    before = snapshot(b.store)
    with pytest.raises(EventIdReused) as refused:
        await b.submit(reused)
    assert "'d1'" in refused.value.args[0]
    assert snapshot(b.store) == before
    # the original still replays
    assert (await b.submit(deposit("d1", "c1", "100.00"))).decision == first.decision


async def test_an_event_id_reused_says_so_in_words_and_names_the_id_field(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign)
    await b.customers("c1", is_new=True)
    await b.submit(deposit("d1", "c1", "100.00"))
    with pytest.raises(EventIdReused) as refused:
        await b.submit(deposit("d1", "c1", "200.00"))
    assert str(refused.value) == "id: event 'd1' was already sent with a different body"
    assert getattr(refused.value, "field", None) == "id"


# ---------------------------------------------------------------- explainable decisions


def _sample_data(campaign: Campaign, event_type: str) -> dict[str, object]:
    data: dict[str, object] = {}
    for spec in campaign.event_types[event_type].fields:
        if spec.kind is FieldKind.MONEY:
            data[spec.name] = "20000.00"
        elif spec.kind is FieldKind.STRING:
            data[spec.name] = "x"
        elif spec.kind is FieldKind.INTEGER:
            data[spec.name] = 1
        else:
            data[spec.name] = True
    return data


def _event_types(campaign_text: str) -> Sequence[str]:
    return sorted(parse_campaign(campaign_text).event_types)


@pytest.mark.parametrize(
    "at",
    [IN_WARMUP, datetime(2026, 10, 1, tzinfo=SHANGHAI)],
    ids=["warm-up", "no-phase"],
)
async def test_every_decision_lists_an_outcome_for_every_mechanic_its_event_type_triggers(
    example_campaign: Campaign, at: datetime
) -> None:
    b = await bench(example_campaign)
    await b.customers("c1", is_new=True)
    for n, event_type in enumerate(sorted(example_campaign.event_types)):
        data = _sample_data(example_campaign, event_type)
        decision = (await b.submit(Event(f"e{n}", event_type, "c1", at, data))).decision
        expected = [m.id for m in example_campaign.mechanics if event_type in m.triggers]
        assert [o.mechanic_id for o in decision.outcomes] == expected, event_type
        assert all(isinstance(o.outcome, Outcome) for o in decision.outcomes)
        assert (decision.event_id, decision.customer_id, decision.event_type) == (
            f"e{n}",
            "c1",
            event_type,
        )
        assert decision.risk.verdict is Verdict.ALLOW
        assert decision.risk.reasons  # says that no risk rules ran, never nothing
        fired = {o.mechanic_id for o in decision.outcomes if o.outcome is Outcome.FIRED}
        assert {g.mechanic_id for g in decision.grants} == fired


class CommitsFailFirst:
    """An event log whose first `failures` commits fail, as a database that went away."""

    def __init__(self, store: MemoryStore, failures: int) -> None:
        self.store = store
        self.failures = failures

    async def find_event(self, event_id: str) -> EventRecord | None:
        return await self.store.find_event(event_id)

    async def commit(self, record: EventRecord) -> EventRecord:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database went away")
        return await self.store.commit(record)

    async def commit_many(self, records: Sequence[EventRecord]) -> list[EventRecord | Exception]:
        return [await self._one(r) for r in records]

    async def _one(self, record: EventRecord) -> EventRecord | Exception:
        try:
            return await self.commit(record)
        except ConnectionError as exc:
            return exc

    async def ledger_for(self, customer_id: str) -> Sequence[LedgerEntry]:
        return await self.store.ledger_for(customer_id)


async def failing_bench(campaign: Campaign, failures: int) -> Bench:
    store = MemoryStore()
    stores = Stores(store, CommitsFailFirst(store, failures), store)
    return Bench(Engine(campaign, stores, StartedClock(NOW), NoRiskRules()), store)


async def test_a_reservation_that_was_never_committed_does_not_count_towards_the_lottery(
    example_campaign: Campaign,
) -> None:
    b = await failing_bench(example_campaign, failures=1)
    await b.customers("c1")
    with pytest.raises(Unavailable):
        await b.submit(reservation("c1"))

    # The bank never retried the reservation: the assessment alone earns no ticket.
    assessed = await b.submit(assessment("c1"))

    assert outcome(assessed.decision, "early_bird_lottery") is Outcome.CONDITION_FALSE
    assert await b.usage("early_bird_double_points") == (0, Decimal("0.00"))
    # Its retry counts once, and the lottery fires on it, which now comes second.
    retried = await b.submit(reservation("c1"))
    assert outcome(retried.decision, "early_bird_lottery") is Outcome.FIRED
    assert outcome(retried.decision, "early_bird_double_points") is Outcome.FIRED


async def test_submit_many_answers_each_event_in_order_and_commits_them_together(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign)
    await b.customers("c1", "c2")
    first = reservation("c1")
    await b.submit(first)
    reused = Event(first.id, "reservation", "c1", IN_WARMUP, {"product": "other"})
    batch = [
        assessment("c1"),  # the lottery: c1 reserved before
        reservation("c2"),
        reservation("c2"),  # the same event twice in one batch
        first,  # a replay of one committed before
        reused,  # its id with another body
        Event("e-nobody", "reservation", "nobody", IN_WARMUP),
    ]

    answers = await b.engine.submit_many(batch)

    assert len(answers) == len(batch)
    lottery, c2, c2_again, replay, conflict, unknown = answers
    assert isinstance(lottery, Submitted) and not lottery.replayed
    assert outcome(lottery.decision, "early_bird_lottery") is Outcome.FIRED
    assert isinstance(c2, Submitted) and not c2.replayed
    assert isinstance(c2_again, Submitted) and c2_again.replayed
    assert c2_again.decision == c2.decision
    assert isinstance(replay, Submitted) and replay.replayed
    assert isinstance(conflict, EventIdReused)
    assert isinstance(unknown, UnknownCustomer)
    assert await b.usage("early_bird_double_points") == (2, Decimal("0.00"))
    assert await b.usage("early_bird_lottery") == (1, Decimal("3.00"))
    assert set(b.store.events) == {first.id, "risk-c1", "res-c2"}


async def test_submit_many_undoes_the_events_whose_commit_failed(
    example_campaign: Campaign,
) -> None:
    b = await failing_bench(example_campaign, failures=1)
    await b.customers("c1", "c2")

    failed, stood = await b.engine.submit_many([reservation("c1"), reservation("c2")])

    assert isinstance(failed, Unavailable)
    assert isinstance(stood, Submitted) and stood.decision.granted
    assert await b.usage("early_bird_double_points") == (1, Decimal("0.00"))
    state = await b.store.observe(assessment("c1"), "warmup")
    assert dict(state.phase_counts) == {"risk_assessment": 1}


async def test_a_holdout_customer_is_recorded_and_told_what_it_would_have_earned_but_gets_nothing(
    example_campaign: Campaign,
) -> None:
    b = await bench(example_campaign)
    await b.store.put_customer(Customer(id="held", is_new=True, holdout=True))
    await b.customers("treated")

    held = await b.submit(reservation("held"))
    deposit = await b.submit(
        Event("dep-held", "deposit", "held", IN_WARMUP, {"amount": Decimal("60000.00")})
    )
    treated = await b.submit(reservation("treated"))

    assert outcome(held.decision, "early_bird_double_points") is Outcome.HOLDOUT
    assert outcome(deposit.decision, "new_customer_rate_boost") is Outcome.HOLDOUT
    assert not held.decision.grants and not deposit.decision.grants
    assert outcome(treated.decision, "early_bird_double_points") is Outcome.FIRED
    # No quota, budget or cap was used for the holdout customer, and both events stand.
    assert await b.usage("early_bird_double_points") == (1, Decimal("0.00"))
    assert await b.usage("new_customer_rate_boost") == (0, Decimal("0.00"))
    assert await b.store.find_event("res-held") is not None
    assert await b.store.find_event("dep-held") is not None
    assert await b.store.ledger_for("held") == ()
