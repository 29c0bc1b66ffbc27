"""The condition language: a safe subset of Python expressions, compiled once per campaign.

A condition reads `customer`, `event`, `state` and `segment`, e.g.
``customer.is_new and event.data.amount >= 1000`` or
``state.phase.reservation >= 1 and state.phase.risk_assessment >= 1``.

Safety comes in two layers. `evalidate` whitelists the syntax (comparisons,
boolean logic, arithmetic, literals, attribute access and subscripts; no
lambdas, comprehensions, f-strings, imports or assignments). On top, every
name and attribute is checked against what the campaign declares: the only
names are the four above and a few pure functions, attributes are the known
profile, event and state fields (never a dunder), and no method can be
called. The compiled code runs with empty builtins. Float literals are
turned into `Decimal` so money is compared and multiplied exactly.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import evalidate

from double11.domain.customer import Customer
from double11.domain.errors import ConditionError
from double11.domain.facts import Facts

FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
}
CUSTOMER_FIELDS = frozenset(f.name for f in fields(Customer) if f.name != "holdout")
EVENT_FIELDS = frozenset({"id", "type", "customer_id", "at", "data"})
STATE_FIELDS = frozenset({"phase", "campaign", "perks"})
_DECIMAL = "_decimal_"

_MODEL = evalidate.EvalModel(
    nodes=[
        *evalidate.base_eval_model.nodes,
        "Mult",
        "Attribute",
        "Call",
        "List",
        "Tuple",
        "Set",
    ],
    allowed_functions=list(FUNCTIONS),
    # Attribute names are checked precisely below; evalidate needs them listed too.
    attributes=[],
)


class ExpressionError(ValueError):
    """A condition that cannot be compiled; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What a condition may name: declared data fields, event types, segments."""

    data_fields: frozenset[str] = frozenset()
    numeric_fields: frozenset[str] = frozenset()  # data fields holding money or integers
    event_types: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    allow_state: bool = True


class _Checker(ast.NodeVisitor):
    """Allows only known names and attribute paths; refuses method calls."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.names = {"customer", "event", "segment", *FUNCTIONS}
        if vocab.allow_state:
            self.names.add("state")

    def visit_Name(self, node: ast.Name) -> None:
        # Reached only for a name that stands alone, not as the root of an attribute path.
        if node.id not in self.names:
            raise ExpressionError(f"unknown name {node.id!r}; use {', '.join(sorted(self.names))}")
        if node.id in ("state", "segment"):
            raise ExpressionError(f"{node.id} must be followed by {_COMPLETE[node.id]}")

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(f"only {', '.join(FUNCTIONS)} may be called")
        if node.keywords:
            raise ExpressionError("keyword arguments are not allowed")
        for arg in node.args:
            self.visit(arg)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        # A string or list repeated (`*`) or formatted (`%`) can allocate without bound,
        # whether it is a literal or comes from a field: both sides must be numbers.
        if isinstance(node.op, ast.Mult | ast.Mod) and not (
            self._numeric(node.left) and self._numeric(node.right)
        ):
            raise ExpressionError("* and % are for numbers only")
        self.generic_visit(node)

    def _numeric(self, node: ast.expr) -> bool:
        """Whether `node` can only ever be a number (decidable from the vocabulary)."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, int | float) and not isinstance(node.value, bool)
        if isinstance(node, ast.BinOp):
            return self._numeric(node.left) and self._numeric(node.right)
        if isinstance(node, ast.UnaryOp):
            return self._numeric(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "len":
                return True
            return node.func.id in ("abs", "min", "max") and all(
                self._numeric(a) for a in node.args
            )
        if isinstance(node, ast.Attribute):
            path = _attribute_path(node) or []
            if path in (["customer", "age"], ["customer", "aum"]):
                return True
            if path[:2] == ["event", "data"] and len(path) == 3:
                return path[2] in self.vocab.numeric_fields
            return path[:1] == ["state"] and len(path) == 3
        return False

    def visit_Attribute(self, node: ast.Attribute) -> None:
        path = _attribute_path(node)
        if path is None:
            raise ExpressionError(f"attribute {node.attr!r} must follow a name")
        self._check_path(path)

    def _check_path(self, path: list[str]) -> None:
        root, *rest = path
        if any(part.startswith("_") for part in rest):
            raise ExpressionError("names starting with '_' are not allowed")
        if root in FUNCTIONS or (root not in self.names and root in _ROOTS):
            raise ExpressionError(f"{root!r} cannot be used here")
        known: dict[str, Collection[str]] = {
            "customer": CUSTOMER_FIELDS,
            "event": EVENT_FIELDS,
            "state": STATE_FIELDS,
            "segment": self.vocab.segments,
        }
        if root not in known:
            raise ExpressionError(f"{root!r} has no attributes")
        first = rest[0]
        if first not in known[root]:
            raise ExpressionError(
                f"{root} has no {first!r}; known: {', '.join(sorted(known[root])) or 'none'}"
            )
        if len(rest) == 1:
            if root == "state" and first in ("phase", "campaign"):
                raise ExpressionError(f"state.{first} must be followed by an event type")
            return
        if root == "event" and first == "data" and len(rest) == 2:
            if rest[1] not in self.vocab.data_fields:
                raise ExpressionError(f"event.data has no declared field {rest[1]!r}")
            return
        if root == "state" and first in ("phase", "campaign") and len(rest) == 2:
            if rest[1] not in self.vocab.event_types:
                raise ExpressionError(f"state.{first} counts event types; {rest[1]!r} is not one")
            return
        raise ExpressionError(f"{'.'.join(path)} is not a known field")


_ROOTS = frozenset({"customer", "event", "state", "segment"})
_COMPLETE = {
    "state": ".phase.TYPE, .campaign.TYPE or .perks",
    "segment": ".NAME of a declared segment",
}


def _attribute_path(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


class _ExactNumbers(ast.NodeTransformer):
    """Turns float literals into Decimal constants, made once, so money arithmetic is exact."""

    def __init__(self) -> None:
        self.constants: dict[str, Decimal] = {}

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, float):
            name = f"{_DECIMAL}{len(self.constants)}"
            self.constants[name] = Decimal(repr(node.value))
            return ast.copy_location(ast.Name(name, ast.Load()), node)
        return node


class _Lower(ast.NodeTransformer):
    """Rewrites checked attribute paths into direct lookups, once, at compile time.

    `state.phase.X` becomes a dict lookup, `event.data.X` a `.get`, and
    `segment.X` a call of that segment's compiled condition; conditions run on
    every event, and attribute views cost several times more than this.
    """

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        path = _attribute_path(node)
        assert path is not None  # _Checker refused every other shape
        load = ast.Load()
        if path[:2] == ["event", "data"] and len(path) == 3:
            get = ast.Attribute(ast.Name("_data", load), "get", load)
            new: ast.expr = ast.Call(get, [ast.Constant(path[2])], [])
        elif path[0] == "state" and path[1] in ("phase", "campaign") and len(path) == 3:
            counts = "_phase_counts" if path[1] == "phase" else "_campaign_counts"
            get = ast.Attribute(ast.Name(counts, load), "get", load)
            new = ast.Call(get, [ast.Constant(path[2]), ast.Constant(0)], [])
        elif path == ["state", "perks"]:
            new = ast.Name("_perks", load)
        elif path[0] == "segment":
            new = ast.Call(ast.Name(f"_segment_{path[1]}", load), [ast.Name("_facts", load)], [])
        else:
            return self.generic_visit(node)
        return ast.copy_location(new, node)


_PARAMS = ("_facts", "customer", "event", "_data", "_phase_counts", "_campaign_counts", "_perks")


class CompiledCondition:
    """A condition compiled once; calling it evaluates it on one event's facts."""

    __slots__ = ("_function", "source")

    def __init__(self, source: str, function: Callable[..., Any]) -> None:
        self.source = source
        self._function = function

    def __call__(self, facts: Facts) -> bool:
        event = facts.event
        state = facts.state
        try:
            return bool(
                self._function(
                    facts,
                    facts.customer,
                    event,
                    event.data,
                    state.phase_counts,
                    state.campaign_counts,
                    state.perks,
                )
            )
        except Exception as exc:
            raise ConditionError(f"{self.source!r} failed: {type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:
        return f"CompiledCondition({self.source!r})"


def compile_condition(
    source: str,
    vocab: Vocabulary,
    segments: Mapping[str, CompiledCondition] | None = None,
) -> CompiledCondition:
    """Validate and compile `source`; raise ExpressionError saying what is not allowed."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("must be a non-empty expression")
    if len(source) > 2000:
        raise ExpressionError("is longer than 2000 characters")
    try:
        tree = ast.parse(source.strip(), "<condition>", "eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    # evalidate whitelists attribute names too; which names are allowed where is
    # checked precisely by _Checker, so give evalidate the ones in this tree.
    model = _MODEL.clone()
    model.attributes = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    try:
        evalidate.SafeAST(model).visit(tree)
    except evalidate.ValidationException as exc:
        raise ExpressionError(_refused(tree) or str(exc)) from None
    except RecursionError:
        raise ExpressionError("is nested too deeply") from None
    _Checker(vocab).visit(tree)
    numbers = _ExactNumbers()
    lowered = _Lower().visit(numbers.visit(tree))
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(name) for name in _PARAMS],
        kwonlyargs=[],
        kw_defaults=[],
        defaults=[],
    )
    function = ast.Expression(ast.Lambda(args, lowered.body))
    code = compile(ast.fix_missing_locations(function), "<condition>", "eval")
    scope: dict[str, Any] = {"__builtins__": {}, **numbers.constants, **FUNCTIONS}
    for name, condition in (segments or {}).items():
        scope[f"_segment_{name}"] = condition
    made = eval(code, scope)  # noqa: S307 - builds the lambda from the checked tree
    return CompiledCondition(source.strip(), made)


def _refused(tree: ast.AST) -> str:
    """Name the first syntax the model refuses, in words."""
    allowed = set(_MODEL.nodes)
    for node in ast.walk(tree):
        name = type(node).__name__
        if name not in allowed:
            return f"{_FRIENDLY.get(name, name)} is not allowed in a condition"
    return ""


_FRIENDLY = {
    "Lambda": "a lambda",
    "ListComp": "a comprehension",
    "SetComp": "a comprehension",
    "DictComp": "a comprehension",
    "GeneratorExp": "a generator",
    "JoinedStr": "an f-string",
    "NamedExpr": "assignment",
    "Dict": "a dict literal",
    "Starred": "unpacking",
    "Await": "await",
    "Yield": "yield",
    "Pow": "the power operator",
    "FloorDiv": "floor division",
    "BitAnd": "a bitwise operator",
    "BitOr": "a bitwise operator",
    "BitXor": "a bitwise operator",
    "LShift": "a bitwise operator",
    "RShift": "a bitwise operator",
    "Invert": "a bitwise operator",
    "MatMult": "matrix multiplication",
    "Slice": "slicing",
}
