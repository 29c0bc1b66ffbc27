"""What a condition may read about one event: the profile, the event and campaign state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field

from double11.domain.customer import Customer
from double11.domain.events import Event
from double11.domain.values import value


@value
class CustomerState:
    """A customer's campaign state as of one event, that event included.

    `phase_counts` counts this customer's events by type in the event's phase,
    `campaign_counts` in the whole campaign; `perks` are the perks they hold.
    """

    phase_counts: Mapping[str, int] = field(default_factory=dict)
    campaign_counts: Mapping[str, int] = field(default_factory=dict)
    perks: frozenset[str] = frozenset()


@value
class Facts:
    """Everything a condition sees when it is evaluated."""

    customer: Customer
    event: Event
    state: CustomerState
    phase: str | None
