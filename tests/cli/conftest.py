"""The stores the command tests point the busway command at."""

from __future__ import annotations

from pathlib import Path

import pytest

from busway.eventstore import SQLiteEventStore
from busway.projections import ProjectionRunner, SQLiteCheckpointStore
from busway.subscriptions import Park, SQLiteLeaseStore

from .app import TYPES, Deposited, Totals


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An SQLite store with two streams, a partitioned projection and one parked event."""
    path = tmp_path / "events.db"
    with (
        SQLiteEventStore(path, types=TYPES) as store,
        SQLiteCheckpointStore(path) as checkpoints,
        SQLiteLeaseStore(path) as leases,
    ):
        store.append("acct-1", [Deposited("acct-1", 5)], metadata={"user": "ann"})
        store.append("acct-2", [Deposited("acct-2", 7), Deposited("acct-2", -1)])
        runner = ProjectionRunner(
            store, Totals(), checkpoints=checkpoints, leases=leases, on_error=Park()
        )
        with runner.running():  # which gives its lease back when it stops
            runner.wait_for(3, timeout=30)
        assert 1 == len(runner.parked())
    return path
