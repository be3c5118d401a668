"""The marker bases work with every way of declaring a class."""

from __future__ import annotations

import dataclasses

import attrs

from busway import Command, CommandBus, Event, EventBus, Query, QueryBus


def test_bases_have_no_fields_and_no_instance_dict() -> None:
    """Command, Query and Event add no state: a slotted subclass stays dict-free."""

    @attrs.frozen(slots=True)
    class Slotted(Command[int]):
        x: int

    assert () == Command.__slots__ == Query.__slots__ == Event.__slots__
    assert not hasattr(Slotted(1), "__dict__")


def test_attrs_classes_dispatch() -> None:
    """attrs commands, slotted or not, are dispatched to their handler."""

    @attrs.define(slots=True)
    class Double(Command[int]):
        x: int

    @attrs.define(slots=False)
    class Triple(Command[int]):
        x: int

    bus = CommandBus()
    bus.register(Double, lambda c: c.x * 2)
    bus.register(Triple, lambda c: c.x * 3)
    assert (6, 9) == (bus.execute(Double(3)), bus.execute(Triple(3)))
    assert hasattr(Triple(1), "__dict__")


def test_dataclasses_dispatch() -> None:
    """Dataclass queries are answered by their handler."""

    @dataclasses.dataclass(frozen=True)
    class Echo(Query[str]):
        text: str

    bus = QueryBus()
    bus.register(Echo, lambda q: q.text)
    assert "hi" == bus.execute(Echo("hi"))


def test_plain_classes_dispatch_on_any_bus() -> None:
    """A class that subclasses no busway base may be a command, a query or an event."""

    class Plain:
        pass

    commands, queries, events = CommandBus(), QueryBus(), EventBus()
    seen: list[str] = []
    commands.register(Plain, lambda m: "command")
    queries.register(Plain, lambda m: "query")
    events.subscribe(Plain, lambda m: seen.append("event"))
    events.publish(Plain())
    assert ("command", "query", ["event"]) == (
        commands.execute(Plain()),
        queries.execute(Plain()),
        seen,
    )


def test_generic_bases_subscript_at_runtime() -> None:
    """``Command[int]`` and ``Query[str]`` are valid bases at runtime, not only for mypy."""
    assert Command[int].__origin__ is Command  # type: ignore[attr-defined]
    assert Query[str].__origin__ is Query  # type: ignore[attr-defined]
