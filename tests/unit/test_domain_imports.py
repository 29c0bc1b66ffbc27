"""The domain is pure: it imports only the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import double11.domain

DOMAIN_PACKAGE = "double11.domain"
DOMAIN_DIR = Path(double11.domain.__file__).resolve().parent
DOMAIN_FILES = sorted(DOMAIN_DIR.rglob("*.py"))


def _module_of(path: Path) -> str:
    """The dotted module name of a file under the domain package."""
    relative = path.relative_to(DOMAIN_DIR).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join([DOMAIN_PACKAGE, *parts])


def _package_of(path: Path) -> str:
    """The package a module's relative imports start from."""
    module = _module_of(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module `source` imports, absolute, with its line; relative imports resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                found.append((node.lineno, node.module))
                continue
            base = package.split(".")
            if node.level - 1 >= len(base):
                found.append((node.lineno, "." * node.level + (node.module or "")))
                continue
            anchor = base[: len(base) - (node.level - 1)]
            target = ".".join([*anchor, node.module] if node.module else anchor)
            found.append((node.lineno, target))
    return found


def is_allowed(module: str) -> bool:
    """Standard library, or the domain package itself."""
    if module == DOMAIN_PACKAGE or module.startswith(DOMAIN_PACKAGE + "."):
        return True
    top = module.split(".")[0]
    return bool(top) and (top in sys.stdlib_module_names or top == "__future__")


def forbidden_imports(source: str, package: str = DOMAIN_PACKAGE) -> list[str]:
    return [
        f"line {line}: {mod}"
        for line, mod in imported_modules(source, package)
        if not is_allowed(mod)
    ]


def test_the_domain_package_has_modules_to_check() -> None:
    names = {p.name for p in DOMAIN_FILES}
    assert {"money.py", "campaign.py", "limits.py", "rules.py", "wallet.py"} <= names


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: p.name)
def test_every_domain_module_imports_only_the_standard_library_and_the_domain(
    path: Path,
) -> None:
    source = path.read_text(encoding="utf-8")
    assert forbidden_imports(source, _package_of(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import yaml",
        "import msgspec.json",
        "from double11.engine.ports import Clock",
        "from double11 import errors",
        "from double11.expressions import compile_condition",
        "from .. import settings",
        "from ..adapters import memory",
        "import typing\nif typing.TYPE_CHECKING:\n    from double11.engine import ports\n",
        "def f() -> None:\n    import sqlalchemy\n",
    ],
)
def test_the_import_check_catches_imports_from_outside_the_domain(source: str) -> None:
    assert forbidden_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import decimal, datetime",
        "from collections.abc import Mapping",
        "from zoneinfo import ZoneInfo",
        "from double11.domain.money import yuan",
        "from double11.domain import ledger",
        "from . import money",
        "from .money import CENT",
    ],
)
def test_the_import_check_allows_the_standard_library_and_the_domain(source: str) -> None:
    assert forbidden_imports(source) == []
