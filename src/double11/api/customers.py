"""PUT /v1/customers/{id} and GET /v1/customers/{id}/wallet.

Profiles are personal data: nothing here logs a profile or a customer id.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from double11.api.body import read_json_body
from double11.api.problems import invalid_body, malformed_json
from double11.api.schemas import (
    MAX_ID_LENGTH,
    CouponItem,
    CustomerIn,
    CustomerOut,
    PerkItem,
    TicketItem,
    WalletOut,
    encoder,
)
from double11.domain.customer import Customer
from double11.domain.money import CENT
from double11.domain.wallet import Wallet, WalletItem, fold
from double11.engine.pipeline import Engine
from double11.errors import InvalidInput, NotFound

_profile_decoder = msgspec.json.Decoder(CustomerIn)
_fields_decoder = msgspec.json.Decoder(dict[str, Any])
NAMED_FIELDS = frozenset(CustomerIn.__struct_fields__)
# NUMERIC(18, 2), the money column of the relational stores, holds less than this.
MAX_AUM = Decimal(10) ** 16
# The form a profile's aum may take as a string: plain digits, never exponents or NaN.
AUM_STRING = re.compile(r"[0-9]{1,16}(\.[0-9]{1,2})?")
_SCALARS = (str, int, float, bool, type(None))


def _customer_id(request: Request) -> str:
    customer_id: str = request.path_params["id"]
    if len(customer_id) > MAX_ID_LENGTH:
        raise InvalidInput(f"must be at most {MAX_ID_LENGTH} characters", "id")
    return customer_id


def _aum(amount: Decimal, sent: Any) -> Decimal:
    if isinstance(sent, str) and not AUM_STRING.fullmatch(sent):
        raise InvalidInput('must be an amount in yuan such as "1000.00"', "aum")
    if not amount.is_finite() or amount < 0:
        raise InvalidInput("must be a finite, non-negative amount in yuan", "aum")
    # The bound comes first: quantizing a huge amount overflows Decimal's precision.
    if amount >= MAX_AUM or amount != amount.quantize(CENT):
        raise InvalidInput("must have at most two decimal places and be below 10^16", "aum")
    return amount.quantize(CENT)


def _extra(fields: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for name, value in fields.items():
        if name in NAMED_FIELDS:
            continue
        scalar = isinstance(value, _SCALARS)
        if not scalar and not (
            isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value)
        ):
            raise InvalidInput("must be a string, number, boolean, null or a list of them", name)
        extra[name] = value
    return extra


def to_customer(customer_id: str, body: bytes) -> Customer:
    """Decode and validate a profile body for the customer the path names."""
    try:
        profile = _profile_decoder.decode(body)
        fields = _fields_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_body(exc, CustomerIn) from None
    except msgspec.DecodeError as exc:
        raise malformed_json(exc) from None
    if profile.id is not None and profile.id != customer_id:
        raise InvalidInput("must equal the id in the path, or be left out", "id")
    return Customer(
        id=customer_id,
        age=profile.age,
        aum=_aum(profile.aum, fields.get("aum")),
        is_new=profile.is_new,
        tier=profile.tier,
        credit_grade=profile.credit_grade,
        risk_tolerance=profile.risk_tolerance,
        segments=frozenset(profile.segments),
        devices=tuple(profile.devices),
        holdout=profile.holdout,
        extra=_extra(fields),
    )


def profile_body(customer: Customer) -> bytes:
    """The profile as JSON: the named fields, then the extra ones."""
    named = CustomerOut(
        id=customer.id,
        age=customer.age,
        aum=customer.aum,
        is_new=customer.is_new,
        tier=customer.tier,
        credit_grade=customer.credit_grade,
        risk_tolerance=customer.risk_tolerance,
        segments=sorted(customer.segments),
        devices=list(customer.devices),
        holdout=customer.holdout,
    )
    out = msgspec.structs.asdict(named)
    for name, value in customer.extra.items():
        out.setdefault(name, value)
    return encoder.encode(out)


def _granted(item: WalletItem, zone: tzinfo) -> dict[str, Any]:
    entry = item.entry
    return {
        "entry_id": entry.id,
        "mechanic_id": entry.mechanic_id,
        "event_id": entry.event_id,
        # The event's own offset, whatever its sender used: shown in the campaign's zone.
        "granted_at": entry.at.astimezone(zone),
        "state": item.state,
    }


def wallet_out(wallet: Wallet, as_of: datetime, zone: tzinfo) -> WalletOut:
    """The wire form of a folded wallet, every instant in `zone`, the campaign's."""
    coupons = []
    for item in wallet.coupons:
        attributes = dict(item.entry.attributes)
        expires_at = None
        if expires := attributes.get("expires_at"):
            # The ledger keeps it in the offset the campaign file gave; the attribute is
            # rewritten too, so that one answer never shows one instant in two zones.
            expires_at = datetime.fromisoformat(expires).astimezone(zone)
            attributes["expires_at"] = expires_at.isoformat()
        coupons.append(
            CouponItem(
                **_granted(item, zone),
                coupon=attributes.get("coupon", ""),
                expires_at=expires_at,
                attributes=attributes,
            )
        )
    return WalletOut(
        customer_id=wallet.customer_id,
        as_of=as_of.astimezone(zone),
        points=wallet.points,
        perks=[
            PerkItem(**_granted(i, zone), perk=i.entry.attributes.get("perk", ""))
            for i in wallet.perks
        ],
        coupons=coupons,
        lottery_tickets=[
            TicketItem(**_granted(i, zone), quantity=i.entry.quantity)
            for i in wallet.lottery_tickets
        ],
        active_tickets=wallet.ticket_count,
    )


class CustomersEndpoint:
    """Profiles in, wallets out."""

    def __init__(self, engine: Engine, body_limit: int) -> None:
        self.engine = engine
        self.body_limit = body_limit

    async def put(self, request: Request) -> Response:
        """Create or replace a profile: 201 when created, 200 when replaced."""
        customer_id = _customer_id(request)
        body = await read_json_body(request, self.body_limit)
        customer = to_customer(customer_id, body)
        created = await self.engine.stores.customers.put_customer(customer)
        headers = {"Location": f"/v1/customers/{quote(customer_id, safe='')}"} if created else None
        return Response(
            profile_body(customer),
            status_code=201 if created else 200,
            headers=headers,
            media_type="application/json",
        )

    async def wallet(self, request: Request) -> Response:
        """The customer's wallet folded from the ledger as of the engine's clock; 404 if unknown."""
        customer_id: str = request.path_params["id"]
        stores = self.engine.stores
        if await stores.customers.get_customer(customer_id) is None:
            raise NotFound(f"no customer {customer_id!r}")
        now = self.engine.clock.now()
        wallet = fold(customer_id, await stores.events.ledger_for(customer_id), now)
        out = wallet_out(wallet, now, self.engine.campaign.zone)
        return Response(encoder.encode(out), media_type="application/json")
