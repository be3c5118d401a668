"""The promises of a saga store, as tests any backend can inherit.

Subclass :class:`SagaStoreContract` as ``Test<YourStore>`` and give it a ``store`` fixture
that yields an empty store. A store that many workers open over the same database
overrides :meth:`SagaStoreContract.open_another`, so that the tests of checkpoints and
fencing run across two of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from busway.errors import (
    CheckpointMovedError,
    InvalidArgumentError,
    LeaseLostError,
    SagaConcurrencyError,
    StoreClosedError,
)
from busway.sagas import Deadline, SagaRecord, SagaStore, StoredMessage, Write
from busway.subscriptions import Advance, ParkedEvent

from ._parked import parked_event, parked_events

__all__ = ["SagaStoreContract"]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_few = st.integers(1, 5)  # positions of parked events, a few so that some repeat


class SagaStoreContract:
    """Tests every :class:`~busway.sagas.SagaStore` must pass; subclass to run them.

    Provide a ``store`` fixture yielding an empty store.
    """

    @staticmethod
    def parked_event(name: str = "p", position: int = 7, **changes: Any) -> ParkedEvent:
        """Return a parked event of checkpoint *name* at *position*, with *changes*."""
        return parked_event(name, position, **changes)

    @pytest.fixture
    def store(self) -> Iterator[SagaStore]:
        """Yield an empty store; override it."""
        raise NotImplementedError("subclasses of SagaStoreContract provide a `store` fixture")

    def open_another(self, store: SagaStore) -> SagaStore:
        """Return a second store over *store*'s database, as another worker opens it.

        By default *store* itself; the contract closes what this returns if it is another.
        """
        return store

    @staticmethod
    def record(
        saga_id: str = "s-1",
        version: int = 1,
        *,
        associations: frozenset[tuple[str, str]] = frozenset({("order_id", "o-1")}),
        deadlines: tuple[Deadline, ...] = (),
        outbox: tuple[StoredMessage, ...] = (),
        ended: bool = False,
    ) -> SagaRecord:
        """Return a Booking saga's record, as a manager would store it."""
        return SagaRecord(
            saga_id=saga_id,
            saga_type="Booking",
            version=version,
            schema_version=1,
            state='{"step":"ñew"}',
            associations=associations,
            deadlines=deadlines,
            outbox=outbox,
            ended=ended,
        )

    @staticmethod
    def message(n: int) -> StoredMessage:
        """Return the *n*-th stored command of the contract's sagas."""
        return StoredMessage(f"m-{n}", "ReserveStock", 1, f'{{"n":{n}}}')

    # -- the promises ------------------------------------------------------------------------

    def test_is_a_saga_store(self, store: SagaStore) -> None:
        """The store satisfies the SagaStore protocol."""
        assert isinstance(store, SagaStore)

    def test_a_record_round_trips(self, store: SagaStore) -> None:
        """What is committed comes back equal, deadlines and outbox in order."""
        saved = self.record(
            deadlines=(
                Deadline(T0 + timedelta(hours=1), self.message(2)),
                Deadline(T0, self.message(1)),
            ),
            outbox=(self.message(3), self.message(4)),
        )
        store.commit([Write(saved, 0)])
        assert saved == store.load("s-1")
        assert [saved] == store.find("Booking", "order_id", "o-1")
        assert None is store.load("s-2")

    def test_find_uses_the_association_index(self, store: SagaStore) -> None:
        """Only sagas of the type, associated with exactly that key and value, are found, by id."""
        both = frozenset({("order_id", "o-1"), ("payment_id", "p-1")})
        store.commit(
            [Write(self.record("s-2", associations=both), 0), Write(self.record("s-1"), 0)]
        )
        assert ["s-1", "s-2"] == [r.saga_id for r in store.find("Booking", "order_id", "o-1")]
        assert ["s-2"] == [r.saga_id for r in store.find("Booking", "payment_id", "p-1")]
        assert [] == store.find("Shipping", "order_id", "o-1")
        assert [] == store.find("Booking", "payment_id", "o-1")
        store.commit([Write(self.record("s-2", 2, associations=frozenset()), 1)])
        assert [] == store.find("Booking", "payment_id", "p-1")

    def test_a_stale_write_is_refused_and_writes_nothing(self, store: SagaStore) -> None:
        """A version mismatch in any write of a commit aborts all of them, checkpoint included."""
        store.commit([Write(self.record("s-1"), 0)])
        with pytest.raises(SagaConcurrencyError) as info:
            store.commit(
                [Write(self.record("s-2"), 0), Write(self.record("s-1", 2), 0)],
                checkpoint=Advance("c", 0, 9, park=parked_event("c", 9)),
            )
        assert ("s-1", 0, 1) == (info.value.saga_id, info.value.expected, info.value.actual)
        assert (None, 0, []) == (store.load("s-2"), store.checkpoint("c"), store.parked("c"))

    def test_a_finished_saga_is_deleted(self, store: SagaStore) -> None:
        """An ended saga stays while its outbox has commands, then goes with its index entries."""
        store.commit([Write(self.record(deadlines=(Deadline(T0, self.message(1)),)), 0)])
        ending = self.record(
            version=2, associations=frozenset(), outbox=(self.message(2),), ended=True
        )
        store.commit([Write(ending, 1)])
        assert ([], [ending], []) == (
            store.find("Booking", "order_id", "o-1"),
            store.pending(),
            store.due(T0),
        )
        store.commit([Write(self.record(version=3, associations=frozenset(), ended=True), 2)])
        assert (None, []) == (store.load("s-1"), store.pending())
        with pytest.raises(SagaConcurrencyError):
            store.commit([Write(self.record(version=4), 3)])

    def test_due_lists_sagas_by_their_earliest_due_deadline(self, store: SagaStore) -> None:
        """Sagas with a deadline at or before the time come back, earliest first."""
        late = Deadline(T0 + timedelta(minutes=5), self.message(1))
        soon = Deadline(T0 + timedelta(minutes=1), self.message(2))
        later = Deadline(T0 + timedelta(hours=1), self.message(3))
        store.commit(
            [
                Write(self.record("s-1", deadlines=(late, later)), 0),
                Write(self.record("s-2", deadlines=(soon,)), 0),
                Write(self.record("s-3", deadlines=(later,)), 0),
            ]
        )
        assert [] == store.due(T0)
        assert ["s-2"] == [r.saga_id for r in store.due(soon.due)]
        assert ["s-2", "s-1"] == [r.saga_id for r in store.due(T0 + timedelta(minutes=30))]

    def test_due_refuses_a_naive_time(self, store: SagaStore) -> None:
        """A time without a zone cannot be compared with due times: InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="aware datetime"):
            store.due(datetime(2024, 5, 1, 12, 0))

    def test_checkpoints_are_kept_per_name(self, store: SagaStore) -> None:
        """A checkpoint is 0 until committed, then the last position committed."""
        assert (0, {}) == (store.checkpoint("sagas"), store.checkpoints())
        store.commit([], checkpoint=Advance("sagas", 0, 5))
        store.commit([Write(self.record(), 0)], checkpoint=Advance("sagas", 5, 7))
        store.commit([], checkpoint=Advance("ñ", 0, 2))
        store.commit([], checkpoint=Advance("a", 0, 0))
        assert (7, 0) == (store.checkpoint("sagas"), store.checkpoint("other"))
        assert [("a", 0), ("sagas", 7), ("ñ", 2)] == list(store.checkpoints().items())

    # -- checkpoints: compare-and-set, fencing, parking --------------------------------------

    def test_a_checkpoint_moved_meanwhile_refuses_the_commit(self, store: SagaStore) -> None:
        """A move from a position the checkpoint is not at writes nothing: CheckpointMovedError."""
        other = self.open_another(store)
        try:
            store.commit([], checkpoint=Advance("c", 0, 4))
            for expected in (0, 3, 5):
                move = Advance("c", expected, 6, park=parked_event("c", 5), unpark=2)
                with pytest.raises(CheckpointMovedError) as info:
                    other.commit([Write(self.record(), 0)], checkpoint=move)
                assert ("c", expected, 4) == (
                    info.value.name,
                    info.value.expected,
                    info.value.actual,
                )
            assert (4, None, []) == (
                store.checkpoint("c"),
                store.load("s-1"),
                store.parked("c"),
            )
            other.commit([Write(self.record(), 0)], checkpoint=Advance("c", 4, 6))
            assert (6, 1) == (store.checkpoint("c"), store.load("s-1").version)  # type: ignore[union-attr]
        finally:
            if other is not store:
                other.close()

    def test_a_lower_token_refuses_the_commit(self, store: SagaStore) -> None:
        """Once a token moved a checkpoint, a lower one is refused with LeaseLostError."""
        other = self.open_another(store)
        try:
            assert 0 == store.token("c")
            store.commit([], checkpoint=Advance("c", 0, 1, token=5))
            assert (5, 5) == (store.token("c"), other.token("c"))
            for token in (0, 4):
                with pytest.raises(LeaseLostError) as info:
                    other.commit([Write(self.record(), 0)], checkpoint=Advance("c", 1, 2, token))
                assert ("c", token, 5) == (info.value.name, info.value.token, info.value.current)
            # A fenced-off worker is told so even where the checkpoint moved as well.
            with pytest.raises(LeaseLostError):
                other.commit([], checkpoint=Advance("c", 0, 2, token=4))
            assert (1, 5, None) == (store.checkpoint("c"), store.token("c"), store.load("s-1"))
            other.commit([], checkpoint=Advance("c", 1, 2, token=5))
            other.commit([], checkpoint=Advance("c", 2, 3, token=8))
            assert (3, 8, 0) == (store.checkpoint("c"), store.token("c"), store.token("d"))
        finally:
            if other is not store:
                other.close()

    def test_parked_events_move_with_the_checkpoint(self, store: SagaStore) -> None:
        """Advances park and unpark events, one per position, every field kept, by position."""
        counter = iter(range(10**9))

        @settings(deadline=None)
        @given(
            st.lists(st.tuples(st.one_of(st.none(), parked_events("c", _few)), _few), max_size=8)
        )
        def check(steps: list[tuple[ParkedEvent | None, int]]) -> None:
            name = f"{next(counter)}-c"  # the store is shared by every example
            model: dict[int, ParkedEvent] = {}
            for position, (drawn, unparked) in enumerate(steps):
                park = None if drawn is None else attrs.evolve(drawn, subscription=name)
                unpark = None if park is not None and park.position == unparked else unparked
                store.commit(
                    [], checkpoint=Advance(name, position, position + 1, park=park, unpark=unpark)
                )
                if unpark is not None:
                    model.pop(unpark, None)
                if park is not None:
                    model[park.position] = park
            assert [model[p] for p in sorted(model)] == store.parked(name)

        check()
        assert [] == store.parked("other")

    def test_parked_events_are_seen_by_another_store(self, store: SagaStore) -> None:
        """Another store on the same database (another worker, or a restart) sees them."""
        for expected, position, park in [(0, 9, 9), (9, 10, 2)]:
            move = Advance("c", expected, position, token=3, park=parked_event("c", park))
            store.commit([], checkpoint=move)
        other = self.open_another(store)
        try:
            assert ([parked_event("c", 2), parked_event("c", 9)], 3) == (
                other.parked("c"),
                other.token("c"),
            )
            other.commit([], checkpoint=Advance("c", 10, 10, token=3, unpark=9))
            assert [parked_event("c", 2)] == store.parked("c")
        finally:
            if other is not store:
                other.close()

    @pytest.mark.parametrize(
        "checkpoint",
        [
            ("c", 9),
            Advance("", 0, 1),
            Advance("c", -1, 1),
            Advance("c", 0, True),
            Advance("c", 0, 1, token=2**63),
            Advance("c", 0, 1, unpark=0),
            Advance("c", 0, 1, park=parked_event("other", 1)),
            Advance("c", 0, 1, park=parked_event("c", 1), unpark=1),
        ],
        ids=repr,
    )
    def test_a_move_no_store_can_make_is_refused(self, store: SagaStore, checkpoint: Any) -> None:
        """Each part of a checkpoint move is checked first: InvalidArgumentError, nothing kept."""
        with pytest.raises(InvalidArgumentError, match="checkpoint"):
            store.commit([Write(self.record(), 0)], checkpoint=checkpoint)
        assert (None, {}) == (store.load("s-1"), store.checkpoints())

    # -- starting on an association ----------------------------------------------------------

    def test_a_saga_starts_once_per_association(self, store: SagaStore) -> None:
        """A start on an association a live saga of the type holds is refused, whole."""
        store.commit([Write(self.record("s-1"), 0, starts=("order_id", "o-1"))])
        with pytest.raises(SagaConcurrencyError) as info:
            store.commit(
                [
                    Write(self.record("s-3", associations=frozenset({("order_id", "o-3")})), 0),
                    Write(self.record("s-2"), 0, starts=("order_id", "o-1")),
                ],
                checkpoint=Advance("c", 0, 1),
            )
        assert ("s-2", ("order_id", "o-1"), "s-1") == (
            info.value.saga_id,
            info.value.started,
            info.value.holder,
        )
        assert (None, None, 0) == (store.load("s-2"), store.load("s-3"), store.checkpoint("c"))
        assert ["s-1"] == [r.saga_id for r in store.find("Booking", "order_id", "o-1")]

    def test_two_starts_in_one_commit_are_refused(self, store: SagaStore) -> None:
        """Two new sagas of one commit cannot start on the same association."""
        with pytest.raises(SagaConcurrencyError) as info:
            store.commit(
                [
                    Write(self.record("s-1"), 0, starts=("order_id", "o-1")),
                    Write(self.record("s-2"), 0, starts=("order_id", "o-1")),
                ]
            )
        assert ("s-2", "s-1") == (info.value.saga_id, info.value.holder)
        assert (None, None) == (store.load("s-1"), store.load("s-2"))

    def test_an_association_is_free_again_once_no_saga_holds_it(self, store: SagaStore) -> None:
        """Another type, another value, or the holder's end or dissociation lets a saga start."""
        store.commit([Write(self.record("s-1"), 0, starts=("order_id", "o-1"))])
        shipping = attrs.evolve(self.record("s-2"), saga_type="Shipping")
        other_value = self.record("s-3", associations=frozenset({("order_id", "o-3")}))
        store.commit(
            [
                Write(shipping, 0, starts=("order_id", "o-1")),
                Write(other_value, 0, starts=("order_id", "o-3")),
                Write(self.record("s-1", 2, associations=frozenset()), 1),
            ]
        )
        store.commit([Write(self.record("s-4"), 0, starts=("order_id", "o-1"))])
        store.commit([Write(self.record("s-4", 2, associations=frozenset(), ended=True), 1)])
        store.commit([Write(self.record("s-5"), 0, starts=("order_id", "o-1"))])
        found = [r.saga_id for r in store.find("Booking", "order_id", "o-1")]
        assert (["s-5"], 1) == (found, len(store.find("Shipping", "order_id", "o-1")))

    def test_a_closed_store_refuses_work(self, store: SagaStore) -> None:
        """After close(), every call raises StoreClosedError; closing again is harmless."""
        store.close()
        store.close()
        with pytest.raises(StoreClosedError, match="is closed"):
            store.load("s-1")
        with pytest.raises(StoreClosedError):
            store.commit([])
        with pytest.raises(StoreClosedError):
            store.checkpoints()
        with pytest.raises(StoreClosedError):
            store.token("c")
        with pytest.raises(StoreClosedError):
            store.parked("c")
