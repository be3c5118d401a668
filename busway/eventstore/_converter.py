"""The default cattrs converter: JSON out, and JSON back in only as the fields declare it.

cattrs converts what it is given: ``int(True)``, ``str({"id": 1})``, ``tuple("damaged")``.
Stored data that does not have the JSON type its field declares is damaged, or was written
by an upcaster that forgot a step, so every hook here checks the JSON type first and
raises :class:`StoredValueError` rather than guess. The only widening is the one JSON
itself makes: it has one number type, so an integer is accepted where a float is declared.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from base64 import b85decode
from collections import abc
from collections.abc import Callable, Mapping
from typing import Any, NewType, TypeAlias

import attrs
import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.gen import make_dict_structure_fn, make_hetero_tuple_structure_fn
from cattrs.preconf.json import make_converter

__all__ = ["StoredValueError", "make_default_converter"]

_TAG = "_type"
"""The key under which a member of a union of classes is tagged with its name."""

Hook: TypeAlias = Callable[[Any, Any], Any]
Kinds: TypeAlias = frozenset[type] | None
"""The classes of parsed JSON a declared type accepts; None: any."""

_NoneType = type(None)
_ARRAY = frozenset({list, tuple})  # upcasters are Python: a tuple is a JSON array too
_OBJECT = frozenset({dict})
_TEXT = frozenset({str})

_JSON_NAMES: Mapping[type, str] = {
    dict: "an object",
    list: "an array",
    tuple: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    _NoneType: "null",
}


def _json_name(cls: type) -> str:
    return _JSON_NAMES.get(cls, f"a Python {cls.__qualname__}")


def _type_name(tp: object) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


class StoredValueError(TypeError):
    """A stored value does not have the JSON type, or the form, its field declares."""

    @classmethod
    def wrong_type(cls, value: object, tp: object, kinds: frozenset[type]) -> StoredValueError:
        """Return the error for *value*, of none of the JSON types in *kinds*, for *tp*."""
        expected = " or ".join(sorted({_json_name(k) for k in kinds}))
        return cls(f"expected {expected} for {_type_name(tp)}, found {_json_name(type(value))}")


def _kinds_of(tp: Any) -> Kinds:
    """Return the classes of parsed JSON that *tp*'s hook accepts."""
    origin = typing.get_origin(tp)
    kinds: Kinds = None
    if tp is _NoneType or tp is None:
        kinds = frozenset({_NoneType})
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        kinds = frozenset(type(m.value) for m in tp)
    elif isinstance(tp, type) and tp in _SCALAR_KINDS:
        kinds = _SCALAR_KINDS[tp]
    elif origin is typing.Literal:
        kinds = frozenset(type(_literal_value(a)) for a in typing.get_args(tp))
    elif origin in (typing.Union, types.UnionType):
        members = [_kinds_of(m) for m in typing.get_args(tp)]
        kinds = None if None in members else frozenset().union(*members)  # type: ignore[arg-type]
    elif _is_array(tp):
        kinds = _ARRAY
    elif _is_object(tp) or _is_record(tp):
        kinds = _OBJECT
    return kinds


# -- scalars -------------------------------------------------------------------------------
# Registered by class, so subclasses arrive here too (IntEnum at int, a str Enum at str):
# the JSON type is checked, then the subclass is built from the checked value.


def _structure_str(value: Any, cl: Any) -> Any:
    if value.__class__ is str:
        return value if cl is str else cl(value)
    raise StoredValueError.wrong_type(value, cl, _TEXT)


def _structure_int(value: Any, cl: Any) -> Any:
    if value.__class__ is int:
        return value if cl is int else cl(value)
    raise StoredValueError.wrong_type(value, cl, frozenset({int}))


def _structure_bool(value: Any, cl: Any) -> Any:
    if value.__class__ is bool:
        return value
    raise StoredValueError.wrong_type(value, cl, frozenset({bool}))


