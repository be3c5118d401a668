"""The promises of an event store, as tests any backend can inherit.

Subclass :class:`EventStoreContract` as ``Test<YourStore>``, give it a ``store`` fixture
that yields an empty store built with ``types=self.event_types()``, and, if your store keeps
data across restarts, override :meth:`EventStoreContract.reopen`. pytest then runs every
test below against your backend, including a hypothesis state machine that compares it with
a plain model through random appends, retries, reads and reopenings, and live streams
followed from other threads.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from busway._signal import Notifying
from busway.eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    EventTypes,
    ExpectedVersion,
    InvalidArgumentError,
    LiveEvents,
    NewEvent,
    RecordedEvent,
    SerializationError,
    StoreClosedError,
    UnknownEventTypeError,
)

from .strategies import event_streams, messages

__all__ = ["EventStoreContract"]


@attrs.frozen
class Opened:
    """The contract's first event of a stream."""

    owner: str


@attrs.frozen
class Deposited:
    """An event with a Decimal, which must come back with every digit."""

    amount: decimal.Decimal


@attrs.frozen
class Note:
    """An event with free text; registered as schema version 1."""

    text: str


@attrs.frozen
class NoteV2:
    """Note at schema version 2: the upcaster splits the text into words."""

    words: tuple[str, ...]


@attrs.frozen
class Measured:
    """An event with a float, which JSON cannot hold when it is not finite."""

    value: float


@attrs.frozen
class Anything:
    """An event with a field of any JSON, which may be nested too deeply to store."""

    value: object


class Colour(enum.Enum):
    """An Enum field, stored by value."""

    RED = "red"
    GREEN = "green"


@attrs.frozen
class Point:
    """A nested attrs class."""

    x: int
    y: int


@attrs.frozen
class Label:
    """A second nested class, with the same fields as Point, to test tagged unions."""

    x: int
    y: int


@attrs.frozen
class Everything:
    """An event with a field of each kind the default serializer supports."""

    text: str
    number: int
    ratio: float
    amount: decimal.Decimal
    when: dt.datetime
    day: dt.date
    uid: uuid.UUID
    colour: Colour
    tags: tuple[str, ...]
    flags: frozenset[int]
    maybe: int | None
    point: Point
    either: Point | Label | None
    points: list[Point]
    lookup: dict[str, int]


