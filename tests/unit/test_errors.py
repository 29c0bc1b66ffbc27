"""The error tree drawn in `double11.errors` is the one the code builds."""

from __future__ import annotations

import re

import double11.errors

# A drawn line: the tree's branches, then a class name, then what it means.
_DRAWN = re.compile(r"^(?P<indent>[\s│├└─]*)(?P<name>[A-Z]\w+)")


def drawn_parents() -> dict[str, str | None]:
    """Each class in the docstring's drawing and the class drawn above it."""
    assert double11.errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name) from the root down
    for line in double11.errors.__doc__.splitlines():
        found = _DRAWN.match(line)
        if found is None or not line.startswith("    "):
            continue
        column = len(found["indent"])
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[found["name"]] = stack[-1][1] if stack else None
        stack.append((column, found["name"]))
    return parents


def test_every_error_is_drawn_under_the_class_it_derives_from() -> None:
    for name, parent in drawn_parents().items():
        cls = getattr(double11.errors, name)
        expected = [] if parent is None else [getattr(double11.errors, parent)]
        assert [b for b in cls.__bases__ if b is not Exception] == expected, name


def test_every_exported_error_is_in_the_drawing() -> None:
    assert set(drawn_parents()) == set(double11.errors.__all__)
