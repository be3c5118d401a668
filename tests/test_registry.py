"""Registries: declaring handlers, and refusing what cannot work."""

from __future__ import annotations

from typing import Any

import pytest

from busway import (
    CommandBus,
    DuplicateHandlerError,
    Event,
    EventBus,
    QueryBus,
    RegistrationError,
    Registry,
)
from tests.messages import CountOrders, GetOrder, OrderPlaced, PlaceOrder


def test_bare_decorators_read_the_type_from_the_annotation() -> None:
    """``@registry.command`` with no argument registers for the first parameter's class."""
    handlers = Registry()

    @handlers.command
    def place(cmd: PlaceOrder) -> str:
        return f"order for {cmd.customer}"

    @handlers.query
    def get(q: GetOrder) -> str | None:
        return None

    @handlers.event
    def placed(e: OrderPlaced) -> None:
        pass

    assert {PlaceOrder: place} == CommandBus(handlers).registered()
    assert {GetOrder: get} == QueryBus(handlers).registered()
    assert {OrderPlaced: (placed,)} == EventBus(handlers).registered()


def test_postponed_annotations_are_resolved() -> None:
    """This module uses ``from __future__ import annotations``; string annotations resolve."""
    handlers = Registry()

    @handlers.command
    def place(cmd: PlaceOrder) -> str:
        return "ok"

    assert "ok" == CommandBus(handlers).execute(PlaceOrder("ann"))


def test_decorators_return_the_function_unchanged() -> None:
    """The decorated name still refers to the original function, callable directly."""
    handlers = Registry()

    def place(cmd: PlaceOrder) -> str:
        return "direct"

    assert handlers.command(place) is place
    assert handlers.query(CountOrders)(len) is len


def test_explicit_type_needs_no_annotation() -> None:
    """``@registry.query(GetOrder)`` works on a handler without annotations."""
    handlers = Registry()
    handlers.query(GetOrder)(lambda q: "found")
    assert "found" == QueryBus(handlers).execute(GetOrder("1"))


def test_methods_and_callable_instances_are_handlers() -> None:
    """Bound methods and instances with ``__call__`` register bare, like functions."""

    class Service:
        def place(self, cmd: PlaceOrder) -> str:
            return "method"

    class Counter:
        def __call__(self, q: CountOrders) -> int:
            return 7

    handlers = Registry()
    handlers.command(Service().place)
    handlers.query(Counter())
    assert "method" == CommandBus(handlers).execute(PlaceOrder("x"))
    assert 7 == QueryBus(handlers).execute(CountOrders("x"))


def test_a_second_handler_in_one_registry_is_refused() -> None:
    """Two handlers for one command type raise DuplicateHandlerError, naming both."""
    handlers = Registry()
    handlers.command(PlaceOrder)(lambda c: "first")
    with pytest.raises(DuplicateHandlerError, match="PlaceOrder already has a handler") as info:
        handlers.command(PlaceOrder)(lambda c: "second")
    assert PlaceOrder is info.value.message_type
    assert "first" == CommandBus(handlers).execute(PlaceOrder("x"))


def test_event_handlers_may_repeat() -> None:
    """The same callable subscribed twice is a second subscription, not an error."""
    handlers = Registry()
    seen: list[OrderPlaced] = []
    handlers.event(OrderPlaced)(seen.append)
    handlers.event(OrderPlaced)(seen.append)
    EventBus(handlers).publish(OrderPlaced("1"))
    assert [OrderPlaced("1")] * 2 == seen


@pytest.mark.parametrize(
    ("decorator", "message_type", "says"),
    [
        ("command", GetOrder, "GetOrder is a query"),
        ("command", OrderPlaced, "OrderPlaced is an event"),
        ("query", PlaceOrder, "PlaceOrder is a command"),
        ("event", PlaceOrder, "PlaceOrder is a command"),
    ],
)
def test_wrong_kind_is_refused(decorator: str, message_type: type, says: str) -> None:
    """A query registered as a command (and so on) raises RegistrationError saying which."""
    handlers = Registry()
    with pytest.raises(RegistrationError, match=says):
        getattr(handlers, decorator)(message_type)(lambda m: None)


def test_non_class_type_is_refused() -> None:
    """A message type must be a class; an instance or a string is refused."""
    handlers = Registry()
    with pytest.raises(RegistrationError, match="takes a message class or a handler"):
        handlers.command("PlaceOrder")  # type: ignore[call-overload]
    with pytest.raises(RegistrationError, match="needs a class"):
        CommandBus().register(PlaceOrder("x"), lambda m: None)  # type: ignore[arg-type]


def test_non_callable_handler_is_refused() -> None:
    """A handler must be callable."""
    handlers = Registry()
    with pytest.raises(RegistrationError, match="must be callable"):
        handlers.command(PlaceOrder)(42)  # type: ignore[type-var]


def test_missing_annotation_is_refused() -> None:
    """A bare decorator on an unannotated handler says to annotate or name the type."""
    handlers = Registry()
    with pytest.raises(RegistrationError, match="has no annotation; annotate it"):

        @handlers.command
        def place(cmd):  # type: ignore[no-untyped-def]
            return None


def test_non_class_annotation_is_refused() -> None:
    """An annotation that is not a class (a union, a generic alias) is refused."""
    handlers = Registry()
    with pytest.raises(RegistrationError, match="not a class"):

        @handlers.event
        def on_any(e: OrderPlaced | None) -> None:
            pass


def test_handler_without_parameters_is_refused() -> None:
    """A bare decorator on a handler taking no argument says to give the type."""
    handlers = Registry()
    with pytest.raises(RegistrationError, match="takes no positional parameter"):

        @handlers.event
        def on_any() -> None:
            pass


def test_unresolvable_annotation_is_refused() -> None:
    """A forward reference that does not resolve is reported, not guessed."""
    handlers = Registry()

    def handler(e: NoSuchEvent) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(RegistrationError, match="cannot resolve the annotations"):
        handlers.event(handler)


def test_middleware_must_take_message_and_next() -> None:
    """Handler middleware is checked when registered: callable, with two parameters."""
    handlers = Registry()
    with pytest.raises(RegistrationError, match="must be callable"):
        handlers.command(PlaceOrder, middleware=[42])  # type: ignore[list-item]
    with pytest.raises(RegistrationError, match=r"must accept two arguments"):
        handlers.command(PlaceOrder, middleware=[lambda m: m])  # type: ignore[list-item]


def test_subscribing_to_event_base_receives_everything() -> None:
    """A subscription to ``Event`` itself receives every event."""
    handlers = Registry()
    seen: list[Any] = []
    handlers.event(Event)(seen.append)
    bus = EventBus(handlers)
    bus.publish(OrderPlaced("1"))
    assert [OrderPlaced("1")] == seen


def test_repr_counts_registrations() -> None:
    """The repr says how many handlers of each kind a registry holds."""
    handlers = Registry()
    handlers.command(PlaceOrder)(lambda c: "x")
    assert "<Registry: 1 commands, 0 queries, 0 event handlers>" == repr(handlers)
