"""Damaged saga rows in an SQLite file: a named busway error, never a wrong saga."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busway import BuswayError, SerializationError
from busway.clock import FakeClock
from busway.errors import SagaError, SagaRecordError
from busway.sagas import SagaManager, SQLiteSagaStore

from .model import Booking, ChargePayment, OrderCancelled, OrderPlaced, Services, StockReserved


class Crash(BaseException):
    """The process stops while a command is being sent: it stays in the outbox."""


def seed(path: Path) -> None:
    """Store two bookings: o-1 charging, with a deadline and a command left in its outbox."""

    def crash_on_charge(command: object) -> None:
        if isinstance(command, ChargePayment):
            raise Crash

    services = Services(before=crash_on_charge)
    with SQLiteSagaStore(path) as store:
        manager = SagaManager(Booking, store=store, commands=services.commands, clock=FakeClock())
        manager.handle(OrderPlaced("o-1"))
        with pytest.raises(Crash):
            manager.handle(StockReserved("o-1"))
        manager.handle(OrderPlaced("o-2"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite saga store file holding the two bookings of :func:`seed`."""
    path = tmp_path_factory.mktemp("damage") / "template.db"
    seed(path)
    return path


def saga_id(path: Path, order_id: str) -> str:
    with sqlite3.connect(path) as conn:
        (found,) = conn.execute(
            "SELECT saga_id FROM sagas_associations WHERE key = 'order_id' AND value = ?",
            (order_id,),
        ).fetchone()
    conn.close()
    return str(found)


def damage(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def run_all(path: Path) -> Iterator[tuple[str, object]]:
    """Do what a worker does with the store, step by step, yielding each step's outcome."""
    services = Services()
    clock = FakeClock()
    with SQLiteSagaStore(path, synchronous="off") as store:
        manager = SagaManager(Booking, store=store, commands=services.commands, clock=clock)
        for key, value in (("order_id", "o-1"), ("payment_id", "pay-o-1"), ("order_id", "o-2")):
            yield f"find {value}", [(b.order_id, b.step) for b in manager.find(Booking, key, value)]
        yield "recover", (manager.recover(), list(services.executed))
        clock.advance(timedelta(hours=1))
        yield "fire_due", (manager.fire_due(), list(services.executed))
        manager.handle(OrderCancelled("o-2"))
        yield "cancel o-2", list(services.executed)


def outcomes(path: Path) -> list[tuple[str, object]]:
    """Each step's outcome, up to and with the first busway error (as the step's outcome)."""
    seen: list[tuple[str, object]] = []
    steps = run_all(path)
    while True:
        try:
            seen.append(next(steps))
        except StopIteration:
            return seen
        except BuswayError as exc:
            seen.append(("error", exc))
            return seen


# -- each kind of damage ---------------------------------------------------------------------


@pytest.fixture
def copy(template: Path, tmp_path: Path) -> Path:
    """A copy of the template to damage."""
    return Path(shutil.copy(template, tmp_path / "sagas.db"))


def refusal(path: Path) -> SagaRecordError:
    """Return the error finding o-1 raises."""
    with SQLiteSagaStore(path) as store:
        manager = SagaManager(Booking, store=store, commands=Services().commands)
        with pytest.raises(SagaRecordError) as info:
            manager.find(Booking, "order_id", "o-1")
    return info.value


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("outbox", "[[", "sagas.outbox is not JSON"),
        ("outbox", '{"a": 1}', "sagas.outbox is dict JSON, not a list"),
        ("outbox", "[1]", "sagas.outbox[0] is 1, not [id, type, schema version, data]"),
        ("outbox", '[["i", "ChargePayment", "1", "{}"]]', "outbox[0] schema version is '1'"),
        ("outbox", "[]", "sagas.pending is 1, but the outbox holds 0 commands"),
        ("outbox", b"[]", "sagas.outbox is b'[]', not text"),
        ("version", "two", "sagas.version is 'two', not an integer of at least 1"),
        ("version", 2.5, "sagas.version is 2.5"),
        ("schema_version", b"\x01", "sagas.schema_version is b'\\x01', not an integer"),
        ("ended", 2, "sagas.ended is 2, not 0 or 1"),
        ("ended", 1, "sagas.ended is 1, but the saga still has associations or deadlines"),
        ("state", 7, "holds a 'Booking' (schema version 1) in its state that cannot be"),
        ("state", '{"amount": [1]}', "in its state that cannot be decoded"),
    ],
)
def test_a_damaged_saga_row_is_named(copy: Path, column: str, value: object, says: str) -> None:
    """Each damaged column of the sagas table is named, with the saga's id and the advice."""
    sid = saga_id(copy, "o-1")
    damage(copy, f"UPDATE sagas SET {column} = ? WHERE saga_id = ?", value, sid)
    with SQLiteSagaStore(copy) as store:
        manager = SagaManager(Booking, store=store, commands=Services().commands)
        with pytest.raises(SerializationError) as info:
            manager.find(Booking, "order_id", "o-1")
    error = info.value
    assert says in str(error)
    assert sid in str(error)
    if isinstance(error, SagaRecordError):
        assert isinstance(error, SagaError)
        assert sid == error.saga_id
        assert "delete the saga's rows" in str(error)
        assert "sagas.db" in error.location
    else:
        assert "state" == error.field
        assert isinstance(error.__cause__, SerializationError)


