"""EventTypes: stable names, schema versions, upcasters, and serializers you bring."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given

from busway.errors import RegistrationError
from busway.eventstore import (
    CattrsSerializer,
    EventTypes,
    InMemoryEventStore,
    SerializationError,
    Serializer,
    UnknownEventTypeError,
)

from .events import OrderCancelled, OrderPlaced

T = TypeVar("T")


@attrs.frozen
class Shipped:
    order_id: str
    carrier: str
    tracking: str | None = None


def test_default_names_are_class_names() -> None:
    """A class is stored under its __name__ unless given a name."""
    types = EventTypes(OrderPlaced)
    types.add(OrderCancelled, name="order.cancelled")
    assert "OrderPlaced" == types.name_of(OrderPlaced)
    assert "order.cancelled" == types.name_of(OrderCancelled)
    assert OrderCancelled is types.class_of("order.cancelled")
    assert {"OrderPlaced": OrderPlaced, "order.cancelled": OrderCancelled} == types.names
    assert OrderPlaced in types
    assert "order.cancelled" in types
    assert 2 == len(types)
    assert [OrderPlaced, OrderCancelled] == list(types)


def test_add_returns_the_class() -> None:
    """add() returns the class, so it can decorate one."""
    types = EventTypes()
    assert Shipped is types.add(Shipped)


def test_registering_twice_the_same_way_is_harmless() -> None:
    """Adding a class again under the same name and version changes nothing."""
    types = EventTypes(Shipped)
    types.add(Shipped)
    assert 1 == len(types)


def test_conflicting_registrations() -> None:
    """A name or class registered differently is a RegistrationError."""
    types = EventTypes(Shipped)
    with pytest.raises(RegistrationError):
        types.add(OrderCancelled, name="Shipped")
    with pytest.raises(RegistrationError):
        types.add(Shipped, name="Other")
    with pytest.raises(RegistrationError):
        types.add(Shipped, version=2)


@pytest.mark.parametrize("name", ["", " padded", 3, "bad \udc00"])
def test_bad_names(name: Any) -> None:
    """Names are non-empty text without surrounding spaces."""
    with pytest.raises(RegistrationError):
        EventTypes().add(Shipped, name=name)


@pytest.mark.parametrize("version", [0, -1, True, 1.0])
def test_bad_versions(version: Any) -> None:
    """Schema versions are ints from 1."""
    with pytest.raises(RegistrationError):
        EventTypes().add(Shipped, version=version)
    with pytest.raises(RegistrationError):
        EventTypes().upcaster("Shipped", from_version=version)


def test_only_classes() -> None:
    """EventTypes holds classes, not instances."""
    with pytest.raises(RegistrationError):
        EventTypes().add(Shipped("o", "c"))  # type: ignore[arg-type]


def test_unknown_names_and_classes() -> None:
    """Lookups of unregistered names or classes list what is registered."""
    types = EventTypes(Shipped)
    with pytest.raises(UnknownEventTypeError) as info:
        types.class_of("Nope")
    assert ("Shipped",) == info.value.known
    with pytest.raises(UnknownEventTypeError) as info:
        types.name_of(OrderPlaced)
    assert "Shipped" in str(info.value)
    assert isinstance(info.value, LookupError)


def _stored(types: EventTypes, event: object) -> tuple[str, int, str]:
    return types.encode(event)


def test_upcasters_chain_across_versions() -> None:
    """Payloads written at v1 pass through v1->v2 and v2->v3 before the class is built."""
    old = EventTypes()
    old.add(Shipped, version=1)
    name, version, payload = _stored(old, Shipped("o-1", "ups"))
    assert json.loads(payload) == {"order_id": "o-1", "carrier": "ups", "tracking": None}

    @attrs.frozen
    class ShippedV3:
        order: str
        carrier: str
        tracking: str

    types = EventTypes()
    types.add(ShippedV3, name="Shipped", version=3)
    calls: list[int] = []

    @types.upcaster("Shipped", from_version=2)
    def fill_tracking(data: dict[str, Any]) -> dict[str, Any]:
        calls.append(2)
        return {**data, "tracking": data["tracking"] or "unknown"}

    @types.upcaster("Shipped", from_version=1)
    def rename(data: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return {"order": data.pop("order_id"), **data}

    assert ShippedV3("o-1", "ups", "unknown") == types.decode(name, version, payload, position=9)
    assert [1, 2] == calls
    assert fill_tracking.__name__ == "fill_tracking"  # the decorator returns the function


def test_missing_upcaster() -> None:
    """A gap in the chain names the missing step and how to add it."""
    types = EventTypes()
    types.add(Shipped, version=3)
    types.upcaster("Shipped", from_version=1)(lambda d: d)
    with pytest.raises(SerializationError) as info:
        types.decode("Shipped", 1, '{"order_id": "o", "carrier": "c"}', position=4)
    assert "from_version=2" in str(info.value)
    assert 4 == info.value.position


def test_newer_data_than_the_class() -> None:
    """Data written by a later schema version than registered is refused, not guessed at."""
    with pytest.raises(SerializationError) as info:
        EventTypes(Shipped).decode("Shipped", 2, '{"order_id": "o", "carrier": "c"}', position=1)
    assert "schema version 2" in str(info.value)


def test_failing_upcaster() -> None:
    """An upcaster that raises or returns no dict is reported with the position."""
    types = EventTypes()
    types.add(Shipped, version=2)
    types.upcaster("Shipped", from_version=1)(lambda d: d["missing"])
    with pytest.raises(SerializationError) as info:
        types.decode("Shipped", 1, "{}", position=3)
    assert 3 == info.value.position
    types = EventTypes()
    types.add(Shipped, version=2)
    types.upcaster("Shipped", from_version=1)(lambda d: [d])  # type: ignore[type-var]
    with pytest.raises(SerializationError):
        types.decode("Shipped", 1, "{}", position=3)


def test_upcaster_registered_twice() -> None:
    """One upcaster per name and version."""
    types = EventTypes()
    types.upcaster("Shipped", from_version=1)(lambda d: d)
    with pytest.raises(RegistrationError):
        types.upcaster("Shipped", from_version=1)(lambda d: d)


def test_payload_that_does_not_fit() -> None:
    """A payload missing fields is reported with the field path and the position."""
    with pytest.raises(SerializationError) as info:
        EventTypes(OrderPlaced).decode("OrderPlaced", 1, '{"order_id": "o"}', position=12)
    assert "total" in str(info.value)
    assert "position 12" in str(info.value)


def test_decimals_are_strings() -> None:
    """Decimals are stored as strings, so no digit is lost, and a float is refused on read."""
    types = EventTypes(OrderPlaced)
    _, _, payload = types.encode(OrderPlaced("o", Decimal("0.1000000000000000000001")))
    assert '"0.1000000000000000000001"' in payload
    with pytest.raises(SerializationError):
        types.decode("OrderPlaced", 1, '{"order_id": "o", "total": 0.1}', position=1)


@attrs.frozen
class Holder:
    value: object


def test_unserializable_nested_value_names_the_field() -> None:
    """A value the serializer cannot turn into JSON is reported by its path."""
    types = EventTypes(Holder)
    with pytest.raises(SerializationError) as info:
        types.encode(Holder({"a": [1, {"b": object()}]}))
    assert "value.a[1].b" == info.value.field


def test_serializer_failure_is_wrapped() -> None:
    """An exception inside the serializer becomes a SerializationError naming the type."""

    class Broken:
        def to_dict(self, event: object) -> dict[str, Any]:
            raise ValueError("no")

        def from_dict(self, data: dict[str, Any], cls: type[T]) -> T:
            raise AssertionError

    with pytest.raises(SerializationError) as info:
        EventTypes(Shipped, serializer=Broken()).encode(Shipped("o", "c"))
    assert "Shipped" == info.value.type_name


@dataclasses.dataclass(frozen=True)
class Dated:
    name: str
    size: int


class DataclassSerializer:
    """A serializer of our own: dataclasses through dataclasses.asdict, no cattrs."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def to_dict(self, event: object) -> dict[str, Any]:
        self.calls.append("to_dict")
        assert dataclasses.is_dataclass(event)
        assert not isinstance(event, type)
        return dataclasses.asdict(event)

    def from_dict(self, data: dict[str, Any], cls: type[T]) -> T:
        self.calls.append("from_dict")
        return cls(**data)


