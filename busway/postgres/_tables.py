"""Where a PostgreSQL store keeps a subscription's place: a position, a token, parked events.

The checkpoint and saga stores keep the same three things per checkpoint name as their
SQLite twins, under the same rules (busway/subscriptions/_tables.py checks every argument
and decides every move), in two tables: the checkpoints and the events they parked. Each
operation is a flow, so that it runs in whatever transaction its store runs it in, with the
store's other writes, on sync and async connections alike.

Many transactions may move one checkpoint at once, on many machines: :meth:`hold` locks the
checkpoint's row (making it first, at position 0, if there is none yet) until the
transaction ends, so that the compare-and-set of an advance and the fencing-token check are
one step. A held row that the transaction then leaves unmoved is rolled back with it, or
stays at 0, which is where a checkpoint that never moved is.

The parked table keeps the event's text fields as UTF-8 ``bytea``, because PostgreSQL text
cannot hold the NUL character, which event fields may; its moment is a ``timestamptz``.
"""

from __future__ import annotations

from typing import Final, final

from ..errors import LeaseLostError, StoreFormatError
from ..subscriptions import Advance, ParkedEvent
from ..subscriptions._tables import (
    PARKED_COLUMNS,
    ParkedRow,
    check_advance,
    check_count,
    check_name,
    check_parked,
    refuse,
)
from ._db import AsyncDatabase, Database, Flow, Statement

__all__ = ["PostgresCheckpoints", "checkpoint_tables"]

_TEXTS: Final = (2, 5, 6)  # the columns of stream_id, type and error in PARKED_COLUMNS


def checkpoint_tables(table: str, parked: str) -> tuple[str, str]:
    """Return the statements that make checkpoint table *table* and table *parked* beside.

    Both names are quoted and schema-qualified already (see ``Database.table``).
    """
    return (
        f'CREATE TABLE {table} (name TEXT COLLATE "C" PRIMARY KEY, '
        "position BIGINT NOT NULL CHECK (position >= 0), "
        "token BIGINT NOT NULL DEFAULT 0 CHECK (token >= 0))",
        f"""CREATE TABLE {parked} (
            subscription TEXT COLLATE "C" NOT NULL,
            position BIGINT NOT NULL CHECK (position >= 1),
            stream_id BYTEA NOT NULL CHECK (octet_length(stream_id) > 0),
            version BIGINT NOT NULL CHECK (version >= 1),
            event_id BYTEA NOT NULL CHECK (octet_length(event_id) = 16),
            type BYTEA NOT NULL CHECK (octet_length(type) > 0),
            error BYTEA NOT NULL,
            attempts BIGINT NOT NULL CHECK (attempts >= 1),
            parked_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (subscription, position)
        )""",
    )


