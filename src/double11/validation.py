"""Reading msgspec's validation messages, for the API's field errors and the campaign file's.

msgspec says e.g. "Expected `int` >= 1 - at `$.mechanics[3].limits.quota`" or
"Object missing required field `id` - at `$.mechanics[0]`". Both the HTTP API
and `double11 check` point at the field in their own words; this is the one
place that takes the message apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AT = re.compile(r"^(?P<message>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]*)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")


@dataclass(frozen=True, slots=True)
class ValidationProblem:
    """Where msgspec found a problem and what it said.

    `path` is dotted (`data.amount`, `mechanics[3].limits`); `missing` and
    `unknown` name the field a missing- or unknown-field error is about (the
    path is then its parent); `in_key` says the problem is in a mapping's key.
    """

    path: str
    message: str
    missing: str | None = None
    unknown: str | None = None
    in_key: bool = False

    @property
    def field(self) -> str:
        """The path of the field itself, the missing or unknown one included."""
        name = self.missing or self.unknown
        if name is None:
            return self.path
        return f"{self.path}.{name}" if self.path else name


def read_problem(message: str) -> ValidationProblem:
    """Take msgspec's validation message apart."""
    match = _AT.match(message)
    assert match is not None  # the pattern matches every string
    path = (match.group("path") or "").lstrip(".")
    text = match.group("message")
    missing = _MISSING.fullmatch(text)
    unknown = _UNKNOWN.fullmatch(text)
    return ValidationProblem(
        path=path,
        message=text,
        missing=missing.group("name") if missing else None,
        unknown=unknown.group("name") if unknown else None,
        in_key=match.group("key") is not None,
    )
