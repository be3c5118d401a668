"""The public face: what ``import busway`` offers."""

from __future__ import annotations

import subprocess
import sys

import busway
import busway.errors


def test_all_is_sorted() -> None:
    """__all__ is kept sorted, so additions are easy to review."""
    assert sorted(busway.__all__) == busway.__all__


def test_all_names_exist_and_nothing_public_is_missing() -> None:
    """Every name in __all__ exists, and every public attribute is in __all__."""
    public = {
        name
        for name, value in vars(busway).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
    }
    assert public == set(busway.__all__)


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


def test_importing_busway_stays_light() -> None:
    """``import busway`` pulls in neither the test tools nor pytest or hypothesis."""
    code = (
        "import sys, busway; "
        "print(sorted(m for m in ('busway.testing', 'pytest', 'hypothesis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "[]" == out.stdout.strip()
