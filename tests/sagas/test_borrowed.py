"""An SQLite saga store on a connection it is given, such as a read-only one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from busway.errors import StoreUnavailableError
from busway.sagas import SagaRecord, SQLiteSagaStore, Write


def test_a_saga_store_reads_through_a_read_only_connection_and_leaves_it_open(
    tmp_path: Path,
) -> None:
    """Given a read-only connection, the store reads what another wrote, and does not close it."""
    path = tmp_path / "sagas.db"
    with SQLiteSagaStore(path) as writer:
        writer.commit([Write(SagaRecord("s-1", "Shipping", 1, 1, "{}"), 0)])
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    with SQLiteSagaStore(conn) as reader:
        loaded = reader.load("s-1")
        assert loaded is not None
        assert "Shipping" == loaded.saga_type
        assert {} == reader.checkpoints()
    assert 1 == conn.execute("SELECT count(*) FROM sagas").fetchone()[0]  # still open
    conn.close()


def test_a_read_only_connection_without_saga_tables_is_refused(tmp_path: Path) -> None:
    """A file without a saga store cannot get one through a read-only connection: refused."""
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(StoreUnavailableError):
        SQLiteSagaStore(conn)
    conn.close()
