"""Hypothesis strategies for messages, event streams and aggregate histories.

:func:`messages` builds attrs classes and dataclasses from their field types, with values
the event store can keep: finite Decimals and floats, nested messages built the same way.
This module imports hypothesis; install it (``pip install hypothesis``) to use it.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import attrs
from hypothesis import reject
from hypothesis import strategies as st

from ..aggregates import Aggregate
from ._diff import ScenarioError

__all__ = ["event_streams", "histories", "messages", "strategy_for"]

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
A = TypeVar("A", bound=Aggregate)


def _init_fields(cls: type) -> list[tuple[str, Any, bool]]:
    """Return ``(init name, type, has default)`` for each field ``__init__`` takes."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise ScenarioError(
            f"the field types of {cls.__qualname__} cannot be resolved ({exc}); import the "
            "types its annotations name in its module"
        ) from exc
    if attrs.has(cls):
        return [
            (a.alias or a.name, hints.get(a.name, a.type), a.default is not attrs.NOTHING)
            for a in attrs.fields(cls)
            if a.init
        ]
    if dataclasses.is_dataclass(cls):
        return [
            (
                f.name,
                hints.get(f.name, f.type),
                f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING,
            )
            for f in dataclasses.fields(cls)
            if f.init
        ]
    raise ScenarioError(
        f"messages() builds attrs classes and dataclasses, not {cls!r}; use st.builds() for "
        "other classes"
    )


def _is_message_class(tp: object) -> bool:
    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp))


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:  # noqa: PLR0911 - a case per kind of type
    """Return a strategy of values of type *tp* that survive the event store's serializer."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_message_class(tp):
        return messages(tp)
    if tp is decimal.Decimal:
        return st.decimals(allow_nan=False, allow_infinity=False)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(a) for a in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=5).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    if origin in (list, Sequence):
        return st.lists(strategy_for(args[0]), max_size=5) if args else st.from_type(tp)
    if origin in (set, frozenset) and args:
        made = st.frozensets(strategy_for(args[0]), max_size=5)
        return made if origin is frozenset else made.map(set)
    if origin is dict and args:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=5)
    return st.from_type(tp)


def messages(cls: type[T], /, **overrides: Any) -> st.SearchStrategy[T]:
    """Return a strategy of *cls* instances, an attrs class or a dataclass.

    Each field is drawn by its type; fields with a default are drawn too. An override is a
    strategy or a plain value for the field of that name:
    ``messages(OrderPlaced, order_id=st.sampled_from(["o-1", "o-2"]), customer_id="ann")``.
    """
    fields = _init_fields(cls)
    unknown = sorted(set(overrides) - {name for name, _, _ in fields})
    if unknown:
        raise ScenarioError(
            f"{cls.__qualname__} takes no field {', '.join(map(repr, unknown))} (it takes: "
            f"{', '.join(name for name, _, _ in fields) or 'none'})"
        )
    drawn: dict[str, st.SearchStrategy[Any]] = {}
    for name, tp, _ in fields:
        value = overrides.get(name, strategy_for(tp))
        drawn[name] = value if isinstance(value, st.SearchStrategy) else st.just(value)
    return st.builds(cls, **drawn)


# One overload per count of classes up to four, so that the elements are typed as the union
# of the classes; past that, as one type variable solves (for mypy, their common base).
@overload
def event_streams(
    c1: type[T1], /, *, min_size: int = ..., max_size: int = ..., **overrides: Any
) -> st.SearchStrategy[list[T1]]: ...
@overload
def event_streams(
    c1: type[T1], c2: type[T2], /, *, min_size: int = ..., max_size: int = ..., **overrides: Any
) -> st.SearchStrategy[list[T1 | T2]]: ...
@overload
def event_streams(
    c1: type[T1],
    c2: type[T2],
    c3: type[T3],
    /,
    *,
    min_size: int = ...,
    max_size: int = ...,
    **overrides: Any,
) -> st.SearchStrategy[list[T1 | T2 | T3]]: ...
@overload
def event_streams(
    c1: type[T1],
    c2: type[T2],
    c3: type[T3],
    c4: type[T4],
    /,
    *,
    min_size: int = ...,
    max_size: int = ...,
    **overrides: Any,
) -> st.SearchStrategy[list[T1 | T2 | T3 | T4]]: ...
@overload
def event_streams(
    c1: type[T], /, *classes: type[T], min_size: int = ..., max_size: int = ..., **overrides: Any
) -> st.SearchStrategy[list[T]]: ...
def event_streams(
    *classes: type, min_size: int = 0, max_size: int = 10, **overrides: Any
) -> st.SearchStrategy[list[Any]]:
    """Return a strategy of lists of events drawn from *classes*, in any order.

    Good for whatever must take any events (a serializer, a projection that ignores what it
    does not know); for histories an aggregate could really have, use :func:`histories`.
    *overrides* apply to every class that has a field of that name.
    """
    if not classes:
        raise ScenarioError("event_streams() takes at least one event class")
    choices: list[st.SearchStrategy[Any]] = [
        messages(cls, **{k: v for k, v in overrides.items() if k in _names(cls)}) for cls in classes
    ]
    return st.lists(st.one_of(choices), min_size=min_size, max_size=max_size)


def _names(cls: type) -> set[str]:
    return {name for name, _, _ in _init_fields(cls)}


def histories(
    start: st.SearchStrategy[A] | Callable[[], A],
    steps: st.SearchStrategy[Callable[[A], object]],
    *,
    refused: type[BaseException] | tuple[type[BaseException], ...] = (),
    max_steps: int = 10,
) -> st.SearchStrategy[list[object]]:
    """Return a strategy of event histories that an aggregate really produces.

    *start* gives new aggregates (those of a creating classmethod, with their first events
    pending); each of up to *max_steps* draws from *steps* is a call on the aggregate, and
    one that raises a *refused* error (the domain saying no) is skipped, and so is a start
    that raises one. The result is
    everything the aggregate recorded, in order.
    """
    beginning = start if isinstance(start, st.SearchStrategy) else st.builds(start)

    @st.composite
    def build(draw: st.DrawFn) -> list[object]:
        try:
            aggregate = draw(beginning)
        except refused:
            reject()  # the domain refused to create it: not a history
        for action in draw(st.lists(steps, max_size=max_steps)):
            try:
                action(aggregate)
            except refused:
                continue
        return list(aggregate.pending_events)

    return build()
