"""EventTypes: stable names, schema versions, upcasters, and serializers you bring."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any, Literal, TypeVar

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

from ..strategies import json_values_except
from .events import Colour, Label, OrderCancelled, OrderPlaced, Point

pytestmark = pytest.mark.usefixtures("codec")

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


# -- strict decoding ---------------------------------------------------------------------------


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Typed:
    """One field of each kind the default serializer decodes."""

    text: str
    count: int
    ratio: float
    flag: bool
    amount: Decimal
    when: dt.datetime
    day: dt.date
    uid: uuid.UUID
    level: Level
    colour: Colour
    mode: Literal["fast", 1]
    tags: tuple[str, ...]
    pair: tuple[int, str]
    names: list[str]
    flags: frozenset[int]
    lookup: dict[str, int]
    by_number: dict[int, str]
    maybe: int | None
    either: int | str
    choice: Literal["a"] | int | None
    mixed: int | Point | list[str]
    dated: dt.date | Decimal
    point: Point
    shape: Point | Label


TYPED_PAYLOAD: dict[str, Any] = {
    "text": "t",
    "count": 3,
    "ratio": 0.5,
    "flag": False,
    "amount": "1.50",
    "when": "2024-01-02T03:04:05+00:00",
    "day": "2024-01-02",
    "uid": "12345678-1234-5678-1234-567812345678",
    "level": 2,
    "colour": "red",
    "mode": "fast",
    "tags": ["a", "b"],
    "pair": [1, "one"],
    "names": ["n"],
    "flags": [1, 2],
    "lookup": {"k": 1},
    "by_number": {"7": "seven"},
    "maybe": None,
    "either": "e",
    "choice": None,
    "mixed": {"x": 5, "y": 6},
    "dated": "2.5",
    "point": {"x": 1, "y": 2},
    "shape": {"_type": "Label", "x": 3, "y": 4},
}

# The JSON kinds (as named in tests/strategies.py) each field accepts.
TYPED_KINDS: dict[str, tuple[str, ...]] = {
    "text": ("string",),
    "count": ("integer",),
    "ratio": ("integer", "float"),
    "flag": ("boolean",),
    "amount": ("string",),
    "when": ("string",),
    "day": ("string",),
    "uid": ("string",),
    "level": ("integer",),
    "colour": ("string",),
    "mode": ("string", "integer"),
    "tags": ("array",),
    "pair": ("array",),
    "names": ("array",),
    "flags": ("array",),
    "lookup": ("object",),
    "by_number": ("object",),
    "maybe": ("null", "integer"),
    "either": ("integer", "string"),
    "choice": ("integer", "string", "null"),
    "mixed": ("integer", "object", "array"),
    "dated": ("string",),
    "point": ("object",),
    "shape": ("object",),
}


def _decode_typed(payload: dict[str, Any], position: int = 7) -> object:
    return EventTypes(Typed).decode("Typed", 1, json.dumps(payload), position=position)


def test_a_typed_payload_decodes() -> None:
    """A payload of the declared JSON types decodes, and encodes back to the same JSON."""
    typed = _decode_typed(TYPED_PAYLOAD)
    assert Typed(
        "t", 3, 0.5, False, Decimal("1.50"), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        dt.date(2024, 1, 2), uuid.UUID("12345678-1234-5678-1234-567812345678"), Level.HIGH,
        Colour.RED, "fast", ("a", "b"), (1, "one"), ["n"], frozenset({1, 2}), {"k": 1},
        {7: "seven"}, None, "e", None, Point(5, 6), Decimal("2.5"), Point(1, 2), Label(3, 4),
    ) == typed  # fmt: skip
    assert TYPED_PAYLOAD == json.loads(EventTypes(Typed).encode(typed)[2])


@pytest.mark.parametrize(
    ("field", "value", "found"),
    [
        ("tags", "damaged", "a string"),  # an upcaster that forgot to wrap a string in a list
        ("text", {"id": 1}, "an object"),
        ("count", True, "a boolean"),
        ("count", 19.99, "a float"),
        ("flag", "false", "a string"),
        ("text", 5, "an integer"),
        ("amount", 1.5, "a float"),  # a float has already lost digits
        ("when", 1700000000, "an integer"),
        ("uid", ["a"], "an array"),
        ("level", True, "a boolean"),
        ("level", 2.0, "a float"),
        ("colour", 1, "an integer"),
        ("pair", "ab", "a string"),
        ("flags", {"1": True}, "an object"),
        ("lookup", [["k", 1]], "an array"),
        ("maybe", True, "a boolean"),
        ("either", False, "a boolean"),
        ("choice", 1.5, "a float"),
        ("mixed", "x", "a string"),
        ("dated", 5, "an integer"),
        ("point", "1,2", "a string"),
        ("shape", [3, 4], "an array"),
    ],
)
def test_values_of_another_json_type_are_refused(field: str, value: object, found: str) -> None:
    """A stored value of the wrong JSON type is refused, naming position, type and field."""
    with pytest.raises(SerializationError) as info:
        _decode_typed({**TYPED_PAYLOAD, field: value})
    assert (7, "Typed", field) == (info.value.position, info.value.type_name, info.value.field)
    message = str(info.value)
    assert "position 7" in message
    assert "(Typed)" in message
    assert f"found {found} at field {field!r}" in message


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("point", {"x": "1", "y": 2}, "point.x"),
        ("names", ["a", 2], "names[1]"),
        ("tags", ["a", None], "tags[1]"),
        ("pair", [1, 2], "pair[1]"),
        ("lookup", {"k": "1"}, "lookup['k']"),
        ("by_number", {"01": "x"}, "by_number['01']"),  # not a key the encoder writes
        ("shape", {"_type": "Point", "x": 1, "y": True}, "shape.y"),
        ("flags", [1, 1.5], "flags[1]"),
        ("mixed", ["a", 1], "mixed[1]"),
        ("mixed", {"x": 1}, "mixed.y"),
    ],
)
def test_nested_values_are_checked_too(field: str, value: object, path: str) -> None:
    """Values inside nested classes, containers and unions are checked, with their path."""
    with pytest.raises(SerializationError) as info:
        _decode_typed({**TYPED_PAYLOAD, field: value})
    assert path == info.value.field
    assert f"at field {path!r}" in str(info.value)


def test_many_problems_are_counted() -> None:
    """A payload with many wrong values names the first few and counts the others."""
    with pytest.raises(SerializationError) as info:
        _decode_typed({**TYPED_PAYLOAD, "names": list(range(20))})
    assert "names[4]" in str(info.value)
    assert "names[5]" not in str(info.value)
    assert "(and 15 more)" in str(info.value)


def test_values_that_do_not_parse_are_refused() -> None:
    """Strings that are no Decimal, UUID, date or enum value are refused, naming the field."""
    for field, value in [
        ("amount", "lots"),
        ("uid", "x"),
        ("day", "May"),
        ("colour", "green"),
        ("dated", "soon"),  # neither a date nor a Decimal
        ("ratio", 2**2000),  # no float is that large
        ("shape", {"_type": "Circle", "x": 1, "y": 2}),
        ("shape", {"_type": ["Point"], "x": 1, "y": 2}),
    ]:
        with pytest.raises(SerializationError) as info:
            _decode_typed({**TYPED_PAYLOAD, field: value})
        assert field == info.value.field


def test_an_integer_is_a_float() -> None:
    """JSON has one number type, so an integer is accepted, as a float, for a float field."""
    typed = _decode_typed({**TYPED_PAYLOAD, "ratio": 2})
    assert isinstance(typed, Typed)
    assert (float, 2.0) == (type(typed.ratio), typed.ratio)


def test_the_first_error_is_the_field_and_all_are_listed() -> None:
    """Every field that does not fit is listed; the first one is the error's field."""
    with pytest.raises(SerializationError) as info:
        _decode_typed({**TYPED_PAYLOAD, "count": "3", "flag": 0})
    assert "count" == info.value.field
    assert "'count'" in str(info.value)
    assert "'flag'" in str(info.value)


