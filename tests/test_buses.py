"""The synchronous buses: dispatch, delivery, failures and what they refuse."""

from __future__ import annotations

import re
import traceback
from typing import Any

import pytest

from busway import (
    CommandBus,
    DuplicateHandlerError,
    Event,
    EventBus,
    HandlerNotFoundError,
    QueryBus,
    RegistrationError,
    Registry,
)
from tests.messages import (
    CancelOrder,
    CountOrders,
    ExpressOrderPlaced,
    GetOrder,
    OrderPlaced,
    OrderShipped,
    PlaceOrder,
    PlainCommand,
)


def test_execute_returns_the_handlers_result() -> None:
    """A command bus returns what the command's handler returns."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: f"order-{c.customer}")
    assert "order-ada" == bus.execute(PlaceOrder("ada"))


def test_missing_handler_names_the_type_and_what_is_registered() -> None:
    """Executing an unhandled command raises HandlerNotFoundError listing registered types."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    with pytest.raises(HandlerNotFoundError) as info:
        bus.execute(CancelOrder("1"))
    assert CancelOrder is info.value.message_type
    assert "no handler for CancelOrder (registered: PlaceOrder)" in str(info.value)
    assert "bus.register(CancelOrder, fn)" in str(info.value)


def test_missing_handler_suggests_close_names() -> None:
    """A near miss among many registered types is suggested by name."""

    class PlaceOrders(PlaceOrder):
        pass

    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    for i in range(20):
        bus.register(type(f"Other{i}", (), {}), lambda c: "x")
    with pytest.raises(HandlerNotFoundError, match=re.escape("did you mean PlaceOrder?")):
        bus.execute(PlaceOrders("x"))


def test_lookup_is_by_exact_type() -> None:
    """Commands are matched by exact type: a subclass of a handled command is not handled."""

    class UrgentPlaceOrder(PlaceOrder):
        pass

    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    with pytest.raises(LookupError):
        bus.execute(UrgentPlaceOrder("x"))


def test_handler_exceptions_pass_through_unwrapped() -> None:
    """A handler's exception reaches the caller as is, with the handler's frame in its traceback."""

    def failing(cmd: PlaceOrder) -> str:
        raise KeyError("out of stock")

    bus = CommandBus()
    bus.register(PlaceOrder, failing)
    with pytest.raises(KeyError, match="out of stock") as info:
        bus.execute(PlaceOrder("x"))
    assert "failing" in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]


def test_bus_from_several_registries() -> None:
    """A bus serves every registry it is given, each bus taking its own kind."""
    orders, reports = Registry(), Registry()
    orders.command(PlaceOrder)(lambda c: "placed")
    reports.query(CountOrders)(lambda q: 3)
    reports.command(CancelOrder)(lambda c: None)
    commands, queries = CommandBus(orders, reports), QueryBus(orders, reports)
    assert ("placed", None, 3) == (
        commands.execute(PlaceOrder("x")),
        commands.execute(CancelOrder("1")),
        queries.execute(CountOrders("x")),
    )


def test_clashing_registries_are_refused() -> None:
    """Two registries handling one command type cannot make one bus."""
    first, second = Registry(), Registry()
    first.command(PlaceOrder)(lambda c: "first")
    second.command(PlaceOrder)(lambda c: "second")
    with pytest.raises(DuplicateHandlerError, match="PlaceOrder already has a handler"):
        CommandBus(first, second)


def test_later_registrations_are_seen() -> None:
    """A registry's handlers added after the bus was built are dispatched to."""
    handlers = Registry()
    bus = CommandBus(handlers)
    with pytest.raises(HandlerNotFoundError):
        bus.execute(PlaceOrder("x"))
    handlers.command(PlaceOrder)(lambda c: "late")
    assert "late" == bus.execute(PlaceOrder("x"))


def test_later_clash_is_refused_and_changes_nothing() -> None:
    """Adding to a registry a type another registry of the bus handles raises, and is undone."""
    first, second = Registry(), Registry()
    first.command(PlaceOrder)(lambda c: "first")
    bus = CommandBus(first, second)
    with pytest.raises(DuplicateHandlerError):
        second.command(PlaceOrder)(lambda c: "second")
    assert "first" == bus.execute(PlaceOrder("x"))
    assert {} == CommandBus(second).registered()


def test_register_on_the_bus_clashing_with_a_registry() -> None:
    """bus.register of a type a given registry handles raises DuplicateHandlerError."""
    handlers = Registry()
    handlers.command(PlaceOrder)(lambda c: "registry")
    bus = CommandBus(handlers)
    with pytest.raises(DuplicateHandlerError):
        bus.register(PlaceOrder, lambda c: "bus")
    assert "registry" == bus.execute(PlaceOrder("x"))


