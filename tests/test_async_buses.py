"""The async buses: the same rules as the sync ones, awaited."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from busway import (
    AsyncCommandBus,
    AsyncEventBus,
    AsyncQueryBus,
    HandlerNotFoundError,
    RegistrationError,
    Registry,
)
from tests.messages import CountOrders, ExpressOrderPlaced, GetOrder, OrderPlaced, PlaceOrder


def test_async_and_sync_handlers_are_both_awaited() -> None:
    """An async bus runs async handlers and plain ones alike."""
    handlers = Registry()

    @handlers.command
    async def place(cmd: PlaceOrder) -> str:
        await asyncio.sleep(0)
        return "async"

    @handlers.query
    def count(q: CountOrders) -> int:
        return 2

    async def main() -> tuple[str, int]:
        return (
            await AsyncCommandBus(handlers).execute(PlaceOrder("x")),
            await AsyncQueryBus(handlers).execute(CountOrders("x")),
        )

    assert ("async", 2) == asyncio.run(main())


def test_missing_handler_on_an_async_bus() -> None:
    """An async bus with no handler raises HandlerNotFoundError naming the right bus."""
    with pytest.raises(HandlerNotFoundError, match="send it to AsyncQueryBus"):
        asyncio.run(AsyncCommandBus().execute(GetOrder("1")))


def test_override_on_an_async_bus() -> None:
    """override() works on async buses, with a sync or async stand-in."""
    bus = AsyncQueryBus()
    bus.register(GetOrder, lambda q: "real")

    async def fake(q: GetOrder) -> str:
        return "fake"

    async def main() -> list[str | None]:
        with bus.override(GetOrder, fake):
            inside = await bus.execute(GetOrder("1"))
        return [inside, await bus.execute(GetOrder("1"))]

    assert ["fake", "real"] == asyncio.run(main())


def test_sequential_delivery_keeps_subscription_order() -> None:
    """By default, one event's handlers run one after another, in subscription order."""
    seen: list[str] = []

    async def slow(e: OrderPlaced) -> None:
        await asyncio.sleep(0.01)
        seen.append("slow")

    bus = AsyncEventBus()
    bus.subscribe(OrderPlaced, slow)
    bus.subscribe(OrderPlaced, lambda e: seen.append("fast"))
    asyncio.run(bus.publish(ExpressOrderPlaced("1")))
    assert ["slow", "fast"] == seen


def test_concurrent_delivery_runs_handlers_side_by_side() -> None:
    """With concurrent=True, handlers wait on each other without deadlock: they overlap."""

    async def main() -> list[str]:
        first_started, second_started = asyncio.Event(), asyncio.Event()
        seen: list[str] = []

        async def first(e: OrderPlaced) -> None:
            first_started.set()
            await asyncio.wait_for(second_started.wait(), 1)
            seen.append("first")

        async def second(e: OrderPlaced) -> None:
            second_started.set()
            await asyncio.wait_for(first_started.wait(), 1)
            seen.append("second")

        bus = AsyncEventBus(concurrent=True)
        bus.subscribe(OrderPlaced, first)
        bus.subscribe(OrderPlaced, second)
        await bus.publish(OrderPlaced("1"))
        return sorted(seen)

    assert ["first", "second"] == asyncio.run(main())


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_failure_cancels_no_sibling(concurrent: bool) -> None:
    """A failing handler cancels no other: all finish, then its exception is raised as is."""
    finished: list[str] = []

    async def failing(e: OrderPlaced) -> None:
        raise ValueError("boom")

    async def slow(e: OrderPlaced) -> None:
        await asyncio.sleep(0.01)
        finished.append("slow")

    bus = AsyncEventBus(concurrent=concurrent)
    bus.subscribe(OrderPlaced, failing)
    bus.subscribe(OrderPlaced, slow)
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(bus.publish(OrderPlaced("1")))
    assert ["slow"] == finished


@pytest.mark.parametrize("concurrent", [False, True])
def test_several_async_failures_make_a_group(concurrent: bool) -> None:
    """Several failures are raised together as an ExceptionGroup."""

    async def failing(e: OrderPlaced) -> None:
        raise ValueError("boom")

    bus = AsyncEventBus(concurrent=concurrent)
    bus.subscribe(OrderPlaced, failing)
    bus.subscribe(OrderPlaced, failing)
    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(bus.publish(OrderPlaced("1")))
    assert 2 == len(info.value.exceptions)


