"""The promises of a saga store, as tests any backend can inherit.

Subclass :class:`SagaStoreContract` as ``Test<YourStore>`` and give it a ``store`` fixture
that yields an empty store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from busway.errors import InvalidArgumentError, SagaConcurrencyError, StoreClosedError
from busway.sagas import Deadline, SagaRecord, SagaStore, StoredMessage, Write

__all__ = ["SagaStoreContract"]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class SagaStoreContract:
    """Tests every :class:`~busway.sagas.SagaStore` must pass; subclass to run them.

    Provide a ``store`` fixture yielding an empty store.
    """

    @pytest.fixture
    def store(self) -> Iterator[SagaStore]:
        """Yield an empty store; override it."""
        raise NotImplementedError("subclasses of SagaStoreContract provide a `store` fixture")

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
                [Write(self.record("s-2"), 0), Write(self.record("s-1", 2), 0)], checkpoint=("c", 9)
            )
        assert ("s-1", 0, 1) == (info.value.saga_id, info.value.expected, info.value.actual)
        assert (None, 0) == (store.load("s-2"), store.checkpoint("c"))

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
        assert 0 == store.checkpoint("sagas")
        store.commit([], checkpoint=("sagas", 5))
        store.commit([Write(self.record(), 0)], checkpoint=("sagas", 7))
        assert (7, 0) == (store.checkpoint("sagas"), store.checkpoint("other"))

    def test_a_closed_store_refuses_work(self, store: SagaStore) -> None:
        """After close(), every call raises StoreClosedError; closing again is harmless."""
        store.close()
        store.close()
        with pytest.raises(StoreClosedError, match="is closed"):
            store.load("s-1")
        with pytest.raises(StoreClosedError):
            store.commit([])
