"""GET /v1/campaign: the running campaign, its current phase and every mechanic's usage."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from double11.api.schemas import (
    BudgetOut,
    CampaignOut,
    EventTypeOut,
    FieldOut,
    MechanicOut,
    PhaseOut,
    QuotaOut,
    encoder,
)
from double11.domain.campaign import Campaign
from double11.domain.limits import MechanicUsage
from double11.domain.money import ZERO
from double11.engine.pipeline import Engine


def campaign_out(campaign: Campaign, usage: dict[str, MechanicUsage], now: datetime) -> CampaignOut:
    """The wire form of a campaign with its usage as of `now`, every instant in its zone.

    The loader keeps phases in UTC, for fast comparisons; the answer shows them,
    and the clock's reading, as the campaign file speaks: in the campaign's zone.
    """
    current = campaign.phase_at(now)
    zone = campaign.zone
    mechanics = []
    for m in campaign.mechanics:
        used = usage.get(m.id, MechanicUsage(0, ZERO))
        mechanics.append(
            MechanicOut(
                id=m.id,
                name=m.name,
                triggers=sorted(m.triggers),
                phases=sorted(m.phases),
                quota=QuotaOut(used=used.granted, limit=m.limits.quota),
                budget=BudgetOut(spent=used.spent, limit=m.limits.budget),
                per_customer=m.limits.per_customer,
                per=m.limits.per.value,
            )
        )
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        version=campaign.version,
        timezone=campaign.timezone,
        now=now.astimezone(zone),
        current_phase=current.name if current else None,
        phases=[
            PhaseOut(p.name, p.start.astimezone(zone), p.end.astimezone(zone))
            for p in campaign.phases
        ],
        event_types=[
            EventTypeOut(
                name=t.name,
                fields=[FieldOut(f.name, f.kind.value, f.required) for f in t.fields],
            )
            for t in campaign.event_types.values()
        ],
        mechanics=mechanics,
    )


class CampaignEndpoint:
    """Reads the campaign the engine runs and the usage its limit book reports."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def get(self, request: Request) -> Response:
        """The campaign as of the engine's clock."""
        usage = dict(await self.engine.stores.limits.usage())
        out = campaign_out(self.engine.campaign, usage, self.engine.clock.now())
        return Response(encoder.encode(out), media_type="application/json")
