"""Spans after OpenTelemetry's messaging conventions, and the trace context in stored metadata.

A bus dispatch is a span of kind INTERNAL (it runs in the caller's process, within the
caller's span); an append is a ``send`` span, and each event carries a creation context
in its metadata as ``traceparent`` (the ``send`` span's for one event, a ``create`` span's
of its own for each of several); a projection's or saga's batch is a CONSUMER ``process``
span, linked to its events' creation contexts, as the conventions ask of a consumer that
handles messages in batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager
from importlib.metadata import version
from typing import Any, Final, Generic, Self, TypeAlias, TypeVar, final, overload

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from .. import context
from .._chain import ASYNC_VARIANT
from .._effects import arun, run
from .._messages import Command, Event, Query
from .._registry import Middleware
from .._signal import Notifying, Signal
from ..errors import InvalidArgumentError, UnknownEventTypeError
from ..eventstore import (
    ANY,
    AsyncEventStore,
    AsyncLiveEvents,
    EventStore,
    EventTypes,
    ExpectedVersion,
    LiveEvents,
    NewEvent,
    RecordedEvent,
)
from ..subscriptions import BatchObserver

__all__ = ["AsyncTracedEventStore", "TracedEventStore", "batches", "traced", "tracing"]

_Attributes: TypeAlias = dict[str, str | int]

SYSTEM: Final = "busway"
S = TypeVar("S", EventStore, AsyncEventStore)

TRACEPARENT: Final = "traceparent"


def _tracer(tracer_provider: TracerProvider | None) -> Tracer:
    return trace.get_tracer("busway", version("busway"), tracer_provider=tracer_provider)


def _operation(message: object) -> str:
    """Return the verb a bus dispatches *message* with: what the conventions call its name."""
    if isinstance(message, Event):
        return "publish"
    if isinstance(message, Command | Query):
        return "execute"
    return "process"


def _attributes(operation: str, kind: str, destination: str | None) -> _Attributes:
    attributes: _Attributes = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
    }
    if destination is not None:
        attributes["messaging.destination.name"] = destination
    return attributes


def _name(operation: str, destination: str | None) -> str:
    # The conventions' span name: the operation, then the destination when there is one.
    return operation if destination is None else f"{operation} {destination}"


def tracing(*, tracer_provider: TracerProvider | None = None) -> Middleware:
    """Make a span of each dispatch, named after its verb and message type.

    ``execute PlaceOrder`` for a command or query, ``publish OrderPlaced`` for an event: an
    INTERNAL span, the child of whatever span is current, with the messaging attributes and,
    under :func:`busway.middleware.correlation` (put it before this one), the message's id
    and its correlation id as ``messaging.message.conversation_id``. A handler's exception
    is recorded on the span, which ends in error, and raised as it was. Spans go to
    *tracer_provider*, by default OpenTelemetry's global one.

    Where no SDK is set up, the tracer's span is not recording and carries no trace: the
    dispatch then goes straight on, at the cost of asking for that span alone. A span a
    sampler left out is still made current, so that what the handler does is left out too.
    """
    tracer = _tracer(tracer_provider)

    def start(message: object) -> Span:
        operation = _operation(message)
        destination = type(message).__qualname__
        return tracer.start_span(
            _name(operation, destination),
            kind=SpanKind.INTERNAL,
            attributes=_attributes(operation, "process", destination),
        )

    def flow(message: Any, span: Span) -> Generator[Any, Any, Any]:
        ctx = context.current()
        if ctx is not None and span.is_recording():
            span.set_attributes(
                {
                    "messaging.message.id": str(ctx.message_id),
                    "messaging.message.conversation_id": str(ctx.correlation_id),
                }
            )
        with trace.use_span(span, end_on_exit=True):
            return (yield message)

    def layer(message: Any, next: Callable[[Any], Any]) -> Any:
        span = start(message)
        if not span.get_span_context().is_valid:  # no SDK: nothing to record or carry on
            return next(message)
        return run(flow(message, span), next)

    def async_layer(message: Any, next: Callable[[Any], Awaitable[Any]]) -> Awaitable[Any]:
        span = start(message)
        if not span.get_span_context().is_valid:
            return next(message)
        return arun(flow(message, span), next)

    layer.__qualname__ = "tracing()"
    setattr(layer, ASYNC_VARIANT, async_layer)
    return layer


# -- appends ---------------------------------------------------------------------------------


def _stored_name(types: EventTypes, item: object) -> str:
    cls = type(item.event) if type(item) is NewEvent else type(item)
    try:
        return types.name_of(cls)
    except UnknownEventTypeError:  # the store refuses the append, and says why
        return cls.__qualname__


def _identified(item: object) -> NewEvent:
    """Return *item* as a NewEvent, whose id the spans can name before the store writes it."""
    return item if type(item) is NewEvent else NewEvent(item)


def _carrier(span: Span, given: object) -> dict[str, Any]:
    """Return *span*'s trace context as metadata, less the keys the caller's *given* has."""
    carrier: dict[str, Any] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    if isinstance(given, Mapping):
        for key in given.keys() & carrier.keys():
            del carrier[key]  # what the caller gives wins
    return carrier


@contextlib.contextmanager
def _sending(
    tracer: Tracer, types: EventTypes, stream_id: str, events: object, metadata: object
) -> Iterator[tuple[object, object]]:
    """Run an append in a ``send`` span; give the events and metadata to store, with contexts.

    One event carries the ``send`` span's context. Each of several gets a ``create`` span
    of its own, whose context it carries, and the ``send`` span links to each, as the
    conventions ask of a batch. Values the store will refuse are given to it as they are,
    so that it says what is wrong.
    """
    items = [_identified(item) for item in events] if isinstance(events, list | tuple) else []
    if not items:  # nothing to append, or what the store refuses
        yield events, metadata
        return
    names = [_stored_name(types, item) for item in items]
    destination = names[0] if len(set(names)) == 1 else None
    attributes = _attributes("send", "send", destination)
    attributes["busway.stream_id"] = str(stream_id)
    ctx = context.current()
    if ctx is not None:
        attributes["messaging.message.conversation_id"] = str(ctx.correlation_id)
    if len(items) == 1:
        attributes["messaging.message.id"] = str(items[0].event_id)
        send = tracer.start_span(
            _name("send", destination), kind=SpanKind.PRODUCER, attributes=attributes
        )
        if not send.get_span_context().is_valid:  # no SDK: store the events as they are
            yield events, metadata
            return
        with trace.use_span(send, end_on_exit=True):
            carrier = _carrier(send, metadata)
            if metadata is None or isinstance(metadata, Mapping):
                yield items, {**carrier, **(metadata or {})}
            else:
                yield items, metadata
        return
    stored = []
    links = []
    for item, name in zip(items, names, strict=True):
        message_id = str(item.event_id)
        create = tracer.start_span(
            _name("create", name),
            kind=SpanKind.PRODUCER,
            attributes={
                **_attributes("create", "create", name),
                "messaging.message.id": message_id,
                "busway.stream_id": str(stream_id),
            },
        )
        create.end()
        if not create.get_span_context().is_valid:
            yield events, metadata
            return
        own = {**_carrier(create, metadata), **item.metadata}
        stored.append(NewEvent(item.event, event_id=item.event_id, metadata=own))
        links.append(Link(create.get_span_context(), {"messaging.message.id": message_id}))
    attributes["messaging.batch.message_count"] = len(items)
    # Its context is no event's creation context: the conventions make it a CLIENT span.
    with tracer.start_as_current_span(
        _name("send", destination), kind=SpanKind.CLIENT, attributes=attributes, links=links
    ):
        yield stored, metadata


def _listed(events: Iterable[object]) -> Iterable[object]:
    # Events given otherwise than as a list are read once, to name them, and the list
    # appended; what is no list of events at all goes to the store, which says so.
    if isinstance(events, list | tuple | str | bytes | Mapping) or not isinstance(events, Iterable):
        return events
    return list(events)


def _no_signal(store: object) -> AttributeError:
    return AttributeError(f"{store!r} has no 'appended' signal: readers of it poll")


class _Traced(Generic[S]):
    """What both traced stores share: the wrapped store, its types and signal, a tracer."""

    __slots__ = ("_store", "_tracer")
    _store: S
    _tracer: Tracer

    def __init__(self, store: S, tracer_provider: TracerProvider | None) -> None:
        self._store = store
        self._tracer = _tracer(tracer_provider)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._store!r}>"

    @property
    def store(self) -> S:
        """The store that holds the events."""
        return self._store

    @property
    def types(self) -> EventTypes:
        """The wrapped store's event types."""
        return self._store.types

    @property
    def appended(self) -> Signal:
        """The wrapped store's wake-up signal, if it has one, for readers that follow it."""
        if isinstance(self._store, Notifying):
            return self._store.appended
        raise _no_signal(self._store)


