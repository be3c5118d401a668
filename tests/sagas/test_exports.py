"""The public faces of busline.sagas and busline.clock."""

from __future__ import annotations

import types

import busline.clock
import busline.errors
import busline.sagas


def test_sagas_all_is_sorted_and_complete() -> None:
    """busline.sagas only re-exports, and __all__ names all of it, sorted."""
    public = {
        name
        for name, value in vars(busline.sagas).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(busline.sagas.__all__) == busline.sagas.__all__
    assert public == set(busline.sagas.__all__)


def test_clock_all_is_sorted_and_complete() -> None:
    """busline.clock exports every public class it defines, sorted."""
    defined = {
        name
        for name, value in vars(busline.clock).items()
        if not name.startswith("_") and getattr(value, "__module__", "") == "busline.clock"
    }
    assert sorted(busline.clock.__all__) == busline.clock.__all__
    assert defined == set(busline.clock.__all__)


def test_saga_errors_come_from_busline_errors() -> None:
    """Each saga error is the one in busline.errors, under BuslineError."""
    for name in ("SagaConcurrencyError", "SagaDefinitionError", "SagaError"):
        error = getattr(busline.sagas, name)
        assert error is getattr(busline.errors, name)
        assert issubclass(error, busline.errors.BuslineError)
    assert issubclass(busline.sagas.SagaConcurrencyError, busline.errors.ConcurrencyError)
