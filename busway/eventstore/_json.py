"""Stored JSON: compact text out, and the standard library's reading of it back in.

Payloads and metadata are stored as compact JSON text: UTF-8 as it is, and JSON escapes only
for lone surrogates, which UTF-8 cannot hold. Text is read with msgspec when it is installed
(``pip install busway[fast]``), else with the standard library. Every text msgspec refuses
goes to the standard library, which parses what msgspec does not (``NaN``, numbers beyond a
double, escaped lone surrogates) and raises the usual errors otherwise: whichever is
installed, a read returns, or refuses, exactly what ``json.loads`` would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["CODECS", "encode", "parse", "parse_stdlib"]

_OPTIONS: dict[str, Any] = {"allow_nan": False, "check_circular": False, "separators": (",", ":")}
# No circular-reference check: a container inside itself is a RecursionError, which callers
# handle as they handle data nested too deeply.
_encode = json.JSONEncoder(ensure_ascii=False, **_OPTIONS).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, **_OPTIONS).encode
_raw_decode = json.JSONDecoder().raw_decode


def encode(data: object) -> str:
    """Return *data* as compact JSON; raise TypeError, ValueError or RecursionError if not JSON."""
    text = _encode(data)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = _encode_ascii(data)  # lone surrogates: JSON escapes keep them exact
    return text


def parse_stdlib(text: str) -> Any:
    """Parse stored JSON like :func:`json.loads`, with less overhead for compact text."""
    try:
        value, end = _raw_decode(text)
    except json.JSONDecodeError:
        return json.loads(text)  # leading whitespace parses; anything else raises as usual
    return value if end == len(text) else json.loads(text)


def _msgspec_parser() -> Callable[[str], Any] | None:
    try:
        import msgspec
    except ImportError:
        return None
    decode = msgspec.json.Decoder().decode

    def parse_msgspec(text: str) -> Any:
        """Parse stored JSON with msgspec; what it refuses, the standard library decides."""
        if text.__class__ is str:  # msgspec would also read bytes, which json refuses
            try:
                return decode(text)
            except (ValueError, RecursionError):
                pass
        return parse_stdlib(text)

    return parse_msgspec


_parse_msgspec = _msgspec_parser()

CODECS: dict[str, Callable[[str], Any]] = {"json": parse_stdlib}
"""Every parser this installation has, by name; they return and raise the same."""
if _parse_msgspec is not None:
    CODECS["msgspec"] = _parse_msgspec

parse: Callable[[str], Any] = _parse_msgspec or parse_stdlib
"""Parse stored JSON as :func:`json.loads` would, with the fastest parser installed."""