@final
class TracedEventStore(_Traced[EventStore]):
    """An :class:`~busway.eventstore.EventStore` whose appends are spans (see :func:`traced`)."""

    __slots__ = ()

    def __init__(self, store: EventStore, *, tracer_provider: TracerProvider | None = None) -> None:
        if not isinstance(store, EventStore):
            raise InvalidArgumentError("store", store, "an EventStore, such as SQLiteEventStore")
        super().__init__(store, tracer_provider)

    def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append in a ``send`` span, storing its trace context in the events' metadata."""
        given = _listed(events)
        with _sending(self._tracer, self.types, stream_id, given, metadata) as (items, meta):
            return self._store.append(
                stream_id,
                items,  # type: ignore[arg-type]  # refused by the store as given
                expected_version=expected_version,
                metadata=meta,  # type: ignore[arg-type]
            )

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Return a stream's events, as the wrapped store does."""
        return self._store.read_stream(
            stream_id, from_version=from_version, limit=limit, backwards=backwards
        )

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Iterate over every stream's events, as the wrapped store does."""
        return self._store.read_all(from_position=from_position, limit=limit, types=types)

    def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        return self._store.stream_version(stream_id)

    def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        return self._store.head_position()

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, as the wrapped store does."""
        return self._store.streams(after=after, limit=limit)

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> LiveEvents:
        """Follow the store, as the wrapped store does."""
        return self._store.subscribe(
            from_position=from_position, types=types, poll_interval=poll_interval
        )

    def close(self) -> None:
        """Close the wrapped store."""
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@final
class AsyncTracedEventStore(_Traced[AsyncEventStore]):
    """An :class:`~busway.eventstore.AsyncEventStore` whose appends are spans."""

    __slots__ = ()

    def __init__(
        self, store: AsyncEventStore, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        if not isinstance(store, AsyncEventStore):
            raise InvalidArgumentError(
                "store", store, "an AsyncEventStore, such as AsyncSQLiteEventStore"
            )
        super().__init__(store, tracer_provider)

    async def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append in a ``send`` span, storing its trace context in the events' metadata."""
        given = _listed(events)
        with _sending(self._tracer, self.types, stream_id, given, metadata) as (items, meta):
            return await self._store.append(
                stream_id,
                items,  # type: ignore[arg-type]  # refused by the store as given
                expected_version=expected_version,
                metadata=meta,  # type: ignore[arg-type]
            )

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Return a stream's events, as the wrapped store does."""
        return await self._store.read_stream(
            stream_id, from_version=from_version, limit=limit, backwards=backwards
        )

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over every stream's events, as the wrapped store does."""
        return self._store.read_all(from_position=from_position, limit=limit, types=types)

    async def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        return await self._store.stream_version(stream_id)

    async def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        return await self._store.head_position()

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, as the wrapped store does."""
        return self._store.streams(after=after, limit=limit)

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> AsyncLiveEvents:
        """Follow the store, as the wrapped store does."""
        return self._store.subscribe(
            from_position=from_position, types=types, poll_interval=poll_interval
        )

    async def aclose(self) -> None:
        """Close the wrapped store."""
        await self._store.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@overload
def traced(
    store: EventStore, *, tracer_provider: TracerProvider | None = None
) -> TracedEventStore: ...
@overload
def traced(
    store: AsyncEventStore, *, tracer_provider: TracerProvider | None = None
) -> AsyncTracedEventStore: ...
def traced(
    store: EventStore | AsyncEventStore, *, tracer_provider: TracerProvider | None = None
) -> TracedEventStore | AsyncTracedEventStore:
    """Wrap *store* so that each append is a ``send`` span, whose context the events keep.

    The span (the child of the current span: a command's, under :func:`tracing`) is named
    ``send`` and the events' stored type when they share one. One event's append is a
    PRODUCER span, whose trace context goes into the event's metadata under
    ``traceparent`` (and ``tracestate``, with the global propagator's other fields), where
    :func:`batches` finds it in any process. Of several, each event gets a PRODUCER
    ``create`` span with its id, whose context it keeps, and the ``send`` span (CLIENT)
    links to each. Metadata the caller gives for those keys wins. Reads go to *store* as
    they are; give the wrapper to repositories and runners in place of the store.
    """
    if isinstance(store, EventStore):
        return TracedEventStore(store, tracer_provider=tracer_provider)
    if isinstance(store, AsyncEventStore):
        return AsyncTracedEventStore(store, tracer_provider=tracer_provider)
    raise InvalidArgumentError("store", store, "an EventStore or an AsyncEventStore")


# -- batches ---------------------------------------------------------------------------------


def _links(events: Sequence[RecordedEvent]) -> list[Link]:
    """Return a link to each event's creation context, naming the event (the conventions')."""
    found = []
    for recorded in events:
        metadata = recorded.metadata
        if TRACEPARENT not in metadata:
            continue
        span = trace.get_current_span(propagate.extract(metadata)).get_span_context()
        if span.is_valid:
            found.append(Link(span, {"messaging.message.id": str(recorded.event_id)}))
    return found


@final
class _Batches:
    """Makes a CONSUMER ``process`` span of each batch a runner handles."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def __repr__(self) -> str:
        return "<busway.otel.batches()>"

    def batch(
        self, subscription: str, key: str, events: Sequence[RecordedEvent]
    ) -> AbstractContextManager[object]:
        if not events:  # a page that holds nothing of this partition
            return contextlib.nullcontext()
        names = {recorded.type for recorded in events}
        destination = next(iter(names)) if len(names) == 1 else None
        attributes = _attributes("process", "process", destination)
        attributes["messaging.consumer.group.name"] = subscription
        attributes["messaging.destination.subscription.name"] = key
        if len(events) > 1:
            attributes["messaging.batch.message_count"] = len(events)
        else:
            only = events[0]
            attributes["messaging.message.id"] = str(only.event_id)
            correlation = only.metadata.get("correlation_id")
            if isinstance(correlation, str):
                attributes["messaging.message.conversation_id"] = correlation
        return self._tracer.start_as_current_span(
            _name("process", destination),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=_links(events),
        )

    def failed(self, error: Exception) -> None:
        span = trace.get_current_span()
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(error)))


def batches(*, tracer_provider: TracerProvider | None = None) -> BatchObserver:
    """Return a runner's observer that makes a span of each batch it handles.

    Give it as ``ProjectionRunner(store, projection, observer=batches())``, or to a saga
    manager's ``catch_up()`` or ``background()``. Each batch is a CONSUMER span named
    ``process`` and its events' stored type when they share one, with the projection's (or
    saga subscription's) name as ``messaging.consumer.group.name``, and a link to the
    context each event was stored with (its ``traceparent``), naming the event's id, in
    this process or another. The handlers run inside it, so what they do (a saga's
    commands) is its child. A handler that fails is recorded on the span, which ends in
    error.
    """
    return _Batches(_tracer(tracer_provider))
