"""Marker bases that tell the buses, and mypy, what a message is and what it returns."""

from __future__ import annotations

from typing import Generic

from typing_extensions import TypeVar

__all__ = ["Command", "Event", "Query"]

R_co = TypeVar("R_co", covariant=True)


class Command(Generic[R_co]):
    """Base of a command whose handler returns an ``R_co``.

    It has no fields and no behaviour: subclass it with attrs, a dataclass or a plain class.
    """

    __slots__ = ()


class Query(Generic[R_co]):
    """Base of a query whose handler returns an ``R_co``.

    It has no fields and no behaviour: subclass it with attrs, a dataclass or a plain class.
    """

    __slots__ = ()


class Event:
    """Base of an event: something that happened, delivered to zero or more handlers."""

    __slots__ = ()
