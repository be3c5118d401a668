"""Repositories: load aggregates from an event store and save their new events.

A repository's work is written once, as generator *flows* that yield the I/O they need
(read a stream, append, load or save a snapshot, publish) and receive its result; the sync
:class:`Repository` and the async :class:`AsyncRepository` run them with
:func:`busway._effects.run` and :func:`~busway._effects.arun`, and only say how to perform
each request, plainly or awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import re
from collections.abc import Generator, Mapping
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar, final

import attrs

from .._async_buses import AsyncEventBus
from .._buses import EventBus
from .._effects import arun, run
from ..errors import (
    AggregateExistsError,
    AggregateNotFoundError,
    ConcurrencyError,
    InvalidArgumentError,
    RegistrationError,
    SerializationError,
)
from ..eventstore import (
    AsyncEventStore,
    CattrsSerializer,
    EventStore,
    NewEvent,
    RecordedEvent,
    make_default_converter,
)
from ._aggregate import Aggregate, encode_state, replay, restore, take_pending
from ._snapshots import InMemorySnapshotStore, Snapshot, SnapshotStore

__all__ = ["AsyncRepository", "Repository"]

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")
ES = TypeVar("ES")
EB = TypeVar("EB")

_log = logging.getLogger("busway.aggregates")


# -- the I/O a repository asks for --------------------------------------------------------


@attrs.frozen
class _ReadStream:
    stream_id: str
    from_version: int


@attrs.frozen
class _Append:
    stream_id: str
    events: list[object]
    expected_version: int
    metadata: Mapping[str, Any] | None


@attrs.frozen
class _LoadSnapshot:
    stream_id: str


@attrs.frozen
class _SaveSnapshot:
    snapshot: Snapshot


@attrs.frozen
class _Publish:
    events: list[object]


_Request: TypeAlias = _ReadStream | _Append | _LoadSnapshot | _SaveSnapshot | _Publish
_Flow: TypeAlias = Generator[_Request, Any, T]


def _ignore(snapshot: Snapshot, why: str) -> None:
    _log.warning(
        "ignored the snapshot of %r at version %d: %s; loading it by replaying its events instead",
        snapshot.stream_id,
        snapshot.version,
        why,
    )


def _unvouched(snapshot: Snapshot, history: list[RecordedEvent]) -> str | None:
    """Say why *history*, read from the snapshot's version on, does not vouch for it; or None."""
    if not history:
        return (
            f"its stream has no event at version {snapshot.version} (an append rolled back, "
            "a backup restored or a write lost)"
        )
    if history[0].event_id != snapshot.event_id:
        return (
            f"the stream's event at version {snapshot.version} is not the one it was taken "
            "after (the events it sums up were rolled back or lost, and others written since)"
        )
    return None


