"""Matching messages against expectations, and saying field by field how they differ.

Everything here is pure and cheap to import: the pytest plugin and the scenarios use it, and
neither may pull in hypothesis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, final

import attrs

from ..errors import BuswayError

__all__ = [
    "Like",
    "ScenarioError",
    "closest",
    "diff_sequences",
    "field_diff",
    "fields_of",
    "find_subsequence",
    "listing",
    "match_any_order",
    "matches",
    "short",
]

_MISSING: Final = object()
_LONGEST: Final = 400


class ScenarioError(BuswayError, TypeError):
    """A test tool was set up or called in a way that cannot work (not a failed expectation)."""


def fields_of(value: object) -> dict[str, Any] | None:
    """Return the fields of an attrs instance or a dataclass instance, else ``None``."""
    cls = type(value)
    if attrs.has(cls):
        return {a.name: getattr(value, a.name, _MISSING) for a in attrs.fields(cls)}
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name, _MISSING) for f in dataclasses.fields(value)}
    return None


def _field_names(cls: type) -> list[str] | None:
    if attrs.has(cls):
        return [a.name for a in attrs.fields(cls)]
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return None


@final
class Like:
    """Matches every instance of *cls* whose given fields equal the given values.

    ``Like(OrderPlaced, order_id="o-1")`` stands for "an OrderPlaced for order o-1", whatever
    its other fields; ``Like(OrderPlaced)`` for any OrderPlaced. It works wherever an expected
    message is taken, and as a field value of an expected message.
    """

    __slots__ = ("cls", "fields")

    cls: type

    def __init__(self, cls: type, /, **fields: Any) -> None:
        if not isinstance(cls, type):
            raise ScenarioError(f"Like() takes a class first, e.g. Like(OrderPlaced), not {cls!r}")
        known = _field_names(cls)
        unknown = sorted(set(fields) - set(known)) if known is not None else []
        if unknown:
            raise ScenarioError(
                f"{cls.__qualname__} has no field {', '.join(map(repr, unknown))} (its fields: "
                f"{', '.join(known or ()) or 'none'}); name fields as the class declares them"
            )
        self.cls = cls
        self.fields: Mapping[str, Any] = fields

    def matches(self, actual: object) -> bool:
        """Whether *actual* is a *cls* with the given field values."""
        return isinstance(actual, self.cls) and all(
            getattr(actual, name, _MISSING) == value for name, value in self.fields.items()
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Like):
            return self.cls is other.cls and dict(self.fields) == dict(other.fields)
        return self.matches(other)

    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # equal to many values, so it cannot hash

    def __repr__(self) -> str:
        given = "".join(f", {name}={value!r}" for name, value in self.fields.items())
        return f"Like({self.cls.__qualname__}{given})"


def matches(expected: object, actual: object) -> bool:
    """Whether *actual* is what *expected* (a message or a :class:`Like`) asks for."""
    if isinstance(expected, Like):
        return expected.matches(actual)
    try:
        return bool(expected == actual)
    except Exception:  # an __eq__ that raises (numpy, say) is a mismatch, not a crash
        return False


def short(value: object) -> str:
    """Return a repr of *value*, cut in the middle if it is too long for one line of a report."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the report
        text = f"<{type(value).__qualname__} whose repr raised {exc!r}>"
    if len(text) <= _LONGEST:
        return text
    half = _LONGEST // 2
    return f"{text[:half]} ... {text[-half:]}"


def _name(cls: type) -> str:
    return cls.__qualname__


def _value_diff(path: str, expected: object, actual: object, out: list[str]) -> None:
    if matches(expected, actual):
        return
    if isinstance(expected, Like):
        if not isinstance(actual, expected.cls):
            out.append(f"{path}: expected a {_name(expected.cls)}, got {short(actual)}")
            return
        for name, value in expected.fields.items():
            _value_diff(f"{path}.{name}", value, getattr(actual, name, _MISSING), out)
        return
    if type(expected) is type(actual):
        nested = fields_of(expected)
        if nested is not None:
            theirs = fields_of(actual) or {}
            for name, value in nested.items():
                _value_diff(f"{path}.{name}", value, theirs.get(name, _MISSING), out)
            return
        if (
            isinstance(expected, tuple | list)
            and isinstance(actual, tuple | list)
            and len(expected) == len(actual)
        ):
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                _value_diff(f"{path}[{i}]", e, a, out)
            return
    shown = "(missing)" if actual is _MISSING else short(actual)
    out.append(f"{path}: expected {short(expected)}, got {shown}")


def field_diff(expected: object, actual: object) -> list[str]:
    """Return one line per field where *actual* differs from *expected*, nested fields too.

    Messages of different classes differ by their type; values that are neither attrs
    instances nor dataclasses differ as a whole.
    """
    if matches(expected, actual):
        return []
    want = expected.cls if isinstance(expected, Like) else type(expected)
    if not isinstance(actual, want) or (
        not isinstance(expected, Like) and type(actual) is not want
    ):
        return [f"type: expected {_name(want)}, got {_name(type(actual))}"]
    out: list[str] = []
    if isinstance(expected, Like):
        for name, value in expected.fields.items():
            _value_diff(name, value, getattr(actual, name, _MISSING), out)
        return out
    mine, theirs = fields_of(expected), fields_of(actual)
    if mine is None or theirs is None:
        if isinstance(expected, Mapping) and isinstance(actual, Mapping):
            for key in dict.fromkeys([*expected, *actual]):
                _value_diff(str(key), expected.get(key, _MISSING), actual.get(key, _MISSING), out)
            return out or [f"expected {short(expected)}, got {short(actual)}"]
        return [f"expected {short(expected)}, got {short(actual)}"]
    for name, value in mine.items():
        _value_diff(name, value, theirs.get(name, _MISSING), out)
    return out or [f"expected {short(expected)}, got {short(actual)} (equal fields, unequal)"]