def _structure_float(value: Any, cl: Any) -> Any:
    if value.__class__ is float:
        return value if cl is float else cl(value)
    if value.__class__ is int:  # JSON has one number type: 2 is as good as 2.0
        try:
            return cl(value)
        except OverflowError:
            raise StoredValueError(
                f"{value.bit_length()}-bit integer is too large for a float"
            ) from None
    raise StoredValueError.wrong_type(value, cl, frozenset({int, float}))


def _from_text(parse: Callable[[str], Any], what: str) -> Hook:
    """Return a hook that parses a JSON string into *what*, refusing other JSON types."""

    def structure(value: Any, cl: Any) -> Any:
        if value.__class__ is not str:
            raise StoredValueError.wrong_type(value, cl, _TEXT)
        try:
            return parse(value)
        except (ValueError, ArithmeticError) as exc:
            raise StoredValueError(
                f"expected {what} for {_type_name(cl)}, found another string"
            ) from exc

    return structure


_SCALAR_KINDS: Mapping[type, frozenset[type]] = {
    str: _TEXT,
    bool: frozenset({bool}),
    int: frozenset({int}),
    float: frozenset({int, float}),
    decimal.Decimal: _TEXT,
    uuid.UUID: _TEXT,
    dt.datetime: _TEXT,
    dt.date: _TEXT,
    bytes: _TEXT,
}

_TEXT_HOOKS: Mapping[type, Hook] = {
    # A float would already have lost digits, so only text becomes a Decimal.
    decimal.Decimal: _from_text(decimal.Decimal, "a decimal number as a string"),
    uuid.UUID: _from_text(uuid.UUID, "a UUID as a string"),
    dt.datetime: _from_text(dt.datetime.fromisoformat, "an ISO 8601 date and time"),
    dt.date: _from_text(dt.date.fromisoformat, "an ISO 8601 date"),
    bytes: _from_text(b85decode, "base85 text"),
}


# -- enums and literals --------------------------------------------------------------------


def _is_plain_enum(tp: Any) -> bool:
    # Enums with an int or str mixin reach the int and str hooks first.
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _enum_hook(tp: type[enum.Enum]) -> Hook:
    kinds = _kinds_of(tp) or frozenset()

    def structure(value: Any, cl: Any) -> Any:
        if value.__class__ not in kinds:
            raise StoredValueError.wrong_type(value, tp, kinds)
        return tp(value)

    return structure


def _literal_value(arg: object) -> object:
    return arg.value if isinstance(arg, enum.Enum) else arg


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.Literal


def _literal_hook(tp: Any) -> Hook:
    allowed = [(_literal_value(a), a) for a in typing.get_args(tp)]

    def structure(value: Any, cl: Any) -> Any:
        for stored, arg in allowed:
            # 1 == True == 1.0, so the JSON type must match as well as the value.
            if stored.__class__ is value.__class__ and stored == value:
                return arg
        raise StoredValueError(f"expected one of {[s for s, _ in allowed]!r} for {_type_name(tp)}")

    return structure


# -- arrays, objects and classes -----------------------------------------------------------

_ARRAY_ORIGINS: Mapping[Any, Callable[[Any], Any] | None] = {
    list: None,
    abc.MutableSequence: None,
    tuple: None,
    abc.Sequence: None,
    set: set,
    abc.MutableSet: set,
    frozenset: frozenset,
    abc.Set: frozenset,
    collections.deque: collections.deque,
}
_OBJECT_ORIGINS = frozenset({dict, abc.Mapping, abc.MutableMapping})


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp) or tp


def _is_array(tp: Any) -> bool:
    return _origin(tp) in _ARRAY_ORIGINS


def _is_object(tp: Any) -> bool:
    return _origin(tp) in _OBJECT_ORIGINS


def _is_record(tp: Any) -> bool:
    origin = _origin(tp)
    return isinstance(origin, type) and (attrs.has(origin) or dataclasses.is_dataclass(origin))


def _checked(kinds: frozenset[type], tp: Any, inner: Hook) -> Hook:
    def structure(value: Any, cl: Any) -> Any:
        if value.__class__ in kinds:
            return inner(value, cl)
        raise StoredValueError.wrong_type(value, tp, kinds)

    return structure