def test_broken_outbox_json_keeps_the_parse_error_as_its_cause(copy: Path) -> None:
    """The JSON error that found the damage is the __cause__."""
    damage(copy, "UPDATE sagas SET outbox = '[' WHERE saga_id = ?", saga_id(copy, "o-1"))
    assert isinstance(refusal(copy).__cause__, json.JSONDecodeError)


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("due", "soon", "sagas_deadlines.due is 'soon', not an integer"),
        ("due", 10**18, "sagas_deadlines.due is 1000000000000000000, which is no time"),
        ("schema_version", 1.5, "sagas_deadlines.schema_version is 1.5"),
        ("deadline_id", b"x", "sagas_deadlines.deadline_id is b'x', not text"),
        ("seq", "first", "sagas_deadlines.seq is 'first'"),
    ],
)
def test_a_damaged_deadline_row_is_named(copy: Path, column: str, value: object, says: str) -> None:
    """Each damaged column of the deadlines table is named, with the saga's id."""
    damage(copy, f"UPDATE sagas_deadlines SET {column} = ?", value)
    error = refusal(copy)
    assert says in str(error)
    assert saga_id(copy, "o-1") == error.saga_id


def test_an_association_pointing_nowhere_is_named(copy: Path) -> None:
    """An association row whose saga is gone is reported instead of being skipped."""
    damage(copy, "UPDATE sagas_associations SET saga_id = 'gone' WHERE value = 'o-1'")
    error = refusal(copy)
    assert "gone" == error.saga_id
    assert "sagas_associations.saga_id points to no row of sagas" in str(error)


def test_a_deadline_pointing_nowhere_is_named(copy: Path) -> None:
    """A deadline row whose saga is gone is reported when deadlines are fired."""
    damage(copy, "UPDATE sagas_deadlines SET saga_id = 'gone'")
    with SQLiteSagaStore(copy) as store:
        manager = SagaManager(Booking, store=store, commands=Services().commands)
        with pytest.raises(SagaRecordError, match=r"sagas_deadlines\.saga_id points to no row"):
            manager.fire_due()  # by the system clock, the deadline of 2000 is due


def test_an_association_of_another_saga_type_is_named(copy: Path) -> None:
    """An association row of one saga type that leads to a saga of another is reported."""
    damage(copy, "UPDATE sagas SET saga_type = 'Refund' WHERE saga_id = ?", saga_id(copy, "o-1"))
    assert "sagas_associations.saga_type is 'Booking'" in str(refusal(copy))


def test_a_damaged_command_in_the_outbox_is_named_when_sent(copy: Path) -> None:
    """A command whose stored data cannot be decoded names the saga and its outbox."""
    sid = saga_id(copy, "o-1")
    damage(
        copy,
        "UPDATE sagas SET outbox = json_set(outbox, '$[0][3]', '{\"amount\": {}}') "
        "WHERE saga_id = ?",
        sid,
    )
    with SQLiteSagaStore(copy) as store:
        manager = SagaManager(Booking, store=store, commands=Services().commands)
        with pytest.raises(SerializationError, match=f"saga '{sid}' holds a 'ChargePayment'"):
            manager.recover()


# -- damage at random ------------------------------------------------------------------------

INTEGERS = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what SQLite stores
LETTERS = st.text(alphabet="abcxyz -", min_size=1, max_size=5)  # never numeric: stays text
BLOBS = st.binary(max_size=6)
FRACTIONS = st.floats(allow_nan=False).filter(lambda f: not f.is_integer())
JSON_KINDS = st.sampled_from(["null", "1", '"x"', "true", "[]", "{}", "[1]", "", "{"])


def not_integers() -> st.SearchStrategy[object]:
    return st.one_of(LETTERS, BLOBS, FRACTIONS)