def closest(expected: object, candidates: Sequence[object]) -> int | None:
    """Return the index of the candidate that differs from *expected* in the fewest fields.

    Candidates of the expected class come first; ``None`` if there is none of that class.
    """
    want = expected.cls if isinstance(expected, Like) else type(expected)
    best: tuple[int, int] | None = None
    for i, candidate in enumerate(candidates):
        if not isinstance(candidate, want):
            continue
        score = len(field_diff(expected, candidate))
        if best is None or score < best[0]:
            best = (score, i)
    return None if best is None else best[1]


def listing(messages: Sequence[object], *, indent: str = "  ") -> str:
    """Return *messages* numbered from 1, one per line, or ``(none)``."""
    if not messages:
        return f"{indent}(none)"
    width = len(str(len(messages)))
    return "\n".join(f"{indent}{i:>{width}}. {short(m)}" for i, m in enumerate(messages, start=1))


def find_subsequence(expected: Sequence[object], actual: Sequence[object]) -> list[int] | None:
    """Return where each expected message is found in *actual*, in order, or ``None``.

    Taking the earliest match each time finds a place for all of them whenever one exists.
    """
    found: list[int] = []
    start = 0
    for want in expected:
        index = next((i for i in range(start, len(actual)) if matches(want, actual[i])), None)
        if index is None:
            return None
        found.append(index)
        start = index + 1
    return found


def match_any_order(expected: Sequence[object], actual: Sequence[object]) -> dict[int, int]:
    """Pair expected messages with distinct actual ones, as many as can be; return e -> a.

    A bipartite matching (augmenting paths), so a broad ``Like`` never takes the only message
    a narrower expectation could have matched.
    """
    owner: dict[int, int] = {}  # actual index -> expected index

    def place(e: int, seen: set[int]) -> bool:
        for a, message in enumerate(actual):
            if a in seen or not matches(expected[e], message):
                continue
            seen.add(a)
            if a not in owner or place(owner[a], seen):
                owner[a] = e
                return True
        return False

    for e in range(len(expected)):
        place(e, set())
    return {e: a for a, e in owner.items()}


def _align(expected: Sequence[object], actual: Sequence[object]) -> list[tuple[int, int]]:
    """Return the index pairs of a longest common subsequence, by :func:`matches`."""
    n, m = len(expected), len(actual)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = (
                table[i + 1][j + 1] + 1
                if matches(expected[i], actual[j])
                else max(table[i + 1][j], table[i][j + 1])
            )
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if matches(expected[i], actual[j]):
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _detail(lines: Iterable[str], indent: str) -> list[str]:
    return [f"{indent}{line}" for line in lines]


def diff_sequences(
    expected: Sequence[object], actual: Sequence[object], *, what: str = "events"
) -> str:
    """Return a report of *actual* against *expected*, message by message.

    Matching messages are aligned first; between them, an expected and an actual message
    side by side are shown as changed, with their differing fields, and the rest as missing
    (``-``) or extra (``+``).
    """
    rows: list[str] = [f"expected {_count(len(expected), what)}, got {len(actual)}:"]
    missing: list[object] = []
    extra: list[int] = []
    width = len(str(max(len(actual), 1)))
    pad = " " * width

    def emit_gap(exp: Sequence[object], act: Sequence[int]) -> None:
        for k in range(max(len(exp), len(act))):
            if k < len(exp) and k < len(act):
                a = act[k]
                rows.append(f"  ~ {a + 1:>{width}}  expected {short(exp[k])}")
                rows.append(f"    {pad}  got      {short(actual[a])}")
                rows.extend(_detail(field_diff(exp[k], actual[a]), f"    {pad}    "))
            elif k < len(exp):
                rows.append(f"  - {pad}  missing  {short(exp[k])}")
                missing.append(exp[k])
            else:
                a = act[k]
                rows.append(f"  + {a + 1:>{width}}  extra    {short(actual[a])}")
                extra.append(a)

    i = j = 0
    for ei, aj in [*_align(expected, actual), (len(expected), len(actual))]:
        emit_gap(expected[i:ei], range(j, aj))
        if ei < len(expected):
            rows.append(f"    {aj + 1:>{width}}  {short(actual[aj])}")
        i, j = ei + 1, aj + 1
    for want in missing:  # a missing message may be an extra one out of place, or nearly so
        at = closest(want, [actual[a] for a in extra])
        if at is not None:
            rows.append(f"closest to the missing {short(want)} is #{extra[at] + 1}:")
            rows.extend(_detail(field_diff(want, actual[extra[at]]) or ["(equal)"], "    "))
    return "\n".join(rows)


def _count(n: int, what: str) -> str:
    return f"{n} {what.removesuffix('s') if n == 1 else what}"