_fixed_offsets = st.integers(-1439, 1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


def _payloads() -> st.SearchStrategy[Everything]:
    # JSON keeps a datetime's UTC offset, not its zone (docs/eventstore.md says so).
    return messages(Everything, when=st.datetimes(timezones=st.just(dt.UTC) | _fixed_offsets))


def _wait_for_the_signal(store: EventStore) -> float:
    """Return a poll interval for a test: long for a store that notifies, else short."""
    return 30.0 if isinstance(store, Notifying) else 0.05


class _Follower:
    """Takes *count* events from a live stream on a thread of its own, noting when each came."""

    def __init__(self, live: LiveEvents, count: int) -> None:
        self.live = live
        self.count = count
        self.received: list[RecordedEvent] = []
        self.times: list[float] = []
        self.error: BaseException | None = None
        self.ended = 0.0
        self._thread = threading.Thread(target=self._follow, name="live-follower", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            for recorded in self.live:
                self.received.append(recorded)
                self.times.append(time.monotonic())
                if len(self.received) == self.count:
                    break
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            self.ended = time.monotonic()
            self.live.close()

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the live stream got {len(self.received)} events"


def _expected_versions(current: int) -> st.SearchStrategy[ExpectedVersion]:
    choices: list[ExpectedVersion] = [current, ANY, STREAM_EXISTS, NO_STREAM]
    wrong = st.integers(0, current + 3).filter(lambda v: v != current)
    return st.sampled_from(choices) | wrong


class EventStoreContract:
    """Tests every :class:`~busway.eventstore.EventStore` must pass; subclass to run them.

    Provide a ``store`` fixture yielding an empty store built with
    ``types=self.event_types()``. Persistent backends also override :meth:`reopen`.
    """

    state_machine_examples: ClassVar[int] = 25
    """How many random histories the state machine tries (a hypothesis profile may lower it)."""

    state_machine_steps: ClassVar[int] = 30
    """How many steps each history has at most."""

    wake_up_within: ClassVar[float] = 1.0
    """Seconds within which an append, or closing, must reach a waiting live stream."""

    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        """Yield an empty store built with ``types=self.event_types()``; override it."""
        raise NotImplementedError("subclasses of EventStoreContract provide a `store` fixture")

    def reopen(self, store: EventStore, types: EventTypes) -> EventStore:
        """Close *store* and return a new store over the same data, reading with *types*.

        Override it in stores that keep data across restarts; tests that need it are
        skipped for the others.
        """
        raise NotImplementedError

    @staticmethod
    def event_types() -> EventTypes:
        """Return a fresh registry of the event classes the contract appends."""
        return EventTypes(Opened, Deposited, Note, Measured, Everything, Anything)

    # -- helpers -----------------------------------------------------------------------------

    def _can_reopen(self) -> bool:
        return type(self).reopen is not EventStoreContract.reopen

    def _reopen(self, store: EventStore, types: EventTypes | None = None) -> EventStore:
        if not self._can_reopen():
            pytest.skip(f"{type(self).__name__} does not override reopen()")
        return self.reopen(store, self.event_types() if types is None else types)

    def test_types_is_the_registry_it_reads_with(self, store: EventStore) -> None:
        """store.types knows the classes the store was built with, by their stored names."""
        assert isinstance(store.types, EventTypes)
        assert self.event_types().names.items() <= store.types.names.items()

    # -- appending and reading ---------------------------------------------------------------

    def test_append_then_read(self, store: EventStore) -> None:
        """Events come back in the order they were appended, versions from 1."""
        store.append("s-1", [Opened("ann"), Deposited(decimal.Decimal("1.50"))])
        recorded = store.read_stream("s-1")
        assert [Opened("ann"), Deposited(decimal.Decimal("1.50"))] == [r.event for r in recorded]
        assert [1, 2] == [r.version for r in recorded]
        assert ["s-1", "s-1"] == [r.stream_id for r in recorded]

    def test_append_returns_the_new_version(self, store: EventStore) -> None:
        """append() returns the version of the stream's last event after the append."""
        assert 2 == store.append("s-1", [Note("a"), Note("b")], expected_version=NO_STREAM)
        assert 3 == store.append("s-1", [Note("c")], expected_version=2)
        assert 3 == store.stream_version("s-1")

    def test_missing_stream(self, store: EventStore) -> None:
        """A stream that was never written to has version 0 and no events."""
        assert 0 == store.stream_version("nobody")
        assert [] == store.read_stream("nobody")
        assert [] == store.read_stream("nobody", backwards=True)

    def test_empty_store(self, store: EventStore) -> None:
        """An empty store has head position 0, no events and no streams."""
        assert 0 == store.head_position()
        assert [] == list(store.read_all())
        assert [] == list(store.streams())

    def test_recorded_event_fields(self, store: EventStore) -> None:
        """A recorded event carries its id, type name, metadata and an aware UTC time."""
        before = dt.datetime.now(dt.UTC)
        event = NewEvent(Note("hi"), metadata={"user": "ann"})
        store.append("s-1", [event])
        (recorded,) = store.read_stream("s-1")
        after = dt.datetime.now(dt.UTC)
        assert isinstance(recorded, RecordedEvent)
        assert event.event_id == recorded.event_id
        assert "Note" == recorded.type
        assert {"user": "ann"} == dict(recorded.metadata)
        assert dt.timedelta(0) == recorded.recorded_at.utcoffset()
        assert before - dt.timedelta(seconds=1) <= recorded.recorded_at <= after
        assert recorded.position >= 1

    def test_plain_events_get_fresh_ids(self, store: EventStore) -> None:
        """Plain events are given distinct random ids."""
        store.append("s-1", [Note("a"), Note("a")])
        ids = [r.event_id for r in store.read_stream("s-1")]
        assert 2 == len(set(ids))

    def test_metadata_is_merged(self, store: EventStore) -> None:
        """Each event's metadata adds to the append's metadata and wins over it."""
        store.append(
            "s-1",
            [Note("a"), NewEvent(Note("b"), metadata={"who": "bob", "n": 2})],
            metadata={"who": "ann", "why": "test"},
        )
        metadata = [dict(r.metadata) for r in store.read_stream("s-1")]
        assert [{"who": "ann", "why": "test"}, {"who": "bob", "why": "test", "n": 2}] == metadata

    def test_metadata_outside_a_dispatch_has_no_ids(self, store: EventStore) -> None:
        """Outside a dispatch, no correlation or causation id is added."""
        store.append("s-1", [Note("a")])
        assert {} == dict(store.read_stream("s-1")[0].metadata)

    def test_correlation_ids_from_the_dispatch(self, store: EventStore) -> None:
        """Events appended while handling a message carry its correlation and causation ids."""
        from busway import CommandBus, context
        from busway.middleware import correlation

        seen: list[context.MessageContext | None] = []

        def handle(command: Note) -> None:
            seen.append(context.current())
            store.append("s-1", [Note("a"), NewEvent(Note("b"), metadata={"causation_id": "x"})])

        bus = CommandBus()
        bus.use(correlation())
        bus.register(Note, handle)
        bus.execute(Note("go"))
        (ctx,) = seen
        assert ctx is not None
        first, second = (dict(r.metadata) for r in store.read_stream("s-1"))
        assert {
            "correlation_id": str(ctx.correlation_id),
            "causation_id": str(ctx.message_id),
        } == first
        assert {"correlation_id": str(ctx.correlation_id), "causation_id": "x"} == second

    def test_payloads_round_trip(self, store: EventStore) -> None:
        """Decimals, datetimes with offsets, enums, sets, unions and nested classes survive."""
        event = Everything(
            text="héllo \U0001f600 \ud800",
            number=-(2**70),
            ratio=0.1,
            amount=decimal.Decimal("-0.00100"),
            when=dt.datetime(2024, 2, 29, 23, 59, 59, 999999, dt.timezone(dt.timedelta(hours=-5))),
            day=dt.date(1, 1, 1),
            uid=uuid.uuid4(),
            colour=Colour.GREEN,
            tags=("a", "b"),
            flags=frozenset({3, 1}),
            maybe=None,
            point=Point(1, 2),
            either=Label(3, 4),
            points=[Point(5, 6)],
            lookup={"k": 1},
        )
        store.append("s-1", [event])
        assert [event] == [r.event for r in store.read_stream("s-1")]

    def test_any_payload_round_trips(self, store: EventStore) -> None:
        """Whatever the field values, the event read back equals the event appended."""

        @settings(deadline=None)
        @given(payload=_payloads())
        def round_trip(payload: Everything) -> None:
            stream = f"p-{uuid.uuid4()}"
            store.append(stream, [payload])
            (recorded,) = store.read_stream(stream)
            assert payload == recorded.event
            assert [payload] == [r.event for r in store.read_all(from_position=recorded.position)]

        round_trip()

    # -- expected versions -------------------------------------------------------------------

    def test_wrong_expected_version(self, store: EventStore) -> None:
        """A wrong expected version raises ConcurrencyError and writes nothing."""
        store.append("s-1", [Note("a")])
        with pytest.raises(ConcurrencyError) as info:
            store.append("s-1", [Note("b"), Note("c")], expected_version=3)
        assert ("s-1", 3, 1) == (info.value.stream_id, info.value.expected, info.value.actual)
        assert 1 == store.stream_version("s-1")
        assert 1 == len(list(store.read_all()))

    def test_no_stream(self, store: EventStore) -> None:
        """NO_STREAM appends to a new stream only."""
        assert 1 == store.append("s-1", [Note("a")], expected_version=NO_STREAM)
        with pytest.raises(ConcurrencyError) as info:
            store.append("s-1", [Note("b")], expected_version=NO_STREAM)
        assert (0, 1) == (info.value.expected, info.value.actual)
        assert "already exists" in str(info.value)  # the id is taken: no retry can help
        assert 1 == store.stream_version("s-1")

    def test_stream_exists(self, store: EventStore) -> None:
        """STREAM_EXISTS appends to an existing stream only."""
        with pytest.raises(ConcurrencyError) as info:
            store.append("s-1", [Note("a")], expected_version=STREAM_EXISTS)
        assert (STREAM_EXISTS, 0) == (info.value.expected, info.value.actual)
        assert 0 == store.stream_version("s-1")
        store.append("s-1", [Note("a")])
        assert 2 == store.append("s-1", [Note("b")], expected_version=STREAM_EXISTS)

    def test_any(self, store: EventStore) -> None:
        """ANY, the default, appends whatever the stream's version."""
        assert 1 == store.append("s-1", [Note("a")], expected_version=ANY)
        assert 2 == store.append("s-1", [Note("b")])

    def test_empty_batch(self, store: EventStore) -> None:
        """An empty batch writes nothing, returns the version, and still checks it."""
        assert 0 == store.append("s-1", [], expected_version=NO_STREAM)
        store.append("s-1", [Note("a")])
        assert 1 == store.append("s-1", [], expected_version=1)
        assert 1 == store.append("s-1", [])
        with pytest.raises(ConcurrencyError):
            store.append("s-1", [], expected_version=0)
        with pytest.raises(ConcurrencyError):
            store.append("s-2", [], expected_version=STREAM_EXISTS)
        assert 1 == store.head_position()
        assert [("s-1", 1)] == list(store.streams())

    def test_streams_are_independent(self, store: EventStore) -> None:
        """Each stream has its own versions."""
        store.append("a", [Note("1"), Note("2")])
        store.append("b", [Note("3")])
        assert 3 == store.append("a", [Note("4")], expected_version=2)
        assert 2 == store.append("b", [Note("5")], expected_version=1)

    # -- idempotence -------------------------------------------------------------------------

    def test_retry_is_idempotent(self, store: EventStore) -> None:
        """Re-appending the same NewEvents after the same version writes nothing."""
        batch = [NewEvent(Note("a")), NewEvent(Note("b"))]
        assert 2 == store.append("s-1", batch, expected_version=NO_STREAM)
        store.append("s-1", [Note("c")])
        assert 2 == store.append("s-1", batch, expected_version=NO_STREAM)
        assert 2 == store.append("s-1", batch)
        assert 2 == store.append("s-1", batch, expected_version=STREAM_EXISTS)
        assert ["a", "b", "c"] == [_text(r) for r in store.read_stream("s-1")]
        assert 3 == store.head_position()

    def test_retry_of_a_middle_batch(self, store: EventStore) -> None:
        """A retry of a batch in the middle of a stream returns that batch's last version."""
        store.append("s-1", [Note("a")])
        batch = [NewEvent(Note("b")), NewEvent(Note("c"))]
        store.append("s-1", batch, expected_version=1)
        store.append("s-1", [Note("d")])
        assert 3 == store.append("s-1", batch, expected_version=1)
        assert 3 == store.append("s-1", batch, expected_version=ANY)

    def test_retry_at_another_version_is_a_duplicate(self, store: EventStore) -> None:
        """The same batch expected at a different version is a DuplicateEventError."""
        batch = [NewEvent(Note("a"))]
        store.append("s-1", batch)
        with pytest.raises(DuplicateEventError) as info:
            store.append("s-1", batch, expected_version=1)
        assert batch[0].event_id == info.value.event_id
        assert 1 == store.stream_version("s-1")

    def test_event_id_in_another_stream(self, store: EventStore) -> None:
        """An id already stored in another stream raises DuplicateEventError, writing nothing."""
        batch = [NewEvent(Note("a"))]
        store.append("s-1", batch)
        with pytest.raises(DuplicateEventError) as info:
            store.append("s-2", [Note("x"), *batch])
        assert (batch[0].event_id, "s-2") == (info.value.event_id, info.value.stream_id)
        assert 0 == store.stream_version("s-2")
        assert 1 == store.head_position()

    def test_partial_retry_is_a_duplicate(self, store: EventStore) -> None:
        """A batch with some stored ids and some new ones raises DuplicateEventError."""
        first, second = NewEvent(Note("a")), NewEvent(Note("b"))
        store.append("s-1", [first])
        with pytest.raises(DuplicateEventError):
            store.append("s-1", [first, second], expected_version=NO_STREAM)
        with pytest.raises(DuplicateEventError):
            store.append("s-1", [second, first])
        with pytest.raises(DuplicateEventError):
            store.append("s-1", [first, second])
        assert 1 == store.head_position()

    def test_reordered_retry_is_a_duplicate(self, store: EventStore) -> None:
        """The same ids in another order are not the same batch."""
        first, second = NewEvent(Note("a")), NewEvent(Note("b"))
        store.append("s-1", [first, second])
        with pytest.raises(DuplicateEventError):
            store.append("s-1", [second, first], expected_version=NO_STREAM)
        assert 2 == store.head_position()

    def test_same_id_twice_in_a_batch(self, store: EventStore) -> None:
        """A batch holding one id twice raises DuplicateEventError, writing nothing."""
        event = NewEvent(Note("a"))
        with pytest.raises(DuplicateEventError):
            store.append("s-1", [event, event])
        assert 0 == store.head_position()

    # -- reading -----------------------------------------------------------------------------

    def test_read_stream_ranges(self, store: EventStore) -> None:
        """from_version is inclusive, limit caps the count, backwards reads newest first."""
        store.append("s-1", [Note(str(i)) for i in range(1, 6)])
        store.append("other", [Note("x")])

        def versions(**kwargs: Any) -> list[int]:
            return [r.version for r in store.read_stream("s-1", **kwargs)]

        assert [1, 2, 3, 4, 5] == versions()
        assert [3, 4, 5] == versions(from_version=3)
        assert [3, 4] == versions(from_version=3, limit=2)
        assert [] == versions(from_version=6)
        assert [] == versions(limit=0)
        assert [5, 4, 3, 2, 1] == versions(backwards=True)
        assert [5, 4] == versions(backwards=True, limit=2)
        assert [3, 2, 1] == versions(backwards=True, from_version=3)
        assert [2] == versions(backwards=True, from_version=2, limit=1)
        assert [5, 4] == versions(backwards=True, from_version=9, limit=2)

    def test_read_all_in_global_order(self, store: EventStore) -> None:
        """read_all returns every stream's events in append order, positions increasing."""
        store.append("a", [Note("1"), Note("2")])
        store.append("b", [Note("3")])
        store.append("a", [Note("4")])
        recorded = list(store.read_all())
        assert ["1", "2", "3", "4"] == [_text(r) for r in recorded]
        assert [("a", 1), ("a", 2), ("b", 1), ("a", 3)] == [
            (r.stream_id, r.version) for r in recorded
        ]
        positions = [r.position for r in recorded]
        assert sorted(set(positions)) == positions
        assert positions[-1] == store.head_position()

    def test_read_all_from_position_and_limit(self, store: EventStore) -> None:
        """from_position is inclusive and limit caps the count."""
        store.append("a", [Note(str(i)) for i in range(5)])
        positions = [r.position for r in store.read_all()]
        assert positions[2:] == [r.position for r in store.read_all(from_position=positions[2])]
        assert positions[1:3] == [
            r.position for r in store.read_all(from_position=positions[1], limit=2)
        ]
        assert [] == list(store.read_all(from_position=positions[-1] + 1))
        assert [] == list(store.read_all(limit=0))

    def test_read_all_from_zero_is_the_start(self, store: EventStore) -> None:
        """from_position=0 reads from the start, as 1 does: both are before every event."""
        store.append("a", [Note("1"), Note("2")])
        assert ["1", "2"] == [_text(r) for r in store.read_all(from_position=0)]
        assert ["1"] == [_text(r) for r in store.read_all(from_position=0, limit=1)]

    def test_bounds_beyond_any_store(self, store: EventStore) -> None:
        """Positions, versions and limits larger than any store holds are read as such."""
        store.append("a", [Note("1"), Note("2")])
        huge = 2**70
        assert [] == list(store.read_all(from_position=huge))
        assert ["1", "2"] == [_text(r) for r in store.read_all(limit=huge)]
        assert [] == store.read_stream("a", from_version=huge)
        assert ["1", "2"] == [_text(r) for r in store.read_stream("a", limit=huge)]
        assert ["2", "1"] == [
            _text(r) for r in store.read_stream("a", from_version=huge, backwards=True)
        ]
        assert [("a", 2)] == list(store.streams(limit=huge))
        with pytest.raises(ConcurrencyError):
            store.append("a", [Note("3")], expected_version=huge)

    def test_read_all_by_type(self, store: EventStore) -> None:
        """types= keeps events of the given classes or stored names, in order."""
        store.append("a", [Note("1"), Opened("x"), Deposited(decimal.Decimal(1)), Note("2")])
        assert ["1", "2"] == [_text(r) for r in store.read_all(types=[Note])]
        assert ["Note", "Opened", "Note"] == [
            r.type for r in store.read_all(types=["Note", Opened])
        ]
        assert [Opened("x")] == [r.event for r in store.read_all(types=[Opened], limit=1)]
        assert [] == list(store.read_all(types=[]))
        assert [] == list(store.read_all(types=["NeverStored"]))

    def test_read_all_pages_through_many_events(self, store: EventStore) -> None:
        """read_all yields every event of a store larger than any page, exactly once."""
        for i in range(5):
            store.append(f"s-{i}", [Note(str(n)) for n in range(500)])
        seen = [r.position for r in store.read_all()]
        assert 2500 == len(seen)
        assert sorted(set(seen)) == seen
        assert 2500 == len(list(store.read_all(types=[Note])))
        assert 1234 == len(list(store.read_all(limit=1234)))
        assert 1001 == len(list(store.read_all(from_position=seen[1499])))

    def test_read_all_is_lazy(self, store: EventStore) -> None:
        """read_all returns an iterator that sees events appended while it is consumed."""
        store.append("a", [Note("1")])
        reading = store.read_all()
        assert iter(reading) is reading
        assert "1" == _text(next(reading))
        store.append("a", [Note("2")])
        assert ["2"] == [_text(r) for r in reading]

    def test_positions_never_go_back(self, store: EventStore) -> None:
        """Reading on from the last position seen finds only later events."""
        store.append("a", [Note("1")])
        last = max(r.position for r in store.read_all())
        store.append("b", [Note("2")])
        store.append("a", [Note("3")])
        later = list(store.read_all(from_position=last + 1))
        assert ["2", "3"] == [_text(r) for r in later]
        assert all(r.position > last for r in later)

    def test_streams(self, store: EventStore) -> None:
        """streams() lists each stream id with its version, ordered by id."""
        for stream, count in [("b", 2), ("a", 1), ("c", 3)]:
            store.append(stream, [Note(str(i)) for i in range(count)])
        assert [("a", 1), ("b", 2), ("c", 3)] == list(store.streams())
        assert [("b", 2), ("c", 3)] == list(store.streams(after="a"))
        assert [("a", 1)] == list(store.streams(limit=1))
        assert [] == list(store.streams(after="c"))

    # -- bad input ---------------------------------------------------------------------------

    @pytest.mark.parametrize("stream_id", ["", 7, None, b"s-1", "bad \ud800"])
    def test_bad_stream_ids(self, store: EventStore, stream_id: Any) -> None:
        """An empty, non-text or unencodable stream id is refused before anything is written."""
        with pytest.raises(InvalidArgumentError) as info:
            store.append(stream_id, [Note("a")])
        assert "stream_id" == info.value.argument
        with pytest.raises(InvalidArgumentError):
            store.read_stream(stream_id)
        with pytest.raises(InvalidArgumentError):
            store.stream_version(stream_id)
        assert 0 == store.head_position()

    @pytest.mark.parametrize("expected", [-1, True, False, 1.0, "1", None])
    def test_bad_expected_versions(self, store: EventStore, expected: Any) -> None:
        """Negative, bool, float or text expected versions are refused; nothing is written."""
        with pytest.raises(InvalidArgumentError) as info:
            store.append("s-1", [Note("a")], expected_version=expected)
        assert "expected_version" == info.value.argument
        assert isinstance(info.value, ValueError)
        assert 0 == store.head_position()

    @pytest.mark.parametrize(
        ("call", "argument"),
        [
            (lambda s: s.read_stream("s", from_version=0), "from_version"),
            (lambda s: s.read_stream("s", from_version=True), "from_version"),
            (lambda s: s.read_stream("s", limit=-1), "limit"),
            (lambda s: s.read_all(from_position=-1), "from_position"),
            (lambda s: s.read_all(from_position=False), "from_position"),
            (lambda s: s.read_all(from_position=1.5), "from_position"),
            (lambda s: s.read_all(limit=-1), "limit"),
            (lambda s: s.streams(limit=-2), "limit"),
        ],
    )
    def test_bad_read_arguments(self, store: EventStore, call: Any, argument: str) -> None:
        """Read arguments are checked when the read is asked for, not when it is iterated."""
        with pytest.raises(InvalidArgumentError) as info:
            call(store)
        assert argument == info.value.argument

    @pytest.mark.parametrize("events", [Note("a"), "text", {"a": 1}, 42])
    def test_events_must_be_a_list(self, store: EventStore, events: Any) -> None:
        """A single event where a list is due is refused with a clear error."""
        with pytest.raises(InvalidArgumentError) as info:
            store.append("s-1", events)
        assert "events" == info.value.argument
        assert 0 == store.head_position()

    def test_unregistered_event_type(self, store: EventStore) -> None:
        """Appending an unregistered class names it and lists the registered ones."""

        @attrs.frozen
        class Stranger:
            pass

        with pytest.raises(UnknownEventTypeError) as info:
            store.append("s-1", [Note("a"), Stranger()])
        assert Stranger is info.value.event_class
        assert "Note" in info.value.known
        assert "Note" in str(info.value)
        assert "Stranger" in str(info.value)
        assert 0 == store.head_position()

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_unserializable_value(self, store: EventStore, value: float) -> None:
        """A value JSON cannot hold is refused, naming the field; nothing is written."""
        with pytest.raises(SerializationError) as info:
            store.append("s-1", [Note("a"), Measured(value)])
        assert "value" == info.value.field
        assert "'value'" in str(info.value)
        assert 0 == store.head_position()

    def test_unserializable_metadata(self, store: EventStore) -> None:
        """Metadata that is not JSON is refused, naming the key; nothing is written."""
        with pytest.raises(SerializationError) as info:
            store.append("s-1", [NewEvent(Note("a"), metadata={"when": object()})])
        assert "when" == info.value.field
        with pytest.raises(InvalidArgumentError):
            store.append("s-1", [Note("a")], metadata={1: "one"})  # type: ignore[dict-item]
        assert 0 == store.head_position()

    def test_payloads_nested_too_deeply(self, store: EventStore) -> None:
        """A payload nested deeper than Python can encode is refused by name; nothing is written."""
        deep: list[object] = []
        for _ in range(100_000):
            deep = [deep]
        looped: list[object] = []
        looped.append(looped)
        for value in (deep, looped, {"a": [{"b": looped}]}):
            with pytest.raises(SerializationError) as info:
                store.append("s-1", [Note("a"), Anything(value)])
            assert "Anything" == info.value.type_name
            assert isinstance(info.value.__cause__, Exception)
        assert 0 == store.head_position()

    def test_metadata_nested_too_deeply(self, store: EventStore) -> None:
        """Metadata nested too deeply, or holding itself, is refused by name; nothing is written."""
        deep: dict[str, object] = {}
        for _ in range(100_000):
            deep = {"d": deep}
        looped: dict[str, object] = {}
        looped["again"] = looped
        for metadata, field in (
            (deep, None),
            (looped, "again.again"),
            ({"x": [looped]}, "x[0].again"),
        ):
            with pytest.raises(SerializationError) as info:
                store.append("s-1", [Note("a")], metadata=metadata)
            assert field == info.value.field
            assert isinstance(info.value.__cause__, Exception)
            with pytest.raises(SerializationError):
                store.append("s-1", [NewEvent(Note("a"), metadata=metadata)])
        assert 0 == store.head_position()

    # -- live streams ------------------------------------------------------------------------

    def test_subscribe_yields_history_then_live(self, store: EventStore) -> None:
        """subscribe() yields the stored events, then each one appended later, in order."""
        store.append("a", [Note("1"), Note("2")])
        store.append("b", [Note("3")])
        with store.subscribe(poll_interval=0.01) as live:
            assert iter(live) is live
            got = [next(live) for _ in range(3)]
            store.append("a", [Note("4")])
            store.append("b", [Note("5"), Note("6")])
            got += [next(live) for _ in range(3)]
            assert store.head_position() == live.position
        assert ["1", "2", "3", "4", "5", "6"] == [_text(r) for r in got]
        assert list(store.read_all()) == got

    def test_subscribe_from_position(self, store: EventStore) -> None:
        """from_position is inclusive, 0 is the start, and position is the last one yielded."""
        store.append("a", [Note(str(i)) for i in range(4)])
        positions = [r.position for r in store.read_all()]
        with store.subscribe(from_position=positions[2]) as live:
            assert positions[2] - 1 == live.position
            assert "2" == _text(next(live))
            assert positions[2] == live.position
        with store.subscribe(from_position=0) as live:
            assert 0 == live.position
            assert "0" == _text(next(live))
        with store.subscribe(from_position=positions[-1] + 1, poll_interval=0.01) as live:
            store.append("b", [Note("later")])
            assert "later" == _text(next(live))

    def test_subscribe_by_type(self, store: EventStore) -> None:
        """types= keeps events of the given classes or stored names, stored and new alike."""
        store.append("a", [Note("1"), Opened("x"), Note("2")])
        with store.subscribe(types=[Note], poll_interval=0.01) as live:
            assert ["1", "2"] == [_text(next(live)) for _ in range(2)]
            store.append("a", [Opened("y"), Deposited(decimal.Decimal(1))])
            store.append("b", [Note("3")])
            assert "3" == _text(next(live))
            assert store.head_position() == live.position
        with store.subscribe(types=["Opened", Deposited], poll_interval=0.01) as live:
            assert ["Opened", "Opened", "Deposited"] == [next(live).type for _ in range(3)]

    def test_subscribe_agrees_with_read_all(self, store: EventStore) -> None:
        """However appends and reads interleave, a live stream yields what read_all reads."""

        @settings(deadline=None, max_examples=min(20, settings().max_examples))
        @given(
            batches=st.lists(event_streams(Note, Opened, Deposited, max_size=4), max_size=5),
            stored=st.integers(0, 5),
            types=st.sampled_from([None, (Note,), ("Opened", Deposited)]),
        )
        def follow(
            batches: list[list[object]], stored: int, types: Sequence[type | str] | None
        ) -> None:
            start = store.head_position() + 1
            stream = f"l-{uuid.uuid4()}"
            for batch in batches[:stored]:
                store.append(stream, batch)
            got: list[RecordedEvent] = []
            with store.subscribe(from_position=start, types=types, poll_interval=0.01) as live:
                for batch in [[], *batches[stored:]]:
                    store.append(stream, batch)
                    expected = list(store.read_all(from_position=start, types=types))
                    got += [next(live) for _ in range(len(expected) - len(got))]
                    assert expected == got

        follow()

    def test_subscribe_pages_through_a_long_history(self, store: EventStore) -> None:
        """A history longer than any page comes whole, each event once, then new events."""
        for i in range(3):
            store.append(f"s-{i}", [Note(str(n)) for n in range(400)])
        with store.subscribe(poll_interval=0.01) as live:
            history = [next(live) for _ in range(1200)]
            store.append("s-0", [Note("new")])
            assert "new" == _text(next(live))
        assert [r.event_id for r in store.read_all()][:1200] == [r.event_id for r in history]

    def test_subscribe_wakes_for_an_append_in_another_thread(self, store: EventStore) -> None:
        """A caught-up stream gets an append from another thread at once, not at its next poll."""
        if not isinstance(store, Notifying):
            pytest.skip("the store has no `appended` signal: its live streams poll")
        store.append("a", [Note("old")])
        follower = _Follower(store.subscribe(poll_interval=30), count=3)
        time.sleep(0.2)  # time to catch up and wait
        appended = []
        for text in ("new-1", "new-2"):
            store.append("a", [Note(text)])
            appended.append(time.monotonic())
            time.sleep(0.05)
        follower.join()
        assert follower.error is None
        assert ["old", "new-1", "new-2"] == [_text(r) for r in follower.received]
        for came, sent in zip(follower.times[1:], appended, strict=True):
            assert came - sent < self.wake_up_within

    def test_subscribe_follows_many_writers_in_order(self, store: EventStore) -> None:
        """Events appended by several threads at once all arrive, each once, in position order."""
        follower = _Follower(store.subscribe(poll_interval=_wait_for_the_signal(store)), count=60)

        def write(writer: int) -> None:
            for n in range(20):
                store.append(f"w-{writer}", [Note(f"{writer}-{n}")])

        with ThreadPoolExecutor(3) as pool:
            for done in [pool.submit(write, writer) for writer in range(3)]:
                done.result()
        follower.join()
        assert follower.error is None
        assert [r.event_id for r in store.read_all()] == [r.event_id for r in follower.received]

    def test_closing_a_live_stream_ends_it(self, store: EventStore) -> None:
        """close() ends iteration at once, leaves no thread behind, and may be called twice."""
        store.append("a", [Note("1"), Note("2")])
        threads = set(threading.enumerate())
        live = store.subscribe()
        assert "1" == _text(next(live))
        live.close()
        live.close()
        with pytest.raises(StopIteration):
            next(live)
        with store.subscribe() as live:
            assert "1" == _text(next(live))
        with pytest.raises(StopIteration):
            next(live)
        assert set(threading.enumerate()) <= threads

    def test_closing_a_waiting_live_stream_ends_it(self, store: EventStore) -> None:
        """A live stream closed while another thread waits on it ends there, promptly."""
        follower = _Follower(store.subscribe(poll_interval=_wait_for_the_signal(store)), count=1)
        time.sleep(0.2)  # time to find nothing and wait
        closed = time.monotonic()
        follower.live.close()
        follower.join()
        assert (None, []) == (follower.error, follower.received)
        assert follower.ended - closed < self.wake_up_within

    def test_closing_the_store_ends_its_live_streams(self, store: EventStore) -> None:
        """A live stream waiting on a store that closes ends with StoreClosedError, promptly."""
        follower = _Follower(store.subscribe(poll_interval=_wait_for_the_signal(store)), count=1)
        time.sleep(0.2)
        closed = time.monotonic()
        store.close()
        follower.join()
        assert isinstance(follower.error, StoreClosedError)
        assert follower.ended - closed < self.wake_up_within
        with pytest.raises(StoreClosedError):
            next(store.subscribe())

    @pytest.mark.parametrize(
        ("options", "argument"),
        [
            ({"from_position": -1}, "from_position"),
            ({"from_position": False}, "from_position"),
            ({"from_position": 1.5}, "from_position"),
            ({"poll_interval": 0}, "poll_interval"),
            ({"poll_interval": -1.0}, "poll_interval"),
            ({"poll_interval": True}, "poll_interval"),
            ({"poll_interval": "1"}, "poll_interval"),
            ({"poll_interval": float("nan")}, "poll_interval"),
            ({"poll_interval": float("inf")}, "poll_interval"),
        ],
    )
    def test_bad_subscribe_arguments(
        self, store: EventStore, options: dict[str, Any], argument: str
    ) -> None:
        """subscribe() checks its arguments when it is called, not when it is iterated."""
        with pytest.raises(InvalidArgumentError) as info:
            store.subscribe(**options)
        assert argument == info.value.argument

    def test_subscribe_to_an_unregistered_type(self, store: EventStore) -> None:
        """A class the store's types do not register is refused by subscribe() itself."""

        @attrs.frozen
        class Stranger:
            pass

        with pytest.raises(UnknownEventTypeError):
            store.subscribe(types=[Stranger])

    # -- lifecycle ---------------------------------------------------------------------------

    def test_close_twice(self, store: EventStore) -> None:
        """close() may be called more than once, and the store is a context manager."""
        with store as entered:
            assert store is entered
        store.close()

    def test_events_survive_reopening(self, store: EventStore) -> None:
        """A reopened store holds the same events, versions, positions and ids."""
        store.append("a", [NewEvent(Note("1"), metadata={"k": [1, "x"]}), Opened("ann")])
        store.append("b", [Deposited(decimal.Decimal("0.10"))])
        before = list(store.read_all())
        store = self._reopen(store)
        try:
            assert before == list(store.read_all())
            assert 2 == store.stream_version("a")
            assert 3 == store.append("a", [Note("2")], expected_version=2)
        finally:
            store.close()

    def test_upcasting_after_reopening(self, store: EventStore) -> None:
        """Events written at an old schema version are upcast when read with newer types."""
        store.append("a", [Note("hello big world")])
        types = EventTypes(Opened)
        types.add(NoteV2, name="Note", version=2)

        @types.upcaster("Note", from_version=1)
        def split(data: dict[str, Any]) -> dict[str, Any]:
            return {"words": data["text"].split()}

        store = self._reopen(store, types)
        try:
            store.append("a", [NoteV2(("new",))])
            assert [NoteV2(("hello", "big", "world")), NoteV2(("new",))] == [
                r.event for r in store.read_stream("a")
            ]
        finally:
            store.close()

    def test_unknown_type_on_read(self, store: EventStore) -> None:
        """A stored type the reader does not know raises an error naming it and its position."""
        store.append("a", [Opened("ann"), Note("x")])
        store = self._reopen(store, EventTypes(Opened))
        try:
            assert [Opened("ann")] == [r.event for r in store.read_stream("a", limit=1)]
            with pytest.raises(UnknownEventTypeError) as info:
                store.read_stream("a")
            assert ("Note", 2) == (info.value.type_name, info.value.position)
            assert "Note" in str(info.value)
        finally:
            store.close()

    # -- the model ---------------------------------------------------------------------------

    def test_behaves_like_the_model(self, store: EventStore) -> None:
        """Random appends, retries, reads and reopenings agree with a dict-of-lists model."""
        holder = [store]
        contract = self
        can_reopen = self._can_reopen()

        class Machine(_ModelMachine):
            def current(self) -> EventStore:
                return holder[0]

            def reopen_store(self) -> None:
                holder[0] = contract.reopen(holder[0], contract.event_types())

        Machine.can_reopen = can_reopen
        try:
            run_state_machine_as_test(
                Machine,
                settings=settings(
                    max_examples=min(self.state_machine_examples, settings().max_examples),
                    stateful_step_count=self.state_machine_steps,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
        finally:
            if holder[0] is not store:
                holder[0].close()


def _text(recorded: RecordedEvent) -> str:
    assert isinstance(recorded.event, Note)
    return recorded.event.text


@attrs.define
class _Batch:
    stream: str
    events: list[NewEvent]


class _ModelMachine(RuleBasedStateMachine):
    """Drives a store and a model side by side; streams are namespaced per run."""

    can_reopen: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"m{uuid.uuid4().hex[:8]}-"
        self.model: dict[str, list[uuid.UUID]] = {}
        self.log: list[uuid.UUID] = []
        self.where: dict[uuid.UUID, tuple[str, int]] = {}
        self.batches: list[_Batch] = []
        self.start = 1

    def current(self) -> EventStore:
        raise NotImplementedError

    def reopen_store(self) -> None:
        raise NotImplementedError

    @initialize()
    def remember_the_head(self) -> None:
        self.start = self.current().head_position() + 1

    def _version(self, stream: str) -> int:
        return len(self.model.get(stream, ()))

    def _predict(self, batch: _Batch, expected: ExpectedVersion) -> int | type[Exception]:
        ids = [e.event_id for e in batch.events]
        stored = [self.where.get(i) for i in ids]
        if len(set(ids)) != len(ids):
            return DuplicateEventError
        if any(s is not None for s in stored):
            return self._predict_retry(batch, expected, stored)
        current = self._version(batch.stream)
        if (expected is STREAM_EXISTS and current == 0) or (
            isinstance(expected, int) and expected != current
        ):
            return ConcurrencyError
        return current + len(ids)

    def _predict_retry(
        self, batch: _Batch, expected: ExpectedVersion, stored: list[tuple[str, int] | None]
    ) -> int | type[Exception]:
        start = stored[0][1] if stored[0] is not None else 0
        in_place = stored == [(batch.stream, start + k) for k in range(len(stored))]
        if in_place and (not isinstance(expected, int) or start == expected + 1):
            return start + len(stored) - 1
        return DuplicateEventError

    def _append(self, batch: _Batch, expected: ExpectedVersion) -> None:
        predicted = self._predict(batch, expected)
        try:
            actual: int | type[Exception] = self.current().append(
                batch.stream, batch.events, expected_version=expected
            )
        except (ConcurrencyError, DuplicateEventError) as exc:
            actual = type(exc)
        assert predicted == actual
        if isinstance(actual, int) and not any(e.event_id in self.where for e in batch.events):
            for event in batch.events:
                self.model.setdefault(batch.stream, []).append(event.event_id)
                self.log.append(event.event_id)
                self.where[event.event_id] = (batch.stream, len(self.model[batch.stream]))

    @rule(
        name=st.sampled_from("abc"),
        notes=event_streams(Note, max_size=3, text=st.text(max_size=3)),
        data=st.data(),
    )
    def append(self, name: str, notes: list[Note], data: st.DataObject) -> None:
        """Append new events, expecting the right version or a wrong one."""
        batch = _Batch(self.prefix + name, [NewEvent(note) for note in notes])
        expected = data.draw(_expected_versions(self._version(batch.stream)))
        self.batches.append(batch)
        self._append(batch, expected)

    @precondition(lambda self: bool(self.batches))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """Append a batch again, as a client does after losing the answer."""
        batch = data.draw(st.sampled_from(self.batches))
        if data.draw(st.booleans()):
            batch = _Batch(self.prefix + data.draw(st.sampled_from("abc")), batch.events)
        self._append(batch, data.draw(_expected_versions(self._version(batch.stream))))

    @rule(
        name=st.sampled_from("abc"),
        from_version=st.none() | st.integers(1, 8),
        limit=st.none() | st.integers(0, 4),
        backwards=st.booleans(),
    )
    def read_stream(
        self, name: str, from_version: int | None, limit: int | None, backwards: bool
    ) -> None:
        """A stream reads back as the model has it, in either direction."""
        ids = list(enumerate(self.model.get(self.prefix + name, []), start=1))
        if backwards:
            top = len(ids) if from_version is None else from_version
            ids = [pair for pair in reversed(ids) if pair[0] <= top]
        else:
            ids = [pair for pair in ids if pair[0] >= (from_version or 1)]
        if limit is not None:
            ids = ids[:limit]
        recorded = self.current().read_stream(
            self.prefix + name, from_version=from_version, limit=limit, backwards=backwards
        )
        assert ids == [(r.version, r.event_id) for r in recorded]

    @rule()
    def read_all(self) -> None:
        """The global order is the order of the appends, with strictly rising positions."""
        recorded = [
            r
            for r in self.current().read_all(from_position=self.start)
            if r.stream_id.startswith(self.prefix)
        ]
        assert self.log == [r.event_id for r in recorded]
        positions = [r.position for r in recorded]
        assert sorted(set(positions)) == positions
        for r in recorded:
            assert (r.stream_id, r.version) == self.where[r.event_id]

    @precondition(lambda self: self.can_reopen)
    @rule()
    def reopen(self) -> None:
        """Closing and reopening the store changes nothing."""
        self.reopen_store()

    @invariant()
    def versions_match(self) -> None:
        """Every stream's version is its number of events in the model."""
        for name in "abc":
            assert self._version(self.prefix + name) == self.current().stream_version(
                self.prefix + name
            )
