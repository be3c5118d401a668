"""Where a PostgreSQL store keeps a subscription's place: a position, a token, parked events.

The checkpoint and saga stores keep the same three things per checkpoint name as their
SQLite twins, under the same rules (busway/subscriptions/_tables.py checks every argument
and decides every move), in two tables of one layout: the checkpoints and the events they
parked. Each operation is a flow, so that it runs in whatever transaction its store runs it
in, with the store's other writes, on sync and async connections alike.

Many transactions may move one checkpoint at once, on many machines. :meth:`hold` takes a
transaction-scoped advisory lock on the checkpoint's name rather than locking its row
(``INSERT ... ON CONFLICT DO NOTHING`` then ``SELECT ... FOR UPDATE``), because the lock
holds a checkpoint that has no row yet without writing one: a transaction that commits
without moving the checkpoint leaves nothing behind (no row at 0 that ``names()`` would
list as saved), and there is no moment between two statements at which a row deleted by
hand leaves nothing to lock. PostgreSQL releases the lock only once the commit is visible,
also when the connection breaks, so the next holder's statements (at ``READ COMMITTED``,
PostgreSQL's default) read what the last one committed. The key is a 64-bit hash of the
table and name: two names whose keys collide only wait for each other.

The parked table keeps the event's text fields as UTF-8 ``bytea``, because PostgreSQL text
cannot hold the NUL character, which event fields may; its moment is a ``timestamptz``.

A store whose callers run code of their own in its transactions (a projection's handlers)
makes the tables with a guard: a deferred constraint trigger that refuses to commit while
:meth:`PostgresCheckpoints.guard` is on, so that a handler's own ``COMMIT`` rolls the batch
back, checkpoint and read model together.
"""

from __future__ import annotations

from typing import Final, final

from ..errors import InvalidArgumentError, LeaseLostError, StoreFormatError
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
from ._db import AsyncDatabase, Database, Flow, Statement, quoted

__all__ = ["PostgresCheckpoints", "check_key", "checkpoint_tables"]

_TEXTS: Final = (2, 5, 6)  # the columns of stream_id, type and error in PARKED_COLUMNS
_HANDLING: Final = "busway.handling"
"""The setting that is 'on' while the runner's handlers run, which the guard refuses to commit."""


def check_key(name: object, argument: str = "name") -> str:
    """Return *name* if it can name a checkpoint or lease in PostgreSQL (its text has no NUL)."""
    name = check_name(name, argument)
    if "\x00" in name:
        raise InvalidArgumentError(argument, name, "text without NUL, which PostgreSQL refuses")
    return name


