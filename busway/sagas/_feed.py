"""A saga manager as a consumer of the subscription engine.

The engine picks the batch, holds the lease and applies the failure policy; this module
says what handling a batch means for sagas: each event's saga changes commit in one
transaction with the checkpoint's move to its position (compare-and-set, fenced by the
worker's lease), and the commands they issued are sent after. Every method is a flow of the
manager's own effects, so that both managers drive it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import final

import attrs

from ..errors import CheckpointMovedError, LeaseLostError
from ..eventstore import RecordedEvent
from ..subscriptions._engine import Applied, Flow
from ..subscriptions._observe import BatchObserver, observed
from ..subscriptions._records import Advance, ParkedEvent
from ._core import Checkpoint, Commit, Core, group
from ._store import SagaStore

__all__ = ["SagaFeed"]


@attrs.frozen
class Parked:
    name: str

    def perform(self, store: SagaStore) -> list[ParkedEvent]:
        return store.parked(self.name)


_REFUSED = (CheckpointMovedError, LeaseLostError)


@final
class SagaFeed:
    """Feeds a saga manager's core the events of its subscription."""

    def __init__(self, core: Core, name: str, observer: BatchObserver | None = None) -> None:
        self.core = core
        self.name = name
        self._observer = observer

    def load(self, key: str) -> Flow[int]:
        position: int = yield Checkpoint(key)
        return position

    def fence(self, key: str, token: int) -> Flow[None]:
        while True:
            position: int = yield Checkpoint(key)
            try:
                yield Commit((), Advance(key, position, position, token))
            except CheckpointMovedError:
                continue
            return

    def taken(self, key: str) -> Flow[None]:
        # Whoever held the partition before may have died between committing a step and
        # sending its commands: they are still in the outboxes.
        core = self.core
        yield from core.exclusive(core.recover())

    def apply(
        self,
        key: str,
        events: Sequence[RecordedEvent],
        *,
        through: int,
        expected: int,
        token: int,
        pause: Callable[[], bool] | None = None,
    ) -> Flow[Applied]:
        flow = self._apply(key, events, through, expected, token, pause=pause)
        if self._observer is not None:  # the sagas and their commands run in its block
            flow = observed(self._observer, self.name, key, events, flow)
        applied: Applied = yield from self.core.exclusive(flow)
        return applied

    def _apply(
        self,
        key: str,
        events: Sequence[RecordedEvent],
        through: int,
        expected: int,
        token: int,
        *,
        pause: Callable[[], bool] | None,
    ) -> Flow[Applied]:
        committed = expected
        final = events[-1] if events else None
        for recorded in events:
            advance = Advance(key, committed, recorded.position, token)
            try:
                kept, errors = yield from self.core.step(recorded.event, advance)
            except _REFUSED:
                raise
            except Exception as exc:
                return Applied(committed, exc, recorded)
            if kept:
                committed = recorded.position
            if errors:
                return Applied(committed, group(errors, "sending saga commands"))
            if pause is not None and recorded is not final and pause():
                # Each event's commands take their time: renew the lease before going on.
                through = recorded.position
                break
        if committed != through:
            yield Commit((), Advance(key, committed, through, token))
        return Applied(through)

    def park(self, key: str, parked: ParkedEvent, *, expected: int, token: int) -> Flow[None]:
        yield Commit((), Advance(key, expected, parked.position, token, park=parked))

    def parked(self, key: str) -> Flow[list[ParkedEvent]]:
        found: list[ParkedEvent] = yield Parked(key)
        return found

    def replay(self, key: str, recorded: RecordedEvent, *, token: int) -> Flow[Exception | None]:
        return (yield from self.core.exclusive(self._replay(key, recorded, token)))

    def _replay(self, key: str, recorded: RecordedEvent, token: int) -> Flow[Exception | None]:
        position: int = yield Checkpoint(key)
        advance = Advance(key, position, position, token, unpark=recorded.position)
        try:
            kept, _ = yield from self.core.step(recorded.event, advance)
        except _REFUSED:
            raise
        except Exception as exc:
            return exc
        if not kept:
            yield Commit((), advance)
        return None