@given(data=st.data(), field=st.sampled_from(sorted(TYPED_KINDS)))
def test_any_value_of_another_json_kind_is_refused(data: st.DataObject, field: str) -> None:
    """Whatever the field and whatever JSON of another kind is stored there, it is refused."""
    value = data.draw(json_values_except(*TYPED_KINDS[field]))
    with pytest.raises(SerializationError) as info:
        _decode_typed({**TYPED_PAYLOAD, field: value})
    assert field == info.value.field


@attrs.frozen
class Cancelled:
    reasons: tuple[str, ...]


def test_an_upcaster_that_forgets_a_step_is_caught() -> None:
    """An upcaster that leaves a string where a tuple is now declared fails the read."""

    types = EventTypes()
    types.add(Cancelled, version=2)
    types.upcaster("Cancelled", from_version=1)(lambda d: {"reasons": d["reason"]})
    with pytest.raises(SerializationError) as info:
        types.decode("Cancelled", 1, '{"reason": "damaged"}', position=3)
    assert ("reasons", 3) == (info.value.field, info.value.position)
    types = EventTypes()
    types.add(Cancelled, version=2)
    types.upcaster("Cancelled", from_version=1)(lambda d: {"reasons": (d["reason"],)})
    assert Cancelled(("damaged",)) == types.decode(
        "Cancelled", 1, '{"reason": "damaged"}', position=3
    )


