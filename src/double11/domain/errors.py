"""The root of double11's errors and those the pure domain raises.

The whole hierarchy is drawn in `double11.errors`; the root lives here so that
the domain stays free of imports from outside it.
"""

from __future__ import annotations


class Double11Error(Exception):
    """Base of every error double11 raises on purpose."""

    title = "double11 error"


class DomainError(Double11Error):
    """Base of every error the pure domain raises."""


class ConditionError(DomainError):
    """A condition could not be evaluated for this event (e.g. a missing profile field)."""

    title = "condition could not be evaluated"


class RequestError(DomainError):
    """A request the engine refuses; `field` names the part of it that is wrong."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {detail}" if field else detail)
        self.detail = detail
        self.field = field


class InvalidInput(RequestError):
    """A request that is malformed or refers to something unknown; nothing was written."""

    title = "invalid input"


class UnknownEventType(InvalidInput):
    title = "unknown event type"


class UnknownCustomer(InvalidInput):
    title = "unknown customer"


class EventTooFarAhead(InvalidInput):
    title = "event is too far in the future"


class Conflict(RequestError):
    title = "conflict"


class EventIdReused(Conflict):
    """An event id was sent again with a different body."""

    title = "event id reused with a different body"
