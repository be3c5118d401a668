"""The aggregate: a consistency boundary whose state is rebuilt from its own events.

Its snapshot encoding lives here too, as it reads the state attributes the class annotates.
What a repository does to an aggregate beyond its public face (replay a stored event, take
its pending events once saved, snapshot and restore its state) is offered by the functions
at the end, so that no other module touches the aggregate's private attributes.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Self, TypeVar

import cattrs

from .._when import declared
from ..errors import (
    ApplierNotFoundError,
    InvalidArgumentError,
    RegistrationError,
    SerializationError,
)
from ..eventstore import (
    RecordedEvent,
)
from ._snapshots import Snapshot

__all__ = ["Aggregate", "encode_state", "replay", "restore", "take_pending"]

_Applier = Callable[[Any, Any], object]
A = TypeVar("A", bound="Aggregate")


class Aggregate:
    """A consistency boundary whose state is the sum of the events it recorded.

    Subclass it; give ``__init__`` only the id (``super().__init__(id)``) and set the state
    an aggregate has before its first event. Methods check the rules and call
    :meth:`record`; ``@when(EventType)`` methods change the state, and are the only code
    that does, so replaying the stored events rebuilds the same state. Create an aggregate
    with a classmethod that records its first event.

    Annotate the state attributes in the class body: snapshots keep those.
    """

    snapshot_version: ClassVar[int] = 1
    """Raise it when the annotated state changes shape, so older snapshots are not used."""

    _appliers: ClassVar[dict[type, _Applier]] = {}
    _resolved: ClassVar[dict[type, _Applier | None]] = {}
    _state_fields: ClassVar[dict[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers: dict[type, _Applier] = {}
        owners: dict[type, type] = {}
        for event_type, name, function in declared(cls):
            owner = next(k for k in cls.__mro__ if name in vars(k))
            if owners.get(event_type) is owner and appliers[event_type] is not function:
                raise RegistrationError(
                    f"{cls.__qualname__} has two @when methods for {event_type.__qualname__}; "
                    "an aggregate applies each event with exactly one method, so remove one"
                )
            appliers[event_type] = function
            owners[event_type] = owner
        cls._appliers = appliers
        cls._resolved = {}
        cls._state_fields = None

    def __init__(self, id: str) -> None:
        if not isinstance(id, str) or not id:
            raise InvalidArgumentError("the aggregate id", id, "a non-empty str")
        self._id = id
        self._version = 0
        self._pending: list[object] = []

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self._id!r} version {self._version}>"

    @property
    def id(self) -> str:
        """The aggregate's id; its stream is the repository's prefix plus this id."""
        return self._id

    @property
    def version(self) -> int:
        """The number of events applied, saved or pending (0 before the first)."""
        return self._version

    @property
    def pending_events(self) -> tuple[object, ...]:
        """The events recorded since the aggregate was loaded or last saved."""
        return tuple(self._pending)

    def record(self, event: object) -> None:
        """Apply *event* through its ``@when`` method, then keep it to be saved.

        If the method raises, nothing is recorded.
        """
        self._applier(type(event))(self, event)
        self._pending.append(event)
        self._version += 1

    @classmethod
    def from_history(cls, id: str, events: Iterable[object]) -> Self:
        """Rebuild an aggregate from its past events (or RecordedEvents), with nothing pending."""
        aggregate = cls(id)
        for item in events:
            event = item.event if isinstance(item, RecordedEvent) else item
            aggregate._applier(type(event))(aggregate, event)
            aggregate._version += 1
        return aggregate

    @classmethod
    def _applier(cls, event_type: type) -> _Applier:
        try:
            found = cls._resolved[event_type]
        except KeyError:
            found = next((cls._appliers[t] for t in event_type.__mro__ if t in cls._appliers), None)
            cls._resolved[event_type] = found
        if found is None:
            raise ApplierNotFoundError(cls, event_type, cls._appliers)
        return found

    # -- snapshots -------------------------------------------------------------------------

    @classmethod
    def _fields(cls) -> dict[str, Any]:
        if cls._state_fields is None:
            try:
                hints = typing.get_type_hints(cls)
            except Exception as exc:
                raise SerializationError(
                    f"the annotations of {cls.__qualname__} cannot be resolved ({exc}); a "
                    "snapshot needs the type of each state attribute"
                ) from exc
            own = set(typing.get_type_hints(Aggregate))
            cls._state_fields = {
                name: hint
                for name, hint in hints.items()
                if name not in own and typing.get_origin(hint) is not ClassVar
            }
        return cls._state_fields


# -- what a repository does to an aggregate -------------------------------------------------


def replay(aggregate: Aggregate, recorded: RecordedEvent) -> None:
    """Apply a stored event to *aggregate*, which takes the event's version."""
    aggregate._applier(type(recorded.event))(aggregate, recorded.event)
    aggregate._version = recorded.version


def take_pending(aggregate: Aggregate) -> list[object]:
    """Return *aggregate*'s pending events and forget them: they are saved."""
    saved, aggregate._pending = aggregate._pending, []
    return saved


def encode_state(aggregate: Aggregate, converter: cattrs.Converter) -> str:
    """Return the JSON of *aggregate*'s annotated state, for a snapshot."""
    fields = type(aggregate)._fields()
    unknown = sorted(set(vars(aggregate)) - {"_id", "_version", "_pending"} - set(fields))
    if unknown:
        raise SerializationError(
            f"{type(aggregate).__qualname__} has attributes without an annotation "
            f"({', '.join(unknown)}), which a snapshot would lose; annotate them in the "
            f"class body (e.g. {unknown[0]}: int)"
        )
    unset = [name for name in fields if not hasattr(aggregate, name)]
    if unset:
        raise SerializationError(
            f"{type(aggregate).__qualname__} has annotated attributes it never set "
            f"({', '.join(unset)}), which a snapshot could not tell from lost ones; set "
            f"each in __init__ (e.g. self.{unset[0]} = ...)"
        )
    data: dict[str, Any] = {}
    for name, hint in fields.items():
        try:
            data[name] = converter.unstructure(getattr(aggregate, name), unstructure_as=hint)
        except Exception as exc:
            raise SerializationError(
                f"{type(aggregate).__qualname__}.{name} cannot be put in a snapshot: {exc}; "
                "register a hook for its type on the store's serializer",
                field=name,
            ) from exc
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"the state of {type(aggregate).__qualname__} is not JSON-compatible: {exc}"
        ) from exc


def restore(cls: type[A], id: str, snapshot: Snapshot, converter: cattrs.Converter) -> A:
    """Return a *cls* aggregate with the state and version kept in *snapshot*.

    Raise SerializationError if the state lacks an attribute or holds one that does not
    fit; its message is a clause saying why, for the log of the load that ignores it.
    """
    fields = cls._fields()
    data = json.loads(snapshot.state)  # a Snapshot holds the text of a JSON object
    missing = [name for name in fields if name not in data]
    if missing:
        raise SerializationError(f"its state lacks {', '.join(missing)}", field=missing[0])
    aggregate = cls(id)
    for name, hint in fields.items():
        try:
            value = converter.structure(data[name], hint)
        except Exception as exc:
            # The error's text may quote the stored value, which is not for the logs.
            raise SerializationError(
                f"its {name} cannot be read as {getattr(hint, '__name__', hint)} "
                f"({type(exc).__name__})",
                field=name,
            ) from exc
        setattr(aggregate, name, value)
    aggregate._version = snapshot.version
    return aggregate
