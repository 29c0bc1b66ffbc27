"""A customer's wallet, folded from their ledger entries; nothing is stored as a balance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from double11.domain.ledger import Asset, EntryKind, LedgerEntry


class CouponState:
    ACTIVE = "active"
    EXPIRED = "expired"
    REDEEMED = "redeemed"
    REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class WalletItem:
    """A perk, coupon or lottery ticket, with the mechanic and event that granted it."""

    entry: LedgerEntry
    state: str


@dataclass(frozen=True, slots=True)
class Wallet:
    customer_id: str
    points: int
    perks: tuple[WalletItem, ...]
    coupons: tuple[WalletItem, ...]
    lottery_tickets: tuple[WalletItem, ...]

    @property
    def ticket_count(self) -> int:
        return sum(i.entry.quantity for i in self.lottery_tickets if i.state == CouponState.ACTIVE)


def fold(customer_id: str, entries: Iterable[LedgerEntry], now: datetime) -> Wallet:
    """Fold ledger entries into a wallet as of `now`.

    Grants add; a later entry that refers to a grant (redeem, expire, reverse)
    changes that grant's state and, for points, takes its points back.
    """
    # Grants first, then what closes them: another system's clock may stamp a
    # redemption at, or even before, the instant of the grant it refers to.
    ordered = sorted(entries, key=lambda e: (e.at, e.id))
    grants = {e.id: e for e in ordered if e.kind is EntryKind.GRANT}
    points = sum(e.points for e in grants.values())
    closed: dict[str, str] = {}
    for entry in ordered:
        if entry.kind is not EntryKind.GRANT and entry.refers_to in grants:
            closed[entry.refers_to] = _CLOSING_STATE[entry.kind]
            points -= entry.points
    perks: list[WalletItem] = []
    coupons: list[WalletItem] = []
    tickets: list[WalletItem] = []
    for entry in grants.values():
        state = closed.get(entry.id, _open_state(entry, now))
        item = WalletItem(entry, state)
        if entry.asset is Asset.PERK:
            perks.append(item)
        elif entry.asset is Asset.COUPON:
            coupons.append(item)
        elif entry.asset is Asset.LOTTERY_TICKET:
            tickets.append(item)
    return Wallet(customer_id, points, tuple(perks), tuple(coupons), tuple(tickets))


_CLOSING_STATE = {
    EntryKind.REDEEM: CouponState.REDEEMED,
    EntryKind.EXPIRE: CouponState.EXPIRED,
    EntryKind.REVERSE: CouponState.REVERSED,
}


def _open_state(entry: LedgerEntry, now: datetime) -> str:
    expires = entry.attributes.get("expires_at")
    if expires is not None and now >= datetime.fromisoformat(expires):
        return CouponState.EXPIRED
    return CouponState.ACTIVE
