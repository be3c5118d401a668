"""Where a subscription keeps its place: a position, a fencing token, the events it parked.

Checkpoint stores and saga stores keep the same three things per checkpoint name, and the
same rules about them: :class:`MemoryCheckpoints` keeps them in dicts and
:class:`SQLiteCheckpoints` in two tables of a database. Neither takes a lock or opens a
transaction: each store runs them under its own lock and inside its own transactions, so
that they commit with whatever else the store writes. Both check every argument first, so
that the two refuse the same values.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from typing import Final, final

import attrs

from .._sqlite import Database, stored_position
from .._time import aware, from_micros, micros
from ..errors import CheckpointMovedError, InvalidArgumentError, LeaseLostError, StoreFormatError
from ._records import Advance, ParkedEvent

__all__ = [
    "CHECKPOINT_COLUMNS",
    "PARKED_COLUMNS",
    "MemoryCheckpoints",
    "ParkedRow",
    "SQLiteCheckpoints",
    "check_advance",
    "check_count",
    "check_name",
    "check_parked",
    "checkpoint_tables",
    "refuse",
]

CHECKPOINT_COLUMNS: Final = ("name", "position", "token")
PARKED_COLUMNS: Final = (
    "subscription",
    "position",
    "stream_id",
    "version",
    "event_id",
    "type",
    "error",
    "attempts",
    "parked_at",
)
_LARGEST: Final = 2**63 - 1  # SQLite's largest integer


# -- arguments -----------------------------------------------------------------------------


def check_count(argument: str, value: object, least: int) -> int:
    """Return *value* if it is an int (not a bool) from *least* to SQLite's largest."""
    if type(value) is not int or not least <= value <= _LARGEST:
        raise InvalidArgumentError(argument, value, f"an int from {least} to 2**63 - 1")
    return value


def _check_text(argument: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty):
        raise InvalidArgumentError(argument, value, "a str" if empty else "a non-empty str")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                argument, value, "valid text (it holds a lone surrogate)"
            ) from None
    return value


def check_name(name: object, argument: str = "name") -> str:
    """Return *name* if it can name a checkpoint: a non-empty str of valid text."""
    return _check_text(argument, name)


def check_parked(parked: object, name: str) -> ParkedEvent:
    """Return *parked*, in UTC, if every field is one a store can keep and it is *name*'s."""
    if not isinstance(parked, ParkedEvent):
        raise InvalidArgumentError("parked", parked, "a ParkedEvent")
    if parked.subscription != name:
        raise InvalidArgumentError(
            "parked.subscription", parked.subscription, f"{name!r}, the checkpoint it parks on"
        )
    check_count("parked.position", parked.position, 1)
    _check_text("parked.stream_id", parked.stream_id)
    check_count("parked.version", parked.version, 1)
    if not isinstance(parked.event_id, uuid.UUID):
        raise InvalidArgumentError("parked.event_id", parked.event_id, "a uuid.UUID")
    _check_text("parked.type", parked.type)
    _check_text("parked.error", parked.error, empty=True)
    check_count("parked.attempts", parked.attempts, 1)
    return attrs.evolve(parked, parked_at=aware(parked.parked_at, "parked.parked_at"))


def check_advance(advance: object) -> Advance:
    """Return *advance* if a store can make that move, with its parked event in UTC."""
    if not isinstance(advance, Advance):
        raise InvalidArgumentError("checkpoint", advance, "an Advance(name, expected, position)")
    name = check_name(advance.name, "checkpoint.name")
    check_count("checkpoint.expected", advance.expected, 0)
    check_count("checkpoint.position", advance.position, 0)
    check_count("checkpoint.token", advance.token, 0)
    if advance.unpark is not None:
        check_count("checkpoint.unpark", advance.unpark, 1)
    if advance.park is None:
        return advance
    park = check_parked(advance.park, name)
    if park.position == advance.unpark:
        raise InvalidArgumentError(
            "checkpoint.unpark", advance.unpark, "another position than the event it parks"
        )
    return attrs.evolve(advance, park=park)


def refuse(advance: Advance, position: int, token: int) -> None:
    """Raise if a checkpoint at *position*, last written with *token*, may not make *advance*."""
    if token > advance.token:
        raise LeaseLostError(advance.name, advance.token, token)
    if position != advance.expected:
        raise CheckpointMovedError(advance.name, advance.expected, position)


# -- in memory -----------------------------------------------------------------------------


