"""Fixtures for the event store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from busway.eventstore import _json


@pytest.fixture(scope="module", params=["json", "msgspec"])
def codec(request: pytest.FixtureRequest) -> Iterator[str]:
    """Read stored JSON with each parser busway can use; msgspec's only where installed."""
    name: str = request.param
    if name not in _json.CODECS:
        pytest.skip(f"{name} is not installed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_json, "parse", _json.CODECS[name])
        yield name
