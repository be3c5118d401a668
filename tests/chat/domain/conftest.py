"""Fixtures for the chat's domain tests: a chat on a fresh SQLite file."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Driven, opened


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Driven]:
    """A running chat whose generated message ids are m1, m2, ... in the order of posting."""
    ids = itertools.count(1)
    with opened(tmp_path / "chat.db", new_id=lambda: f"m{next(ids)}") as driven:
        yield driven
