"""Misuses mypy --strict must reject: each line marked with an expected error code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs

from busway import (
    AsyncCommandBus,
    AsyncMiddleware,
    Command,
    CommandBus,
    Event,
    EventBus,
    Middleware,
    Query,
    QueryBus,
    Registry,
)
from busway.aggregates import Aggregate, AsyncRepository, Repository
from busway.eventstore import AsyncEventStore, EventStore
from busway.sagas import InMemorySagaStore, Saga, SagaManager
from busway.testing import CommandScenario
from busway.testing.strategies import event_streams


@attrs.frozen
class PlaceOrder(Command[str]):
    customer: str


@attrs.frozen
class CountOrders(Query[int]):
    customer: str


@attrs.frozen
class OrderPlaced(Event):
    order_id: str


handlers = Registry()


@handlers.command
def place(cmd: PlaceOrder) -> str:
    return "order-1"


commands = CommandBus(handlers)
queries = QueryBus(handlers)
events = EventBus()

wrong_result: int = commands.execute(PlaceOrder("ada"))  # E: assignment
wrong_query_result: str = queries.execute(CountOrders("ada"))  # E: assignment
handler_result: int = place(PlaceOrder("x"))  # E: assignment
handler_argument = place(CountOrders("x"))  # E: arg-type
events.subscribe(OrderPlaced, lambda e: e.missing)  # E: attr-defined
commands.register(PlaceOrder, lambda c: c.nope)  # E: attr-defined
commands.execute()  # E: call-overload
events.publish_all(OrderPlaced("1"))  # E: arg-type
CommandBus(commands)  # E: arg-type


async def not_awaited() -> None:
    result: str = AsyncCommandBus().execute(PlaceOrder("x"))  # E: assignment


def message_only(message: object) -> object:
    return message


def with_extra(message: object, next: Callable[[object], object], extra: int) -> object:
    return next(message)


def sync_answer(message: object, next: Callable[[object], object]) -> str:
    return "x"


commands.use(message_only)  # E: arg-type
commands.use(with_extra)  # E: arg-type
commands.register(PlaceOrder, place, middleware=[message_only])  # E: list-item
handlers.command(PlaceOrder, middleware=[lambda m: m])  # E: list-item
events.subscribe(OrderPlaced, print, middleware=message_only)  # E: arg-type
not_a_middleware: Middleware = message_only  # E: assignment
not_awaitable: AsyncMiddleware = sync_answer  # E: assignment


class Counter(Aggregate):
    pass


class Tracker(Saga):
    pass


class Other(Saga):
    pass


def misuse_repositories(store: EventStore, async_store: AsyncEventStore) -> None:
    repository = Repository(store, Counter)
    repository.get(1)  # E: arg-type
    wrong_aggregate: str = repository.get("c-1")  # E: assignment
    repository.save("c-1")  # E: arg-type
    not_awaited: Counter = AsyncRepository(async_store, Counter).get("c-1")  # E: assignment


def misuse_sagas() -> None:
    manager = SagaManager(Tracker, store=InMemorySagaStore(), commands=CommandBus())
    found = manager.find(Tracker, "order_id", "o-1")
    wrong_saga: list[Other] = found  # E: assignment
    manager.find(Counter, "order_id", "o-1")  # E: type-var


def misuse_scenarios(store: EventStore) -> None:
    scenario = CommandScenario(commands, store).when(PlaceOrder("ada"))
    wrong_result: int = scenario.then()  # E: assignment
    wrong_nothing: int = scenario.then_nothing()  # E: assignment


wrong_events: list[int] = event_streams(OrderPlaced).example()  # E: assignment
only_placed: list[OrderPlaced] = event_streams(OrderPlaced, PlaceOrder).example()  # E: assignment
event_streams()  # E: call-overload
