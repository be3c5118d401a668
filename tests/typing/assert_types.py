"""What mypy infers from busway's API; checked by ``mypy --strict`` (see test_typing.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, assert_type

import attrs
from hypothesis.strategies import SearchStrategy, just

from busway import (
    AsyncCommandBus,
    AsyncEventBus,
    AsyncMiddleware,
    AsyncQueryBus,
    Command,
    CommandBus,
    Event,
    EventBus,
    Middleware,
    Query,
    QueryBus,
    Registry,
    Subscription,
    middleware,
)
from busway.aggregates import Aggregate, AsyncRepository, Repository, when
from busway.eventstore import (
    AsyncEventStore,
    AsyncLiveEvents,
    AsyncSQLiteEventStore,
    EventStore,
    LiveEvents,
    RecordedEvent,
    SQLiteEventStore,
)
from busway.sagas import AsyncSagaManager, InMemorySagaStore, Saga, SagaManager, starts
from busway.subscriptions import InMemoryLeaseStore, Lease, LeaseStore, SQLiteLeaseStore
from busway.testing import AggregateScenario, CommandScenario, SagaScenario
from busway.testing.strategies import event_streams, histories, messages


@attrs.frozen
class PlaceOrder(Command[str]):
    customer: str


@attrs.frozen
class FindOrder(Query[int | None]):
    order_id: str


@attrs.frozen
class OrderPlaced(Event):
    order_id: str


class Plain:
    pass


handlers = Registry()


@handlers.command
def place(cmd: PlaceOrder) -> str:
    return "order-1"


@handlers.query(FindOrder)
def find(q: FindOrder) -> int | None:
    return None


@handlers.event
async def placed(e: OrderPlaced) -> None:
    pass


def sync_checks() -> None:
    commands, queries, events = CommandBus(handlers), QueryBus(handlers), EventBus()
    assert_type(commands.execute(PlaceOrder("ada")), str)
    assert_type(queries.execute(FindOrder("1")), int | None)
    assert_type(commands.execute(Plain()), Any)
    assert_type(events.publish(OrderPlaced("1")), None)
    assert_type(events.subscribe(OrderPlaced, lambda e: None), Subscription)
    # decorators hand back the function with its own type (were it Any, these would fail)
    assert_type(place(PlaceOrder("x")), str)
    assert_type(find(FindOrder("1")), int | None)

    @commands.handler
    def other(cmd: PlaceOrder) -> str:
        return ""

    assert_type(other(PlaceOrder("x")), str)
    with commands.override(PlaceOrder, lambda c: "fake"):
        assert_type(commands.execute(PlaceOrder("x")), str)


async def async_checks() -> None:
    commands, queries, events = AsyncCommandBus(handlers), AsyncQueryBus(handlers), AsyncEventBus()
    assert_type(await commands.execute(PlaceOrder("ada")), str)
    assert_type(await queries.execute(FindOrder("1")), int | None)
    assert_type(await commands.execute(Plain()), Any)
    assert_type(await events.publish(OrderPlaced("1")), None)
    await assert_type(placed(OrderPlaced("1")), Coroutine[Any, Any, None])


@handlers.command(middleware=[lambda message, next: next(message)])
def with_own_middleware(cmd: PlaceOrder) -> str:
    return "x"


assert_type(with_own_middleware(PlaceOrder("x")), str)


def logged(message: object, next: Callable[[object], object]) -> object:
    return next(message)


async def awaited(message: object, next: Callable[[object], Awaitable[object]]) -> object:
    return await next(message)


def only_orders(message: PlaceOrder, next: Callable[[PlaceOrder], str]) -> str:
    return next(message)


def middleware_checks() -> None:
    sync: Middleware = logged
    asynchronous: AsyncMiddleware = awaited
    commands, events = CommandBus(), EventBus()
    commands.use(sync)
    commands.use(logged)
    commands.use(only_orders, on=PlaceOrder)
    commands.use(middleware.log())
    commands.register(PlaceOrder, place, middleware=[logged, middleware.timing(print)])
    events.subscribe(OrderPlaced, print, middleware=[logged])
    async_commands, async_events = AsyncCommandBus(), AsyncEventBus()
    async_commands.use(asynchronous)
    async_commands.use(logged)
    async_commands.use(middleware.timeout(1.0))
    async_commands.register(PlaceOrder, place, middleware=[awaited, logged])
    async_events.subscribe(OrderPlaced, print, middleware=[awaited])
    handlers.event(OrderPlaced, middleware=[logged, awaited])(print)


class Counter(Aggregate):
    count: int

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.count = 0

    @when(OrderPlaced)
    def _placed(self, event: OrderPlaced) -> None:
        self.count += 1


@attrs.define
class Tracker(Saga):
    order_id: str = ""

    @starts(OrderPlaced, key="order_id")
    def placed(self, event: OrderPlaced) -> None:
        self.order_id = event.order_id


def repository_checks(store: EventStore) -> None:
    repository = Repository(store, Counter)
    assert_type(repository, Repository[Counter])
    assert_type(repository.get("c-1"), Counter)
    assert_type(repository.save(Counter("c-1")), int)


async def async_repository_checks(store: AsyncEventStore) -> None:
    repository = AsyncRepository(store, Counter)
    assert_type(await repository.get("c-1"), Counter)
    assert_type(await repository.save(Counter("c-1")), int)


def live_checks(store: EventStore, sqlite: SQLiteEventStore) -> None:
    assert_type(store.subscribe(types=[OrderPlaced], poll_interval=1), LiveEvents)
    with sqlite.subscribe(from_position=3) as live:
        assert_type(live, LiveEvents)
        assert_type(next(live), RecordedEvent)
        assert_type(live.position, int)
        for recorded in live:
            assert_type(recorded, RecordedEvent)


async def async_live_checks(store: AsyncEventStore, sqlite: AsyncSQLiteEventStore) -> None:
    assert_type(store.subscribe(types=["OrderPlaced"]), AsyncLiveEvents)
    async with sqlite.subscribe() as live:
        assert_type(live, AsyncLiveEvents)
        assert_type(await anext(live), RecordedEvent)
        assert_type(live.position, int)
        async for recorded in live:
            assert_type(recorded, RecordedEvent)


def saga_checks() -> None:
    manager = SagaManager(Tracker, store=InMemorySagaStore(), commands=CommandBus())
    assert_type(manager.find(Tracker, "order_id", "o-1"), list[Tracker])


async def async_saga_checks() -> None:
    manager = AsyncSagaManager(Tracker, store=InMemorySagaStore(), commands=AsyncCommandBus())
    assert_type(await manager.find(Tracker, "order_id", "o-1"), list[Tracker])


def lease_checks(store: LeaseStore) -> None:
    lease = store.acquire("orders", "w-1", ttl=5.0)
    assert_type(lease, Lease | None)
    assert_type(InMemoryLeaseStore().acquire("orders", "w-1", ttl=5), Lease | None)
    assert_type(SQLiteLeaseStore(":memory:").acquire("orders", "w-1", ttl=5), Lease | None)
    if lease is not None:
        assert_type(store.renew(lease, ttl=5), Lease | None)
        assert_type(store.release(lease), bool)
        assert_type(lease.token, int)
    assert_type(store.holder("orders"), Lease | None)
    assert_type(store.leases("orders#"), list[Lease])


def scenario_checks(store: EventStore) -> None:
    scenario = CommandScenario(CommandBus(handlers), store)
    assert_type(scenario.when(PlaceOrder("ada")).then(), str)
    assert_type(scenario.given("s-1", OrderPlaced("1")).when(PlaceOrder("ada")).then(), str)
    assert_type(scenario.when(PlaceOrder("ada")).then_nothing(), str)
    assert_type(scenario.when(PlaceOrder("ada")).then_raises(KeyError), KeyError)
    assert_type(scenario.when(Plain()).then(), Any)
    counter = AggregateScenario(Counter).when(lambda c: c.record(OrderPlaced("1")))
    assert_type(counter.then(OrderPlaced("1")), Counter)
    assert_type(counter.then_nothing(), Counter)
    assert_type(SagaScenario(Tracker).when(OrderPlaced("1")).then(), None)
    assert_type(SagaScenario(Tracker).when(OrderPlaced("1")).then_raises(KeyError), KeyError)


@attrs.frozen
class OrderShipped(Event):
    order_id: str


@attrs.frozen
class Ping:
    n: int


def strategy_checks() -> None:
    assert_type(messages(OrderPlaced), SearchStrategy[OrderPlaced])
    assert_type(event_streams(OrderPlaced), SearchStrategy[list[OrderPlaced]])
    assert_type(
        event_streams(OrderPlaced, OrderShipped, max_size=3),
        SearchStrategy[list[OrderPlaced | OrderShipped]],
    )
    assert_type(
        event_streams(OrderPlaced, OrderShipped, Ping, OrderPlaced),
        SearchStrategy[list[OrderPlaced | OrderShipped | Ping]],
    )
    # past four classes, mypy types the elements as the classes' common base
    assert_type(
        event_streams(OrderPlaced, OrderShipped, OrderPlaced, OrderShipped, OrderPlaced),
        SearchStrategy[list[Event]],
    )
    assert_type(
        histories(lambda: Counter("c-1"), just(lambda c: c.record(OrderPlaced("1")))),
        SearchStrategy[list[object]],
    )