def _decoded(value: bytes) -> str | bytes:
    """Return stored UTF-8 *value* as text; what does not decode is left for the check."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


@final
class PostgresCheckpoints:
    """Positions, fencing tokens and parked events in checkpoint table *table* and *parked*.

    Every method returns a flow: run it with ``db.run`` (its own transaction) or with
    ``drive``/``adrive`` on a connection in the caller's transaction, to commit it with the
    caller's writes. *db* names the tables' schema and location; it is not used otherwise.
    """

    def __init__(self, db: Database | AsyncDatabase, table: str, parked: str) -> None:
        self.table = table
        self.parked_table = parked
        self._location = db.location
        self._kind = db.layout.kind
        t, p = db.table(table), db.table(parked)
        self._sql_hold = (
            f"INSERT INTO {t} (name, position, token) VALUES (%s, 0, 0) "
            "ON CONFLICT (name) DO NOTHING"
        )
        self._sql_held = f"SELECT position, token FROM {t} WHERE name = %s FOR UPDATE"
        self._sql_row = f"SELECT position, token FROM {t} WHERE name = %s"
        self._sql_rows = f"SELECT name, position FROM {t}"
        self._sql_save = (
            f"INSERT INTO {t} (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )
        self._sql_fence = f"UPDATE {t} SET token = %s WHERE name = %s"
        self._sql_advance = (
            f"INSERT INTO {t} (name, position, token) VALUES (%s, %s, %s) ON CONFLICT (name) "
            "DO UPDATE SET position = excluded.position, token = excluded.token"
        )
        columns = ", ".join(PARKED_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in PARKED_COLUMNS[2:])
        self._sql_park = (
            f"INSERT INTO {p} ({columns}) VALUES ({', '.join(['%s'] * len(PARKED_COLUMNS))}) "
            f"ON CONFLICT (subscription, position) DO UPDATE SET {updates}"
        )
        self._sql_unpark = (
            f"DELETE FROM {p} WHERE subscription = %s AND position = %s RETURNING position"
        )
        # The moment as microseconds since 1970 UTC, exact, as the shared row reader takes it.
        read = columns.replace("parked_at", "(extract(epoch FROM parked_at) * 1000000)::bigint")
        self._sql_parked = f"SELECT {read} FROM {p} WHERE subscription = %s ORDER BY position"

    def _damaged(self, problem: str) -> StoreFormatError:
        return StoreFormatError(self._location, problem, kind=self._kind)

    # -- reading -------------------------------------------------------------------------

    def positions(self) -> Flow[dict[str, int]]:
        """Return every checkpoint's position, by name (sorted)."""
        rows = yield Statement(self._sql_rows)
        return dict(sorted(rows))

    def names(self) -> Flow[list[str]]:
        """Return the name of every checkpoint, sorted."""
        return list((yield from self.positions()))

    def row(self, name: str) -> Flow[tuple[int, int]]:
        """Return checkpoint *name*'s position and token, ``(0, 0)`` if it has no row."""
        rows = yield Statement(self._sql_row, (check_name(name),))
        return (rows[0][0], rows[0][1]) if rows else (0, 0)

    def position(self, name: str) -> Flow[int]:
        """Return checkpoint *name*'s position; 0 if it never moved."""
        return (yield from self.row(name))[0]

    def token(self, name: str) -> Flow[int]:
        """Return the highest fencing token that moved checkpoint *name*; 0 if none did."""
        return (yield from self.row(name))[1]

    def parked(self, name: str) -> Flow[list[ParkedEvent]]:
        """Return the events parked on checkpoint *name*, by position."""
        rows = yield Statement(self._sql_parked, (check_name(name),))
        events = []
        for stored in rows:
            row = list(stored)
            for column in _TEXTS:
                row[column] = _decoded(row[column])
            events.append(
                ParkedRow(self._damaged, self.parked_table, name, row[1]).read(tuple(row))
            )
        return events

    # -- writing -------------------------------------------------------------------------

    def hold(self, name: str) -> Flow[tuple[int, int]]:
        """Lock checkpoint *name*'s row until the transaction ends; return position and token.

        A checkpoint without a row gets one at position 0 and token 0 first, so that it is
        held too.
        """
        yield Statement(self._sql_hold, (check_name(name),))
        rows = yield Statement(self._sql_held, (name,))
        return rows[0][0], rows[0][1]

    def save(self, name: str, position: int) -> Flow[None]:
        """Set checkpoint *name* to *position*, whatever it was, keeping its token."""
        check_count("position", position, 0)
        yield Statement(self._sql_save, (check_name(name), position))

    def fence(self, name: str, token: int) -> Flow[None]:
        """Record *token* as checkpoint *name*'s; raise LeaseLostError if a later one moved it."""
        check_count("token", token, 0)
        _, stored = yield from self.hold(name)
        if stored > token:
            raise LeaseLostError(name, token, stored)
        yield Statement(self._sql_fence, (token, name))

    def park(self, name: str, parked: ParkedEvent) -> Flow[None]:
        """Keep *parked* on checkpoint *name*, in place of any event parked at its position."""
        p = check_parked(parked, check_name(name))
        yield Statement(
            self._sql_park,
            (
                p.subscription,
                p.position,
                p.stream_id.encode(),
                p.version,
                p.event_id.bytes,
                p.type.encode(),
                p.error.encode(),
                p.attempts,
                p.parked_at,
            ),
        )

    def unpark(self, name: str, position: int) -> Flow[bool]:
        """Forget the event parked on checkpoint *name* at *position*; tell whether one was."""
        check_count("position", position, 1)
        return bool((yield Statement(self._sql_unpark, (check_name(name), position))))

    def check(self, advance: Advance) -> Flow[Advance]:
        """Return *advance*, checked, its checkpoint held; raise if it may not make that move."""
        advance = check_advance(advance)
        refuse(advance, *(yield from self.hold(advance.name)))
        return advance

    def advance(self, advance: Advance) -> Flow[None]:
        """Make *advance*, which :meth:`check` returned, with its parking and unparking."""
        yield Statement(self._sql_advance, (advance.name, advance.position, advance.token))
        if advance.unpark is not None:
            yield from self.unpark(advance.name, advance.unpark)
        if advance.park is not None:
            yield from self.park(advance.name, advance.park)
