"""The order service's stores and read model in PostgreSQL, for ``python -m busway.demo DSN``.

Imported only when the demo is given a DSN, so that it runs without psycopg on SQLite.
The read model is the same ``orders`` table, in the demo's schema, kept by the same
handlers as on SQLite, written through the runner's psycopg connection.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from busway.errors import StoreUnavailableError
from busway.postgres import (
    PostgresCheckpointStore,
    PostgresEventStore,
    PostgresProjection,
    PostgresSnapshotStore,
)

from .messages import EVENT_TYPES
from .read_model import OrderQueries, OrdersTable, postgres_sql

__all__ = [
    "PostgresOrdersProjection",
    "checkpoint_store",
    "describe",
    "event_store",
    "projection",
    "queries",
    "snapshot_store",
]


class PostgresOrdersProjection(OrdersTable[psycopg.Connection[Any]], PostgresProjection):
    """Keeps the ``orders`` table of the demo's schema in step with the order events."""

    name = "orders"


def describe(dsn: str, schema: str) -> str:
    """Name the server, database and schema of *dsn*, never its password."""
    info = conninfo_to_dict(dsn)
    where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
    return f"PostgreSQL at {where}, database {info.get('dbname') or ''}, schema {schema}"


def event_store(dsn: str, schema: str) -> PostgresEventStore:
    """Return the order events' store, table ``events`` of *schema*."""
    return PostgresEventStore(dsn, types=EVENT_TYPES, schema=schema)


def snapshot_store(dsn: str, schema: str) -> PostgresSnapshotStore:
    """Return the orders' snapshot store, table ``snapshots`` of *schema*."""
    return PostgresSnapshotStore(dsn, schema=schema)


def checkpoint_store(dsn: str, schema: str) -> PostgresCheckpointStore:
    """Return the read model's checkpoints, beside it in *schema*."""
    return PostgresCheckpointStore(dsn, schema=schema)


def projection(schema: str) -> PostgresOrdersProjection:
    """Return the projection that keeps table ``orders`` of *schema*."""
    return PostgresOrdersProjection(f'"{schema}"."orders"', postgres_sql)


class _Reader:
    """The read model's own connection, opened on first use and again after it broke."""

    def __init__(self, dsn: str, location: str) -> None:
        self._dsn = dsn
        self._location = location
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._dsn, autocommit=True)
                return self._conn.execute(postgres_sql(sql), params).fetchall()
            except psycopg.Error as exc:
                raise StoreUnavailableError(
                    self._location, f"{exc}: the read model cannot be queried; retry"
                ) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def queries(dsn: str, schema: str) -> OrderQueries:
    """Return the queries of the read model in *schema*, on a connection of their own."""
    reader = _Reader(dsn, describe(dsn, schema))
    return OrderQueries(reader.fetch, reader.close, table=f'"{schema}"."orders"')
