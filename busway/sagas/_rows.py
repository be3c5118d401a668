"""Reading a saga store's rows back into records, for every store that keeps sagas in tables.

The SQLite and PostgreSQL stores keep a saga in the same rows and read them back the same
way: each value is checked to be one the store writes, and anything else is reported as
:class:`~busway.errors.SagaRecordError` naming the table, the field and the value, instead
of turning into a wrong saga.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import final

from .._time import from_micros
from ..errors import SagaRecordError
from ._store import Deadline, SagaRecord, StoredMessage

__all__ = ["SagaRows", "found", "outbox_text", "read_record"]


@final
class SagaRows:
    """Reads one saga's stored rows back, and names the first value that cannot be right.

    The store writes each column with one type; a value of another type (text for a
    version, a blob, JSON of another shape) was put there by something else, and is
    reported as :class:`SagaRecordError` instead of turning into a wrong saga.
    """

    __slots__ = ("location", "saga_id", "table")

    def __init__(self, saga_id: object, location: str, table: str) -> None:
        self.saga_id = saga_id
        self.location = location
        self.table = table

    def damaged(self, field: str, problem: str) -> SagaRecordError:
        return SagaRecordError(self.saga_id, self.location, f"{self.table}{field}", problem)

    def text(self, value: object, field: str) -> str:
        if not isinstance(value, str):
            raise self.damaged(field, f"is {value!r}, not text")
        return value

    def integer(self, value: object, field: str, *, least: int | None = None) -> int:
        if type(value) is not int or (least is not None and value < least):
            at_least = "" if least is None else f" of at least {least}"
            raise self.damaged(field, f"is {value!r}, not an integer{at_least}")
        return value

    def flag(self, value: object, field: str) -> bool:
        if value not in (0, 1) or type(value) is not int:
            raise self.damaged(field, f"is {value!r}, not 0 or 1")
        return bool(value)

    def moment(self, value: object, field: str) -> datetime:
        stored = self.integer(value, field)
        try:
            return from_micros(stored)
        except OverflowError:
            raise self.damaged(field, f"is {stored}, which is no time busway wrote") from None

    def outbox(self, value: object) -> tuple[StoredMessage, ...]:
        field = ".outbox"
        try:
            entries = json.loads(self.text(value, field))
        except ValueError as exc:
            raise self.damaged(field, f"is not JSON ({exc})") from exc
        if not isinstance(entries, list):
            raise self.damaged(field, f"is {type(entries).__name__} JSON, not a list")
        messages = []
        for n, entry in enumerate(entries):
            at = f"{field}[{n}]"
            if not isinstance(entry, list) or len(entry) != 4:
                raise self.damaged(at, f"is {entry!r}, not [id, type, schema version, data]")
            message_id, type_name, version, data = entry
            messages.append(
                StoredMessage(
                    self.text(message_id, f"{at} id"),
                    self.text(type_name, f"{at} type"),
                    self.integer(version, f"{at} schema version"),
                    self.text(data, f"{at} data"),
                )
            )
        return tuple(messages)


def read_record(
    rows: SagaRows,
    row: Sequence[object],
    associations: Iterable[Sequence[object]],
    deadlines: Iterable[Sequence[object]],
) -> SagaRecord:
    """Return the saga stored in *row*, with its *associations* and *deadlines* rows.

    *row* is ``(saga_id, saga_type, version, schema_version, state, outbox, pending,
    ended)``, *associations* ``(key, value)`` pairs, *deadlines* ``(seq, due, deadline_id,
    type, schema_version, data)`` in order of *seq*; flags are 0 or 1, moments microseconds
    since 1970 UTC.
    """
    stored_id, saga_type, version, schema_version, state, outbox, pending, ended = row
    pairs = frozenset(
        (rows.text(k, "_associations.key"), rows.text(v, "_associations.value"))
        for k, v in associations
    )
    due = []
    for seq, at, i, tp, sv, data in deadlines:
        rows.integer(seq, "_deadlines.seq")
        message = StoredMessage(
            rows.text(i, "_deadlines.deadline_id"),
            rows.text(tp, "_deadlines.type"),
            rows.integer(sv, "_deadlines.schema_version"),
            rows.text(data, "_deadlines.data"),
        )
        due.append(Deadline(rows.moment(at, "_deadlines.due"), message))
    record = SagaRecord(
        saga_id=rows.text(stored_id, ".saga_id"),
        saga_type=rows.text(saga_type, ".saga_type"),
        version=rows.integer(version, ".version", least=1),
        schema_version=rows.integer(schema_version, ".schema_version"),
        state=rows.text(state, ".state"),
        associations=pairs,
        deadlines=tuple(due),
        outbox=rows.outbox(outbox),
        ended=rows.flag(ended, ".ended"),
    )
    if rows.flag(pending, ".pending") is not bool(record.outbox):
        raise rows.damaged(
            ".pending", f"is {pending}, but the outbox holds {len(record.outbox)} commands"
        )
    if record.ended and (record.associations or record.deadlines):
        raise rows.damaged(".ended", "is 1, but the saga still has associations or deadlines")
    return record


def found(
    records: list[SagaRecord], entry: tuple[str, str, str], location: str, table: str
) -> list[SagaRecord]:
    """Return *records*, found by association *entry*, if each is a saga of its type."""
    saga_type, key, value = entry
    for record in records:
        if record.saga_type != saga_type:
            raise SagaRows(record.saga_id, location, table).damaged(
                "_associations.saga_type",
                f"is {saga_type!r} in the row for ({key!r}, {value!r}), but the saga is a "
                f"{record.saga_type!r}",
            )
    return records


def outbox_text(record: SagaRecord) -> str:
    """Return *record*'s outbox as the JSON text stores keep: ``[[id, type, version, data]]``."""
    return json.dumps(
        [[m.id, m.type, m.schema_version, m.data] for m in record.outbox],
        ensure_ascii=False,
        separators=(",", ":"),
    )
