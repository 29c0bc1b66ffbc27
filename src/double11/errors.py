"""Every error double11 raises, in one hierarchy.

    Double11Error
    ├── DomainError (double11.domain.errors)
    │   ├── ConditionError          a condition failed on one event's facts
    │   └── RequestError            a refused request; `.field` names what is wrong
    │       ├── InvalidInput        malformed, or names what does not exist
    │       │   ├── UnknownEventType
    │       │   ├── UnknownCustomer
    │       │   └── EventTooFarAhead
    │       └── Conflict
    │           └── EventIdReused   same event id, different body
    ├── CampaignFileError           the campaign file is broken; lists each problem
    ├── Unavailable                 a store failed; nothing was granted
    └── NotFound

HTTP status codes are chosen only at the API edge (`double11.api.problems`).
"""

from __future__ import annotations

from double11.domain.errors import (
    ConditionError,
    Conflict,
    DomainError,
    Double11Error,
    EventIdReused,
    EventTooFarAhead,
    InvalidInput,
    RequestError,
    UnknownCustomer,
    UnknownEventType,
)


class CampaignFileError(Double11Error):
    """A campaign file that cannot run; `problems` are `path: message` lines."""

    title = "invalid campaign file"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class NotFound(Double11Error):
    title = "not found"


class Unavailable(Double11Error):
    """A store could not be reached or failed; the event was not granted and may be retried."""

    title = "service unavailable"


__all__ = [
    "CampaignFileError",
    "ConditionError",
    "Conflict",
    "DomainError",
    "Double11Error",
    "EventIdReused",
    "EventTooFarAhead",
    "InvalidInput",
    "NotFound",
    "RequestError",
    "Unavailable",
    "UnknownCustomer",
    "UnknownEventType",
]