@attrs.frozen
class Maps:
    by_int: dict[int, str]
    by_float: dict[float, int]
    by_flag: dict[bool, int]


@given(
    st.builds(
        Maps,
        st.dictionaries(st.integers(), st.text(max_size=3), max_size=3),
        st.dictionaries(
            st.floats(allow_nan=False, allow_infinity=False), st.integers(), max_size=3
        ),
        st.dictionaries(st.booleans(), st.integers()),
    )
)
def test_object_keys_of_other_types_round_trip(maps: Maps) -> None:
    """Mappings keyed by numbers or booleans keep their keys, though JSON keys are text."""
    types = EventTypes(Maps)
    assert maps == types.decode(*types.encode(maps), position=1)


@pytest.mark.parametrize(
    "data", [{"by_flag": {"yes": 1}}, {"by_float": {"1e400": 1}}, {"by_int": {"1.0": "a"}}]
)
def test_object_keys_that_the_encoder_does_not_write(data: dict[str, Any]) -> None:
    """Keys that are not the JSON text of their declared type are refused, naming the key."""
    payload = {"by_int": {}, "by_float": {}, "by_flag": {}, **data}
    with pytest.raises(SerializationError) as info:
        EventTypes(Maps).decode("Maps", 1, json.dumps(payload), position=1)
    ((field, keys),) = data.items()
    assert f"{field}[{next(iter(keys))!r}]" == info.value.field


def test_a_union_member_must_be_a_member() -> None:
    """A value of a class outside the union is refused on append, not stored untagged."""
    types = EventTypes(Drawn)
    with pytest.raises(SerializationError) as info:
        types.encode(Drawn(Location(1, 2)))  # type: ignore[arg-type]
    assert "not a member" in str(info.value)


# -- tags of union members ------------------------------------------------------------------


@attrs.frozen
class Drawn:
    shape: Point | Label


def test_union_members_are_tagged_by_their_registered_name() -> None:
    """A union member registered in the EventTypes is tagged with that name, others by class."""
    types = EventTypes(Drawn)
    types.add(Point, name="geometry.point")
    _, _, payload = types.encode(Drawn(Point(1, 2)))
    assert {"_type": "geometry.point", "x": 1, "y": 2} == json.loads(payload)["shape"]
    _, _, payload = types.encode(Drawn(Label(1, 2)))
    assert "Label" == json.loads(payload)["shape"]["_type"]


@attrs.frozen
class Location:
    """Point, renamed."""

    x: int
    y: int


@attrs.frozen
class DrawnNow:
    """Drawn, renamed, holding the renamed Point."""

    shape: Location | Label


def test_a_nested_class_can_be_renamed() -> None:
    """Data tagged with a nested class's old name reads into the renamed class registered so."""
    old = EventTypes(Drawn)
    stored = old.encode(Drawn(Point(1, 2)))
    assert '"_type":"Point"' in stored[2]
    types = EventTypes()
    types.add(DrawnNow, name="Drawn")
    types.add(Location, name="Point")
    assert DrawnNow(Location(1, 2)) == types.decode(*stored, position=1)
    assert stored == types.encode(DrawnNow(Location(1, 2)))


def test_members_with_one_tag_are_refused() -> None:
    """Two union members that would carry the same tag are refused instead of mixed up."""

    def make() -> type:
        @attrs.frozen
        class Point:
            x: int

        return Point

    first, second = make(), make()
    either: Any = first | second
    shapes = attrs.make_class("Shapes", {"shape": attrs.field(type=either)})
    types = EventTypes(shapes)
    with pytest.raises(SerializationError) as info:
        types.encode(shapes(first(1)))
    assert "distinct names" in str(info.value)
    types.add(first, name="first")
    types.add(second, name="second")
    name, version, payload = types.encode(shapes(second(1)))
    assert shapes(second(1)) == types.decode(name, version, payload, position=1)


def test_one_serializer_gives_a_class_one_tag() -> None:
    """A serializer shared by two registries refuses to tag one class with two names."""
    serializer = CattrsSerializer()
    EventTypes(serializer=serializer).add(Point, name="a")
    with pytest.raises(RegistrationError):
        EventTypes(serializer=serializer).add(Point, name="b")
    with pytest.raises(RegistrationError):
        EventTypes(serializer=serializer).add(Label, name="a")
    EventTypes(serializer=serializer).add(Point, name="a")
    assert {Point: "a"} == serializer.tags
