"""The public faces: what each public module offers, and what ``import busway`` costs."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types
from typing import TypeVar

import pytest

import busway
import busway.errors

# The demo is an application to run (python -m busway.demo), not a library module.
_NOT_A_LIBRARY = ("busway.demo",)


def _public_modules() -> list[str]:
    found = ["busway"]
    for module in pkgutil.walk_packages(busway.__path__, prefix="busway."):
        name = module.name
        if any(part.startswith("_") for part in name.split(".")):
            continue
        if any(name == other or name.startswith(f"{other}.") for other in _NOT_A_LIBRARY):
            continue
        found.append(name)
    return sorted(found)


def _face(module_name: str) -> str:
    """Return the public module that exports what *module_name* defines."""
    parts = module_name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_"):
            return ".".join(parts[:i])
    return module_name


def _owned(module: types.ModuleType) -> set[str]:
    """Return the public names *module* must list in ``__all__``.

    A package only re-exports, so every public name it has is one; a plain module also
    holds what it imports for its own use, so there only what busway defines behind it.
    """
    owned = set()
    for name in dir(module):
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, types.ModuleType | TypeVar):
            continue
        home = getattr(value, "__module__", None)
        if hasattr(module, "__path__") or (
            isinstance(home, str) and _face(home) == module.__name__
        ):
            owned.add(name)
    return owned


def _ruff_order(name: str) -> tuple[int, str]:
    # The order ruff keeps __all__ in (RUF022): constants, then classes, then the rest.
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


PUBLIC_MODULES = _public_modules()


def test_public_modules_are_found() -> None:
    """The discovery sees the packages and the plain modules, not the private ones."""
    assert {"busway", "busway.errors", "busway.eventstore", "busway.testing.strategies"} <= set(
        PUBLIC_MODULES
    )
    assert not [name for name in PUBLIC_MODULES if "._" in name]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_complete_and_resolves(name: str) -> None:
    """__all__ is sorted, names every public thing the module offers, and each name exists."""
    module = importlib.import_module(name)
    listed = list(module.__all__)
    assert sorted(listed, key=_ruff_order) == listed
    assert len(set(listed)) == len(listed)
    assert _owned(module) <= set(listed)
    assert [] == [n for n in listed if not hasattr(module, n)]


def test_every_error_is_exported_at_the_top() -> None:
    """Each error of busway.errors can be imported from busway too."""
    assert set(busway.errors.__all__) <= set(busway.__all__)


def test_every_error_derives_from_the_root() -> None:
    """One ``except BuswayError`` catches everything busway raises."""
    for name in busway.errors.__all__:
        assert issubclass(getattr(busway.errors, name), busway.BuswayError)


def test_errors_keep_their_builtin_parents() -> None:
    """Code catching the builtin (LookupError, TypeError, ...) keeps working."""
    assert issubclass(busway.HandlerNotFoundError, LookupError)
    assert issubclass(busway.RegistrationError, TypeError)
    assert issubclass(busway.ValidationError, ValueError)
    assert issubclass(busway.DispatchTimeoutError, TimeoutError)
    assert issubclass(busway.InvalidArgumentError, ValueError)


def test_invalid_argument_error_is_a_value_error_of_every_module() -> None:
    """InvalidArgumentError is a ValueError right under BuswayError, not an event store error."""
    assert (busway.BuswayError, ValueError) == busway.InvalidArgumentError.__bases__
    assert not issubclass(busway.InvalidArgumentError, TypeError)
    assert not issubclass(busway.InvalidArgumentError, busway.EventStoreError)


def test_importing_busway_stays_light() -> None:
    """``import busway`` pulls in no optional piece: test tools, the CLI, psycopg, rich, OTel."""
    optional = (
        "busway.testing",
        "busway.postgres",
        "busway.otel",
        "busway.cli",
        "busway.web",
        "strawberry",
        "pytest",
        "hypothesis",
        "psycopg",
        "rich",
        "opentelemetry",
    )
    code = f"import sys, busway; print(sorted(m for m in {optional!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "[]" == out.stdout.strip()
