"""Reading msgspec's validation messages, for the API's field errors and the campaign file's.

msgspec says e.g. "Expected `int` >= 1 - at `$.mechanics[3].limits.quota`" or
"Object missing required field `id` - at `$.mechanics[0]`". Both the HTTP API
and `double11 check` point at the field in their own words; this is the one
place that takes the message apart, and that says in words what a field must
be, read from its type (msgspec's own words, e.g. "Expected `int | null`, got
`str`" or "Invalid enum value 'C9'", are for programmers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi

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


def expectation(root: Any, path: str, patterns: Mapping[str, str] | None = None) -> str | None:
    """What the value at `path` inside the msgspec-typed `root` must be, in words.

    E.g. "must be a positive integer" for `mechanics[3].limits.quota`, or "must be
    one of C1, C2, C3, C4, C5"; None where the path names nothing typed. `patterns`
    says in words what a string pattern means ("a lower-case name").
    """
    found = _type_at(msgspec.inspect.type_info(root), path)
    return None if found is None else _describe(found, patterns or {})


# A path's steps: a field name, a list index `[3]`, or msgspec's `[...]` for a mapping's value.
_STEP = re.compile(r"[^.\[\]]+|\[[^\]]*\]")


def _type_at(node: mi.Type, path: str) -> mi.Type | None:
    for step in _STEP.findall(path):
        node = _unwrap(node)
        if isinstance(node, mi.StructType) and not step.startswith("["):
            node_or_none = next((f.type for f in node.fields if f.encode_name == step), None)
        elif isinstance(node, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            node_or_none = node.item_type if step.startswith("[") else None
        elif isinstance(node, mi.DictType):
            node_or_none = node.value_type
        else:
            node_or_none = None
        if node_or_none is None:
            return None
        node = node_or_none
    return node


def _unwrap(node: mi.Type) -> mi.Type:
    """The type itself, without its metadata, and without `| None` when that is all there is."""
    while True:
        if isinstance(node, mi.Metadata):
            node = node.type
        elif isinstance(node, mi.UnionType):
            others = [t for t in node.types if not isinstance(t, mi.NoneType)]
            if len(others) != 1:
                return node
            node = others[0]
        else:
            return node


def _describe(node: mi.Type, patterns: Mapping[str, str]) -> str | None:
    node = _unwrap(node)
    if isinstance(node, mi.UnionType):
        words = [_describe(t, patterns) for t in node.types if not isinstance(t, mi.NoneType)]
        known = [w.removeprefix("must be ") for w in words if w is not None]
        return "must be " + " or ".join(known) if len(known) == len(words) else None
    if isinstance(node, mi.IntType):
        return _integer(node)
    if isinstance(node, mi.StrType):
        return _text(node, patterns)
    if isinstance(node, mi.EnumType):
        return "must be one of " + ", ".join(str(m.value) for m in node.cls)
    if isinstance(node, mi.LiteralType):
        return "must be one of " + ", ".join(str(v) for v in node.values)
    simple = {
        mi.BoolType: "must be true or false",
        mi.DecimalType: 'must be an amount, e.g. "1000.00"',
        mi.FloatType: "must be a number",
        mi.ListType: "must be a list",
        mi.DictType: "must be a mapping",
        mi.StructType: "must be a mapping",
    }
    if isinstance(node, mi.DateTimeType):
        if node.tz:
            return "must be an instant with an offset, e.g. 2026-11-11T00:00:00+08:00"
        return "must be an instant, e.g. 2026-11-11T00:00:00"
    return next((words for kind, words in simple.items() if isinstance(node, kind)), None)


def _integer(node: mi.IntType) -> str:
    low = node.ge if node.ge is not None else (node.gt + 1 if node.gt is not None else None)
    high = node.le if node.le is not None else (node.lt - 1 if node.lt is not None else None)
    if low is not None and high is not None:
        return f"must be a whole number from {low} to {high}"
    if low == 1:
        return "must be a positive integer"
    if low is not None:
        return f"must be a whole number of at least {low}"
    if high is not None:
        return f"must be a whole number of at most {high}"
    return "must be a whole number"


def _text(node: mi.StrType, patterns: Mapping[str, str]) -> str:
    if node.pattern is not None:
        return "must be " + patterns.get(node.pattern, f"text matching {node.pattern}")
    if node.max_length is not None:
        low = node.min_length or 0
        return f"must be text of {low} to {node.max_length} characters"
    if node.min_length:
        return f"must be text of at least {node.min_length} characters"
    return "must be text"