def test_include_adds_a_registry_once() -> None:
    """include() adds a registry's handlers; including it again changes nothing."""
    handlers = Registry()
    handlers.query(GetOrder)(lambda q: "found")
    bus = QueryBus()
    bus.include(handlers)
    bus.include(handlers)
    assert "found" == bus.execute(GetOrder("1"))
    with pytest.raises(RegistrationError, match="include\\(\\) takes a Registry"):
        bus.include(object())  # type: ignore[arg-type]


def test_constructor_takes_only_registries() -> None:
    """A bus refuses constructor arguments that are not registries."""
    with pytest.raises(RegistrationError, match="takes Registry objects"):
        CommandBus({PlaceOrder: print})  # type: ignore[arg-type]


def test_wrong_kind_on_a_bus_is_refused() -> None:
    """A query registered on a command bus raises RegistrationError."""
    with pytest.raises(RegistrationError, match="GetOrder is a query"):
        CommandBus().register(GetOrder, lambda q: None)
    with pytest.raises(RegistrationError, match="PlaceOrder is a command"):
        EventBus().subscribe(PlaceOrder, lambda e: None)


def test_async_handler_on_a_sync_bus_is_refused() -> None:
    """An async handler on a sync bus is refused with advice to use the async bus."""

    async def place(cmd: PlaceOrder) -> str:
        return "x"

    with pytest.raises(RegistrationError, match="use AsyncCommandBus instead"):
        CommandBus().register(PlaceOrder, place)
    handlers = Registry()
    handlers.event(OrderPlaced)(place)
    with pytest.raises(RegistrationError, match="use AsyncEventBus instead"):
        EventBus(handlers)


def test_handler_decorator_on_a_bus() -> None:
    """``@bus.handler`` registers bare or with an explicit type, returning the function."""
    bus = CommandBus()

    @bus.handler
    def place(cmd: PlaceOrder) -> str:
        return "bare"

    @bus.handler(CancelOrder)
    def cancel(cmd: Any) -> None:
        return None

    assert ("bare", None) == (bus.execute(PlaceOrder("x")), bus.execute(CancelOrder("1")))
    assert "bare" == place(PlaceOrder("direct"))
    assert bus.handles(PlaceOrder)
    assert not bus.handles(GetOrder)


def test_override_swaps_and_restores() -> None:
    """override() swaps the handler inside the block and restores it after, also on error."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "real")
    with bus.override(PlaceOrder, lambda c: "fake"):
        assert "fake" == bus.execute(PlaceOrder("x"))
    assert "real" == bus.execute(PlaceOrder("x"))
    with pytest.raises(RuntimeError), bus.override(PlaceOrder, lambda c: "fake"):
        raise RuntimeError
    assert "real" == bus.execute(PlaceOrder("x"))


def test_override_nests_and_stubs_missing_handlers() -> None:
    """Overrides nest, and may stand in for a handler that is not registered at all."""
    bus = QueryBus()
    with bus.override(GetOrder, lambda q: "outer"):
        with bus.override(GetOrder, lambda q: "inner"):
            assert "inner" == bus.execute(GetOrder("1"))
        assert "outer" == bus.execute(GetOrder("1"))
    with pytest.raises(HandlerNotFoundError):
        bus.execute(GetOrder("1"))


def test_plain_class_result_is_dispatched() -> None:
    """Plain classes are dispatched like any message."""
    bus = CommandBus()
    bus.register(PlainCommand, lambda c: c.value + 1)
    assert 2 == bus.execute(PlainCommand(1))


# -- events ---------------------------------------------------------------------------------


def test_events_reach_handlers_of_the_class_and_its_bases_in_subscription_order() -> None:
    """Handlers of the event's class and of its bases all run, in subscription order."""
    seen: list[str] = []
    bus = EventBus()
    bus.subscribe(Event, lambda e: seen.append("any event"))
    bus.subscribe(ExpressOrderPlaced, lambda e: seen.append("express"))
    bus.subscribe(OrderPlaced, lambda e: seen.append("placed"))
    bus.subscribe(OrderShipped, lambda e: seen.append("shipped"))
    bus.publish(ExpressOrderPlaced("1"))
    assert ["any event", "express", "placed"] == seen


def test_an_event_with_no_handlers_is_fine() -> None:
    """Publishing an event nobody listens to does nothing and raises nothing."""
    EventBus().publish(OrderPlaced("1"))


def test_publish_all_publishes_in_order() -> None:
    """publish_all delivers each event in turn."""
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(Event, seen.append)
    bus.publish_all([OrderPlaced("1"), OrderShipped("1")])
    assert [OrderPlaced("1"), OrderShipped("1")] == seen


def test_unsubscribe_is_idempotent() -> None:
    """unsubscribe() stops delivery; calling it twice is harmless."""
    seen: list[Event] = []
    bus = EventBus()
    subscription = bus.subscribe(OrderPlaced, seen.append)
    assert subscription.active
    subscription.unsubscribe()
    subscription.unsubscribe()
    bus.publish(OrderPlaced("1"))
    assert ([], False) == (seen, subscription.active)
    assert "(ended)" in repr(subscription)