def broken(original: str) -> st.SearchStrategy[object]:
    """Text cut short or run on, JSON of another kind, or another type altogether."""
    return st.one_of(
        st.integers(min_value=1, max_value=max(1, len(original) - 1)).map(lambda n: original[:n]),
        st.just(original + "]"),
        JSON_KINDS.filter(lambda j: j != original),
        BLOBS,
        INTEGERS,
    )


def wrong_state(original: str) -> st.SearchStrategy[object]:
    """A broken state, or one whose int field holds what no int decoder takes."""
    fields = json.loads(original)
    bad_amounts = st.sampled_from([[1], {"a": 1}, "many", None, 1.5])
    return st.one_of(
        broken(original).filter(lambda v: v != "{}"),  # {} is a saga of defaults: valid
        bad_amounts.map(lambda a: json.dumps({**fields, "amount": a})),
    )


def wrong_outbox(original: str) -> st.SearchStrategy[object]:
    """A broken outbox, or an entry with a value of the wrong type."""
    entries = json.loads(original)
    if not entries:
        return broken(original)
    swaps = st.sampled_from([(0, 5), (1, 5), (2, "1"), (2, 1.5), (2, True), (3, 5), (3, None)])

    def swap(at_value: tuple[int, object]) -> str:
        at, value = at_value
        entry = list(entries[0])
        entry[at] = value
        return json.dumps([entry, *entries[1:]])

    return st.one_of(broken(original), swaps.map(swap))


def command_data(original: str) -> st.SearchStrategy[object]:
    """The outbox with its first command's JSON broken."""
    entries = json.loads(original)
    if not entries:
        return st.just(original)
    data = entries[0][3]
    return broken(data).map(
        lambda d: json.dumps([[*entries[0][:3], d], *entries[1:]]) if isinstance(d, str) else d
    )


Damage = Callable[[object], st.SearchStrategy[object]]

#: Per table, the columns to damage and what to put there: values of a wrong type, or out
#: of their range (a changed value of the right type is another valid saga, not damage).
COLUMNS: dict[str, dict[str, Damage]] = {
    "sagas": {
        "saga_id": lambda _: st.one_of(BLOBS, st.just("gone")),
        "saga_type": lambda _: BLOBS,
        "version": lambda _: not_integers(),
        "schema_version": lambda _: not_integers(),
        "state": lambda v: wrong_state(str(v)),
        "outbox": lambda v: st.one_of(wrong_outbox(str(v)), command_data(str(v))),
        "pending": lambda _: st.one_of(not_integers(), INTEGERS.filter(lambda n: n > 1)),
        "ended": lambda _: st.one_of(not_integers(), INTEGERS.filter(lambda n: n > 1)),
    },
    "sagas_associations": {
        "saga_id": lambda _: st.one_of(BLOBS, st.just("gone")),
    },
    "sagas_deadlines": {
        "saga_id": lambda _: st.one_of(BLOBS, st.just("gone")),
        "seq": lambda _: not_integers(),
        "due": lambda _: st.one_of(
            not_integers(), st.integers(min_value=2**62, max_value=2**63 - 1)
        ),
        "deadline_id": lambda _: BLOBS,
        "type": lambda _: BLOBS,
        "schema_version": lambda _: not_integers(),
        "data": lambda v: broken(str(v)),
    },
}


@given(data=st.data())
def test_damaged_rows_raise_a_busway_error_or_change_nothing(
    template: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Whatever row is damaged, each step goes as on the intact file until a busway error."""
    folder = tmp_path_factory.mktemp("damaged")
    intact = Path(shutil.copy(template, folder / "intact.db"))
    damaged = Path(shutil.copy(template, folder / "damaged.db"))
    table = data.draw(st.sampled_from(sorted(COLUMNS)), label="table")
    column = data.draw(st.sampled_from(sorted(COLUMNS[table])), label="column")
    with sqlite3.connect(damaged) as conn:
        rows: list[tuple[int, Any]] = conn.execute(
            f"SELECT rowid, {column} FROM {table} ORDER BY rowid"
        ).fetchall()
    conn.close()
    rowid, original = data.draw(st.sampled_from(rows), label="row")
    value = data.draw(COLUMNS[table][column](original), label="value")
    with contextlib.suppress(sqlite3.IntegrityError):  # refused by the schema: stays intact
        damage(damaged, f"UPDATE {table} SET {column} = ? WHERE rowid = ?", value, rowid)

    expected = outcomes(intact)
    assert "error" not in dict(expected)
    actual = outcomes(damaged)
    if actual[-1][0] == "error":
        assert expected[: len(actual) - 1] == actual[:-1]
    else:
        assert expected == actual
