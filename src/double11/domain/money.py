"""Money is `Decimal` yuan with two places; points are integers."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def yuan(value: Decimal | int | str) -> Decimal:
    """Return `value` as yuan rounded half-up to the cent; floats are refused as inexact."""
    if isinstance(value, bool | float):
        raise TypeError("money must be Decimal, int or str, never float or bool")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of money: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not a finite amount of money: {value!r}")
    try:
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"too large an amount of money: {value!r}") from exc


def yuan_str(amount: Decimal) -> str:
    """Format yuan for the wire: always two places, never exponent notation."""
    return f"{amount.quantize(CENT, rounding=ROUND_HALF_UP):f}"
