"""A read model in PostgreSQL that catches any event applied twice, for the subscription tests.

:class:`Ledger` writes one row per event it handles, keyed by position, with the worker that
handled it and the order the rows were committed in; a second application of an event is
a unique violation, so "each event once" is checked by PostgreSQL itself. Its tables live
in the test's schema, never in ``public``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import attrs
import psycopg

from busway.eventstore import RecordedEvent
from busway.postgres import PostgresProjection
from busway.projections import when
from tests._projection_worker import Happened


@attrs.define
class Pause:
    """Holds the handler at one position, once, until the test lets it go on.

    ``backend`` is the server process of the handler's connection, to cut it meanwhile.
    """

    at: int
    reached: threading.Event = attrs.field(factory=threading.Event)
    go: threading.Event = attrs.field(factory=threading.Event)
    backend: int = 0


class Ledger(PostgresProjection):
    """One row per event handled, by position, in table ``ledger`` of *schema*.

    *failures* maps a position to how many more times its handler fails; *misuse* names
    what the handler of position *misuse_at* does to the runner's connection after its
    write: ``"commit"``, ``"rollback"``, ``"close"``, ``"swallow"`` (an error it catches),
    ``"commit()"`` (psycopg's method).
    """

    name = "ledger"

    def __init__(
        self,
        schema: str,
        worker: str,
        *,
        failures: dict[int, int] | None = None,
        misuse: str | None = None,
        misuse_at: int = 3,
        pause: Pause | None = None,
    ) -> None:
        self.table = f'"{schema}".ledger'
        self.worker = worker
        self.failures = {} if failures is None else failures
        self.misuse = misuse
        self.misuse_at = misuse_at
        self.pause = pause

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (position BIGINT PRIMARY KEY, "
            "stream TEXT NOT NULL, version BIGINT NOT NULL, worker TEXT NOT NULL, "
            "seq BIGSERIAL NOT NULL)"
        )

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"DELETE FROM {self.table}")

    @when(Happened)
    def _happened(
        self, event: Happened, recorded: RecordedEvent, conn: psycopg.Connection[Any]
    ) -> None:
        pause = self.pause
        if pause is not None and pause.at == recorded.position and not pause.reached.is_set():
            pause.backend = conn.info.backend_pid
            pause.reached.set()
            pause.go.wait(30)
        left = self.failures.get(recorded.position, 0)
        if left != 0:
            self.failures[recorded.position] = left - 1
            raise RuntimeError(f"handler of {recorded.position} fails")
        conn.execute(
            f"INSERT INTO {self.table} (position, stream, version, worker) VALUES (%s, %s, %s, %s)",
            (recorded.position, recorded.stream_id, recorded.version, self.worker),
        )
        if recorded.position == self.misuse_at and self.misuse is not None:
            self._misuse(conn, self.misuse)

    @staticmethod
    def _misuse(conn: psycopg.Connection[Any], misuse: str) -> None:
        if misuse == "commit":
            conn.execute("COMMIT")
        elif misuse == "rollback":
            conn.execute("ROLLBACK")
        elif misuse == "close":
            conn.close()
        elif misuse == "commit()":
            conn.commit()
        else:
            with contextlib.suppress(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")


def ledger(dsn: str, schema: str) -> list[tuple[int, str, int, str]]:
    """Return the ledger's rows, (position, stream, version, worker), in commit order."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            f'SELECT position, stream, version, worker FROM "{schema}".ledger ORDER BY seq'
        ).fetchall()
    return [(p, s, v, w) for p, s, v, w in found]
