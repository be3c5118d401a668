"""The saga errors are busway's own, under BuswayError (__all__ is in tests/test_exports.py)."""

from __future__ import annotations

import busway.errors
import busway.sagas


def test_saga_errors_come_from_busway_errors() -> None:
    """Each saga error is the one in busway.errors, under BuswayError."""
    for name in ("SagaConcurrencyError", "SagaDefinitionError", "SagaError"):
        error = getattr(busway.sagas, name)
        assert error is getattr(busway.errors, name)
        assert issubclass(error, busway.errors.BuswayError)
    assert issubclass(busway.sagas.SagaConcurrencyError, busway.errors.ConcurrencyError)
