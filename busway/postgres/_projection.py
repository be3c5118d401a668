"""A read model in PostgreSQL, written in the runner's transaction with its checkpoint."""

from __future__ import annotations

from typing import Any, ClassVar

import psycopg

from ..projections import WritingProjection

__all__ = ["PostgresProjection"]


class PostgresProjection(WritingProjection[psycopg.Connection[Any]]):
    """A read model in PostgreSQL, written in the same transaction as the runner's checkpoint.

    Handlers take ``(self, event, recorded, conn)`` and write through *conn*, a
    :class:`psycopg.Connection` inside the runner's transaction: they must not commit, roll
    back or close it (psycopg and busway refuse the first two, and the runner stops on
    any). When a handler raises, the runner undoes the batch and runs the handlers of the
    events before it again: only what they write through *conn* is undone. :meth:`setup`
    creates the tables; :meth:`reset` empties them for a rebuild. Run it with a
    :class:`~busway.postgres.PostgresCheckpointStore` on the read model's database.
    """

    connection_type: ClassVar[type] = psycopg.Connection
    checkpoint_store: ClassVar[str] = "PostgresCheckpointStore(...) on the read model's database"