def _default_prefix(aggregate_type: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", aggregate_type.__name__).lower() + "-"


class _RepositoryCore(Generic[A, ES, EB]):
    """What both repositories decide, with no I/O: streams, versions, snapshots.

    *ES* is the kind of event store a repository reads, *EB* the event buses it publishes to.
    """

    _buses: ClassVar[tuple[type, ...]]

    def __init__(
        self,
        store: ES,
        aggregate_type: type[A],
        *,
        stream_prefix: str | None = None,
        snapshot_every: int | None = None,
        snapshots: SnapshotStore | None = None,
        event_bus: EB | None = None,
    ) -> None:
        if event_bus is not None and not isinstance(event_bus, self._buses):
            raise RegistrationError(
                f"{type(self).__name__}(event_bus=...) takes "
                f"{' or '.join(b.__name__ for b in self._buses)}, got {event_bus!r}"
                + (
                    "; an AsyncEventBus is awaited, so it needs an AsyncRepository"
                    if isinstance(event_bus, AsyncEventBus)
                    else ""
                )
            )
        if not (isinstance(aggregate_type, type) and issubclass(aggregate_type, Aggregate)):
            raise RegistrationError(
                f"a repository stores Aggregate subclasses, not {aggregate_type!r}"
            )
        if snapshot_every is not None and (type(snapshot_every) is not int or snapshot_every < 1):
            raise InvalidArgumentError("snapshot_every", snapshot_every, "None or an int >= 1")
        if snapshots is not None and snapshot_every is None:
            raise InvalidArgumentError(
                "snapshot_every",
                snapshot_every,
                "an int >= 1 when snapshots= is given (how many events between snapshots)",
            )
        prefix = _default_prefix(aggregate_type) if stream_prefix is None else stream_prefix
        if not isinstance(prefix, str):
            raise InvalidArgumentError("stream_prefix", prefix, "a str")
        self.store = store
        self.event_bus = event_bus
        self.aggregate_type = aggregate_type
        self.stream_prefix = prefix
        self.snapshot_every = snapshot_every
        self.snapshots: SnapshotStore | None = (
            None
            if snapshot_every is None
            else (InMemorySnapshotStore() if snapshots is None else snapshots)
        )
        serializer = (
            store.types.serializer if isinstance(store, EventStore | AsyncEventStore) else None
        )
        self._converter = (
            serializer.converter
            if isinstance(serializer, CattrsSerializer)
            else make_default_converter()
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} of {self.aggregate_type.__qualname__} "
            f"in streams {self.stream_prefix!r}...>"
        )

    def stream_id(self, aggregate_id: str) -> str:
        """Return the id of the stream that holds *aggregate_id*'s events."""
        if not isinstance(aggregate_id, str) or not aggregate_id:
            raise InvalidArgumentError("aggregate_id", aggregate_id, "a non-empty str")
        return self.stream_prefix + aggregate_id

    def _load(self, aggregate_id: str) -> _Flow[A]:
        stream = self.stream_id(aggregate_id)
        if self.snapshots is not None:
            aggregate = yield from self._load_from_snapshot(aggregate_id, stream)
            if aggregate is not None:
                return aggregate
        history: list[RecordedEvent] = yield _ReadStream(stream, 1)
        if not history:
            raise AggregateNotFoundError(self.aggregate_type, aggregate_id, stream)
        aggregate = self.aggregate_type(aggregate_id)
        for recorded in history:
            replay(aggregate, recorded)
        return aggregate

    def _load_from_snapshot(self, aggregate_id: str, stream: str) -> _Flow[A | None]:
        """Return the aggregate from its snapshot and the events since; None to replay them all.

        A snapshot is only a cache: one that cannot be read, or that the stream does not
        vouch for, is logged and left unused.
        """
        try:
            snapshot: Snapshot | None = yield _LoadSnapshot(stream)
        except Exception:
            _log.warning(
                "could not load the snapshot of %r; loading it by replaying its events instead",
                stream,
                exc_info=True,
            )
            return None
        aggregate = None if snapshot is None else self._restore(aggregate_id, snapshot)
        if snapshot is None or aggregate is None:
            return None
        # Read from the snapshot's own version: the stream vouches for the snapshot by holding
        # there the very event it was taken after, and the events since come in the same read.
        history: list[RecordedEvent] = yield _ReadStream(stream, snapshot.version)
        why = _unvouched(snapshot, history)
        if why is not None:
            _ignore(snapshot, why)
            return None
        for recorded in itertools.islice(history, 1, None):
            replay(aggregate, recorded)
        return aggregate

    def _restore(self, aggregate_id: str, snapshot: Snapshot) -> A | None:
        """Return the aggregate as *snapshot* keeps it, or None (and log why) if it does not fit."""
        cls = self.aggregate_type
        if snapshot.schema_version != cls.snapshot_version:
            _ignore(
                snapshot,
                f"it was taken with snapshot_version {snapshot.schema_version}, and "
                f"{cls.__qualname__} is at {cls.snapshot_version}",
            )
            return None
        try:
            return restore(cls, aggregate_id, snapshot, self._converter)
        except SerializationError as exc:
            _ignore(snapshot, str(exc))
            return None

    def _save(self, aggregate: A, metadata: Mapping[str, Any] | None, publish: bool) -> _Flow[int]:
        if not isinstance(aggregate, self.aggregate_type):
            raise InvalidArgumentError(
                "aggregate", aggregate, f"a {self.aggregate_type.__qualname__}"
            )
        if type(publish) is not bool:
            raise InvalidArgumentError("publish", publish, "True or False")
        pending = aggregate.pending_events
        if not pending:
            return aggregate.version
        loaded = aggregate.version - len(pending)
        stream = self.stream_id(aggregate.id)
        events = list(pending)
        snapshot = None
        every = self.snapshot_every
        if every is not None and aggregate.version // every > loaded // every:
            # The snapshot names the event it is taken after, so that event's id is given here.
            last = NewEvent(events[-1])
            events[-1] = last
            # Encode before appending: a state that cannot be snapshotted fails the save
            # while nothing is written yet.
            snapshot = Snapshot(
                stream,
                aggregate.version,
                last.event_id,
                self.aggregate_type.snapshot_version,
                encode_state(aggregate, self._converter),
            )
        try:
            version: int = yield _Append(stream, events, loaded, metadata)
        except ConcurrencyError as exc:
            if loaded == 0:  # a new aggregate: no reload can make its id free
                raise AggregateExistsError(
                    self.aggregate_type, aggregate.id, stream, exc.actual
                ) from exc
            raise
        saved = take_pending(aggregate)
        if snapshot is not None:
            try:
                yield _SaveSnapshot(snapshot)
            except Exception:
                # A snapshot is a cache: failing to write one must not fail a save that
                # succeeded.
                _log.warning(
                    "could not save the snapshot of %r at version %d; loads replay the "
                    "events instead",
                    snapshot.stream_id,
                    snapshot.version,
                    exc_info=True,
                )
        if publish:
            yield _Publish(saved)
        return version