def _array_hook(tp: Any, converter: cattrs.Converter) -> Hook:
    origin, args = _origin(tp), typing.get_args(tp)
    build = _ARRAY_ORIGINS[origin]
    inner: Hook
    if build is not None:  # sets and deques: structured as the JSON list they were written as
        item_list = list[args[0]] if args else list  # type: ignore[valid-type]
        as_list = list_structure_factory(item_list, converter)

        def inner(value: Any, cl: Any) -> Any:
            return build(as_list(value, item_list))

    elif origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        inner = make_hetero_tuple_structure_fn(tp, converter)
    elif origin in (tuple, abc.Sequence):
        inner = homogenous_tuple_structure_factory(tp, converter)
    else:
        inner = list_structure_factory(tp, converter)
    return _checked(_ARRAY, tp, inner)


# JSON object keys are strings: keys declared as numbers or booleans come back as text.
_IntKey = NewType("_IntKey", int)
_FloatKey = NewType("_FloatKey", float)
_BoolKey = NewType("_BoolKey", bool)
_KEY_TYPES: Mapping[Any, Any] = {int: _IntKey, float: _FloatKey, bool: _BoolKey}


def _key_hook(parse: Callable[[str], Any], natural: type, what: str) -> Hook:
    def structure(value: Any, cl: Any) -> Any:
        if value.__class__ is natural:  # an upcaster's dict may hold real numbers
            return value
        if value.__class__ is str:
            try:
                parsed = parse(value)
            except ValueError:
                pass
            else:
                # Only the text the encoder writes: "01" or "1e3" was not written by us.
                if _json_key(parsed) == value:
                    return parsed
        raise StoredValueError(f"expected {what} as an object key, found {_json_name(type(value))}")

    return structure


def _json_key(value: object) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _parse_bool(text: str) -> bool:
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(text)


def _object_hook(tp: Any, converter: cattrs.Converter) -> Hook:
    args = typing.get_args(tp)
    key = _KEY_TYPES.get(args[0], args[0]) if args else Any
    inner = mapping_structure_factory(tp, converter, structure_to=dict, key_type=key)
    return _checked(_OBJECT, tp, inner)


def _record_hook(tp: Any, converter: cattrs.Converter) -> Hook:
    # Stored data is almost always sound: build the class straight away, and only when that
    # fails, structure again collecting every problem with the path of its field.
    fast = make_dict_structure_fn(tp, converter, _cattrs_detailed_validation=False)
    detailed = make_dict_structure_fn(tp, converter, _cattrs_detailed_validation=True)

    def structure(value: Any, cl: Any) -> Any:
        if value.__class__ is not dict:
            raise StoredValueError.wrong_type(value, tp, _OBJECT)
        try:
            return fast(value, cl)
        except Exception:
            return detailed(value, cl)

    return structure


# -- unions --------------------------------------------------------------------------------


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_plain_union(tp: Any) -> bool:
    # X | None is cattrs' own: None, or X's hook, which checks.
    args = typing.get_args(tp)
    return _is_union(tp) and not (len(args) == 2 and _NoneType in args)


def _union_hook(tp: Any, converter: cattrs.Converter) -> Hook:
    members = [(m, _kinds_of(m)) for m in typing.get_args(tp)]
    every = _kinds_of(tp) or frozenset()

    def structure(value: Any, cl: Any) -> Any:
        cls = value.__class__
        # The member declared as exactly the value's JSON type comes first: 2 is an int
        # in `float | int`, "x" a str in `Decimal | str`; then the order of declaration.
        fits = sorted(
            (m for m, kinds in members if kinds is None or cls in kinds), key=lambda m: m is not cls
        )
        if not fits:
            raise StoredValueError.wrong_type(value, tp, every)
        if cls is _NoneType:
            return None
        errors: list[Exception] = []
        for member in fits:
            try:
                return converter.get_structure_hook(member)(value, member)
            except Exception as exc:  # a member that does not fit hands over to the next
                errors.append(exc)
        raise errors[0]

    return structure


