"""The public face of busway.testing: lazy, and final where concrete."""

from __future__ import annotations

import pytest

import busway.testing


def test_lazy_names_are_listed_and_unknown_ones_refused() -> None:
    """dir() lists every lazily loaded name, and an unknown name is an AttributeError."""
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
