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
