"""The shortcuts the hot path takes give what the plain way gives, on many generated cases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import double11.adapters.memory as memory
from double11.adapters.memory import RETAIN_S, MemoryStore
from double11.domain.campaign import (
    Campaign,
    CapPeriod,
    EventType,
    Limits,
    Mechanic,
    Phase,
    PointsGrant,
)
from double11.domain.customer import Customer
from double11.domain.decision import Decision
from double11.domain.events import Event
from double11.domain.facts import CustomerState, Facts
from double11.domain.limits import Claim, ClaimOutcome
from double11.domain.rules import Rules, _LocalDays
from double11.engine.pipeline import fingerprint
from double11.engine.ports import EventRecord
from double11.risk.step import NO_RULES

checked = settings(max_examples=300, deadline=None)

# Fixed offsets of every kind (zero, whole minutes, with seconds and microseconds) and
# zones with daylight saving time, whose offsets had seconds before 1900.
zones = st.one_of(
    st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(timezone),
    st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m))),
    st.sampled_from(
        [UTC, ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/London"), ZoneInfo("America/Santiago")]
    ),
)
aware = st.datetimes(timezones=zones)

_reference_encoder = msgspec.json.Encoder(order="sorted")


def reference_fingerprint(event: Event) -> str:
    """The fingerprint as every store has it: the body with `at` in isoformat()."""
    body = _reference_encoder.encode(
        [event.type, event.customer_id, event.at.isoformat(), event.data]
    )
    return hashlib.blake2b(body, digest_size=16).hexdigest()


@checked
@given(at=aware, data=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_the_fingerprint_is_the_digest_of_the_body_with_the_instant_in_isoformat(
    at: datetime, data: dict[str, str]
) -> None:
    event = Event("e1", "checkin", "c1", at, data)
    assert fingerprint(event) == reference_fingerprint(event)


def test_a_fingerprint_stays_what_it_was() -> None:
    # Stores keep fingerprints: a replay after an upgrade must still match its original.
    at = datetime(2026, 11, 11, 10, 0, 0, 123, tzinfo=timezone(timedelta(hours=8)))
    event = Event("e1", "deposit", "c1", at, {"amount": "1000.00"})
    assert fingerprint(event) == "123a8de83be56ed7afa64c1fca790fda"


IN_2026 = st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC))


# A zone whose clocks go back across midnight (24:00 -> 23:00 in April) and forward
# over it (24:00 -> 01:00 in September), and one whose midnights are all ordinary.
@pytest.mark.parametrize("zone", ["America/Santiago", "Europe/London", "Asia/Shanghai"])
@checked
@given(instants=st.lists(IN_2026, min_size=1, max_size=30))
def test_a_per_day_cap_counts_the_local_day_of_every_instant(
    zone: str, instants: list[datetime]
) -> None:
    # Instants one after another (the common case, where the day is remembered)
    # and in any order, around the year's changes of offset.
    rules = Rules(campaign_in(zone))
    customer = Customer("c1")
    for at in [*sorted(instants), *instants]:
        facts = Facts(customer, Event("e1", "checkin", "c1", at), CustomerState(), "all")
        (claim,) = rules.plan(facts).claims
        assert claim.cap_bucket == at.astimezone(ZoneInfo(zone)).date().isoformat()


@pytest.mark.parametrize(
    "start",
    [
        # 5 April 00:00 -03:00 becomes 4 April 23:00 -04:00: that day's last hour comes twice.
        datetime(2026, 4, 4, 20, tzinfo=UTC),
        # 6 September 00:00 -04:00 becomes 01:00 -03:00: that day has no first hour.
        datetime(2026, 9, 5, 20, tzinfo=UTC),
    ],
)
def test_a_per_day_cap_counts_each_side_of_a_midnight_the_clocks_change_at(
    start: datetime,
) -> None:
    rules = Rules(campaign_in("America/Santiago"))
    zone = ZoneInfo("America/Santiago")
    walk = [start + timedelta(minutes=m) for m in range(0, 10 * 60, 7)]
    for at in [*walk, *reversed(walk)]:  # forwards, and back as late events come in
        facts = Facts(Customer("c1"), Event("e1", "checkin", "c1", at), CustomerState(), "all")
        (claim,) = rules.plan(facts).claims
        assert claim.cap_bucket == at.astimezone(zone).date().isoformat()


class BackOverMidnight(tzinfo):
    """A zone whose clocks go back from 00:30 on 6 April 2026 to 23:30 the day before."""

    CHANGE = datetime(2026, 4, 6, 3, 30, tzinfo=UTC)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        assert dt is not None
        wall = dt.replace(tzinfo=None)
        before = wall - timedelta(hours=-3) < self.CHANGE.replace(tzinfo=None)
        after = wall - timedelta(hours=-4) >= self.CHANGE.replace(tzinfo=None)
        if before and after:  # a wall time that comes twice: fold says which
            return timedelta(hours=-4 if dt.fold else -3)
        return timedelta(hours=-3 if before else -4)

    def fromutc(self, dt: datetime) -> datetime:
        utc = dt.replace(tzinfo=UTC)
        offset = timedelta(hours=-3 if utc < self.CHANGE else -4)
        return (dt + offset).replace(fold=int(utc >= self.CHANGE and utc < self.CHANGE + HOUR))

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "BOM"


HOUR = timedelta(hours=1)


def test_a_day_the_clocks_leave_and_come_back_to_is_not_remembered_as_one() -> None:
    zone = BackOverMidnight()
    days = _LocalDays(zone)
    first_half_hour = BackOverMidnight.CHANGE - timedelta(minutes=15)  # 00:15 on 6 April
    # Later events of 6 April teach the day; the hour after the change is 5 April again.
    assert days.of(BackOverMidnight.CHANGE + 2 * HOUR) == "2026-04-06"
    assert days.of(first_half_hour) == "2026-04-06"
    assert days.of(BackOverMidnight.CHANGE + timedelta(minutes=10)) == "2026-04-05"


def campaign_in(zone: str) -> Campaign:
    """A year-long campaign in `zone` with one daily check-in grant."""
    return Campaign(
        id="c",
        name="c",
        timezone=zone,
        phases=(Phase("all", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),),
        event_types={"checkin": EventType("checkin")},
        mechanics=(
            Mechanic(
                "daily",
                frozenset({"checkin"}),
                frozenset({"all"}),
                (PointsGrant(10),),
                Limits(per_customer=1, per=CapPeriod.DAY),
            ),
        ),
    )


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_duplicate_taking_after_its_original_committed_takes_nothing_twice_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeMonotonic()
    monkeypatch.setattr(memory, "monotonic", clock)
    store = MemoryStore()
    at = datetime(2026, 11, 1, tzinfo=UTC)
    first = Event("e1", "checkin", "c1", at)
    claim = Claim("e1", "m1", "c1", quota=1)
    await store.observe(first, "warmup")
    assert await store.take([claim]) == {"m1": ClaimOutcome.TAKEN}
    await store.commit(record(first, claim))
    # A duplicate that was in flight meanwhile takes the quota's only unit again: it
    # gets the claim its original committed, while other events keep committing.
    for n in range(int(RETAIN_S)):
        clock.now += 1.0 - 1e-6
        await store.commit(record(Event(f"o{n}", "checkin", "c2", at), Claim(f"o{n}", "m2", "c2")))
        assert await store.take([claim]) == {"m1": ClaimOutcome.TAKEN}
    assert (await store.usage())["m1"].granted == 1
    # Its state was dropped at the commit: a duplicate finds the event from then on.
    assert first.id not in store._observed
    # Long after, the marks are gone too: only the committed event itself stands.
    for n in range(3 * int(RETAIN_S)):
        clock.now += 1.0
        await store.commit(record(Event(f"l{n}", "checkin", "c2", at), Claim(f"l{n}", "m2", "c2")))
    assert ("e1", "m1") not in store._recent
    assert await store.find_event(first.id) is not None


def record(event: Event, *claims: Claim) -> EventRecord:
    decision = Decision(event.id, event.customer_id, event.type, None, NO_RULES, (), (), event.at)
    return EventRecord(event, "", None, decision, claims)
