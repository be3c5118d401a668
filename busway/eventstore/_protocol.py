"""What every event store offers, sync and async; backends are proven by the contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Protocol, Self, runtime_checkable

from ._live import AsyncLiveEvents, LiveEvents
from ._serialization import EventTypes
from ._types import ANY, ExpectedVersion, RecordedEvent

__all__ = ["AsyncEventStore", "EventStore"]


@runtime_checkable
class EventStore(Protocol):
    """Streams of events, each versioned from 1, in one global order of positions.

    ``busway.testing.EventStoreContract`` checks that a backend keeps every promise below.
    """

    @property
    def types(self) -> EventTypes:
        """The registry the store encodes and decodes events with, and its serializer."""
        ...

    def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append *events* (plain events or NewEvents) atomically; return the new version.

        Raise ConcurrencyError, writing nothing, if the stream is not at *expected_version*.
        Re-appending the same NewEvent ids right after *expected_version* (anywhere in the
        stream for ANY) writes nothing and returns the version after them; an id stored
        anywhere else raises DuplicateEventError.
        """
        ...

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Return a stream's events from *from_version* on, inclusive, at most *limit*.

        Forwards, *from_version* defaults to 1; backwards (newest first), to the last one.
        """
        ...

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Iterate over every stream's events in position order, from *from_position* on.

        The iterator fetches a page at a time, so memory stays flat however many events
        there are; events appended while iterating are seen if their positions come later.
        *types* keeps only events of those classes or stored type names.
        """
        ...

    def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        ...

    def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        ...

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, ordered by id, after *after*."""
        ...

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> LiveEvents:
        """Follow the store: every event from *from_position* on, then each new one.

        The stream yields events in position order, each once, waiting while there is
        nothing new: woken at once if the store has an ``appended`` signal, else reading
        again every *poll_interval* seconds. A backend returns ``LiveEvents(self, ...)``.
        """
        ...

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class AsyncEventStore(Protocol):
    """The async twin of :class:`EventStore`: the same methods and promises, awaited."""

    @property
    def types(self) -> EventTypes:
        """The registry the store encodes and decodes events with, and its serializer."""
        ...

    async def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append *events* atomically and return the stream's new version."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Return a stream's events from *from_version* on, inclusive, at most *limit*."""
        ...

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate asynchronously over every stream's events in position order."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        ...

    async def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        ...

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """Iterate asynchronously over ``(stream_id, version)`` of every stream, by id."""
        ...

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> AsyncLiveEvents:
        """Follow the store asynchronously; a backend returns ``AsyncLiveEvents(self, ...)``."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
