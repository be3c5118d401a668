"""Every snapshot store shipped with busway passes the contract third-party stores must pass."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from busway.aggregates import InMemorySnapshotStore, SnapshotStore, SQLiteSnapshotStore
from busway.testing import SnapshotStoreContract


class TestInMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[SnapshotStore]:
        with InMemorySnapshotStore() as store:
            yield store


class TestSQLiteSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SnapshotStore]:
        with SQLiteSnapshotStore(tmp_path / "snapshots.db") as store:
            yield store


class TestSQLiteSnapshotStoreOnAGivenConnection(SnapshotStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SnapshotStore]:
        conn = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
        conn.execute("PRAGMA synchronous = OFF")  # the tests are of the code, not of the disk
        try:
            with SQLiteSnapshotStore(conn, table="snaps") as store:
                yield store
        finally:
            conn.close()
