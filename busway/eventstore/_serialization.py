"""Turning events into JSON and back: type names, schema versions, upcasters, serializers.

Stored type names resolve only through an :class:`EventTypes` registry. Nothing here imports
a module or looks up an attribute named by stored data, and nothing is ever pickled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar, final, runtime_checkable

import attrs
import cattrs
from cattrs.v import format_exception

from ..errors import RegistrationError, SerializationError, UnknownEventTypeError
from . import _json
from ._converter import StoredValueError, make_default_converter

__all__ = ["CattrsSerializer", "EventTypes", "RawEvent", "Serializer", "Upcaster"]

T = TypeVar("T")
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Migrates the payload dict of one schema version to the next one."""
_U = TypeVar("_U", bound=Upcaster)


@runtime_checkable
class Serializer(Protocol):
    """Converts events to JSON-compatible dicts and back; bring your own (msgspec, pydantic).

    ``to_dict`` must return only what :func:`json.dumps` accepts (dicts with string keys,
    lists, strings, numbers, booleans, ``None``); ``from_dict`` gets that data back, after
    any upcasters ran, with the class to build.
    """

    def to_dict(self, event: object) -> dict[str, Any]:
        """Return the JSON-compatible payload of *event*."""
        ...

    def from_dict(self, data: dict[str, Any], cls: type[T]) -> T:
        """Build an instance of *cls* from a payload made by :meth:`to_dict`."""
        ...


@final
class CattrsSerializer:
    """The default serializer: attrs classes and dataclasses through a cattrs converter.

    Besides JSON's own types it handles aware and naive datetimes, dates, UUIDs, Decimals
    (as strings, so no digit is lost), Enums, tuples, sets and frozensets, nested attrs
    classes and dataclasses, ``Optional`` and unions (a member of a union of classes is
    tagged under ``"_type"`` with the name it is registered under in the EventTypes, else
    its class name). Decoding is strict: a value of another JSON type than its field
    declares is refused, never converted. Add hooks to :attr:`converter`, or pass a
    converter of your own, which is used as it is.
    """

    converter: cattrs.Converter

    def __init__(self, converter: cattrs.Converter | None = None) -> None:
        self.tags: dict[type, str] = {}
        """The tag of each class registered in an EventTypes that uses this serializer."""
        self._tagged: dict[str, type] = {}
        self.converter = (
            converter if converter is not None else make_default_converter(tags=self.tags)
        )

    def tag(self, cls: type, name: str) -> None:
        """Tag *cls* with *name* wherever it is a member of a union of classes."""
        tag, holder = self.tags.get(cls, name), self._tagged.get(name, cls)
        if tag != name or holder is not cls:
            other, taken = (cls, tag) if tag != name else (holder, name)
            raise RegistrationError(
                f"cannot tag {cls.__qualname__} as {name!r}: this serializer already tags "
                f"{other.__qualname__} as {taken!r}; give each class one name everywhere"
            )
        self.tags[cls] = name
        self._tagged[name] = cls

    def to_dict(self, event: object) -> dict[str, Any]:
        """Return the JSON-compatible payload of *event*."""
        data = self.converter.unstructure(event)
        if not isinstance(data, dict):
            raise TypeError(f"{type(event).__qualname__} does not unstructure to a dict")
        return data

    def from_dict(self, data: dict[str, Any], cls: type[T]) -> T:
        """Build an instance of *cls* from a payload made by :meth:`to_dict`."""
        return self.converter.structure(data, cls)


@final
@attrs.frozen
class RawEvent:
    """A stored event whose type an :class:`EventTypes` does not know, left undecoded.

    Only a registry made with ``raw_unknown=True`` returns these: tools that show a store
    without its application's classes (the ``busway`` command) read every event this way.
    ``data`` is the stored JSON payload as written, at schema ``version``, not upcast.
    """

    type: str
    version: int
    data: dict[str, Any]


@attrs.frozen
class _Registration:
    cls: type
    name: str
    version: int


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or name != name.strip():
        raise RegistrationError(
            f"an event type name must be a non-empty string without surrounding spaces, "
            f"not {name!r}"
        )
    try:
        name.encode()
    except UnicodeEncodeError:
        raise RegistrationError(f"event type name {name!r} is not valid text") from None
    return name


def _check_version(version: object, what: str) -> int:
    if type(version) is not int or version < 1:
        raise RegistrationError(f"{what} must be an int of 1 or more, not {version!r}")
    return version


