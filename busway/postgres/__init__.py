"""PostgreSQL stores, for many processes on many machines sharing one database.

Install the extra first: ``pip install "busway[postgres]"`` (psycopg 3 and psycopg_pool).
Every store takes a DSN (and opens a pool of its own) or a pool you own, and a ``schema=``
its tables are made in on first use.
"""

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as _missing:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        'busway.postgres needs psycopg 3 and psycopg_pool: pip install "busway[postgres]"'
    ) from _missing

from ._sagas import PostgresSagaStore
from ._snapshots import PostgresSnapshotStore

__all__ = ["PostgresSagaStore", "PostgresSnapshotStore"]
