"""busway.otel: spans after the messaging conventions, and the trace context in stored events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import (
    NoOpTracerProvider,
    SpanKind,
    StatusCode,
    format_span_id,
    format_trace_id,
)

from busway import (
    AsyncCommandBus,
    AsyncQueryBus,
    Command,
    CommandBus,
    Event,
    EventBus,
    Query,
    Registry,
)
from busway.errors import (
    InvalidArgumentError,
    ProjectionError,
    RegistrationError,
    StoreClosedError,
    UnknownEventTypeError,
)
from busway.eventstore import (
    AsyncEventStore,
    AsyncInMemoryEventStore,
    EventStore,
    EventTypes,
    InMemoryEventStore,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
)
from busway.middleware import correlation
from busway.otel import AsyncTracedEventStore, TracedEventStore, batches, traced, tracing
from busway.projections import AsyncProjectionRunner, Projection, ProjectionRunner, when
from busway.sagas import AsyncSagaManager, InMemorySagaStore, Saga, SagaManager, starts


@attrs.frozen
class PlaceOrder(Command[str]):
    order_id: str


@attrs.frozen
class FindOrder(Query[str]):
    order_id: str


@attrs.frozen
class OrderPlaced(Event):
    order_id: str


@attrs.frozen
class OrderShipped(Event):
    order_id: str


TYPES = EventTypes(OrderShipped)
TYPES.add(OrderPlaced, name="order.placed")


class Orders(Projection):
    """Keeps the ids of placed orders, and tells an event bus about each (a nested dispatch)."""

    name = "orders"

    def __init__(self, events: EventBus | None = None, fail: str | None = None) -> None:
        self.placed: list[str] = []
        self.events = events
        self.fail = fail
        self.threads: set[str] = set()

    @when(OrderPlaced)
    def placed_(self, event: OrderPlaced, recorded: RecordedEvent) -> None:
        self.threads.add(threading.current_thread().name)
        if event.order_id == self.fail:
            raise RuntimeError(f"cannot list {event.order_id}")
        self.placed.append(event.order_id)
        if self.events is not None:
            self.events.publish(OrderShipped(event.order_id))

    @when(OrderShipped)
    def shipped(self, event: OrderShipped, recorded: RecordedEvent) -> None:
        pass


@attrs.frozen
class ShipOrder(Command[None]):
    order_id: str


@attrs.define
class Shipping(Saga):
    """Ships each placed order; refuses the order id ``fail``."""

    order_id: str = ""

    @starts(OrderPlaced, key="order_id")
    def placed(self, event: OrderPlaced) -> None:
        if event.order_id == "fail":
            raise RuntimeError("cannot ship fail")
        self.order_id = event.order_id
        self.send(ShipOrder(event.order_id))


class Ping:
    """A message of no busway kind."""


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    found = {span.name: span for span in exporter.get_finished_spans()}
    assert len(found) == len(exporter.get_finished_spans())
    return found


def ids(span: ReadableSpan) -> tuple[int, int]:
    ctx = span.get_span_context()
    assert ctx is not None
    return ctx.trace_id, ctx.span_id


def parent_of(span: ReadableSpan) -> tuple[int, int] | None:
    return None if span.parent is None else (span.parent.trace_id, span.parent.span_id)


def links_of(span: ReadableSpan) -> list[tuple[int, int]]:
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def traceparent(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{format_trace_id(ctx.trace_id)}-{format_span_id(ctx.span_id)}-{ctx.trace_flags:02x}"


def place_orders(store: EventStore, provider: TracerProvider) -> CommandBus:
    handlers = Registry()

    @handlers.command
    def place(command: PlaceOrder) -> str:
        store.append(f"order-{command.order_id}", [OrderPlaced(command.order_id)])
        return command.order_id

    bus = CommandBus(handlers)
    bus.use(correlation())
    bus.use(tracing(tracer_provider=provider))
    return bus


def test_a_command_its_events_and_a_projection_in_another_thread_make_one_story(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The command's span holds the append's; the projection's batch, on its thread, links to it."""
    store = traced(SQLiteEventStore(tmp_path / "events.db", types=TYPES), tracer_provider=provider)
    with store:
        bus = place_orders(store, provider)
        shipping = EventBus()
        shipping.use(tracing(tracer_provider=provider))
        shipping.subscribe(OrderShipped, lambda event: None)
        orders = Orders(shipping)
        runner = ProjectionRunner(store, orders, observer=batches(tracer_provider=provider))
        with runner.running():
            assert "o-1" == bus.execute(PlaceOrder("o-1"))
            runner.wait_for(store.head_position())
        [recorded] = store.read_all()
    assert ["o-1"] == orders.placed
    assert threading.current_thread().name not in orders.threads
    found = spans(exporter)
    assert {
        "execute PlaceOrder",
        "send order.placed",
        "process order.placed",
        "publish OrderShipped",
    } == set(found)
    command = found["execute PlaceOrder"]
    send = found["send order.placed"]
    batch = found["process order.placed"]
    nested = found["publish OrderShipped"]
    correlation_id = recorded.metadata["correlation_id"]
    assert SpanKind.INTERNAL == command.kind
    assert {
        "messaging.system": "busway",
        "messaging.operation.name": "execute",
        "messaging.operation.type": "process",
        "messaging.destination.name": "PlaceOrder",
        "messaging.message.id": correlation_id,
        "messaging.message.conversation_id": correlation_id,
    } == dict(command.attributes or {})
    assert command.parent is None
    assert SpanKind.PRODUCER == send.kind
    assert ids(command) == parent_of(send)
    assert {
        "messaging.system": "busway",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": "order.placed",
        "messaging.message.id": str(recorded.event_id),
        "messaging.message.conversation_id": correlation_id,
        "busway.stream_id": "order-o-1",
    } == dict(send.attributes or {})
    assert traceparent(send) == recorded.metadata["traceparent"]
    assert SpanKind.CONSUMER == batch.kind
    assert batch.parent is None
    assert [ids(send)] == links_of(batch)
    assert {
        "messaging.system": "busway",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "order.placed",
        "messaging.consumer.group.name": "orders",
        "messaging.destination.subscription.name": "orders",
        "messaging.message.id": str(recorded.event_id),
        "messaging.message.conversation_id": correlation_id,
    } == dict(batch.attributes or {})
    assert ids(batch) == parent_of(nested)
    assert "publish" == (nested.attributes or {})["messaging.operation.name"]


