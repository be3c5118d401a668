"""Fixtures for the saga tests: each saga store, a fake clock, services and a manager."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from busway.clock import FakeClock
from busway.sagas import InMemorySagaStore, SagaManager, SagaStore, SQLiteSagaStore

from .model import Booking, Services


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SagaStore]:
    """Each saga store that ships, empty."""
    if request.param == "memory":
        with InMemorySagaStore() as memory:
            yield memory
    else:
        with SQLiteSagaStore(tmp_path / "sagas.db") as sqlite:
            yield sqlite


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
def manager(store: SagaStore, services: Services, clock: FakeClock) -> SagaManager:
    """A manager running Booking sagas on the store, with the recording services."""
    return SagaManager(Booking, store=store, commands=services.commands, clock=clock)