@final
class MemoryCheckpoints:
    """Positions, fencing tokens and parked events in dicts; its store's lock guards them."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[int, int]] = {}  # name: (position, token)
        self._parked: dict[str, dict[int, ParkedEvent]] = {}

    def positions(self) -> dict[str, int]:
        """Return every checkpoint's position, by name."""
        return {name: self._rows[name][0] for name in sorted(self._rows)}

    def position(self, name: str) -> int:
        return self._rows.get(check_name(name), (0, 0))[0]

    def token(self, name: str) -> int:
        return self._rows.get(check_name(name), (0, 0))[1]

    def names(self) -> list[str]:
        return sorted(self._rows)

    def parked(self, name: str) -> list[ParkedEvent]:
        parked = self._parked.get(check_name(name), {})
        return [parked[position] for position in sorted(parked)]

    def save(self, name: str, position: int) -> None:
        check_count("position", position, 0)
        self._rows[check_name(name)] = (position, self.token(name))

    def fence(self, name: str, token: int) -> None:
        check_count("token", token, 0)
        position, stored = self._rows.get(check_name(name), (0, 0))
        if stored > token:
            raise LeaseLostError(name, token, stored)
        self._rows[name] = (position, token)

    def park(self, name: str, parked: ParkedEvent) -> None:
        parked = check_parked(parked, check_name(name))
        self._parked.setdefault(name, {})[parked.position] = parked

    def unpark(self, name: str, position: int) -> bool:
        check_count("position", position, 1)
        parked = self._parked.get(check_name(name), {})
        return parked.pop(position, None) is not None

    def check(self, advance: Advance) -> Advance:
        """Return *advance*, checked; raise if the checkpoint may not make that move."""
        advance = check_advance(advance)
        refuse(advance, *self._rows.get(advance.name, (0, 0)))
        return advance

    def advance(self, advance: Advance) -> None:
        """Make *advance*, which :meth:`check` returned, with its parking and unparking."""
        self._rows[advance.name] = (advance.position, advance.token)
        if advance.unpark is not None:
            self.unpark(advance.name, advance.unpark)
        if advance.park is not None:
            self.park(advance.name, advance.park)


# -- in SQLite -----------------------------------------------------------------------------


def checkpoint_tables(table: str, parked: str) -> tuple[str, str]:
    """Return the statements that make checkpoint table *table* and table *parked* beside."""
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, "
        "position INTEGER NOT NULL, token INTEGER NOT NULL DEFAULT 0)",
        f"""CREATE TABLE IF NOT EXISTS {parked} (
            subscription TEXT NOT NULL,
            position INTEGER NOT NULL,
            stream_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            event_id BLOB NOT NULL,
            type TEXT NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            parked_at INTEGER NOT NULL,
            PRIMARY KEY (subscription, position)
        )""",
    )