def checkpoint_tables(
    schema: str, table: str, parked: str, *, guarded: bool = False
) -> tuple[str, ...]:
    """Return the statements that make checkpoint table *table* and table *parked* beside.

    *guarded*: also make the guard (a function named after *table* with ``_guard`` added,
    and its trigger), for a store that lends its transactions' connections to handlers.
    """
    t, p = quoted(schema, table), quoted(schema, parked)
    tables = (
        f'CREATE TABLE {t} (name TEXT COLLATE "C" PRIMARY KEY, '
        "position BIGINT NOT NULL CHECK (position >= 0), "
        "token BIGINT NOT NULL DEFAULT 0 CHECK (token >= 0))",
        f"""CREATE TABLE {p} (
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
    if not guarded:
        return tables
    guard = quoted(schema, f"{table}_guard")
    return (
        *tables,
        f"""CREATE FUNCTION {guard}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('{_HANDLING}', true) = 'on' THEN
                RAISE EXCEPTION 'busway refused a COMMIT run while projection handlers '
                    'ran in the runner''s transaction; the batch is rolled back';
            END IF;
            RETURN NULL;
        END $$""",
        f"CREATE CONSTRAINT TRIGGER busway_guard AFTER INSERT OR UPDATE ON {t} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {guard}()",
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
    ``drive`` on a connection in the caller's transaction, to commit it with the caller's
    writes. *db* names the tables' schema and location; it is not used otherwise.
    """

    def __init__(self, db: Database | AsyncDatabase, table: str, parked: str) -> None:
        self.table = table
        self.parked_table = parked
        self._location = db.location
        self._kind = db.layout.kind
        self._key = f"busway checkpoint {db.schema}.{table} "
        t, p = db.table(table), db.table(parked)
        self._sql_row = f"SELECT position, token FROM {t} WHERE name = %s"
        self._sql_rows = f'SELECT name, position FROM {t} ORDER BY name COLLATE "C"'
        self._sql_save = (
            f"INSERT INTO {t} (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )
        # One statement on the way that matters: it stores the token unless a higher one is.
        self._sql_fence = (
            f"INSERT INTO {t} AS c (name, position, token) VALUES (%s, 0, %s) "
            "ON CONFLICT (name) DO UPDATE SET token = excluded.token "
            "WHERE c.token <= excluded.token RETURNING 1"
        )
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
        return dict(rows)

    def names(self) -> Flow[list[str]]:
        """Return the name of every checkpoint, sorted."""
        return list((yield from self.positions()))

    def row(self, name: str) -> Flow[tuple[int, int]]:
        """Return checkpoint *name*'s position and token, ``(0, 0)`` if it has no row."""
        rows = yield Statement(self._sql_row, (check_key(name),))
        return (rows[0][0], rows[0][1]) if rows else (0, 0)

    def position(self, name: str) -> Flow[int]:
        """Return checkpoint *name*'s position; 0 if it never moved."""
        return (yield from self.row(name))[0]

    def token(self, name: str) -> Flow[int]:
        """Return the highest fencing token that moved checkpoint *name*; 0 if none did."""
        return (yield from self.row(name))[1]

    def parked(self, name: str) -> Flow[list[ParkedEvent]]:
        """Return the events parked on checkpoint *name*, by position."""
        rows = yield Statement(self._sql_parked, (check_key(name),))
        events = []
        for stored in rows:
            row = list(stored)
            for column in _TEXTS:
                row[column] = _decoded(row[column])
            events.append(
                ParkedRow(self._damaged, self.parked_table, name, row[1]).read(tuple(row))
            )
        return events

    # -- holding -------------------------------------------------------------------------

    def hold(self, name: str) -> Flow[None]:
        """Lock checkpoint *name*, row or no row, until the transaction ends."""
        yield Statement(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self._key + check_key(name),)
        )

    def guard(self, on: bool) -> Flow[None]:
        """Turn on (or off) the refusal to commit, in tables made ``guarded``.

        It is set in the transaction, not in a savepoint, whose rollback would undo it.
        """
        yield Statement("SELECT set_config(%s, %s, true)", (_HANDLING, "on" if on else "off"))

    # -- writing -------------------------------------------------------------------------

    def save(self, name: str, position: int) -> Flow[None]:
        """Set checkpoint *name* to *position*, whatever it was, keeping its token."""
        check_count("position", position, 0)
        yield Statement(self._sql_save, (check_key(name), position))

    def fence(self, name: str, token: int) -> Flow[None]:
        """Record *token* as checkpoint *name*'s; raise LeaseLostError if a later one moved it."""
        check_count("token", token, 0)
        if not (yield Statement(self._sql_fence, (check_key(name), token))):
            raise LeaseLostError(name, token, (yield from self.token(name)))

    def park(self, name: str, parked: ParkedEvent) -> Flow[None]:
        """Keep *parked* on checkpoint *name*, in place of any event parked at its position."""
        p = check_parked(parked, check_key(name))
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
        return bool((yield Statement(self._sql_unpark, (check_key(name), position))))

    def check(self, advance: Advance) -> Flow[Advance]:
        """Return *advance*, checked, its checkpoint held; raise if it may not make that move."""
        advance = check_advance(advance)
        yield from self.hold(check_key(advance.name, "checkpoint.name"))
        refuse(advance, *(yield from self.row(advance.name)))
        return advance

    def advance(self, advance: Advance) -> Flow[None]:
        """Make *advance*, which :meth:`check` returned, with its parking and unparking."""
        yield Statement(self._sql_advance, (advance.name, advance.position, advance.token))
        if advance.unpark is not None:
            yield from self.unpark(advance.name, advance.unpark)
        if advance.park is not None:
            yield from self.park(advance.name, advance.park)
