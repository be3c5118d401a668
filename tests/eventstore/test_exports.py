"""The public face of busway.eventstore, beyond its __all__ (checked in tests/test_exports.py)."""

from __future__ import annotations

import subprocess
import sys
import typing

import busway.errors
import busway.eventstore


def test_event_store_errors_come_from_busway_errors() -> None:
    """The event store's errors are the ones in busway.errors, under EventStoreError.

    InvalidArgumentError, which every part of busway raises, is the one exception.
    """
    general = busway.errors.InvalidArgumentError
    for name in busway.eventstore.__all__:
        value = getattr(busway.eventstore, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert value is getattr(busway.errors, name)
            assert value is general or issubclass(value, busway.errors.EventStoreError)


def test_concrete_classes_are_final() -> None:
    """Concrete public classes are marked final; protocols are not."""
    protocols = {"AsyncEventStore", "EventStore", "Serializer"}
    for name in busway.eventstore.__all__:
        value = getattr(busway.eventstore, name)
        if isinstance(value, type) and not issubclass(value, BaseException):
            assert getattr(value, "__final__", False) is (name not in protocols), name


def test_importing_the_event_store_stays_light() -> None:
    """``import busway.eventstore`` pulls in neither pytest nor hypothesis nor busway.testing."""
    code = (
        "import sys, busway.eventstore; "
        "print(sorted(m for m in ('busway.testing', 'pytest', 'hypothesis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == out.stdout.strip()


def test_sentinels() -> None:
    """NO_STREAM is 0; ANY and STREAM_EXISTS print as their names."""
    assert 0 == busway.eventstore.NO_STREAM
    assert "ANY" == repr(busway.eventstore.ANY) == str(busway.eventstore.ANY)
    assert "STREAM_EXISTS" == repr(busway.eventstore.STREAM_EXISTS)
    assert typing.get_args(busway.eventstore.ExpectedVersion)