def test_subscription_as_a_context_manager() -> None:
    """A subscription used in ``with`` ends with the block."""
    seen: list[Event] = []
    bus = EventBus()
    with bus.subscribe(OrderPlaced, seen.append) as subscription:
        bus.publish(OrderPlaced("1"))
    bus.publish(OrderPlaced("2"))
    assert [OrderPlaced("1")] == seen
    assert (OrderPlaced, seen.append) == (subscription.event_type, subscription.handler)


def test_one_failure_is_raised_as_is_after_all_handlers_ran() -> None:
    """When one handler fails the others still run, then its exception is raised unwrapped."""
    seen: list[str] = []

    def failing(e: OrderPlaced) -> None:
        raise ValueError("mail server down")

    bus = EventBus()
    bus.subscribe(OrderPlaced, lambda e: seen.append("before"))
    bus.subscribe(OrderPlaced, failing)
    bus.subscribe(OrderPlaced, lambda e: seen.append("after"))
    with pytest.raises(ValueError, match="mail server down"):
        bus.publish(OrderPlaced("1"))
    assert ["before", "after"] == seen


def test_several_failures_are_raised_as_a_group() -> None:
    """When several handlers fail, an ExceptionGroup holds each failure in order."""

    def fail(exc: Exception) -> Any:
        def handler(e: OrderPlaced) -> None:
            raise exc

        return handler

    first, second = ValueError("a"), KeyError("b")
    bus = EventBus()
    bus.subscribe(OrderPlaced, fail(first))
    bus.subscribe(OrderPlaced, fail(second))
    with pytest.raises(ExceptionGroup, match="2 handlers of OrderPlaced failed") as info:
        bus.publish(OrderPlaced("1"))
    assert [first, second] == list(info.value.exceptions)


def test_on_error_receives_each_failure_and_publish_succeeds() -> None:
    """With on_error, each failure goes to it with the event and handler; publish succeeds."""
    failures: list[tuple[BaseException, Any, Any]] = []

    def failing(e: OrderPlaced) -> None:
        raise ValueError("boom")

    bus = EventBus(on_error=lambda exc, event, handler: failures.append((exc, event, handler)))
    bus.subscribe(OrderPlaced, failing)
    bus.subscribe(OrderPlaced, failing)
    bus.publish(OrderPlaced("1"))
    assert [(ValueError, OrderPlaced("1"), failing)] * 2 == [
        (type(e), ev, h) for e, ev, h in failures
    ]


def test_on_error_must_be_callable() -> None:
    """A non-callable on_error is refused at construction."""
    with pytest.raises(RegistrationError, match="on_error must be callable"):
        EventBus(on_error=42)  # type: ignore[arg-type]


def test_registered_and_handlers_for() -> None:
    """An event bus lists subscriptions by type, and the handlers an event type reaches."""

    def a(e: Event) -> None:
        pass

    def b(e: OrderPlaced) -> None:
        pass

    bus = EventBus()
    bus.handler(a)
    bus.handler(b)
    assert {Event: (a,), OrderPlaced: (b,)} == bus.registered()
    assert (a, b) == bus.handlers_for(ExpressOrderPlaced)
    assert (a,) == bus.handlers_for(OrderShipped)


def test_keyboard_interrupt_is_not_collected() -> None:
    """Only Exceptions are collected; KeyboardInterrupt stops delivery at once."""
    seen: list[str] = []

    def interrupted(e: OrderPlaced) -> None:
        raise KeyboardInterrupt

    bus = EventBus()
    bus.subscribe(OrderPlaced, interrupted)
    bus.subscribe(OrderPlaced, lambda e: seen.append("later"))
    with pytest.raises(KeyboardInterrupt):
        bus.publish(OrderPlaced("1"))
    assert [] == seen


def test_not_found_does_not_chain_the_cache_miss() -> None:
    """HandlerNotFoundError carries no internal KeyError as its context."""
    with pytest.raises(HandlerNotFoundError) as info:
        CommandBus().execute(PlaceOrder("x"))
    assert info.value.__suppress_context__


def test_wrong_kind_names_the_right_bus_with_its_article() -> None:
    """The advice reads "an EventBus" for events and "a QueryBus" for queries."""
    with pytest.raises(RegistrationError, match="register it on an EventBus"):
        CommandBus().register(OrderPlaced, print)
    with pytest.raises(RegistrationError, match="register it on a QueryBus"):
        CommandBus().register(GetOrder, print)


def test_failures_do_not_become_each_others_context() -> None:
    """Each failure keeps its own context: none is chained onto another."""

    def first(e: OrderPlaced) -> None:
        raise ValueError("first")

    def second(e: OrderPlaced) -> None:
        raise KeyError("second")

    bus = EventBus()
    bus.subscribe(OrderPlaced, first)
    bus.subscribe(OrderPlaced, second)
    with pytest.raises(ExceptionGroup) as info:
        bus.publish(OrderPlaced("1"))
    assert [None, None, None] == [
        info.value.__context__,
        *(exc.__context__ for exc in info.value.exceptions),
    ]