def test_a_serializer_of_your_own() -> None:
    """Any object with to_dict and from_dict serializes the events of a store."""
    serializer = DataclassSerializer()
    assert isinstance(serializer, Serializer)
    with InMemoryEventStore(types=EventTypes(Dated, serializer=serializer)) as store:
        store.append("d-1", [Dated("a", 1)])
        assert [Dated("a", 1)] == [r.event for r in store.read_stream("d-1")]
    assert ["to_dict", "from_dict"] == serializer.calls


def test_cattrs_serializer_takes_a_converter() -> None:
    """The default serializer's converter takes hooks of your own."""
    serializer = CattrsSerializer()
    serializer.converter.register_unstructure_hook(complex, lambda c: [c.real, c.imag])
    serializer.converter.register_structure_hook(complex, lambda v, _: complex(*v))

    @attrs.frozen
    class Signal:
        z: complex

    types = EventTypes(Signal, serializer=serializer)
    name, version, payload = types.encode(Signal(1 + 2j))
    assert Signal(1 + 2j) == types.decode(name, version, payload, position=1)


@given(st.text())
def test_any_text_is_stored_exactly(text: str) -> None:
    """Any text, lone surrogates included, survives encoding as stored JSON."""
    types = EventTypes(OrderCancelled)
    name, version, payload = types.encode(OrderCancelled(text))
    payload.encode()  # always storable as UTF-8
    assert OrderCancelled(text) == types.decode(name, version, payload, position=1)


def test_event_ids_are_time_ordered_uuids() -> None:
    """Fresh event ids are distinct UUIDs of version 7, later ones sorting after earlier ones."""
    import time
    import uuid

    from busway.eventstore import NewEvent

    with InMemoryEventStore(types=EventTypes(OrderCancelled)) as store:
        store.append("o-1", [OrderCancelled("a")] * 50)
        time.sleep(0.002)
        store.append("o-1", [OrderCancelled("b")])
        ids = [r.event_id for r in store.read_stream("o-1")]
    assert 51 == len(set(ids))
    assert {7} == {i.version for i in ids}
    assert {uuid.RFC_4122} == {i.variant for i in ids}
    assert max(ids[:50]) < ids[50]
    assert 7 == NewEvent(OrderCancelled("c")).event_id.version