@final
class SQLiteCheckpoints:
    """The same, in checkpoint table *table* and table *parked* beside, on a :class:`Database`.

    Every value read back is checked: one that no busway store writes (text for a
    position, a blob of another size for an event id) was put there by other hands, and is
    refused with :class:`~busway.errors.StoreFormatError` naming the table, the row and the
    value. *advice* says what to do about a damaged position.
    """

    def __init__(self, db: Database, table: str, parked: str, *, advice: str) -> None:
        self._db = db
        self.table = t = table
        self.parked_table = p = parked
        self._advice = advice
        self._sql_row = f"SELECT position, token FROM {t} WHERE name = ?"
        self._sql_rows = f"SELECT name, position FROM {t}"
        self._sql_save = (
            f"INSERT INTO {t} (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )
        self._sql_fence = (
            f"INSERT INTO {t} (name, position, token) VALUES (?, 0, ?) "
            "ON CONFLICT (name) DO UPDATE SET token = excluded.token"
        )
        self._sql_advance = (
            f"INSERT INTO {t} (name, position, token) VALUES (?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET position = excluded.position, token = excluded.token"
        )
        columns, marks = ", ".join(PARKED_COLUMNS), ", ".join("?" * len(PARKED_COLUMNS))
        self._sql_park = f"INSERT OR REPLACE INTO {p} ({columns}) VALUES ({marks})"
        self._sql_unpark = f"DELETE FROM {p} WHERE subscription = ? AND position = ?"
        self._sql_parked = f"SELECT {columns} FROM {p} WHERE subscription = ? ORDER BY position"

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._db.conn

    def _damaged(self, problem: str) -> StoreFormatError:
        return StoreFormatError(self._db.location, problem, kind=self._db.layout.kind)

    def _row(self, name: str) -> tuple[int, int]:
        row = self._conn.execute(self._sql_row, (check_name(name),)).fetchone()
        if row is None:
            return 0, 0
        position, token = row
        if type(token) is not int or token < 0:
            raise self._damaged(
                f"table {self.table!r} holds {token!r} ({type(token).__name__}) as the fencing "
                f"token of {name!r}, where busway writes an int of 0 or more. Set it to the "
                f"token of the last lease on it (UPDATE {self.table} SET token = ... WHERE "
                f"name = {name!r}), or {self._advice}"
            )
        return self._position(name, position), token

    def _position(self, name: str, value: object) -> int:
        return stored_position(self._db, value, table=self.table, name=name, advice=self._advice)

    def positions(self) -> dict[str, int]:
        """Return every checkpoint's position, by name."""
        rows = self._conn.execute(self._sql_rows).fetchall()
        for name, _ in rows:
            if not isinstance(name, str):
                raise self._damaged(
                    f"table {self.table!r} holds {name!r} ({type(name).__name__}) as a "
                    f"checkpoint's name, where busway writes text; delete that row (DELETE FROM "
                    f"{self.table} WHERE name = {name!r})"
                )
        return {name: self._position(name, position) for name, position in sorted(rows)}

    def position(self, name: str) -> int:
        return self._row(name)[0]

    def token(self, name: str) -> int:
        return self._row(name)[1]

    def names(self) -> list[str]:
        return list(self.positions())

    def parked(self, name: str) -> list[ParkedEvent]:
        rows = self._conn.execute(self._sql_parked, (check_name(name),)).fetchall()
        return [ParkedRow(self._damaged, self.parked_table, name, row[1]).read(row) for row in rows]

    def save(self, name: str, position: int) -> None:
        check_count("position", position, 0)
        self._conn.execute(self._sql_save, (check_name(name), position))

    def fence(self, name: str, token: int) -> None:
        check_count("token", token, 0)
        stored = self.token(name)
        if stored > token:
            raise LeaseLostError(name, token, stored)
        self._conn.execute(self._sql_fence, (name, token))

    def park(self, name: str, parked: ParkedEvent) -> None:
        p = check_parked(parked, check_name(name))
        self._conn.execute(
            self._sql_park,
            (
                p.subscription,
                p.position,
                p.stream_id,
                p.version,
                p.event_id.bytes,
                p.type,
                p.error,
                p.attempts,
                micros(p.parked_at),
            ),
        )

    def unpark(self, name: str, position: int) -> bool:
        check_count("position", position, 1)
        return self._conn.execute(self._sql_unpark, (check_name(name), position)).rowcount > 0

    def check(self, advance: Advance) -> Advance:
        """Return *advance*, checked; raise if the checkpoint may not make that move."""
        advance = check_advance(advance)
        refuse(advance, *self._row(advance.name))
        return advance

    def advance(self, advance: Advance) -> None:
        """Make *advance*, which :meth:`check` returned, with its parking and unparking."""
        self._conn.execute(self._sql_advance, (advance.name, advance.position, advance.token))
        if advance.unpark is not None:
            self.unpark(advance.name, advance.unpark)
        if advance.park is not None:
            self.park(advance.name, advance.park)


@final
class ParkedRow:
    """Reads one parked event's row back, refusing the first value no busway store writes.

    *damaged* makes the store's error for a problem; *table* is the parked table, *name*
    the checkpoint whose rows were selected, *position* the row's as read.
    """

    def __init__(
        self,
        damaged: Callable[[str], StoreFormatError],
        table: str,
        name: str,
        position: object,
    ) -> None:
        self._store_damaged = damaged
        self._table = table
        self._name = name
        self._position = position

    def _damaged(self, column: str, value: object, wanted: str) -> StoreFormatError:
        t = self._table
        return self._store_damaged(
            f"table {t!r} holds {value!r} ({type(value).__name__}) as the {column} of the "
            f"event {self._name!r} parked at position {self._position!r}, where busway writes "
            f"{wanted}. Delete the row to forget the event (DELETE FROM {t} WHERE subscription "
            f"= {self._name!r} AND position = {self._position!r}), or restore the table from a "
            "backup"
        )

    def _text(self, column: str, value: object, *, empty: bool = False) -> str:
        if not isinstance(value, str) or not (value or empty):
            raise self._damaged(column, value, "text" if empty else "non-empty text")
        return value

    def _count(self, column: str, value: object, least: int) -> int:
        if type(value) is not int or value < least:
            raise self._damaged(column, value, f"an int of {least} or more")
        return value

    def read(self, row: tuple[object, ...]) -> ParkedEvent:
        # The subscription is the name the rows were selected by.
        _, position, stream_id, version, event_id, type_, error, attempts, at = row
        if not isinstance(event_id, bytes) or len(event_id) != 16:
            raise self._damaged("event_id", event_id, "a blob of 16 bytes")
        moment = "an int of microseconds since 1970 UTC, from year 1 to 9999"
        if type(at) is not int:
            raise self._damaged("parked_at", at, moment)
        try:
            parked_at = from_micros(at)
        except OverflowError:
            raise self._damaged("parked_at", at, moment) from None
        return ParkedEvent(
            subscription=self._name,
            position=self._count("position", position, 1),
            stream_id=self._text("stream_id", stream_id),
            version=self._count("version", version, 1),
            event_id=uuid.UUID(bytes=event_id),
            type=self._text("type", type_),
            error=self._text("error", error, empty=True),
            attempts=self._count("attempts", attempts, 1),
            parked_at=parked_at,
        )
