"""`value`: the decorator for the value objects the engine builds for every event.

`@value` makes a slots dataclass that compares and hashes by its fields, as
`@dataclass(frozen=True, slots=True)` does, and that type checkers treat as
frozen (`dataclass_transform(frozen_default=True)`): `mypy --strict`, which
every change passes, refuses any assignment to a field. What it leaves out is
frozen's runtime guard, because that guard is paid on every construction:
a frozen `__init__` sets each field through `object.__setattr__`. Measured
here (Python 3.11, one core, 11 fields): 1.2 µs a frozen object, 0.65 µs with
an `__init__` calling each slot's descriptor, 0.24 µs this way; an event
builds a dozen of these. Objects built once (campaigns, profiles) stay
`frozen=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value(cls: type[T]) -> type[T]:
    """A slots dataclass, immutable by type, hashable by its fields."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
