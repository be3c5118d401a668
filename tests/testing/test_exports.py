"""The public face of busway.testing: complete, sorted, lazy, and final where concrete."""

from __future__ import annotations

import pytest

import busway.testing
import busway.testing.strategies


def test_all_is_sorted_and_every_name_resolves() -> None:
    """__all__ is sorted, dir() lists it, and each name loads on first use."""
    for module in (busway.testing, busway.testing.strategies):
        assert sorted(module.__all__) == module.__all__
        for name in module.__all__:
            assert getattr(module, name) is not None
    public = {n for n in dir(busway.testing) if not n.startswith("_")}
    assert set(busway.testing.__all__) <= public
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        busway.testing.Nothing  # type: ignore[attr-defined]  # noqa: B018 - it raises


def test_concrete_classes_are_final() -> None:
    """Concrete public classes are final; the machine and the contracts are bases."""
    contracts = {n for n in busway.testing.__all__ if n.endswith("Contract")}
    bases = {"AggregateMachine", *contracts}
    for name in busway.testing.__all__:
        value = getattr(busway.testing, name)
        if isinstance(value, type) and not issubclass(value, BaseException):
            assert getattr(value, "__final__", False) is (name not in bases), name
