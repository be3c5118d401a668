"""Saga classes are checked when a manager is built, with errors that say what to change."""

from __future__ import annotations

import dataclasses
from typing import Any

import attrs
import pytest

from busway import CommandBus, RegistrationError
from busway.errors import SagaDefinitionError, SagaError, SerializationError
from busway.eventstore import EventTypes
from busway.sagas import InMemorySagaStore, Saga, SagaManager, compensates, handles, starts

from .model import Booking, OrderPlaced, ReserveStock, StockReserved


def build(*sagas: Any, types: EventTypes | None = None) -> SagaManager:
    return SagaManager(*sagas, store=InMemorySagaStore(), commands=CommandBus(), types=types)


def test_a_saga_must_subclass_saga() -> None:
    """Plain classes are refused."""

    @attrs.define
    class NotASaga:
        pass

    with pytest.raises(SagaDefinitionError, match=r"subclass busway\.sagas\.Saga"):
        build(NotASaga)


def test_state_must_be_attrs_or_a_dataclass() -> None:
    """State has to be something the serializer can store."""

    class Plain(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None: ...

    with pytest.raises(SagaDefinitionError, match="make it an attrs class"):
        build(Plain)


def test_dataclass_sagas_work() -> None:
    """A dataclass is as good as an attrs class."""

    @dataclasses.dataclass
    class Counter(Saga):
        count: int = 0

        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            self.count += 1

    manager = build(Counter)
    manager.handle(OrderPlaced("o-1"))
    assert [Counter(1)] == manager.find(Counter, "order_id", "o-1")


def test_every_field_needs_a_default() -> None:
    """The manager creates the saga with no arguments before its @starts method runs."""

    @attrs.define
    class Needy(Saga):
        order_id: str

        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None: ...

    with pytest.raises(SagaDefinitionError, match="give every field a default"):
        build(Needy)


def test_a_saga_needs_a_start() -> None:
    """Without @starts nothing would ever create the saga."""

    @attrs.define
    class Endless(Saga):
        @handles(StockReserved, key="order_id")
        def reserved(self, event: StockReserved) -> None: ...

    with pytest.raises(SagaDefinitionError, match="has no @starts method"):
        build(Endless)


def test_one_method_per_message_class() -> None:
    """Two methods for one event class are ambiguous."""

    @attrs.define
    class Twice(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None: ...

        @handles(OrderPlaced, key="order_id")
        def again(self, event: OrderPlaced) -> None: ...

    with pytest.raises(SagaDefinitionError, match="has two methods for OrderPlaced"):
        build(Twice)


def test_the_key_must_be_an_attribute_of_the_event() -> None:
    """A misspelt key is caught when the manager is built, listing the event's fields."""

    @attrs.define
    class Misspelt(Saga):
        @starts(OrderPlaced, key="orderid")
        def placed(self, event: OrderPlaced) -> None: ...

    with pytest.raises(SagaDefinitionError, match=r"it has: order_id, amount"):
        build(Misspelt)


def test_a_key_missing_at_runtime_is_reported() -> None:
    """Events that are not attrs classes are checked when they arrive."""

    class Loose:
        pass

    @attrs.define
    class Routed(Saga):
        @starts(Loose, key="order_id")
        def placed(self, event: Loose) -> None: ...

    with pytest.raises(SagaError, match="has no attribute 'order_id'"):
        build(Routed).handle(Loose())


def test_decorators_check_their_arguments() -> None:
    """A decorator given something other than a class, or a bad key, fails at once."""
    with pytest.raises(SagaDefinitionError, match="it takes a class"):
        starts("OrderPlaced", key="order_id")  # type: ignore[arg-type]
    with pytest.raises(SagaDefinitionError, match="the name of an attribute"):
        handles(OrderPlaced, key="order id")
    with pytest.raises(SagaDefinitionError, match="not callable"):
        compensates(ReserveStock)(42)  # type: ignore[type-var]
    assert issubclass(SagaDefinitionError, RegistrationError)


def test_a_manager_needs_sagas_each_once() -> None:
    """An empty or repeated list of sagas is a mistake."""
    with pytest.raises(SagaDefinitionError, match="at least one saga class"):
        build()
    with pytest.raises(SagaDefinitionError, match="given to the manager twice"):
        build(Booking, Booking)


def test_saga_methods_work_only_under_a_manager() -> None:
    """Calling send() or reading saga_id outside a managed method says why it cannot work."""
    booking = Booking()
    with pytest.raises(SagaError, match=r"Booking.send\(\) works only inside"):
        booking.send(ReserveStock("o-1"))
    with pytest.raises(SagaError, match="saga_id"):
        _ = booking.saga_id


def test_the_saga_id_and_dissociation_inside_a_method() -> None:
    """A method sees its saga's id; dissociate_from() stops routing by that value."""
    ids: list[str] = []

    @attrs.define
    class Loner(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            ids.append(self.saga_id)
            self.dissociate_from("order_id", event.order_id)

    manager = build(Loner)
    manager.handle(OrderPlaced("o-1"))
    manager.handle(OrderPlaced("o-1"))
    assert 2 == len(set(ids))
    assert [] == manager.find(Loner, "order_id", "o-1")


def test_a_command_class_whose_name_is_taken_is_refused() -> None:
    """Two classes cannot be stored under one name; the error says how to name one."""

    @attrs.frozen
    class ReserveStock:  # the same name as the one in .model
        order_id: str

    @attrs.define
    class Clash(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            self.send(ReserveStock(event.order_id))

    from .model import ReserveStock as Original

    types = EventTypes(Original)
    with pytest.raises(SagaError, match=r"types.add\(cls, name=...\)"):
        build(Clash, types=types).handle(OrderPlaced("o-1"))


def test_a_command_that_cannot_be_serialized_fails_at_send() -> None:
    """send() encodes at once, so the error points at the saga method."""

    class Opaque:
        pass

    @attrs.define
    class Sender(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            self.send(Opaque())

    with pytest.raises(SerializationError, match="Opaque cannot be serialized"):
        build(Sender).handle(OrderPlaced("o-1"))
