"""Stored JSON: every parser busway can use reads exactly what the standard library reads."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

from busway.eventstore import _json

PARSERS = [
    pytest.param(
        _json.CODECS.get(name),
        id=name,
        marks=pytest.mark.skipif(name not in _json.CODECS, reason=f"{name} is not installed"),
    )
    for name in ("json", "msgspec")
]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 10, max_value=2**70)  # beyond 64 bits
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # lone surrogates included
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _outcome(parse: Callable[[str], Any], text: Any) -> tuple[str, Any]:
    """Return what parsing *text* gives, with the types of everything in it, or the error."""
    try:
        value = parse(text)
    except (ValueError, TypeError, RecursionError) as error:
        return "error", type(error).__name__ if isinstance(error, TypeError) else "refused"
    return "value", _typed(value)


def _typed(value: Any) -> Any:
    """Return *value* with its type beside every part, so that 1 and 1.0 differ, and NaN is NaN."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


@pytest.mark.parametrize("parse", PARSERS)
@given(value=json_values)
def test_what_is_written_reads_back_the_same(parse: Callable[[str], Any], value: object) -> None:
    """Any JSON value, once encoded, is read back equal, of the same types, by every parser."""
    text = _json.encode(value)
    text.encode()  # always storable as UTF-8
    assert _typed(value) == _outcome(parse, text)[1]


@pytest.mark.parametrize("parse", PARSERS)
@given(text=st.text() | json_values.map(json.dumps), cut=st.integers(0, 40), noise=st.text())
@example(text='{"a": NaN, "b": -Infinity, "c": 1e400}', cut=0, noise="")
@example(text='{"a": 1' + "0" * 5000 + "}", cut=0, noise="")  # past Python's digit limit
@example(text='{"a": "\\ud800"}', cut=0, noise="")  # an escaped lone surrogate
@example(text=' {"a": [1, 2]} \n', cut=0, noise="")
@example(text='\ufeff{"a": 1}', cut=0, noise="")
@example(text='{"a": 1, "a": 2}', cut=0, noise="")
@example(text="[" * 100_000 + "]" * 100_000, cut=0, noise="")
def test_any_text_reads_as_the_standard_library_reads_it(
    parse: Callable[[str], Any], text: str, cut: int, noise: str
) -> None:
    """Any text, JSON or damaged JSON, parses to what json.loads gives, or is refused like it."""
    damaged = text[: len(text) - cut] + noise if cut else text
    assert _outcome(json.loads, damaged) == _outcome(parse, damaged)


@pytest.mark.parametrize("parse", PARSERS)
def test_only_text_is_read(parse: Callable[[str], Any]) -> None:
    """A stored value that is not text (a damaged column) is refused, not parsed as bytes."""
    assert ("error", "TypeError") == _outcome(parse, b'{"a": 1}')


def test_text_is_stored_as_utf8_and_lone_surrogates_escaped() -> None:
    """Non-ASCII text is written as it is; text with lone surrogates, which UTF-8 lacks, escaped."""
    assert '{"city":"Zürich"}' == _json.encode({"city": "Zürich"})
    assert '{"bad":"\\udc00\\u00e9"}' == _json.encode({"bad": "\udc00é"})


@pytest.mark.parametrize("value", [math.nan, math.inf, {1j: 1}, object(), {"a": {1, 2}}])
def test_what_json_cannot_hold_is_refused(value: object) -> None:
    """NaN, infinities and values JSON has no form for are refused, never written."""
    with pytest.raises((ValueError, TypeError)):
        _json.encode(value)
