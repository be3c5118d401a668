"""The promises of a snapshot store, as tests any backend can inherit.

Subclass :class:`SnapshotStoreContract` as ``Test<YourStore>`` and give it a ``store``
fixture that yields an empty store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from busway.aggregates import Snapshot, SnapshotStore
from busway.errors import StoreClosedError

__all__ = ["SnapshotStoreContract"]


def _snapshot(
    stream_id: str,
    version: int,
    schema_version: int = 1,
    event_id: uuid.UUID | None = None,
    **state: object,
) -> Snapshot:
    return Snapshot(
        stream_id,
        version,
        uuid.uuid4() if event_id is None else event_id,
        schema_version,
        json.dumps(state or {"v": version}),
    )


_saves = st.lists(
    st.builds(
        _snapshot,
        st.sampled_from(["order-1", "order-2", "ñ order"]),
        st.integers(1, 2**62),
        st.integers(-3, 3),
        st.uuids(),
        text=st.text(max_size=8),
    ),
    max_size=12,
)


class SnapshotStoreContract:
    """Tests every :class:`~busway.aggregates.SnapshotStore` must pass; subclass to run them.

    Provide a ``store`` fixture yielding an empty store.
    """

    @pytest.fixture
    def store(self) -> Iterator[SnapshotStore]:
        """Yield an empty store; override it."""
        raise NotImplementedError("subclasses of SnapshotStoreContract provide a `store` fixture")

    def test_is_a_snapshot_store(self, store: SnapshotStore) -> None:
        """The store satisfies the SnapshotStore protocol."""
        assert isinstance(store, SnapshotStore)

    def test_a_stream_without_a_snapshot(self, store: SnapshotStore) -> None:
        """A stream that was never snapshotted loads as None."""
        assert None is store.load("order-1")

    def test_a_snapshot_round_trips(self, store: SnapshotStore) -> None:
        """What is saved comes back equal: event id, state text and schema version unchanged."""
        saved = _snapshot("order-1", 7, 2, name="ñame", items=[1, 2])
        store.save(saved)
        assert saved == store.load("order-1")
        assert None is store.load("order-2")

    def test_only_a_later_or_equal_version_replaces_a_snapshot(self, store: SnapshotStore) -> None:
        """An older snapshot never overwrites a newer one; one of the same version does."""
        kept = _snapshot("order-1", 5)
        store.save(kept)
        store.save(_snapshot("order-1", 3))
        assert kept == store.load("order-1")
        retaken = _snapshot("order-1", 5, 2)
        store.save(retaken)
        assert retaken == store.load("order-1")
        store.save(_snapshot("order-1", 9))
        assert 9 == _version(store.load("order-1"))

    def test_each_stream_keeps_its_latest_snapshot(self, store: SnapshotStore) -> None:
        """Any sequence of saves leaves each stream with its highest version, the last one saved."""
        counter = iter(range(10**9))

        @settings(deadline=None)
        @given(_saves)
        def check(saves: list[Snapshot]) -> None:
            prefix = f"{next(counter)}-"  # the store is shared by every example
            model: dict[str, Snapshot] = {}
            for drawn in saves:
                snapshot = attrs.evolve(drawn, stream_id=prefix + drawn.stream_id)
                store.save(snapshot)
                kept = model.get(snapshot.stream_id)
                if kept is None or kept.version <= snapshot.version:
                    model[snapshot.stream_id] = snapshot
            assert model == {stream: store.load(stream) for stream in model}

        check()

    def test_a_closed_store_refuses_work(self, store: SnapshotStore) -> None:
        """After close(), every call raises StoreClosedError; closing again is harmless."""
        store.close()
        store.close()
        with pytest.raises(StoreClosedError, match="is closed"):
            store.load("order-1")
        with pytest.raises(StoreClosedError):
            store.save(_snapshot("order-1", 1))


def _version(snapshot: Snapshot | None) -> int | None:
    return None if snapshot is None else snapshot.version
