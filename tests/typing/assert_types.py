"""What mypy infers from busway's API; checked by ``mypy --strict`` (see test_typing.py)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

import attrs

from busway import (
    AsyncCommandBus,
    AsyncEventBus,
    AsyncQueryBus,
    Command,
    CommandBus,
    Event,
    EventBus,
    Query,
    QueryBus,
    Registry,
    Subscription,
)


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
