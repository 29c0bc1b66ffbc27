"""The contract every store keeps, proved on each: memory, SQLite and scale-out.

The engine relies on these and nothing else; `double11.adapters.memory` is the
reference behaviour.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from double11.domain.customer import Customer
from double11.domain.limits import Claim, ClaimOutcome
from double11.engine.ports import CampaignVersion, EventRecord, Stores

from .builders import claim, decide, essence, event, grant, record, used
from .conftest import Backend

DOUBLE_POINTS = "double_points"
SHANGHAI = timezone(timedelta(hours=8))


async def test_a_replayed_commit_returns_the_first_record_and_writes_nothing_twice(
    stores: Stores,
) -> None:
    e1 = event("e1")
    taken = claim("e1", "m1", cost="2.00", quota=10, budget="100.00")
    first = record(e1, [taken], [grant(e1, "m1", points=10, cost="2.00")])
    assert essence(await decide(stores, first)) == essence(first)

    # The same event decided again, differently (a retry racing its original).
    again = record(
        e1, [taken], [grant(e1, "m1", points=99, cost="2.00")], decided_after=timedelta(seconds=1)
    )
    stood = await stores.events.commit(again)

    assert essence(stood) == essence(first)
    assert essence(await stores.events.find_event("e1")) == essence(first)
    assert await stores.events.ledger_for("c1") == first.decision.grants
    assert used(await stores.limits.usage(), "m1") == (1, Decimal("2.00"))


async def test_commit_many_commits_each_record_once_and_answers_each_with_what_stands(
    stores: Stores,
) -> None:
    e0, e1, e2 = event("e0"), event("e1", customer_id="c2"), event("e2")
    earlier = record(e0, [], [grant(e0, "m1", points=1)])
    assert essence(await stores.events.commit(earlier)) == essence(earlier)
    fresh = [record(e, [], [grant(e, "m1", points=n)]) for n, e in ((10, e1), (20, e2))]
    # e0 again, decided differently, and e2 twice in the same batch.
    again = record(e0, [], [grant(e0, "m1", points=99)], decided_after=timedelta(seconds=1))
    twice = record(e2, [], [grant(e2, "m1", points=77)], decided_after=timedelta(seconds=2))

    answers = await stores.events.commit_many([fresh[0], again, fresh[1], twice])

    assert [essence(a) for a in answers if isinstance(a, EventRecord)] == [
        essence(fresh[0]),
        essence(earlier),
        essence(fresh[1]),
        essence(fresh[1]),
    ]
    for committed in (earlier, *fresh):
        assert essence(await stores.events.find_event(committed.event.id)) == essence(committed)
    grants = earlier.decision.grants + fresh[1].decision.grants
    assert await stores.events.ledger_for("c1") == grants
    assert await stores.events.ledger_for("c2") == fresh[0].decision.grants


async def test_an_event_never_committed_is_not_found(stores: Stores) -> None:
    assert await stores.events.find_event("no-such-event") is None


async def test_observe_is_idempotent_per_event_id_and_counts_by_phase_and_campaign(
    stores: Stores,
) -> None:
    limits = stores.limits
    warm = await limits.observe(event("w1", type_="reservation"), "warmup")
    assert (dict(warm.phase_counts), dict(warm.campaign_counts)) == (
        {"reservation": 1},
        {"reservation": 1},
    )
    assert await limits.observe(event("w1", type_="reservation"), "warmup") == warm

    main = await limits.observe(event("m1", type_="reservation"), "main")
    assert dict(main.phase_counts) == {"reservation": 1}
    assert dict(main.campaign_counts) == {"reservation": 2}
    main = await limits.observe(event("m2", type_="deposit"), "main")
    assert dict(main.phase_counts) == {"reservation": 1, "deposit": 1}
    assert dict(main.campaign_counts) == {"reservation": 2, "deposit": 1}

    outside = await limits.observe(event("o1", type_="deposit"), None)
    assert dict(outside.phase_counts) == {}
    assert dict(outside.campaign_counts) == {"reservation": 2, "deposit": 2}

    other = await limits.observe(event("x1", customer_id="c2", type_="deposit"), "main")
    assert dict(other.phase_counts) == {"deposit": 1}
    assert dict(other.campaign_counts) == {"deposit": 1}


async def test_take_is_all_or_nothing_and_idempotent_per_event_and_mechanic(
    stores: Stores,
) -> None:
    limits = stores.limits
    cheap = claim("e1", "cheap", cost="1.00", quota=10, budget="100.00")
    dear = claim("e1", "dear", cost="10.00", quota=1, budget="5.00", cap=1)
    outcomes = await limits.take([cheap, dear])
    assert dict(outcomes) == {"cheap": ClaimOutcome.TAKEN, "dear": ClaimOutcome.BUDGET_EXHAUSTED}

    # The refused claim used none of its quota, cap or budget.
    assert used(await limits.usage(), "dear") == (0, Decimal("0.00"))
    affordable = claim("e2", "dear", cost="5.00", quota=1, budget="5.00", cap=1)
    assert await limits.take([affordable]) == {"dear": ClaimOutcome.TAKEN}

    # Taking the same (event, mechanic) again takes nothing more.
    assert await limits.take([cheap]) == {"cheap": ClaimOutcome.TAKEN}
    assert used(await limits.usage(), "cheap") == (1, Decimal("1.00"))
    assert used(await limits.usage(), "dear") == (1, Decimal("5.00"))


async def test_a_capped_customer_does_not_consume_quota(stores: Stores) -> None:
    limits = stores.limits

    def daily(event_id: str, customer_id: str) -> list[Claim]:
        return [claim(event_id, "daily", customer_id, quota=2, cap=1, cap_bucket="2026-11-11")]

    assert await limits.take(daily("e1", "c1")) == {"daily": ClaimOutcome.TAKEN}
    assert await limits.take(daily("e2", "c1")) == {"daily": ClaimOutcome.CAP_REACHED}
    assert await limits.take(daily("e3", "c2")) == {"daily": ClaimOutcome.TAKEN}
    assert await limits.take(daily("e4", "c3")) == {"daily": ClaimOutcome.QUOTA_EXHAUSTED}
    assert used(await limits.usage(), "daily") == (2, Decimal("0.00"))


async def test_exactly_n_of_many_concurrent_claims_on_a_quota_of_n_are_taken(
    stores: Stores,
) -> None:
    claims = [claim(f"e{i}", "first100", f"c{i}", quota=100) for i in range(300)]
    results = await asyncio.gather(*(stores.limits.take([c]) for c in claims))

    outcomes = [r["first100"] for r in results]
    assert outcomes.count(ClaimOutcome.TAKEN) == 100
    assert outcomes.count(ClaimOutcome.QUOTA_EXHAUSTED) == 200
    assert used(await stores.limits.usage(), "first100") == (100, Decimal("0.00"))


async def test_the_budget_is_never_exceeded_under_concurrent_claims_with_different_costs(
    stores: Stores,
) -> None:
    budget = Decimal("1000.00")
    rng = random.Random(1111)
    costs = [Decimal(rng.randint(100, 5000)) / 100 for _ in range(200)]
    assert sum(costs) > 3 * budget  # most must be refused
    claims = [
        claim(f"e{i}", "cashback", f"c{i}", cost=f"{cost}", budget=f"{budget}")
        for i, cost in enumerate(costs)
    ]
    results = await asyncio.gather(*(stores.limits.take([c]) for c in claims))

    outcomes = [(c.cost, r["cashback"]) for c, r in zip(claims, results, strict=True)]
    taken = [cost for cost, outcome in outcomes if outcome is ClaimOutcome.TAKEN]
    refused = [(cost, outcome) for cost, outcome in outcomes if outcome is not ClaimOutcome.TAKEN]
    spent = sum(taken, Decimal("0.00"))
    assert spent <= budget
    assert used(await stores.limits.usage(), "cashback") == (len(taken), spent)
    # Each was refused only because it did not fit: what was left when it came
    # was at least what is left now, and less than its cost.
    assert refused
    for cost, outcome in refused:
        assert outcome is ClaimOutcome.BUDGET_EXHAUSTED
        assert cost > budget - spent


async def test_release_gives_back_quota_budget_cap_and_the_perk(stores: Stores) -> None:
    limits = stores.limits

    def early(event_id: str, customer_id: str = "c1") -> list[Claim]:
        return [
            claim(
                event_id,
                "early_bird",
                customer_id,
                cost="10.00",
                quota=1,
                budget="10.00",
                cap=1,
                perks=(DOUBLE_POINTS,),
            )
        ]

    await limits.observe(event("e1"), "warmup")
    assert await limits.take(early("e1")) == {"early_bird": ClaimOutcome.TAKEN}
    held = await limits.observe(event("e2"), "warmup")
    assert DOUBLE_POINTS in held.perks

    await limits.release(event("e1"), early("e1"))
    await limits.release(event("e1"), early("e1"))  # releasing twice gives back once

    assert used(await limits.usage(), "early_bird") == (0, Decimal("0.00"))
    assert DOUBLE_POINTS not in (await limits.observe(event("e3"), "warmup")).perks
    # Quota, budget and cap would each refuse this, had they not come back.
    assert await limits.take(early("e4")) == {"early_bird": ClaimOutcome.TAKEN}
    assert await limits.take(early("e5", "c2")) == {"early_bird": ClaimOutcome.QUOTA_EXHAUSTED}


async def test_usage_reports_granted_and_spent(stores: Stores) -> None:
    for i, cost in enumerate(["1.50", "2.25", "3.00"]):
        await stores.limits.take([claim(f"e{i}", "cashback", f"c{i}", cost=cost, budget="50.00")])
    await stores.limits.take([claim("e9", "points", "c9", quota=5)])

    usage = await stores.limits.usage()
    assert used(usage, "cashback") == (3, Decimal("6.75"))
    assert used(usage, "points") == (1, Decimal("0.00"))


async def test_perks_become_visible_to_the_customers_next_observe(stores: Stores) -> None:
    e1 = event("e1", type_="reservation")
    perk = claim("e1", "early_bird", quota=10, perks=(DOUBLE_POINTS,))
    await decide(stores, record(e1, [perk], [grant(e1, "early_bird")], phase="warmup"))

    mine = await stores.limits.observe(event("e2"), "main")
    theirs = await stores.limits.observe(event("e3", customer_id="c2"), "main")
    assert mine.perks == frozenset({DOUBLE_POINTS})
    assert theirs.perks == frozenset()


async def test_ledger_for_returns_the_grants_in_commit_order(stores: Stores) -> None:
    e1, e2 = event("e1"), event("e2")
    g1 = grant(e1, "m1", points=10, seq=0)
    g2 = grant(e1, "m1", points=5, seq=1, attributes={"why": "bonus", "tier": "gold"})
    g3 = grant(e2, "m2", cost="8.80")
    invitee = grant(e2, "invite", customer_id="c2", points=100)
    await decide(stores, record(e1, [], [g1, g2]))
    await decide(stores, record(e2, [], [g3, invitee]))

    assert await stores.events.ledger_for("c1") == (g1, g2, g3)
    assert await stores.events.ledger_for("c2") == (invitee,)
    assert await stores.events.ledger_for("nobody") == ()


async def test_put_customer_creates_then_replaces(stores: Stores) -> None:
    customers = stores.customers
    assert await customers.get_customer("c1") is None
    first = Customer("c1", age=30, aum=Decimal("52000.00"), segments=frozenset({"vip"}))
    assert await customers.put_customer(first) is True
    assert await customers.get_customer("c1") == first

    second = Customer(
        "c1",
        age=31,
        aum=Decimal("0.50"),
        is_new=True,
        tier="gold",
        credit_grade="A",
        risk_tolerance="C3",
        segments=frozenset({"payroll", "young"}),
        devices=("d1", "d2"),
        holdout=True,
        extra={"branch": "Pudong", "score": 7},
    )
    assert await customers.put_customer(second) is False
    assert await customers.get_customer("c1") == second
    assert await customers.get_customer("c2") is None


async def test_state_survives_closing_and_reopening(durable_backend: Backend) -> None:
    profile = Customer("c1", age=40, aum=Decimal("1000000.00"), tier="private")
    decided: list[EventRecord] = []
    stores = await durable_backend.open()
    try:
        await stores.customers.put_customer(profile)
        for i in range(5):
            e = event(f"e{i}", type_="reservation" if i < 3 else "deposit")
            claims = [
                claim(e.id, "early_bird", quota=6, cap=5, perks=(DOUBLE_POINTS,)),
                claim(e.id, "cashback", cost="3.30", budget="100.00"),
            ]
            decided.append(record(e, claims, [grant(e, "early_bird"), grant(e, "cashback")]))
            await decide(stores, decided[-1])
        usage_before = dict(await stores.limits.usage())
        ledger_before = await stores.events.ledger_for("c1")
    finally:
        await stores.close()

    stores = await durable_backend.open()
    try:
        assert await stores.customers.get_customer("c1") == profile
        assert dict(await stores.limits.usage()) == usage_before
        assert used(usage_before, "cashback") == (5, Decimal("16.50"))
        for rec in decided:
            assert essence(await stores.events.find_event(rec.event.id)) == essence(rec)
        assert await stores.events.ledger_for("c1") == ledger_before
        assert len(ledger_before) == 10

        state = await stores.limits.observe(event("e9", type_="deposit"), "main")
        assert dict(state.campaign_counts) == {"reservation": 3, "deposit": 3}
        assert state.perks == frozenset({DOUBLE_POINTS})
        # The cap of 5 and the quota of 6 count what was taken before closing.
        assert await stores.limits.take([claim("e9", "early_bird", quota=6, cap=5)]) == {
            "early_bird": ClaimOutcome.CAP_REACHED
        }
        assert await stores.limits.take([claim("e10", "early_bird", "c2", quota=6)]) == {
            "early_bird": ClaimOutcome.TAKEN
        }
        assert await stores.limits.take([claim("e11", "early_bird", "c3", quota=6)]) == {
            "early_bird": ClaimOutcome.QUOTA_EXHAUSTED
        }
    finally:
        await stores.close()


def _version(
    digest: str, at_minute: int, source: str = "id: bank-double11-2026\n"
) -> CampaignVersion:
    loaded_at = datetime(2026, 10, 26, 23, at_minute, 7, 250_000, tzinfo=SHANGHAI)
    return CampaignVersion(digest, "bank-double11-2026", source, loaded_at, "ops@host-1")


async def test_a_campaign_version_is_kept_once_the_first_run_first(stores: Stores) -> None:
    assert stores.config is not None
    first, second = _version("d1", 0), _version("d2", 30, "id: bank-double11-2026\n# v2\n")

    assert await stores.config.record_campaign(first)
    assert await stores.config.record_campaign(second)
    # The first version served again, later and by someone else: still one version.
    assert not await stores.config.record_campaign(
        CampaignVersion("d1", "bank-double11-2026", first.source, second.loaded_at, "x@y")
    )

    assert list(await stores.config.campaign_versions()) == [first, second]


async def test_campaign_versions_survive_closing_and_reopening(durable_backend: Backend) -> None:
    kept = _version("d1", 5, "id: bank-double11-2026\nname: 银行双十一\n")
    stores = await durable_backend.open()
    try:
        assert stores.config is not None
        assert await stores.config.record_campaign(kept)
    finally:
        await stores.close()
    stores = await durable_backend.open()
    try:
        assert stores.config is not None
        (found,) = await stores.config.campaign_versions()
        assert found == kept
        assert found.loaded_at.utcoffset() is not None
    finally:
        await stores.close()


async def test_a_released_event_stops_counting_once_and_its_retry_counts_again(
    stores: Stores,
) -> None:
    limits = stores.limits
    reserved = event("e1", type_="reservation")
    assert dict((await limits.observe(reserved, "warmup")).phase_counts) == {"reservation": 1}

    # Its commit failed: the reservation must not count towards anything.
    await limits.release(reserved, [])
    await limits.release(reserved, [])  # twice undoes once
    assessed = await limits.observe(event("e2", type_="risk_assessment"), "warmup")
    assert dict(assessed.phase_counts) == {"risk_assessment": 1}
    assert dict(assessed.campaign_counts) == {"risk_assessment": 1}

    # The bank's retry of the same event counts it, once.
    retried = await limits.observe(reserved, "warmup")
    assert dict(retried.phase_counts) == {"reservation": 1, "risk_assessment": 1}
    again = await limits.observe(reserved, "warmup")
    assert again == retried
