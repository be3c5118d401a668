"""PostgreSQL stores, for many processes on many machines sharing one database.

Install the extra first: ``pip install "busway[postgres]"`` (psycopg 3 and psycopg_pool).
Every store takes a DSN (and opens a pool of its own) or a pool you own, and a ``schema=``
its tables are made in on first use.
"""

import importlib.util

if any(importlib.util.find_spec(name) is None for name in ("psycopg", "psycopg_pool")):
    raise ImportError(  # pragma: no cover - the extra is installed wherever tests run
        'busway.postgres needs psycopg 3 and psycopg_pool: pip install "busway[postgres]"'
    )

from ._checkpoints import PostgresCheckpointStore
from ._eventstore import AsyncPostgresEventStore, PostgresEventStore
from ._leases import PostgresLeaseStore
from ._projection import PostgresProjection
from ._sagas import PostgresSagaStore
from ._snapshots import PostgresSnapshotStore

__all__ = [
    "AsyncPostgresEventStore",
    "PostgresCheckpointStore",
    "PostgresEventStore",
    "PostgresLeaseStore",
    "PostgresProjection",
    "PostgresSagaStore",
    "PostgresSnapshotStore",
]
