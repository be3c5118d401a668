"""Projection classes: a read model's name and its handlers per event class.

A :class:`Projection` keeps its read model anywhere; an :class:`SQLiteProjection` (or any
other :class:`WritingProjection`, such as ``busway.postgres.PostgresProjection``) writes
through the runner's connection, so its writes commit with the checkpoint.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from .._when import declared
from ..errors import (
    ProjectionError,
)
from ..eventstore import RecordedEvent

__all__ = ["Progress", "Projection", "SQLiteProjection", "WritingProjection"]

_log = logging.getLogger("busway.projections")

Progress = Callable[[int, int], object]
"""Called as ``progress(position, head)`` while a runner catches up."""

C = TypeVar("C")

Handle = Callable[[RecordedEvent], None]
"""Runs a projection's handlers of one event (see :func:`dispatcher`)."""


class ProjectionBase:
    """Handlers per event class, found once per class and cached per event class."""

    name: str
    """Keys the projection's checkpoint: changing it starts the projection over."""

    _handlers: ClassVar[tuple[tuple[type, Callable[..., Any]], ...]] = ()
    _resolved: ClassVar[dict[type, tuple[Callable[..., Any], ...]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = tuple((event_type, fn) for event_type, _, fn in declared(cls))
        cls._resolved = {}

    @classmethod
    def _handlers_for(cls, event_type: type) -> tuple[Callable[..., Any], ...]:
        try:
            return cls._resolved[event_type]
        except KeyError:
            found = tuple(fn for t, fn in cls._handlers if issubclass(event_type, t))
            cls._resolved[event_type] = found
            return found

    @classmethod
    def handled_types(cls) -> frozenset[type]:
        """Return the event classes the projection has ``@when`` handlers for."""
        return frozenset(t for t, _ in cls._handlers)

    def _name(self) -> str:
        return str(getattr(self, "name", type(self).__qualname__))

    def _cannot_rebuild(self) -> ProjectionError:
        return ProjectionError(
            self._name(),
            f"cannot be rebuilt: {type(self).__qualname__} has no reset() to clear its read "
            "model; define one",
        )


class Projection(ProjectionBase):
    """A read model built from events: a ``name`` and ``@when`` handlers per event class.

    Handlers take ``(self, event, recorded)``: the event and its
    :class:`~busway.eventstore.RecordedEvent` (stream, version, position, time). Every
    handler whose event class is the event's class or one of its bases runs, in the order
    they are defined. Define :meth:`reset` to let the runner rebuild it.
    """

    def reset(self) -> None:
        """Clear the read model before a rebuild from the first event."""
        raise self._cannot_rebuild()


class WritingProjection(ProjectionBase, Generic[C]):
    """A read model written through the connection of the runner's checkpoint transaction.

    Handlers take ``(self, event, recorded, conn)``. A subclass names the connection class
    its handlers write through (:attr:`connection_type`) and the checkpoint store whose
    transactions give one (:attr:`checkpoint_store`), so that the runner can refuse a store
    that would not commit the writes with the checkpoint.
    """

    connection_type: ClassVar[type]
    """The class of the connection the handlers, :meth:`setup` and :meth:`reset` get."""

    checkpoint_store: ClassVar[str]
    """How to make a checkpoint store that gives such connections, for the runner's errors."""

    def setup(self, conn: C) -> None:
        """Create the read model's tables if they are missing (runs when a runner is made)."""

    def reset(self, conn: C) -> None:
        """Empty the read model before a rebuild from the first event."""
        raise self._cannot_rebuild()


class SQLiteProjection(WritingProjection[sqlite3.Connection]):
    """A read model in SQLite, written in the same transaction as the runner's checkpoint.

    Handlers take ``(self, event, recorded, conn)`` and write through *conn*, inside the
    runner's transaction: they must not commit, roll back or close it (SQLite refuses the
    first two while they run, and the runner stops on any). When a handler raises, the
    runner undoes the batch and runs the handlers of the events before it again: only what
    they write through *conn* is undone. :meth:`setup` creates the tables; :meth:`reset`
    empties them for a rebuild. Run it with an
    :class:`~busway.projections.SQLiteCheckpointStore` on the read model's database.
    """

    connection_type: ClassVar[type] = sqlite3.Connection
    checkpoint_store: ClassVar[str] = "SQLiteCheckpointStore(...) on the read model's database"


def dispatcher(projection: ProjectionBase, connection: object) -> Handle:
    """Return a function that runs *projection*'s handlers of an event, made once a batch.

    A WritingProjection's handlers get *connection* too. What is left for each event is a
    lookup in the class's cache of handlers per event class, and the calls.
    """
    cls = type(projection)
    cached = cls._resolved
    resolve = cls._handlers_for
    writes = isinstance(projection, WritingProjection)

    def run(recorded: RecordedEvent) -> None:
        event = recorded.event
        try:
            handlers = cached[type(event)]
        except KeyError:  # the first event of its class
            handlers = resolve(type(event))
        for handler in handlers:
            if writes:
                handler(projection, event, recorded, connection)
            else:
                handler(projection, event, recorded)

    return run