@final
class Repository(_RepositoryCore[A, EventStore, EventBus]):
    """Loads aggregates from an :class:`~busway.eventstore.EventStore` and saves their events.

    ``save`` appends the pending events expecting the version the aggregate was loaded at,
    so of two writers the second gets ``ConcurrencyError`` (and the ``retry`` middleware
    can run its command again). With *snapshot_every* it keeps a snapshot every that many
    events (in *snapshots*, in memory by default) and loads from the latest one, when its
    stream still holds the event it was taken after. With an *event_bus* it publishes the
    saved events once they are appended (see :meth:`save` for the caller's transaction).
    """

    _buses = (EventBus,)

    def get(self, aggregate_id: str) -> A:
        """Return the aggregate rebuilt from its events; raise AggregateNotFoundError if none."""
        return run(self._load(aggregate_id), self._perform)

    def save(
        self,
        aggregate: A,
        *,
        metadata: Mapping[str, Any] | None = None,
        publish: bool = True,
    ) -> int:
        """Append *aggregate*'s pending events and return its version.

        Raise ``ConcurrencyError``, writing nothing and keeping the events pending, if the
        stream moved since the aggregate was loaded (``AggregateExistsError`` if it is new
        and its id is taken). The saved events are published at once,
        also when the append joined the caller's transaction, which may yet roll back; with
        ``publish=False`` none are, and the caller publishes them once it has committed.
        """
        return run(self._save(aggregate, metadata, publish), self._perform)

    def _perform(self, request: _Request) -> Any:
        match request:
            case _ReadStream(stream_id, from_version):
                return self.store.read_stream(stream_id, from_version=from_version)
            case _Append(stream_id, events, expected, metadata):
                return self.store.append(
                    stream_id, events, expected_version=expected, metadata=metadata
                )
            case _LoadSnapshot(stream_id):
                assert self.snapshots is not None
                return self.snapshots.load(stream_id)
            case _SaveSnapshot(snapshot):
                assert self.snapshots is not None
                return self.snapshots.save(snapshot)
            case _Publish(events):
                if self.event_bus is not None:
                    self.event_bus.publish_all(events)
                return None


@final
class AsyncRepository(_RepositoryCore[A, AsyncEventStore, AsyncEventBus | EventBus]):
    """The async twin of :class:`Repository`, over an :class:`~busway.eventstore.AsyncEventStore`.

    Snapshot stores are synchronous; their calls run on a worker thread. The event bus may
    be an :class:`~busway.AsyncEventBus` or an :class:`~busway.EventBus`.
    """

    _buses = (AsyncEventBus, EventBus)

    async def get(self, aggregate_id: str) -> A:
        """Return the aggregate rebuilt from its events; raise AggregateNotFoundError if none."""
        return await arun(self._load(aggregate_id), self._perform)

    async def save(
        self,
        aggregate: A,
        *,
        metadata: Mapping[str, Any] | None = None,
        publish: bool = True,
    ) -> int:
        """Append *aggregate*'s pending events and return its version (see Repository.save)."""
        return await arun(self._save(aggregate, metadata, publish), self._perform)

    async def _perform(self, request: _Request) -> Any:
        match request:
            case _ReadStream(stream_id, from_version):
                return await self.store.read_stream(stream_id, from_version=from_version)
            case _Append(stream_id, events, expected, metadata):
                return await self.store.append(
                    stream_id, events, expected_version=expected, metadata=metadata
                )
            case _LoadSnapshot(stream_id):
                assert self.snapshots is not None
                return await asyncio.to_thread(self.snapshots.load, stream_id)
            case _SaveSnapshot(snapshot):
                assert self.snapshots is not None
                return await asyncio.to_thread(self.snapshots.save, snapshot)
            case _Publish(events):
                if self.event_bus is not None:
                    published = self.event_bus.publish_all(events)
                    if inspect.isawaitable(published):
                        await published
                return None
