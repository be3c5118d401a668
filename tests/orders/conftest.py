"""Fixtures for the order service's tests: an app on a fresh SQLite file."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from busway.demo import OrdersApp


@pytest.fixture
def app(tmp_path: Path) -> Iterator[OrdersApp]:
    """An order service whose order ids are o1, o2, ... in the order they are placed."""
    ids = itertools.count(1)
    with OrdersApp(tmp_path / "orders.db", new_id=lambda: f"o{next(ids)}") as service:
        yield service