@pytest.mark.parametrize("hook_is_async", [False, True])
def test_on_error_may_be_async(hook_is_async: bool) -> None:
    """on_error on an async bus may be a plain or an async function; publish succeeds."""
    failures: list[tuple[type[BaseException], Any]] = []

    def record(exc: BaseException, event: Any, handler: Any) -> None:
        failures.append((type(exc), event))

    async def record_async(exc: BaseException, event: Any, handler: Any) -> None:
        record(exc, event, handler)

    def failing(e: OrderPlaced) -> None:
        raise KeyError("x")

    bus = AsyncEventBus(on_error=record_async if hook_is_async else record)
    bus.subscribe(OrderPlaced, failing)
    asyncio.run(bus.publish_all([OrderPlaced("1"), OrderPlaced("2")]))
    assert [(KeyError, OrderPlaced("1")), (KeyError, OrderPlaced("2"))] == failures


def test_async_on_error_on_a_sync_bus_is_refused() -> None:
    """A sync event bus refuses an async error hook it could never await."""
    from busway import EventBus

    async def hook(exc: BaseException, event: Any, handler: Any) -> None:
        pass

    with pytest.raises(RegistrationError, match="use AsyncEventBus"):
        EventBus(on_error=hook)


def test_sync_middleware_on_an_async_bus() -> None:
    """A plain middleware on an async bus may pass next's awaitable on, or short-circuit."""
    bus = AsyncQueryBus()
    bus.register(GetOrder, lambda q: f"found {q.order_id}")
    bus.use(lambda q, next: next(GetOrder(q.order_id.upper())))
    bus.use(lambda q, next: "cached" if q.order_id == "HIT" else next(q), on=GetOrder)
    results = asyncio.run(_execute_all(bus, [GetOrder("a"), GetOrder("hit")]))
    assert ["found A", "cached"] == results


async def _execute_all(bus: AsyncQueryBus, queries: list[GetOrder]) -> list[Any]:
    return [await bus.execute(q) for q in queries]


def test_a_missing_handler_raises_when_awaited_not_at_the_call() -> None:
    """execute() itself never raises: a missing handler surfaces when the result is awaited."""
    pending = AsyncCommandBus().execute(PlaceOrder("ada"))
    assert inspect.iscoroutine(pending)
    with pytest.raises(HandlerNotFoundError, match="no handler for PlaceOrder"):
        asyncio.run(pending)


def test_execute_can_be_run_as_a_task() -> None:
    """What execute() returns is a coroutine: asyncio.run and create_task take it."""
    bus = AsyncCommandBus()
    bus.register(PlaceOrder, lambda c: f"order for {c.customer}")

    async def main() -> str:
        return await asyncio.create_task(bus.execute(PlaceOrder("ada")))

    assert "order for ada" == asyncio.run(main())


def test_an_async_bus_may_forward_to_another() -> None:
    """Registering one async bus's execute as another's handler awaits the forwarded result."""
    inner = AsyncCommandBus()

    async def place(c: PlaceOrder) -> str:
        return f"placed for {c.customer}"

    inner.register(PlaceOrder, place)
    outer = AsyncCommandBus()
    outer.register(PlaceOrder, inner.execute)
    assert "placed for bo" == asyncio.run(outer.execute(PlaceOrder("bo")))


def test_async_failures_do_not_become_each_others_context() -> None:
    """On an async bus too, each failure keeps its own context: none is chained onto another."""

    async def first(e: OrderPlaced) -> None:
        raise ValueError("first")

    def second(e: OrderPlaced) -> None:
        raise KeyError("second")

    bus = AsyncEventBus()
    bus.subscribe(OrderPlaced, first)
    bus.subscribe(OrderPlaced, second)
    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(bus.publish(OrderPlaced("1")))
    assert [None, None, None] == [
        info.value.__context__,
        *(exc.__context__ for exc in info.value.exceptions),
    ]


def test_publishing_returns_none_whatever_a_lone_handler_returns() -> None:
    """publish() returns None, also when the event's one handler returns something."""
    bus = AsyncEventBus()

    async def answer(e: OrderPlaced) -> str:
        return "ignored"

    bus.subscribe(OrderPlaced, answer)
    assert None is asyncio.run(bus.publish(OrderPlaced("1")))
