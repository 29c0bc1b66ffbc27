"""Every instant the API answers with is in the campaign's time zone, whatever zone it came in.

Here the clock reads UTC, as the system clock does, the event is sent in UTC and the
coupon's expiry is written in UTC in the campaign file: the wallet and the campaign
still answer in Shanghai time, with the same instants.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from double11.api.campaign import campaign_out
from double11.bootstrap import open_stores
from double11.campaign_file import parse_campaign
from double11.domain.campaign import Campaign
from double11.domain.customer import Customer
from double11.engine.clock import StartedClock
from double11.engine.pipeline import Engine
from double11.risk.step import NoRiskRules

from .conftest import WARMUP_NOW

MAIN_DAY_END_UTC = "2026-11-11T16:00:00Z"


def in_utc(text: str) -> str:
    """The example campaign with its coupon valid until the main day's end, written in UTC."""
    old = "valid_until: main_day "
    assert text.count(old) == 1, "the example campaign no longer ends its coupon with main_day"
    return text.replace(old, f"valid_until: {MAIN_DAY_END_UTC} ")


@pytest.fixture
def campaign(example_text: str) -> Campaign:
    return parse_campaign(in_utc(example_text))


@pytest.fixture
def now() -> datetime:
    """The other API tests' warm-up instant, read in UTC."""
    return WARMUP_NOW.astimezone(UTC)


@pytest.fixture
async def engine(campaign: Campaign, now: datetime) -> Engine:
    # A stopped clock, so that the answer's own time is known to the microsecond.
    stores = await open_stores("memory://")
    return Engine(campaign, stores, StartedClock(now, 0), NoRiskRules())


def shanghai(text: str) -> datetime:
    """An answer's instant, checked to be written with Shanghai's offset."""
    instant = datetime.fromisoformat(text)
    assert text.endswith("+08:00"), text
    return instant


async def test_the_wallet_shows_grants_expiries_and_its_own_time_in_the_campaigns_zone(
    client: httpx.AsyncClient,
    customer: Customer,
    now: datetime,
    keys: dict[str, str],
) -> None:
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    sent_at = "2026-11-01T01:30:00Z"
    for event_id, event_type, data in (
        ("r-1", "reservation", {}),
        ("d-1", "deposit", {"amount": "60000.00"}),
    ):
        body = {"id": event_id, "type": event_type, "customer_id": "c-1", "at": sent_at}
        response = await client.post("/v1/events", json={**body, "data": data}, headers=headers)
        assert response.status_code == 200, response.text
    wallet = (await client.get("/v1/customers/c-1/wallet", headers=headers)).json()
    assert wallet["as_of"] == "2026-11-01T10:00:00+08:00"
    assert shanghai(wallet["as_of"]) == now
    [perk] = wallet["perks"]
    assert perk["granted_at"] == "2026-11-01T09:30:00+08:00"
    assert shanghai(perk["granted_at"]) == datetime.fromisoformat(sent_at)
    [coupon] = wallet["coupons"]
    assert coupon["granted_at"] == "2026-11-01T09:30:00+08:00"
    assert coupon["expires_at"] == coupon["attributes"]["expires_at"]
    assert coupon["expires_at"] == "2026-11-12T00:00:00+08:00"
    assert shanghai(coupon["expires_at"]) == datetime.fromisoformat(MAIN_DAY_END_UTC)


async def test_the_campaign_shows_its_phases_and_the_time_in_its_zone(
    client: httpx.AsyncClient, campaign: Campaign, now: datetime, keys: dict[str, str]
) -> None:
    response = await client.get("/v1/campaign", headers={"X-API-Key": keys["reader"]})
    body = response.json()
    assert body["now"] == "2026-11-01T10:00:00+08:00"
    assert shanghai(body["now"]) == now
    phases = [(p["name"], p["start"], p["end"]) for p in body["phases"]]
    assert phases == [
        ("warmup", "2026-10-27T00:00:00+08:00", "2026-11-11T00:00:00+08:00"),
        ("main_day", "2026-11-11T00:00:00+08:00", "2026-11-12T00:00:00+08:00"),
        ("review", "2026-11-12T00:00:00+08:00", "2026-12-12T00:00:00+08:00"),
    ]
    for shown, phase in zip(body["phases"], campaign.phases, strict=True):
        assert (shanghai(shown["start"]), shanghai(shown["end"])) == (phase.start, phase.end)


def test_a_campaign_in_another_zone_answers_in_that_zone(example_text: str) -> None:
    text = example_text.replace("timezone: Asia/Shanghai", "timezone: Europe/Berlin")
    berlin = parse_campaign(text)
    out = campaign_out(berlin, {}, WARMUP_NOW)
    # Central European Time: summer time ended on 25 October 2026.
    assert out.now.isoformat() == "2026-11-01T03:00:00+01:00"
    assert out.phases[0].start.isoformat() == "2026-10-26T17:00:00+01:00"
    assert out.phases[0].start == berlin.phases[0].start
