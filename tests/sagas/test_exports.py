"""The public faces of busway.sagas and busway.clock."""

from __future__ import annotations

import types

import busway.clock
import busway.errors
import busway.sagas


def test_sagas_all_is_sorted_and_complete() -> None:
    """busway.sagas only re-exports, and __all__ names all of it, sorted."""
    public = {
        name
        for name, value in vars(busway.sagas).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(busway.sagas.__all__) == busway.sagas.__all__
    assert public == set(busway.sagas.__all__)


def test_clock_all_is_sorted_and_complete() -> None:
    """busway.clock exports every public class it defines, sorted."""
    defined = {
        name
        for name, value in vars(busway.clock).items()
        if not name.startswith("_") and getattr(value, "__module__", "") == "busway.clock"
    }
    assert sorted(busway.clock.__all__) == busway.clock.__all__
    assert defined == set(busway.clock.__all__)


def test_saga_errors_come_from_busway_errors() -> None:
    """Each saga error is the one in busway.errors, under BuswayError."""
    for name in ("SagaConcurrencyError", "SagaDefinitionError", "SagaError"):
        error = getattr(busway.sagas, name)
        assert error is getattr(busway.errors, name)
        assert issubclass(error, busway.errors.BuswayError)
    assert issubclass(busway.sagas.SagaConcurrencyError, busway.errors.ConcurrencyError)