def _is_class_union(tp: Any) -> bool:
    if not _is_union(tp):
        return False
    members = [m for m in typing.get_args(tp) if m is not _NoneType]
    return len(members) >= 2 and all(isinstance(m, type) and _is_record(m) for m in members)


def _member_tags(members: list[type], tags: Mapping[type, str]) -> dict[str, type]:
    by_tag: dict[str, type] = {}
    for member in members:
        tag = tags.get(member, member.__name__)
        if tag in by_tag:
            raise StoredValueError(
                f"{by_tag[tag].__qualname__} and {member.__qualname__} would both be tagged "
                f"{tag!r}; register them in the EventTypes under distinct names"
            )
        by_tag[tag] = member
    return by_tag


def _tagged_unions(
    converter: cattrs.Converter, tags: Mapping[type, str]
) -> tuple[Callable[[Any], Callable[[Any], Any]], Callable[[Any], Hook]]:
    """Return hook factories that tag members of unions of classes with their stable names.

    Tags are looked up on every call, so a class registered after the hook was made is
    tagged by its registered name too.
    """

    def unstructure_factory(tp: Any) -> Callable[[Any], Any]:
        members = [m for m in typing.get_args(tp) if m is not _NoneType]

        def unstructure(value: Any) -> Any:
            if value is None:
                return None
            by_tag = _member_tags(members, tags)
            tag = tags.get(type(value), type(value).__name__)
            if by_tag.get(tag) is not type(value):
                raise StoredValueError(
                    f"{type(value).__qualname__} is not a member of {_type_name(tp)}"
                )
            return {_TAG: tag, **converter.unstructure(value, unstructure_as=type(value))}

        return unstructure

    def structure_factory(tp: Any) -> Hook:
        members = [m for m in typing.get_args(tp) if m is not _NoneType]
        optional = _NoneType in typing.get_args(tp)

        def structure(value: Any, _: Any) -> Any:
            if value is None and optional:
                return None
            by_tag = _member_tags(members, tags)
            if value.__class__ is not dict:
                raise StoredValueError.wrong_type(
                    value, tp, _OBJECT | ({_NoneType} if optional else set())
                )
            tag = value.get(_TAG)
            member = by_tag.get(tag) if tag.__class__ is str else None
            if member is None:
                raise StoredValueError(
                    f"expected an object tagged {_TAG!r} with one of {sorted(by_tag)} "
                    f"for {_type_name(tp)}"
                )
            rest = {k: v for k, v in value.items() if k != _TAG}
            return converter.structure(rest, member)

        return structure

    return unstructure_factory, structure_factory


def make_default_converter(*, tags: Mapping[type, str] | None = None) -> cattrs.Converter:
    """Return the cattrs converter busway uses unless given another one.

    A member of a union of classes is tagged with its name in *tags* (the names its
    :class:`EventTypes` registered), else with its class name.
    """
    converter = make_converter()
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_unstructure_hook(decimal.Decimal, str)
    for cls, hook in (
        (str, _structure_str),
        (int, _structure_int),
        (bool, _structure_bool),
        (float, _structure_float),
        *_TEXT_HOOKS.items(),
    ):
        converter.register_structure_hook(cls, hook)
    converter.register_structure_hook(_IntKey, _key_hook(int, int, "an integer"))
    converter.register_structure_hook(_FloatKey, _key_hook(float, float, "a float"))
    converter.register_structure_hook(_BoolKey, _key_hook(_parse_bool, bool, "true or false"))
    # Later factories are asked first.
    converter.register_structure_hook_factory(_is_plain_enum, _enum_hook)
    converter.register_structure_hook_factory(_is_literal, _literal_hook)
    converter.register_structure_hook_factory(_is_array, _array_hook)
    converter.register_structure_hook_factory(_is_object, _object_hook)
    converter.register_structure_hook_factory(_is_record, _record_hook)
    converter.register_structure_hook_factory(_is_plain_union, _union_hook)
    unstructure_union, structure_union = _tagged_unions(converter, {} if tags is None else tags)
    converter.register_unstructure_hook_factory(_is_class_union, unstructure_union)
    converter.register_structure_hook_factory(_is_class_union, structure_union)
    return converter
