"""busway's pytest plugin: buses, event stores and a clock as fixtures, with a recorder.

pytest loads it in every run once busway is installed (``-p no:busway`` turns it off),
before coverage measurement starts, so it imports nothing of busway until a fixture is
used (busway's own import-time lines would otherwise go unmeasured), and never hypothesis.

The event store fixtures serialize events through the ``event_types`` fixture, an empty
:class:`~busway.eventstore.EventTypes` unless a conftest.py overrides it::

    @pytest.fixture
    def event_types() -> EventTypes:
        return EventTypes(OrderPlaced, OrderCancelled)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from busway import (
        AsyncCommandBus,
        AsyncEventBus,
        AsyncQueryBus,
        CommandBus,
        EventBus,
        QueryBus,
    )
    from busway.clock import FakeClock
    from busway.eventstore import EventTypes, InMemoryEventStore, SQLiteEventStore

    from ._recording import BusRecorder, Recorder

__all__ = [
    "async_command_bus",
    "async_event_bus",
    "async_query_bus",
    "command_bus",
    "event_bus",
    "event_store",
    "event_types",
    "executed",
    "fake_clock",
    "published",
    "query_bus",
    "recorder",
    "sqlite_event_store",
]


@pytest.fixture
def recorder() -> BusRecorder:
    """What this test's bus fixtures executed, answered and published."""
    from ._recording import BusRecorder

    return BusRecorder()


@pytest.fixture
def executed(recorder: BusRecorder) -> Recorder:
    """The commands this test's command bus fixtures executed, in order."""
    return recorder.executed


@pytest.fixture
def published(recorder: BusRecorder) -> Recorder:
    """The events this test's event bus fixtures published, in order."""
    return recorder.published


@pytest.fixture
def command_bus(recorder: BusRecorder) -> CommandBus:
    """An empty CommandBus whose commands the ``recorder`` keeps."""
    from busway import CommandBus

    bus = CommandBus()
    recorder.attach(bus)
    return bus


@pytest.fixture
def query_bus(recorder: BusRecorder) -> QueryBus:
    """An empty QueryBus whose queries the ``recorder`` keeps."""
    from busway import QueryBus

    bus = QueryBus()
    recorder.attach(bus)
    return bus


@pytest.fixture
def event_bus(recorder: BusRecorder, command_bus: CommandBus) -> EventBus:
    """An empty EventBus, wired to ``command_bus`` so that sagas work; it records events."""
    from busway import EventBus

    bus = EventBus(commands=command_bus)
    recorder.attach(bus)
    return bus


@pytest.fixture
def async_command_bus(recorder: BusRecorder) -> AsyncCommandBus:
    """An empty AsyncCommandBus whose commands the ``recorder`` keeps."""
    from busway import AsyncCommandBus

    bus = AsyncCommandBus()
    recorder.attach(bus)
    return bus


@pytest.fixture
def async_query_bus(recorder: BusRecorder) -> AsyncQueryBus:
    """An empty AsyncQueryBus whose queries the ``recorder`` keeps."""
    from busway import AsyncQueryBus

    bus = AsyncQueryBus()
    recorder.attach(bus)
    return bus


@pytest.fixture
def async_event_bus(recorder: BusRecorder, async_command_bus: AsyncCommandBus) -> AsyncEventBus:
    """An empty AsyncEventBus wired to ``async_command_bus``; it records events."""
    from busway import AsyncEventBus

    bus = AsyncEventBus(commands=async_command_bus)
    recorder.attach(bus)
    return bus


@pytest.fixture
def event_types() -> EventTypes:
    """The event classes the store fixtures accept: none, until a conftest.py says which.

    Override it in a conftest.py, or add classes in a test: ``event_types.add(OrderPlaced)``.
    """
    from busway.eventstore import EventTypes

    return EventTypes()


@pytest.fixture
def event_store(event_types: EventTypes) -> Iterator[InMemoryEventStore]:
    """An empty in-memory event store over ``event_types``, closed after the test."""
    from busway.eventstore import InMemoryEventStore

    with InMemoryEventStore(types=event_types) as store:
        yield store


@pytest.fixture
def sqlite_event_store(
    event_types: EventTypes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SQLiteEventStore]:
    """An empty SQLite event store in a temporary file, closed after the test."""
    from busway.eventstore import SQLiteEventStore

    folder: Path = tmp_path_factory.mktemp("busway-events")
    with SQLiteEventStore(folder / "events.db", types=event_types) as store:
        yield store


@pytest.fixture
def fake_clock() -> FakeClock:
    """A FakeClock at 2000-01-01 00:00 UTC, which moves only when told to."""
    from busway.clock import FakeClock

    return FakeClock()
