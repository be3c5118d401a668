"""The promises of a checkpoint store, as tests any backend can inherit.

Subclass :class:`CheckpointStoreContract` as ``Test<YourStore>`` and give it a ``store``
fixture that yields an empty store. A store that cannot undo a transaction (one in memory)
sets ``transactions_undo = False``; a store that many workers open over the same
checkpoints overrides :meth:`CheckpointStoreContract.open_another`, so that the tests of
exclusion run across two of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import ClassVar

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from busway.errors import InvalidArgumentError, StoreClosedError
from busway.projections import CheckpointStore, CheckpointTransaction

__all__ = ["CheckpointStoreContract"]


class _Undo(Exception):
    """Raised in a block to see what leaving it by an exception undoes."""


def _save_in_transaction(
    store: CheckpointStore, name: str, position: object, *, then: type[Exception] | None = None
) -> None:
    with store.transaction(name) as checkpoint:
        checkpoint.save(position)  # type: ignore[arg-type]  # the tests give wrong ones too
        if then is not None:
            raise then


def _save_in_savepoint(
    checkpoint: CheckpointTransaction, position: int, *, then: type[Exception]
) -> None:
    with checkpoint.savepoint():
        checkpoint.save(position)
        raise then


_names = st.sampled_from(["a", "b", "orders", "ñame with spaces"])
_positions = st.integers(0, 2**62)


class CheckpointStoreContract:
    """Tests every :class:`~busway.projections.CheckpointStore` must pass; subclass to run them.

    Provide a ``store`` fixture yielding an empty store.
    """

    transactions_undo: ClassVar[bool] = True
    """Whether a transaction left by an exception undoes its saves; False in memory."""

    threads: ClassVar[int] = 4
    """How many threads race in the test of exclusion."""

    @pytest.fixture
    def store(self) -> Iterator[CheckpointStore]:
        """Yield an empty store; override it."""
        raise NotImplementedError("subclasses of CheckpointStoreContract provide a `store` fixture")

    def open_another(self, store: CheckpointStore) -> CheckpointStore:
        """Return a second store over *store*'s checkpoints, as another worker opens it.

        By default *store* itself; the contract closes what this returns if it is another.
        """
        return store

    # -- load and save -----------------------------------------------------------------------

    def test_is_a_checkpoint_store(self, store: CheckpointStore) -> None:
        """The store satisfies the CheckpointStore protocol."""
        assert isinstance(store, CheckpointStore)

    def test_an_unknown_name_is_at_zero(self, store: CheckpointStore) -> None:
        """A name that was never saved loads as 0, in a transaction too."""
        with store.transaction("new") as checkpoint:
            assert isinstance(checkpoint, CheckpointTransaction)
            assert 0 == checkpoint.load()
        assert 0 == store.load("new")

    def test_each_name_keeps_its_last_position(self, store: CheckpointStore) -> None:
        """Any sequence of saves leaves each name at the last position saved under it."""
        counter = iter(range(10**9))

        @settings(deadline=None)
        @given(st.lists(st.tuples(_names, _positions), max_size=12))
        def check(saves: list[tuple[str, int]]) -> None:
            prefix = f"{next(counter)}-"  # the store is shared by every example
            model: dict[str, int] = {}
            for name, position in saves:
                store.save(prefix + name, position)
                model[name] = position
            assert model == {name: store.load(prefix + name) for name in model}

        check()

    def test_a_checkpoint_may_go_back_to_zero(self, store: CheckpointStore) -> None:
        """A rebuild moves a checkpoint back to 0, and a transaction sees it there."""
        store.save("p", 9)
        with store.transaction("p") as checkpoint:
            checkpoint.save(0)
        with store.transaction("p") as checkpoint:
            assert 0 == checkpoint.load()

    @pytest.mark.parametrize("position", [-1, True, 1.0, "3", None])
    def test_a_position_that_is_not_a_count_is_refused(
        self, store: CheckpointStore, position: object
    ) -> None:
        """Only ints of 0 or more are positions; anything else raises and saves nothing."""
        store.save("p", 2)
        with pytest.raises(InvalidArgumentError, match="position"):
            store.save("p", position)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="position"):
            _save_in_transaction(store, "p", position)
        assert 2 == store.load("p")

    # -- transactions ------------------------------------------------------------------------

    def test_a_transaction_reads_and_saves_its_checkpoint(self, store: CheckpointStore) -> None:
        """Inside, load sees what was stored and then what was saved; the save lasts."""
        store.save("p", 3)
        store.save("q", 8)
        with store.transaction("p") as checkpoint:
            assert 3 == checkpoint.load()
            checkpoint.save(5)
            assert 5 == checkpoint.load()
        assert (5, 8) == (store.load("p"), store.load("q"))

    def test_a_transaction_left_by_an_exception(self, store: CheckpointStore) -> None:
        """The exception passes through; the saves are undone unless the store cannot undo."""
        store.save("p", 3)
        with pytest.raises(_Undo):
            _save_in_transaction(store, "p", 4, then=_Undo)
        assert (3 if self.transactions_undo else 4) == store.load("p")

    def test_a_failed_savepoint_undoes_only_its_own_saves(self, store: CheckpointStore) -> None:
        """The transaction goes on after a savepoint that raised, and commits the rest."""
        with store.transaction("p") as checkpoint:
            checkpoint.save(1)
            with pytest.raises(_Undo):
                _save_in_savepoint(checkpoint, 2, then=_Undo)
            assert (1 if self.transactions_undo else 2) == checkpoint.load()
            with checkpoint.savepoint():
                checkpoint.save(3)
        assert 3 == store.load("p")

    def test_a_transaction_keeps_one_connection(self, store: CheckpointStore) -> None:
        """What the read model writes through does not change inside a transaction."""
        with store.transaction("p") as checkpoint:
            connection = checkpoint.connection
            with checkpoint.savepoint():
                assert connection is checkpoint.connection

    def test_transactions_exclude_each_other(self, store: CheckpointStore) -> None:
        """Threads that read and move one checkpoint, here and in another store, lose no move."""
        rounds = 25
        other = self.open_another(store)
        failures: list[BaseException] = []

        def work(on: CheckpointStore) -> None:
            try:
                for _ in range(rounds):
                    with on.transaction("shared") as checkpoint:
                        checkpoint.save(checkpoint.load() + 1)
            except BaseException as exc:  # reported below, on the test's thread
                failures.append(exc)

        try:
            workers = [
                threading.Thread(target=work, args=(other if n % 2 else store,))
                for n in range(self.threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            assert [] == failures
            assert self.threads * rounds == store.load("shared") == other.load("shared")
        finally:
            if other is not store:
                other.close()

    # -- closing -----------------------------------------------------------------------------

    def test_a_closed_store_refuses_work(self, store: CheckpointStore) -> None:
        """After close(), every call raises StoreClosedError; closing again is harmless."""
        store.close()
        store.close()
        with pytest.raises(StoreClosedError, match="is closed"):
            store.load("p")
        with pytest.raises(StoreClosedError):
            store.save("p", 1)
        with pytest.raises(StoreClosedError), store.transaction("p"):
            pass  # pragma: no cover - never entered