@final
class EventTypes:
    """The event classes a store may hold, under stable names and schema versions.

    A class is stored under a name (its ``__name__`` unless given) and its current schema
    version (1 unless given). On read, a stored name resolves only through this registry,
    and payloads written by an older schema version pass through the upcasters registered
    for that name, one version at a time, before the class is built.

    Classes that are not events may be registered too: a nested class that is a member of
    a union is tagged with its registered name, so it can be renamed like an event.

    A stored name that is not registered raises
    :class:`~busway.errors.UnknownEventTypeError` on read; with ``raw_unknown=True`` it is
    read as a :class:`RawEvent` instead, for tools that inspect stores of any application.
    """

    def __init__(
        self, *classes: type, serializer: Serializer | None = None, raw_unknown: bool = False
    ) -> None:
        self.serializer: Serializer = serializer if serializer is not None else CattrsSerializer()
        self.raw_unknown = raw_unknown
        """Whether unregistered stored types are read as :class:`RawEvent` rather than refused."""
        self._by_class: dict[type, _Registration] = {}
        self._by_name: dict[str, _Registration] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for cls in classes:
            self.add(cls)

    def add(self, cls: type[T], *, name: str | None = None, version: int = 1) -> type[T]:
        """Register *cls* under *name* at schema *version*; return *cls* (usable as decorator).

        Registering the same class again the same way does nothing; a name or a class that is
        already registered differently raises :class:`~busway.errors.RegistrationError`.
        """
        if not isinstance(cls, type):
            raise RegistrationError(f"EventTypes holds classes, not {cls!r}")
        reg = _Registration(
            cls,
            _check_name(cls.__name__ if name is None else name),
            _check_version(version, "version"),
        )
        for existing in (self._by_class.get(cls), self._by_name.get(reg.name)):
            if existing is not None and existing != reg:
                raise RegistrationError(
                    f"cannot register {cls.__qualname__} as {reg.name!r} version {reg.version}: "
                    f"{existing.cls.__qualname__} is already registered as {existing.name!r} "
                    f"version {existing.version}. Each class has one name and each name one class"
                )
        if isinstance(self.serializer, CattrsSerializer):
            self.serializer.tag(cls, reg.name)
        self._by_class[cls] = reg
        self._by_name[reg.name] = reg
        return cls

    def upcaster(self, name: str, *, from_version: int) -> Callable[[_U], _U]:
        """Register the decorated function to migrate *name*'s payloads from *from_version*.

        The function takes the payload dict of version *from_version* and returns the payload
        of version ``from_version + 1``; upcasters chain, so v1 data passes through each.
        """
        _check_name(name)
        _check_version(from_version, "from_version")

        def register(fn: _U) -> _U:
            if (name, from_version) in self._upcasters:
                raise RegistrationError(
                    f"{name!r} already has an upcaster from version {from_version}"
                )
            self._upcasters[(name, from_version)] = fn
            return fn

        return register

    def __contains__(self, item: object) -> bool:
        return item in self._by_name or item in self._by_class

    def __iter__(self) -> Iterator[type]:
        return iter(list(self._by_class))

    def __len__(self) -> int:
        return len(self._by_class)

    def __repr__(self) -> str:
        return f"EventTypes({', '.join(sorted(self._by_name))})"

    @property
    def names(self) -> Mapping[str, type]:
        """Every registered name, with its class."""
        return {name: reg.cls for name, reg in self._by_name.items()}

    def name_of(self, cls: type) -> str:
        """Return the name *cls* is stored under, or raise UnknownEventTypeError."""
        try:
            return self._by_class[cls].name
        except KeyError:
            raise UnknownEventTypeError(cls.__name__, self._by_name, event_class=cls) from None

    def class_of(self, name: str) -> type:
        """Return the class registered under *name*, or raise UnknownEventTypeError."""
        try:
            return self._by_name[name].cls
        except KeyError:
            raise UnknownEventTypeError(name, self._by_name) from None

    def encode(self, event: object) -> tuple[str, int, str]:
        """Return *event*'s type name, schema version and JSON payload."""
        try:
            reg = self._by_class[type(event)]
        except KeyError:
            raise UnknownEventTypeError(
                type(event).__name__, self._by_name, event_class=type(event)
            ) from None
        try:
            data = self.serializer.to_dict(event)
        except Exception as exc:
            raise SerializationError(
                f"{reg.name} cannot be serialized: {_problem(exc)}; give its fields types the "
                "serializer knows, or register a hook for them on the serializer",
                type_name=reg.name,
            ) from exc
        try:
            text = _json.encode(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise _not_json(data, exc, f"{reg.name} payload", reg.name) from exc
        return reg.name, reg.version, text

    def decode(self, name: str, version: int, payload: str, *, position: int) -> object:
        """Return the event stored at *position* as *name* at schema *version*."""
        reg = self._by_name.get(name)
        if reg is None and not self.raw_unknown:
            raise UnknownEventTypeError(name, self._by_name, position=position)
        try:
            data = _json.parse(payload)
        except RecursionError as exc:
            raise _corrupt(name, position, "its payload is nested too deeply to parse") from exc
        except (ValueError, TypeError) as exc:
            raise _corrupt(name, position, f"its payload is not JSON ({exc})") from exc
        if data.__class__ is not dict:
            raise _corrupt(name, position, "its payload is not a JSON object")
        if reg is None:
            return RawEvent(name, version, data)
        if version != reg.version:
            data = self._upcast(reg, version, data, position)
        try:
            return self.serializer.from_dict(data, reg.cls)
        except Exception as exc:
            problems = _problems(exc)
            field = problems[0][1] if problems else None
            listed = "; ".join(
                f"{p} at field {f!r}" if f else p for p, f in problems[:_LISTED]
            ) or _problem(exc)
            if len(problems) > _LISTED:
                listed += f" (and {len(problems) - _LISTED} more)"
            raise SerializationError(
                f"the event at position {position} ({name}) cannot be decoded: its payload does "
                f"not fit {reg.cls.__qualname__}: {listed}. Stored values are never converted "
                "to the declared types: repair the row, or fix the upcaster that wrote it",
                type_name=name,
                position=position,
                field=field,
            ) from exc

    def _upcast(
        self, reg: _Registration, version: int, data: dict[str, Any], position: int
    ) -> dict[str, Any]:
        if version > reg.version:
            raise _corrupt(
                reg.name,
                position,
                f"it was written at schema version {version}, but {reg.cls.__qualname__} is "
                f"registered at version {reg.version}; upgrade this program to read it",
            )
        for v in range(version, reg.version):
            upcaster = self._upcasters.get((reg.name, v))
            if upcaster is None:
                raise _corrupt(
                    reg.name,
                    position,
                    f"it was written at schema version {version} and there is no upcaster "
                    f"from version {v}; add one with @types.upcaster({reg.name!r}, "
                    f"from_version={v})",
                )
            try:
                data = upcaster(data)
            except Exception as exc:
                raise _corrupt(
                    reg.name, position, f"the upcaster from version {v} failed: {exc!r}"
                ) from exc
            if not isinstance(data, dict):
                raise _corrupt(
                    reg.name, position, f"the upcaster from version {v} did not return a dict"
                )
        return data


_LISTED = 5  # problems named in a message; the rest are counted


def _problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply, or refers to itself"
    return str(exc) or type(exc).__name__


def _format(exc: BaseException, tp: type | None) -> str:
    if isinstance(exc, StoredValueError | RecursionError):
        return _problem(exc)
    return format_exception(exc, tp)


def _problems(exc: Exception) -> list[tuple[str, str | None]]:
    """Return each problem cattrs found in a payload, with the path of its field."""
    if not isinstance(exc, cattrs.BaseValidationError | StoredValueError | RecursionError):
        return []
    try:
        lines = cattrs.transform_error(exc, path="$", format_exception=_format)
    except RecursionError:
        return [(_problem(RecursionError()), None)]
    found: list[tuple[str, str | None]] = []
    for line in lines:
        problem, _, path = line.rpartition(" @ ")
        found.append((problem, path.removeprefix("$").removeprefix(".") or None))
    return found


def _corrupt(name: str, position: int, problem: str) -> SerializationError:
    return SerializationError(
        f"the event at position {position} ({name}) cannot be decoded: {problem}",
        type_name=name,
        position=position,
    )


def dumps(data: object, *, what: str, type_name: str | None = None) -> str:
    """Return *data* as compact JSON, or raise SerializationError naming the bad field."""
    try:
        return _json.encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _not_json(data, exc, what, type_name) from exc


def _not_json(
    data: object, exc: BaseException, what: str, type_name: str | None
) -> SerializationError:
    try:
        field = _find_bad_field(data, "", set())
    except RecursionError:
        field = None
    where = f" at field {field!r}" if field else ""
    return SerializationError(
        f"{what} is not JSON-compatible{where}: {_problem(exc)}; use types the serializer "
        "turns into JSON (str, int, float, bool, None, lists, dicts with str keys), "
        "nested as a tree",
        type_name=type_name,
        field=field,
    )


_JSON_SCALARS = (str, int, float, bool, type(None))


def _find_bad_field(data: object, path: str, above: set[int]) -> str | None:
    """Return the dotted path of the first value json.dumps refuses, if any.

    *above* holds the containers on the way down, so a container inside itself is found.
    """
    children: Iterable[tuple[str, object]]
    if isinstance(data, dict):
        bad_key = next((k for k in data if not isinstance(k, _JSON_SCALARS)), None)
        if bad_key is not None:
            return f"{path}.{bad_key}" if path else str(bad_key)
        children = ((f"{path}.{k}" if path else str(k), v) for k, v in data.items())
    elif isinstance(data, list | tuple):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(data))
    elif isinstance(data, float):
        return None if math.isfinite(data) else (path or None)
    else:
        return None if isinstance(data, _JSON_SCALARS) else (path or None)
    if id(data) in above:
        return path or None
    above.add(id(data))
    for sub, value in children:
        found = _find_bad_field(value, sub, above)
        if found is not None:
            return found
    above.discard(id(data))
    return None
