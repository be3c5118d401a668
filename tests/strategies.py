"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from busway import Event


@st.composite
def event_hierarchies(draw: st.DrawFn, max_classes: int = 7) -> list[type]:
    """Draw a list of event classes, each deriving from one or two earlier ones (or Event)."""
    classes: list[type] = [Event]
    for i in range(draw(st.integers(1, max_classes))):
        parents = draw(st.lists(st.sampled_from(classes), min_size=1, max_size=2, unique=True))
        try:
            cls = type(f"E{i}", tuple(parents), {"__slots__": ()})
        except TypeError:  # no consistent MRO for that pair: keep the first parent only
            cls = type(f"E{i}", (parents[0],), {"__slots__": ()})
        classes.append(cls)
    return classes


def layer_specs() -> st.SearchStrategy[tuple[str, Any]]:
    """Draw what one middleware layer does: pass, tag the message, answer, fail, or rescue."""
    return st.one_of(
        st.just(("pass", None)),
        st.tuples(st.just("tag"), st.sampled_from("abc")),
        st.tuples(st.just("answer"), st.integers(0, 9)),
        st.tuples(st.just("fail"), st.integers(0, 9)),
        st.tuples(st.just("rescue"), st.integers(0, 9)),
    )


JSON_KINDS: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(max_size=8),
    "array": st.lists(st.integers() | st.text(max_size=3), max_size=3),
    "object": st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=3),
}
"""A strategy for each kind of value JSON holds (a float is kept apart from an integer)."""


def json_kind(value: object) -> str:
    """Return the name of *value*'s kind in JSON_KINDS."""
    names = {type(None): "null", bool: "boolean", int: "integer", float: "float", str: "string"}
    return names.get(type(value)) or ("array" if isinstance(value, list | tuple) else "object")


def json_values_except(*kinds: str) -> st.SearchStrategy[Any]:
    """Draw a JSON value of any kind but *kinds*."""
    return st.one_of([s for name, s in JSON_KINDS.items() if name not in kinds])