def test_each_event_of_an_append_has_a_create_span_the_send_and_the_batch_link_to(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Events appended together each carry a context of their own, named by their id."""
    store = traced(InMemoryEventStore(types=TYPES), tracer_provider=provider)
    given = NewEvent(OrderShipped("1"), metadata={"user": "ann"})
    store.append("order-1", [OrderPlaced("1"), given], metadata={"tracestate": "mine=1"})
    store.append("order-2", (e for e in [OrderPlaced("2")]))
    store.store.append("order-3", [OrderPlaced("3")])
    runner = ProjectionRunner(store, Orders(), observer=batches(tracer_provider=provider))
    assert 4 == runner.run_until_caught_up()
    recorded = list(store.read_all())
    found = exporter.get_finished_spans()
    creates = [s for s in found if (s.attributes or {})["messaging.operation.type"] == "create"]
    assert ["create order.placed", "create OrderShipped"] == [s.name for s in creates]
    assert [str(r.event_id) for r in recorded[:2]] == [
        (s.attributes or {})["messaging.message.id"] for s in creates
    ]
    assert given.event_id == recorded[1].event_id
    assert [traceparent(s) for s in creates] == [r.metadata["traceparent"] for r in recorded[:2]]
    assert {"user": "ann", "tracestate": "mine=1"}.items() <= recorded[1].metadata.items()
    by_name = {s.name: s for s in found}
    send, single = by_name["send"], by_name["send order.placed"]
    assert SpanKind.CLIENT == send.kind
    assert [ids(s) for s in creates] == links_of(send)
    assert [(s.attributes or {})["messaging.message.id"] for s in creates] == [
        (link.attributes or {})["messaging.message.id"] for link in send.links
    ]
    assert 2 == (send.attributes or {})["messaging.batch.message_count"]
    assert "messaging.message.id" not in (send.attributes or {})
    assert SpanKind.PRODUCER == single.kind
    batch = by_name["process"]
    assert [ids(creates[0]), ids(creates[1]), ids(single)] == links_of(batch)
    assert [str(r.event_id) for r in recorded[:3]] == [
        (link.attributes or {})["messaging.message.id"] for link in batch.links
    ]
    attributes = batch.attributes or {}
    assert 4 == attributes["messaging.batch.message_count"]
    assert "messaging.destination.name" not in attributes
    assert "messaging.message.id" not in attributes


def test_without_an_sdk_appends_store_the_events_as_given() -> None:
    """With no SDK, a traced store appends what it is given, with no trace context added."""
    store = traced(InMemoryEventStore(types=TYPES), tracer_provider=NoOpTracerProvider())
    store.append("order-1", [OrderPlaced("1")], metadata={"user": "ann"})
    store.append("order-1", [OrderPlaced("2"), OrderShipped("2")])
    assert 3 == store.append("order-1", [])
    assert [{"user": "ann"}, {}, {}] == [dict(r.metadata) for r in store.read_all()]


def test_async_buses_stores_and_runners_make_the_same_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Under asyncio the command's span holds the append's, and the batch links to it."""
    store = traced(AsyncInMemoryEventStore(types=TYPES), tracer_provider=provider)
    assert isinstance(store, AsyncTracedEventStore)
    handlers = Registry()

    @handlers.command
    async def place(command: PlaceOrder) -> str:
        await store.append(f"order-{command.order_id}", [OrderPlaced(command.order_id)])
        return command.order_id

    bus = AsyncCommandBus(handlers)
    bus.use(tracing(tracer_provider=provider))
    runner = AsyncProjectionRunner(store, Orders(), observer=batches(tracer_provider=provider))

    async def scenario() -> None:
        async with store:
            assert "o-1" == await bus.execute(PlaceOrder("o-1"))
            assert 1 == await runner.run_until_caught_up()

    asyncio.run(scenario())
    found = spans(exporter)
    command, send = found["execute PlaceOrder"], found["send order.placed"]
    assert ids(command) == parent_of(send)
    assert [ids(send)] == links_of(found["process order.placed"])
    # Without the correlation middleware there are no message ids to give.
    assert "messaging.message.id" not in (command.attributes or {})


def test_a_failing_handler_ends_its_span_in_error_and_raises_as_it_was(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The exception is recorded on the dispatch's span, and the caller gets it unchanged."""
    handlers = Registry()

    @handlers.command
    def place(command: PlaceOrder) -> str:
        raise KeyError(command.order_id)

    bus = CommandBus(handlers)
    bus.use(tracing(tracer_provider=provider))
    with pytest.raises(KeyError, match="o-1"):
        bus.execute(PlaceOrder("o-1"))
    span = spans(exporter)["execute PlaceOrder"]
    assert StatusCode.ERROR == span.status.status_code
    assert ["exception"] == [event.name for event in span.events]


def test_a_message_of_no_busway_kind_is_processed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A plain class dispatched through the middleware gets the generic verb ``process``."""
    layer = tracing(tracer_provider=provider)
    assert "pong" == layer(Ping(), lambda message: "pong")
    assert (
        "process" == (spans(exporter)["process Ping"].attributes or {})["messaging.operation.name"]
    )


def test_a_failing_projection_handler_ends_the_batch_span_in_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The batch's span records the projection's failure; the runner raises it as ever."""
    store = traced(InMemoryEventStore(types=TYPES), tracer_provider=provider)
    store.append("order-1", [NewEvent(OrderPlaced("1"))])
    runner = ProjectionRunner(store, Orders(fail="1"), observer=batches(tracer_provider=provider))
    with pytest.raises(ProjectionError):
        runner.run_until_caught_up()
    batch = spans(exporter)["process order.placed"]
    assert StatusCode.ERROR == batch.status.status_code
    assert "ProjectionError" == (batch.attributes or {})["error.type"]
    [recorded] = store.read_all()
    send = spans(exporter)["send order.placed"]
    assert str(recorded.event_id) == (send.attributes or {})["messaging.message.id"]


def test_metadata_the_caller_gives_is_kept_and_wins(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The append's own metadata is stored beside the trace context, and overrides it."""
    store = traced(InMemoryEventStore(types=TYPES), tracer_provider=provider)
    store.append("order-1", [OrderPlaced("1")], metadata={"user": "ann", "traceparent": "mine"})
    [recorded] = store.read_all()
    assert {"user": "ann", "traceparent": "mine"} == dict(recorded.metadata)
    with pytest.raises(InvalidArgumentError):
        store.append("order-1", [OrderPlaced("2")], metadata=cast(Any, ["not", "a", "mapping"]))
    with pytest.raises(InvalidArgumentError):
        store.append("order-1", cast(Any, "not events"))
    with pytest.raises(InvalidArgumentError):
        store.append("order-1", cast(Any, 42))
    with pytest.raises(UnknownEventTypeError):
        store.append("order-1", [object()])
    assert 1 == store.head_position()
    refused = exporter.get_finished_spans()[-1]
    assert ("send object", StatusCode.ERROR) == (refused.name, refused.status.status_code)


def test_an_untraced_batch_has_no_links_and_an_empty_one_no_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Events appended without tracing give a batch no links; a partition's empty page no span."""
    store = InMemoryEventStore(types=TYPES)
    store.append("order-1", [OrderPlaced("1")], metadata={"traceparent": "not a trace context"})
    observer = batches(tracer_provider=provider)
    runner = ProjectionRunner(store, Orders(), observer=observer)
    assert 1 == runner.run_until_caught_up()
    assert [] == links_of(spans(exporter)["process order.placed"])
    assert "batches()" in repr(observer)
    with observer.batch("orders", "orders[1/2]", []):
        pass
    assert 1 == len(exporter.get_finished_spans())


def test_a_runner_refuses_an_observer_that_is_none() -> None:
    """Something that is not a BatchObserver is refused when the runner is made."""
    with pytest.raises(RegistrationError, match="BatchObserver"):
        ProjectionRunner(InMemoryEventStore(types=TYPES), Orders(), observer=cast(Any, print))


def test_the_wrapper_reads_and_follows_as_the_store_does(tmp_path: Path) -> None:
    """Every read, the live feed and the wake-up signal go to the wrapped store."""
    inner = SQLiteEventStore(tmp_path / "events.db", types=TYPES)
    with traced(inner) as store:
        assert isinstance(store, TracedEventStore)
        assert inner is store.store
        assert inner.types is store.types
        assert inner.appended is store.appended
        assert "SQLiteEventStore" in repr(store)
        store.append("order-1", [OrderPlaced("1"), OrderShipped("1")])
        assert [2] == [r.version for r in store.read_stream("order-1", from_version=2)]
        assert 2 == store.stream_version("order-1")
        assert [("order-1", 2)] == list(store.streams())
        with store.subscribe(from_position=2) as live:
            assert 2 == next(live).position
    with pytest.raises(StoreClosedError):
        inner.head_position()


def test_the_async_wrapper_reads_and_follows_as_the_store_does() -> None:
    """The async wrapper's reads, feed and signal are the wrapped store's too."""
    inner = AsyncInMemoryEventStore(types=TYPES)
    store = AsyncTracedEventStore(inner)

    async def scenario() -> None:
        async with store:
            assert inner is store.store
            assert inner.types is store.types
            assert inner.appended is store.appended
            assert "AsyncTracedEventStore" in repr(store)
            await store.append("order-1", [OrderPlaced("1"), OrderShipped("1")])
            assert 2 == len(await store.read_stream("order-1"))
            assert 2 == await store.stream_version("order-1")
            assert 2 == await store.head_position()
            assert [1, 2] == [r.position async for r in store.read_all()]
            assert [("order-1", 2)] == [s async for s in store.streams()]
            async with store.subscribe(from_position=2) as live:
                assert 2 == (await anext(live)).position

    asyncio.run(scenario())


class Unsignalled:
    """A store of another library: an EventStore without a wake-up signal."""

    def __init__(self, store: object) -> None:
        self._inner = store

    def __getattr__(self, name: str) -> Any:
        if name == "appended":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_store_without_a_signal_is_wrapped_without_one() -> None:
    """Readers of a wrapped store without a wake-up signal poll, as they would without tracing."""
    store = traced(cast(EventStore, Unsignalled(InMemoryEventStore(types=TYPES))))
    assert not hasattr(store, "appended")
    with pytest.raises(AttributeError, match="appended"):
        _ = store.appended
    astore = traced(cast(AsyncEventStore, Unsignalled(AsyncInMemoryEventStore(types=TYPES))))
    with pytest.raises(AttributeError, match="appended"):
        _ = astore.appended


def test_only_event_stores_are_wrapped() -> None:
    """Anything else is refused with the kind of store that is wanted."""
    with pytest.raises(InvalidArgumentError, match="EventStore or an AsyncEventStore"):
        traced(cast(Any, object()))
    with pytest.raises(InvalidArgumentError, match="an EventStore"):
        TracedEventStore(cast(Any, AsyncInMemoryEventStore(types=TYPES)))
    with pytest.raises(InvalidArgumentError, match="an AsyncEventStore"):
        AsyncTracedEventStore(cast(Any, InMemoryEventStore(types=TYPES)))


def test_without_opentelemetry_the_import_says_which_extra_to_install() -> None:
    """Importing busway.otel where OpenTelemetry is missing names the extra that brings it."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "try:\n    import busway.otel\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install 'busway[otel]'" in out.stdout


def shipping_commands(shipped: list[str]) -> Registry:
    handlers = Registry()

    @handlers.command
    def ship(command: ShipOrder) -> None:
        shipped.append(command.order_id)

    return handlers


def test_a_saga_batch_links_to_the_append_and_holds_the_commands_it_sends(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A saga manager's batch is a span linked to the stored event's append, over its commands."""
    store = traced(SQLiteEventStore(tmp_path / "events.db", types=TYPES), tracer_provider=provider)
    shipped: list[str] = []
    commands = CommandBus(shipping_commands(shipped))
    commands.use(tracing(tracer_provider=provider))
    manager = SagaManager(Shipping, store=InMemorySagaStore(), commands=commands)
    with store:
        place_orders(store, provider).execute(PlaceOrder("o-1"))
        [recorded] = store.read_all()
        assert 1 == manager.catch_up(store, observer=batches(tracer_provider=provider))
    assert ["o-1"] == shipped
    found = spans(exporter)
    send, batch = found["send order.placed"], found["process order.placed"]
    assert traceparent(send) == recorded.metadata["traceparent"]
    assert SpanKind.CONSUMER == batch.kind
    assert [ids(send)] == links_of(batch)
    attributes = batch.attributes or {}
    assert ("sagas", "sagas") == (
        attributes["messaging.consumer.group.name"],
        attributes["messaging.destination.subscription.name"],
    )
    assert str(recorded.event_id) == attributes["messaging.message.id"]
    assert ids(batch) == parent_of(found["execute ShipOrder"])


def test_async_saga_managers_make_the_same_batch_spans_in_the_background(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """An async manager's background runner makes the batch span, holding its command's span."""
    store = traced(AsyncInMemoryEventStore(types=TYPES), tracer_provider=provider)
    shipped: list[str] = []
    handlers = Registry()

    @handlers.command
    async def ship(command: ShipOrder) -> None:
        shipped.append(command.order_id)

    commands = AsyncCommandBus(handlers)
    commands.use(tracing(tracer_provider=provider))
    manager = AsyncSagaManager(Shipping, store=InMemorySagaStore(), commands=commands)
    observer = batches(tracer_provider=provider)

    async def scenario() -> None:
        async with store:
            await store.append("order-1", [OrderPlaced("o-1")])
            async with manager.background(events=store, interval=0.01, observer=observer):
                while not shipped:
                    await asyncio.sleep(0.01)
            await store.append("order-2", [OrderPlaced("o-2")])
            assert 1 == await manager.catch_up(store, observer=observer)

    asyncio.run(scenario())
    assert ["o-1", "o-2"] == shipped
    finished = exporter.get_finished_spans()
    sends = [s for s in finished if s.name == "send order.placed"]
    processed = [s for s in finished if s.name == "process order.placed"]
    executed = [s for s in finished if s.name == "execute ShipOrder"]
    assert [[ids(s)] for s in sends] == [links_of(s) for s in processed]
    assert [ids(s) for s in processed] == [parent_of(s) for s in executed]


def test_a_failing_saga_ends_its_batch_span_in_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The batch's span records the saga's failure, which the manager raises as ever."""
    store = InMemoryEventStore(types=TYPES)
    store.append("order-1", [OrderPlaced("fail")])
    manager = SagaManager(Shipping, store=InMemorySagaStore(), commands=CommandBus())
    with pytest.raises(RuntimeError, match="cannot ship fail"):
        manager.catch_up(store, observer=batches(tracer_provider=provider))
    batch = spans(exporter)["process order.placed"]
    assert StatusCode.ERROR == batch.status.status_code
    assert "RuntimeError" == (batch.attributes or {})["error.type"]


def test_saga_managers_refuse_an_observer_that_is_none_and_one_without_events() -> None:
    """A wrong observer is refused, and so is one given to a runner that follows no store."""
    store = InMemoryEventStore(types=TYPES)
    manager = SagaManager(Shipping, store=InMemorySagaStore(), commands=CommandBus())
    with pytest.raises(RegistrationError, match="BatchObserver"):
        manager.catch_up(store, observer=cast(Any, print))
    with pytest.raises(RegistrationError, match="observer="):
        manager.background(observer=batches())


def test_without_an_sdk_a_dispatch_goes_straight_on() -> None:
    """With no SDK, tracing() hands the message on, sync or async, and no span is current."""
    seen: list[bool] = []
    handlers = Registry()

    @handlers.command
    def place(command: PlaceOrder) -> str:
        seen.append(trace.get_current_span().get_span_context().is_valid)
        return command.order_id

    @handlers.query
    async def find(query: FindOrder) -> str:
        seen.append(trace.get_current_span().get_span_context().is_valid)
        return query.order_id

    bus = CommandBus(handlers)
    bus.use(tracing(tracer_provider=NoOpTracerProvider()))
    assert "o-1" == bus.execute(PlaceOrder("o-1"))
    queries = AsyncQueryBus(handlers)
    queries.use(tracing(tracer_provider=NoOpTracerProvider()))
    assert "o-2" == asyncio.run(queries.execute(FindOrder("o-2")))
    assert [False, False] == seen


def test_a_dispatch_a_sampler_leaves_out_still_carries_its_trace(
    exporter: InMemorySpanExporter,
) -> None:
    """A span sampled out is current in the handler, so that its children are left out too."""
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    current: list[trace.SpanContext] = []
    handlers = Registry()

    @handlers.command
    def place(command: PlaceOrder) -> str:
        current.append(trace.get_current_span().get_span_context())
        return command.order_id

    bus = CommandBus(handlers)
    bus.use(correlation())
    bus.use(tracing(tracer_provider=provider))
    assert "o-1" == bus.execute(PlaceOrder("o-1"))
    [context] = current
    assert context.is_valid
    assert not context.trace_flags.sampled
    assert () == exporter.get_finished_spans()


_WORKER = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from busway.eventstore import SQLiteEventStore
from busway.otel import batches
from busway.projections import ProjectionRunner, SQLiteCheckpointStore
from tests.test_otel import TYPES, Orders

path, spans = sys.argv[1], sys.argv[2]
with open(spans, "w") as out:
    provider = TracerProvider()
    lines = lambda span: span.to_json(indent=None) + "\\n"
    exporter = ConsoleSpanExporter(out=out, formatter=lines)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with SQLiteEventStore(path, types=TYPES) as store, SQLiteCheckpointStore(path) as checkpoints:
        runner = ProjectionRunner(
            store, Orders(), checkpoints=checkpoints, observer=batches(tracer_provider=provider)
        )
        print(runner.run_until_caught_up())
    provider.shutdown()
"""


def test_a_worker_in_another_process_continues_the_trace_from_the_stored_events(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A projection worker process reading the file links its batch to this process's appends."""
    path = tmp_path / "events.db"
    with traced(SQLiteEventStore(path, types=TYPES), tracer_provider=provider) as store:
        place_orders(store, provider).execute(PlaceOrder("o-1"))
        store.append("order-2", [OrderPlaced("2"), OrderShipped("2")])
        stored = list(store.read_all())
    worker = subprocess.run(
        [sys.executable, "-c", _WORKER, str(path), str(tmp_path / "spans.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert 0 == worker.returncode, worker.stderr
    assert "3" == worker.stdout.strip()
    [batch] = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert ("process", "SpanKind.CONSUMER") == (batch["name"], batch["kind"])
    here = {s.name: s for s in exporter.get_finished_spans() if s.name != "send"}
    creates = [s for s in exporter.get_finished_spans() if s.name.startswith("create ")]
    expected = [here["send order.placed"], *creates]
    assert [
        (f"0x{format_trace_id(t)}", f"0x{format_span_id(s)}") for t, s in map(ids, expected)
    ] == [(link["context"]["trace_id"], link["context"]["span_id"]) for link in batch["links"]]
    assert [str(r.event_id) for r in stored] == [
        link["attributes"]["messaging.message.id"] for link in batch["links"]
    ]
    assert here["send order.placed"].parent is not None  # the command's: one story
