"""``@when(EventType)``: marks the methods that aggregates and projections run per event.

The marks are read once per class, when it is defined, following the class's MRO, so a
subclass inherits its bases' methods and may override them by name. Which methods serve an
event class is then resolved once per event class (following *its* MRO) and cached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from .errors import RegistrationError

__all__ = ["declared", "when"]

E = TypeVar("E")
S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__busway_when__"


@overload
def when(
    event_type: type[E], /
) -> Callable[[Callable[Concatenate[S, E, P], R]], Callable[Concatenate[S, E, P], R]]: ...
@overload
def when(first: type, second: type, /, *more: type) -> Callable[[F], F]: ...
def when(*event_types: type) -> Callable[[F], F]:
    """Run the decorated method for each event of the given classes, subclasses included.

    On an :class:`~busway.aggregates.Aggregate` it applies the event to the state; on a
    projection it updates the read model. With one class, mypy checks that the method's
    event parameter accepts it; with several, annotate the parameter with their union.
    """
    if not event_types:
        raise RegistrationError("@when needs at least one event class: @when(OrderPlaced)")
    for event_type in event_types:
        if not isinstance(event_type, type):
            raise RegistrationError(f"@when takes event classes, got {event_type!r}")

    def mark(method: F) -> F:
        marks: tuple[type, ...] = getattr(method, _MARK, ())
        try:
            setattr(method, _MARK, (*marks, *event_types))
        except AttributeError:
            names = ", ".join(t.__name__ for t in event_types)
            raise RegistrationError(
                f"@when({names}) decorates methods (def ...), not {method!r}"
            ) from None
        return method

    return mark


def declared(cls: type) -> list[tuple[type, str, Callable[..., Any]]]:
    """Return ``(event_type, method name, function)`` for every ``@when`` method of *cls*.

    Bases come first, each class's methods in the order they are defined. A method that a
    subclass overrides under the same name is found once, as the subclass defines it.
    """
    by_name: dict[str, tuple[type, ...]] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            marks = getattr(attr, _MARK, None)
            if marks is not None:
                by_name.pop(name, None)  # keep the definition order of the latest definer
                by_name[name] = marks
    found = []
    for name, marks in by_name.items():
        function = getattr(cls, name)
        for event_type in marks:
            found.append((event_type, name, function))
    return found
