"""Event-sourced aggregates and the repositories that load and save them.

A repository's work is written once, as generator *flows* that yield the I/O they need
(read a stream, append, load or save a snapshot, publish) and receive its result; the sync
:class:`Repository` and the async :class:`AsyncRepository` are thin drivers that perform
those requests, plainly or awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import typing
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, ClassVar, Generic, Self, TypeAlias, TypeVar, final

import attrs
import cattrs

from ._async_buses import AsyncEventBus
from ._buses import EventBus
from ._snapshots import InMemorySnapshotStore, Snapshot, SnapshotStore
from ._when import declared
from .errors import (
    AggregateNotFoundError,
    ApplierNotFoundError,
    InvalidArgumentError,
    RegistrationError,
    SerializationError,
)
from .eventstore import (
    AsyncEventStore,
    CattrsSerializer,
    EventStore,
    RecordedEvent,
    make_default_converter,
)

__all__ = ["Aggregate", "AsyncRepository", "Repository"]

A = TypeVar("A", bound="Aggregate")
T = TypeVar("T")

_log = logging.getLogger("busway.aggregates")

_Applier = Callable[[Any, Any], object]


class Aggregate:
    """A consistency boundary whose state is the sum of the events it recorded.

    Subclass it; give ``__init__`` only the id (``super().__init__(id)``) and set the state
    an aggregate has before its first event. Methods check the rules and call
    :meth:`record`; ``@when(EventType)`` methods change the state, and are the only code
    that does, so replaying the stored events rebuilds the same state. Create an aggregate
    with a classmethod that records its first event.

    Annotate the state attributes in the class body: snapshots keep those.
    """

    snapshot_version: ClassVar[int] = 1
    """Raise it when the annotated state changes shape, so older snapshots are not used."""

    _appliers: ClassVar[dict[type, _Applier]] = {}
    _resolved: ClassVar[dict[type, _Applier | None]] = {}
    _state_fields: ClassVar[dict[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers: dict[type, _Applier] = {}
        owners: dict[type, type] = {}
        for event_type, name, function in declared(cls):
            owner = next(k for k in cls.__mro__ if name in vars(k))
            if owners.get(event_type) is owner and appliers[event_type] is not function:
                raise RegistrationError(
                    f"{cls.__qualname__} has two @when methods for {event_type.__qualname__}; "
                    "an aggregate applies each event with exactly one method, so remove one"
                )
            appliers[event_type] = function
            owners[event_type] = owner
        cls._appliers = appliers
        cls._resolved = {}
        cls._state_fields = None

    def __init__(self, id: str) -> None:
        if not isinstance(id, str) or not id:
            raise InvalidArgumentError("the aggregate id", id, "a non-empty str")
        self._id = id
        self._version = 0
        self._pending: list[object] = []

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self._id!r} version {self._version}>"

    @property
    def id(self) -> str:
        """The aggregate's id; its stream is the repository's prefix plus this id."""
        return self._id

    @property
    def version(self) -> int:
        """The number of events applied, saved or pending (0 before the first)."""
        return self._version

    @property
    def pending_events(self) -> tuple[object, ...]:
        """The events recorded since the aggregate was loaded or last saved."""
        return tuple(self._pending)

    def record(self, event: object) -> None:
        """Apply *event* through its ``@when`` method, then keep it to be saved.

        If the method raises, nothing is recorded.
        """
        self._applier(type(event))(self, event)
        self._pending.append(event)
        self._version += 1

    @classmethod
    def from_history(cls, id: str, events: Iterable[object]) -> Self:
        """Rebuild an aggregate from its past events (or RecordedEvents), with nothing pending."""
        aggregate = cls(id)
        for item in events:
            event = item.event if isinstance(item, RecordedEvent) else item
            aggregate._applier(type(event))(aggregate, event)
            aggregate._version += 1
        return aggregate

    @classmethod
    def _applier(cls, event_type: type) -> _Applier:
        try:
            found = cls._resolved[event_type]
        except KeyError:
            found = next((cls._appliers[t] for t in event_type.__mro__ if t in cls._appliers), None)
            cls._resolved[event_type] = found
        if found is None:
            raise ApplierNotFoundError(cls, event_type, cls._appliers)
        return found

    def _replay(self, recorded: RecordedEvent) -> None:
        self._applier(type(recorded.event))(self, recorded.event)
        self._version = recorded.version

    def _mark_saved(self) -> list[object]:
        saved, self._pending = self._pending, []
        return saved

    # -- snapshots -------------------------------------------------------------------------

    @classmethod
    def _fields(cls) -> dict[str, Any]:
        if cls._state_fields is None:
            try:
                hints = typing.get_type_hints(cls)
            except Exception as exc:
                raise SerializationError(
                    f"the annotations of {cls.__qualname__} cannot be resolved ({exc}); a "
                    "snapshot needs the type of each state attribute"
                ) from exc
            own = set(typing.get_type_hints(Aggregate))
            cls._state_fields = {
                name: hint
                for name, hint in hints.items()
                if name not in own and typing.get_origin(hint) is not ClassVar
            }
        return cls._state_fields

    def _state(self, converter: cattrs.Converter) -> str:
        fields = self._fields()
        unknown = sorted(set(vars(self)) - {"_id", "_version", "_pending"} - set(fields))
        if unknown:
            raise SerializationError(
                f"{type(self).__qualname__} has attributes without an annotation "
                f"({', '.join(unknown)}), which a snapshot would lose; annotate them in the "
                f"class body (e.g. {unknown[0]}: int)"
            )
        data: dict[str, Any] = {}
        for name, hint in fields.items():
            try:
                value = getattr(self, name)
            except AttributeError:
                continue
            try:
                data[name] = converter.unstructure(value, unstructure_as=hint)
            except Exception as exc:
                raise SerializationError(
                    f"{type(self).__qualname__}.{name} cannot be put in a snapshot: {exc}; "
                    "register a hook for its type on the store's serializer",
                    field=name,
                ) from exc
        try:
            return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"the state of {type(self).__qualname__} is not JSON-compatible: {exc}"
            ) from exc

    @classmethod
    def _restore(cls, id: str, snapshot: Snapshot, converter: cattrs.Converter) -> Self:
        aggregate = cls(id)
        data = json.loads(snapshot.state)
        for name, hint in cls._fields().items():
            if name in data:
                try:
                    value = converter.structure(data[name], hint)
                except Exception as exc:
                    raise SerializationError(
                        f"the snapshot of stream {snapshot.stream_id!r} at version "
                        f"{snapshot.version} cannot be read into {cls.__qualname__}.{name}: "
                        f"{exc}; raise {cls.__qualname__}.snapshot_version to ignore old "
                        "snapshots",
                        field=name,
                    ) from exc
                setattr(aggregate, name, value)
        aggregate._version = snapshot.version
        return aggregate


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


def _default_prefix(aggregate_type: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", aggregate_type.__name__).lower() + "-"


class _RepositoryCore(Generic[A]):
    """What both repositories decide, with no I/O: streams, versions, snapshots."""

    def __init__(
        self,
        store: object,
        aggregate_type: type[A],
        *,
        stream_prefix: str | None,
        snapshot_every: int | None,
        snapshots: SnapshotStore | None,
    ) -> None:
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
        self.aggregate_type = aggregate_type
        self.stream_prefix = prefix
        self.snapshot_every = snapshot_every
        self.snapshots: SnapshotStore | None = (
            None
            if snapshot_every is None
            else (InMemorySnapshotStore() if snapshots is None else snapshots)
        )
        serializer = getattr(getattr(store, "types", None), "serializer", None)
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
        return self.stream_prefix + aggregate_id

    def _load(self, aggregate_id: str) -> _Flow[A]:
        stream = self.stream_id(aggregate_id)
        aggregate: A | None = None
        if self.snapshots is not None:
            snapshot: Snapshot | None = yield _LoadSnapshot(stream)
            if snapshot is not None and (
                snapshot.schema_version == self.aggregate_type.snapshot_version
            ):
                aggregate = self.aggregate_type._restore(aggregate_id, snapshot, self._converter)
        start = 1 if aggregate is None else aggregate.version + 1
        history: list[RecordedEvent] = yield _ReadStream(stream, start)
        if aggregate is None:
            if not history:
                raise AggregateNotFoundError(self.aggregate_type, aggregate_id, stream)
            aggregate = self.aggregate_type(aggregate_id)
        for recorded in history:
            aggregate._replay(recorded)
        return aggregate

    def _save(self, aggregate: A, metadata: Mapping[str, Any] | None) -> _Flow[int]:
        if not isinstance(aggregate, self.aggregate_type):
            raise InvalidArgumentError(
                "aggregate", aggregate, f"a {self.aggregate_type.__qualname__}"
            )
        pending = aggregate._pending
        if not pending:
            return aggregate.version
        loaded = aggregate.version - len(pending)
        snapshot = None
        every = self.snapshot_every
        if every is not None and aggregate.version // every > loaded // every:
            # Encode before appending: a state that cannot be snapshotted fails the save
            # while nothing is written yet.
            snapshot = Snapshot(
                self.stream_id(aggregate.id),
                aggregate.version,
                self.aggregate_type.snapshot_version,
                aggregate._state(self._converter),
            )
        version: int = yield _Append(self.stream_id(aggregate.id), list(pending), loaded, metadata)
        saved = aggregate._mark_saved()
        if snapshot is not None:
            yield _SaveSnapshot(snapshot)
        yield _Publish(saved)
        return version

    def _snapshot_failed(self, snapshot: Snapshot) -> None:
        # A snapshot is a cache: failing to write one must not fail a save that succeeded.
        _log.warning(
            "could not save the snapshot of %r at version %d; loads replay the events instead",
            snapshot.stream_id,
            snapshot.version,
            exc_info=True,
        )


@final
class Repository(_RepositoryCore[A]):
    """Loads aggregates from an :class:`~busway.eventstore.EventStore` and saves their events.

    ``save`` appends the pending events expecting the version the aggregate was loaded at,
    so of two writers the second gets ``ConcurrencyError`` (and the ``retry`` middleware
    can run its command again). With *snapshot_every* it keeps a snapshot every that many
    events (in *snapshots*, in memory by default) and loads from the latest one. With an
    *event_bus* it publishes the saved events once they are stored.
    """

    def __init__(
        self,
        store: EventStore,
        aggregate_type: type[A],
        *,
        stream_prefix: str | None = None,
        snapshot_every: int | None = None,
        snapshots: SnapshotStore | None = None,
        event_bus: EventBus | None = None,
    ) -> None:
        super().__init__(
            store,
            aggregate_type,
            stream_prefix=stream_prefix,
            snapshot_every=snapshot_every,
            snapshots=snapshots,
        )
        self.store = store
        self.event_bus = event_bus

    def get(self, aggregate_id: str) -> A:
        """Return the aggregate rebuilt from its events; raise AggregateNotFoundError if none."""
        return self._drive(self._load(aggregate_id))

    def save(self, aggregate: A, *, metadata: Mapping[str, Any] | None = None) -> int:
        """Append *aggregate*'s pending events and return its version.

        Raise ``ConcurrencyError``, writing nothing and keeping the events pending, if the
        stream moved since the aggregate was loaded.
        """
        return self._drive(self._save(aggregate, metadata))

    def _drive(self, flow: _Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(self._perform(request))
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()

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
                try:
                    self.snapshots.save(snapshot)
                except Exception:
                    self._snapshot_failed(snapshot)
                return None
            case _Publish(events):
                if self.event_bus is not None:
                    self.event_bus.publish_all(events)
                return None


@final
class AsyncRepository(_RepositoryCore[A]):
    """The async twin of :class:`Repository`, over an :class:`~busway.eventstore.AsyncEventStore`.

    Snapshot stores are synchronous; their calls run on a worker thread. The event bus may
    be an :class:`~busway.AsyncEventBus` or an :class:`~busway.EventBus`.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        aggregate_type: type[A],
        *,
        stream_prefix: str | None = None,
        snapshot_every: int | None = None,
        snapshots: SnapshotStore | None = None,
        event_bus: AsyncEventBus | EventBus | None = None,
    ) -> None:
        super().__init__(
            store,
            aggregate_type,
            stream_prefix=stream_prefix,
            snapshot_every=snapshot_every,
            snapshots=snapshots,
        )
        self.store = store
        self.event_bus = event_bus

    async def get(self, aggregate_id: str) -> A:
        """Return the aggregate rebuilt from its events; raise AggregateNotFoundError if none."""
        return await self._drive(self._load(aggregate_id))

    async def save(self, aggregate: A, *, metadata: Mapping[str, Any] | None = None) -> int:
        """Append *aggregate*'s pending events and return its version (see Repository.save)."""
        return await self._drive(self._save(aggregate, metadata))

    async def _drive(self, flow: _Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(await self._perform(request))
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()

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
                try:
                    await asyncio.to_thread(self.snapshots.save, snapshot)
                except Exception:
                    self._snapshot_failed(snapshot)
                return None
            case _Publish(events):
                if self.event_bus is not None:
                    published = self.event_bus.publish_all(events)
                    if inspect.isawaitable(published):
                        await published
                return None
