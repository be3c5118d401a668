"""The promises of a checkpoint store, as tests any backend can inherit.

Subclass :class:`CheckpointStoreContract` as ``Test<YourStore>`` and give it a ``store``
fixture that yields an empty store. A store that cannot undo a transaction (one in memory)
sets ``transactions_undo = False``; a store that many workers open over the same
checkpoints overrides :meth:`CheckpointStoreContract.open_another`, so that the tests of
exclusion, fencing and parking run across two of them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from busway.errors import InvalidArgumentError, LeaseLostError, StoreClosedError
from busway.projections import CheckpointStore, CheckpointTransaction
from busway.subscriptions import ParkedEvent

from ._parked import parked_event, parked_events

__all__ = ["CheckpointStoreContract"]


class _Undo(Exception):
    """Raised in a block to see what leaving it by an exception undoes."""


def _in_transaction(
    store: CheckpointStore,
    name: str,
    step: Callable[[CheckpointTransaction], object],
    *,
    then: type[Exception] | None = None,
) -> None:
    """Run *step* in a transaction on *name*, and raise *then* in it, if given, after *step*."""
    with store.transaction(name) as checkpoint:
        step(checkpoint)
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
_few = st.integers(1, 5)  # positions of parked events, a few so that some repeat


# What no store can keep: each refused with InvalidArgumentError, naming the field.
_UNPARKABLE = {
    "another subscription": {"subscription": "q"},
    "position 0": {"position": 0},
    "a position beyond SQLite": {"position": 2**63},
    "a bool version": {"version": True},
    "no attempts": {"attempts": 0},
    "an empty stream id": {"stream_id": ""},
    "a lone surrogate": {"type": "Order\ud800"},
    "an event id as text": {"event_id": str(uuid.UUID(int=1))},
    "a naive time": {"parked_at": datetime(2024, 5, 1, 12, 0)},
    "a time before year 1 in UTC": {
        "parked_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    },
}


class CheckpointStoreContract:
    """Tests every :class:`~busway.projections.CheckpointStore` must pass; subclass to run them.

    Provide a ``store`` fixture yielding an empty store.
    """

    @staticmethod
    def parked_event(name: str = "p", position: int = 7, **changes: Any) -> ParkedEvent:
        """Return a parked event of checkpoint *name* at *position*, with *changes*."""
        return parked_event(name, position, **changes)

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
            _in_transaction(store, "p", lambda c: c.save(position))  # type: ignore[arg-type]
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
            _in_transaction(store, "p", lambda c: c.save(4), then=_Undo)
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

    def test_a_transaction_no_handler_ended_passes_its_check(self, store: CheckpointStore) -> None:
        """check() raises nothing in a whole transaction: in a savepoint, out of one, after one
        that raised; the transaction then commits as if it had not been called."""
        with store.transaction("p") as checkpoint:
            checkpoint.check()
            with checkpoint.savepoint():
                checkpoint.save(1)
                checkpoint.check()
            with pytest.raises(_Undo):
                _save_in_savepoint(checkpoint, 2, then=_Undo)
            checkpoint.check()
        assert (1 if self.transactions_undo else 2) == store.load("p")

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

    def test_names_lists_every_checkpoint_stored(self, store: CheckpointStore) -> None:
        """names() is every name saved under, sorted; a name only read or opened is not."""
        assert [] == store.names()
        for name in ("b", "ñ", "Z", "a b", "a"):
            store.save(name, 1)
        store.load("c")
        with store.transaction("d"):
            pass
        assert ["Z", "a", "a b", "b", "ñ"] == store.names()

    @pytest.mark.parametrize("name", ["", 3, None])
    def test_a_name_that_is_not_text_is_refused(self, store: CheckpointStore, name: object) -> None:
        """A checkpoint is named by a non-empty str; anything else raises InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="name"):
            store.token(name)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="name"):
            store.parked(name)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="name"), store.transaction(name):  # type: ignore[arg-type]
            pass  # pragma: no cover - never entered

    # -- fencing -----------------------------------------------------------------------------

    def test_a_fence_keeps_the_highest_token(self, store: CheckpointStore) -> None:
        """A token is 0 until fenced; a fence as high as the stored token or higher stores it."""
        assert 0 == store.token("p")
        for token in (0, 3, 3, 7):
            with store.transaction("p") as checkpoint:
                checkpoint.fence(token)
                checkpoint.save(token)
            assert (token, token) == (store.token("p"), store.load("p"))
        assert 0 == store.token("q")

    def test_a_fence_refuses_a_lower_token(self, store: CheckpointStore) -> None:
        """A worker whose lease was taken over gets LeaseLostError, here and in another store."""
        other = self.open_another(store)
        try:
            with store.transaction("p") as checkpoint:
                checkpoint.fence(5)
                checkpoint.save(4)
            for on in (store, other):
                with pytest.raises(LeaseLostError) as info:
                    _in_transaction(on, "p", lambda c: c.fence(4))
                assert ("p", 4, 5) == (info.value.name, info.value.token, info.value.current)
            assert (5, 4) == (other.token("p"), other.load("p"))
        finally:
            if other is not store:
                other.close()

    def test_a_fence_commits_with_its_transaction(self, store: CheckpointStore) -> None:
        """A fence in a transaction left by an exception is undone, unless the store cannot undo."""
        with store.transaction("p") as checkpoint:
            checkpoint.fence(2)
        with pytest.raises(_Undo):
            _in_transaction(store, "p", lambda c: c.fence(6), then=_Undo)
        assert (2 if self.transactions_undo else 6) == store.token("p")

    @pytest.mark.parametrize("token", [-1, True, 1.0, "3", None, 2**63])
    def test_a_token_that_is_not_a_count_is_refused(
        self, store: CheckpointStore, token: object
    ) -> None:
        """Tokens are ints from 0 to 2**63 - 1; anything else raises and stores nothing."""
        with pytest.raises(InvalidArgumentError, match="token"):
            _in_transaction(store, "p", lambda c: c.fence(token))  # type: ignore[arg-type]
        assert 0 == store.token("p")

    # -- parking -----------------------------------------------------------------------------

    def test_parked_events_come_back_whole_by_position(self, store: CheckpointStore) -> None:
        """Every field of every event parked in one transaction comes back equal, by position."""
        counter = iter(range(10**9))

        @settings(deadline=None)
        @given(st.lists(parked_events("p"), max_size=6))
        def check(events: list[ParkedEvent]) -> None:
            name = f"{next(counter)}-p"  # the store is shared by every example
            model = {}
            with store.transaction(name) as checkpoint:
                for drawn in events:
                    event = attrs.evolve(drawn, subscription=name)
                    checkpoint.park(event)
                    model[event.position] = event
            assert [model[p] for p in sorted(model)] == store.parked(name)

        check()
        assert [] == store.parked("other")

    def test_parking_and_unparking_keep_one_event_per_position(
        self, store: CheckpointStore
    ) -> None:
        """Parking again replaces; unpark removes and says whether an event was there."""
        counter = iter(range(10**9))

        @settings(deadline=None)
        @given(st.lists(st.one_of(parked_events("p", _few), _few), max_size=12))
        def check(steps: list[ParkedEvent | int]) -> None:
            name = f"{next(counter)}-p"
            model: dict[int, ParkedEvent] = {}
            for step in steps:
                with store.transaction(name) as checkpoint:
                    if isinstance(step, int):
                        assert (step in model) == checkpoint.unpark(step)
                        model.pop(step, None)
                    else:
                        event = attrs.evolve(step, subscription=name)
                        checkpoint.park(event)
                        model[event.position] = event
            assert [model[p] for p in sorted(model)] == store.parked(name)

        check()

    def test_parked_events_are_seen_by_another_store(self, store: CheckpointStore) -> None:
        """Another store on the same checkpoints (another worker, or a restart) sees them."""
        with store.transaction("p") as checkpoint:
            checkpoint.park(parked_event(position=9))
            checkpoint.park(parked_event(position=2))
        other = self.open_another(store)
        try:
            assert [parked_event(position=2), parked_event(position=9)] == other.parked("p")
            with other.transaction("p") as checkpoint:
                assert checkpoint.unpark(9)
            assert [parked_event(position=2)] == store.parked("p")
        finally:
            if other is not store:
                other.close()

    def test_parking_commits_with_its_transaction(self, store: CheckpointStore) -> None:
        """Parking and unparking in a transaction left by an exception are undone with it."""
        with store.transaction("p") as checkpoint:
            checkpoint.park(parked_event(position=1))

        def replace(checkpoint: CheckpointTransaction) -> None:
            checkpoint.unpark(1)
            checkpoint.park(parked_event(position=2))

        with pytest.raises(_Undo):
            _in_transaction(store, "p", replace, then=_Undo)
        positions = [1] if self.transactions_undo else [2]
        assert positions == [event.position for event in store.parked("p")]

    @pytest.mark.parametrize("changes", list(_UNPARKABLE.values()), ids=list(_UNPARKABLE))
    def test_an_event_no_store_can_keep_is_refused(
        self, store: CheckpointStore, changes: dict[str, Any]
    ) -> None:
        """Each field of a parked event is checked first: InvalidArgumentError, nothing parked."""
        field = next(iter(changes))
        unparkable = attrs.evolve(parked_event(), **changes)
        with pytest.raises(InvalidArgumentError, match=f"parked.{field}"):
            _in_transaction(store, "p", lambda c: c.park(unparkable))
        with pytest.raises(InvalidArgumentError, match="parked"):
            _in_transaction(store, "p", lambda c: c.park(("p", 7)))  # type: ignore[arg-type]
        assert [] == store.parked("p")

    @pytest.mark.parametrize("position", [0, -1, True, "1", None])
    def test_unparking_checks_the_position(self, store: CheckpointStore, position: object) -> None:
        """Parked events are at positions of 1 or more; anything else: InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="position"):
            _in_transaction(store, "p", lambda c: c.unpark(position))  # type: ignore[arg-type]

    # -- closing -----------------------------------------------------------------------------

    def test_a_closed_store_refuses_work(self, store: CheckpointStore) -> None:
        """After close(), every call raises StoreClosedError; closing again is harmless."""
        store.close()
        store.close()
        with pytest.raises(StoreClosedError, match="is closed"):
            store.load("p")
        with pytest.raises(StoreClosedError):
            store.save("p", 1)
        with pytest.raises(StoreClosedError):
            store.parked("p")
        with pytest.raises(StoreClosedError):
            store.names()
        with pytest.raises(StoreClosedError):
            store.token("p")
        with pytest.raises(StoreClosedError), store.transaction("p"):
            pass  # pragma: no cover - never entered
