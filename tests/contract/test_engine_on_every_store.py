"""The engine's exactly-once promise, held on every store."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from double11.domain.campaign import Campaign
from double11.domain.customer import Customer
from double11.domain.decision import Outcome, RiskAssessment
from double11.domain.events import Event
from double11.domain.facts import Facts
from double11.engine.clock import StartedClock
from double11.engine.pipeline import Engine, Submitted
from double11.risk.step import NO_RULES

from .builders import used
from .conftest import Backend

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI)  # in the example campaign's warm-up
IN_WARMUP = datetime(2026, 11, 1, 9, 0, tzinfo=SHANGHAI)
DOUBLE_POINTS = "early_bird_double_points"


class YieldingRisk:
    """Allows every event after yielding, as a risk step doing I/O would, so events interleave."""

    async def assess(self, facts: Facts) -> RiskAssessment:
        await asyncio.sleep(0)
        return NO_RULES


async def test_an_event_sent_many_times_at_once_is_granted_once_and_answered_alike(
    backend: Backend, example_campaign: Campaign
) -> None:
    ids = [f"c{i:02d}" for i in range(30)]
    events = [Event(f"res-{c}", "reservation", c, IN_WARMUP, {"product": "cd-3y"}) for c in ids]
    sends = [e for e in events for _ in range(3)]
    random.Random(11).shuffle(sends)
    stores = await backend.open()
    try:
        for c in ids:
            await stores.customers.put_customer(Customer(c))
        engine = Engine(example_campaign, stores, StartedClock(NOW), YieldingRisk())

        answers: list[Submitted] = await asyncio.gather(*(engine.submit(e) for e in sends))

        by_event: defaultdict[str, list[Submitted]] = defaultdict(list)
        for sent, answer in zip(sends, answers, strict=True):
            by_event[sent.id].append(answer)
        for event in events:
            got = by_event[event.id]
            assert [a.replayed for a in got].count(False) == 1
            assert all(a.decision == got[0].decision for a in got)
            grants = got[0].decision.grants
            assert grants
            assert await stores.events.ledger_for(event.customer_id) == grants
        fired = [o for a in answers for o in a.decision.outcomes if o.mechanic_id == DOUBLE_POINTS]
        assert {o.outcome for o in fired} == {Outcome.FIRED}
        assert used(await stores.limits.usage(), DOUBLE_POINTS)[0] == len(events)
    finally:
        await stores.close()
