"""The public face: what ``import busline`` offers."""

from __future__ import annotations

import subprocess
import sys

import busline
import busline.errors


def test_all_is_sorted() -> None:
    """__all__ is kept sorted, so additions are easy to review."""
    assert sorted(busline.__all__) == busline.__all__


def test_all_names_exist_and_nothing_public_is_missing() -> None:
    """Every name in __all__ exists, and every public attribute is in __all__."""
    public = {
        name
        for name, value in vars(busline).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
    }
    assert public == set(busline.__all__)


def test_every_error_is_exported_at_the_top() -> None:
    """Each error of busline.errors can be imported from busline too."""
    assert set(busline.errors.__all__) <= set(busline.__all__)


def test_every_error_derives_from_the_root() -> None:
    """One ``except BuslineError`` catches everything busline raises."""
    for name in busline.errors.__all__:
        assert issubclass(getattr(busline.errors, name), busline.BuslineError)


def test_errors_keep_their_builtin_parents() -> None:
    """Code catching the builtin (LookupError, TypeError, ...) keeps working."""
    assert issubclass(busline.HandlerNotFoundError, LookupError)
    assert issubclass(busline.RegistrationError, TypeError)
    assert issubclass(busline.ValidationError, ValueError)
    assert issubclass(busline.DispatchTimeoutError, TimeoutError)


def test_importing_busline_stays_light() -> None:
    """``import busline`` pulls in neither the test tools nor pytest or hypothesis."""
    code = (
        "import sys, busline; "
        "print(sorted(m for m in ('busline.testing', 'pytest', 'hypothesis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "[]" == out.stdout.strip()
