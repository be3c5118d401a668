"""Saga managers following an event store: failure policies, parked events, status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import attrs

from busway import AsyncCommandBus
from busway.eventstore import AsyncInMemoryEventStore, EventTypes, SQLiteEventStore
from busway.sagas import (
    AsyncSagaManager,
    InMemorySagaStore,
    Saga,
    SagaManager,
    SQLiteSagaStore,
    handles,
    starts,
)
from busway.subscriptions import Park

from .model import Opened, Record, Stepped, recorder

TYPES = EventTypes(Opened, Stepped)


@attrs.define
class Fussy(Saga):
    """Records its steps; refuses step 13 while ``refusing`` is set."""

    refusing: ClassVar[bool] = True

    key: str = ""
    seen: list[int] = attrs.field(factory=list)

    @starts(Opened, key="key")
    def opened(self, event: Opened) -> None:
        self.key = event.key

    @handles(Stepped, key="key")
    def stepped(self, event: Stepped) -> None:
        if event.n == 13 and Fussy.refusing:
            raise ValueError("not 13")
        self.seen.append(event.n)
        self.send(Record(self.key, event.n))


def history(store: SQLiteEventStore) -> None:
    store.append("k", [Opened("k"), Stepped("k", 12), Stepped("k", 13), Stepped("k", 14)])


def test_a_parked_event_is_set_aside_listed_and_replayed(tmp_path: Path) -> None:
    """Park() moves past a failing event; replay_parked() hands it to the sagas once fixed."""
    commands, recorded = recorder()
    with (
        SQLiteEventStore(tmp_path / "events.db", types=TYPES) as events,
        SQLiteSagaStore(tmp_path / "sagas.db") as store,
    ):
        history(events)
        manager = SagaManager(Fussy, store=store, commands=commands)
        runner = manager.background(events=events, on_error=Park())
        Fussy.refusing = True
        runner.tick()
        (parked,) = runner.parked()
        (status,) = runner.status()
        assert (3, "ValueError: not 13", 0, (parked,)) == (
            parked.position,
            parked.error,
            status.lag,
            status.parked,
        )
        assert [12, 14] == manager.find(Fussy, "key", "k")[0].seen
        assert 0 == runner.replay_parked()  # still refused: it stays parked
        Fussy.refusing = False
        assert 1 == runner.replay_parked(3)
        assert ([], [12, 14, 13]) == (runner.parked(), manager.find(Fussy, "key", "k")[0].seen)
        assert [12, 14, 13] == [r.n for r in recorded]


def test_catch_up_takes_a_failure_policy(tmp_path: Path) -> None:
    """catch_up(on_error=Park()) goes on past a failing event; the saga store lists it."""
    commands, _ = recorder()
    Fussy.refusing = True
    with (
        SQLiteEventStore(tmp_path / "events.db", types=TYPES) as events,
        SQLiteSagaStore(tmp_path / "sagas.db") as store,
    ):
        history(events)
        manager = SagaManager(Fussy, store=store, commands=commands)
        assert 4 == manager.catch_up(events, on_error=Park())
        assert ([3], 4) == ([p.position for p in store.parked("sagas")], store.checkpoint("sagas"))


def test_a_runner_without_events_has_no_subscription_to_show() -> None:
    """With no event store to follow, there is nothing parked and nothing to replay."""
    commands, _ = recorder()
    runner = SagaManager(Fussy, store=InMemorySagaStore(), commands=commands).background()
    assert ([], [], 0) == (runner.status(), runner.parked(), runner.replay_parked())


def test_the_async_runner_parks_lists_and_replays_too() -> None:
    """The async background runner keeps the same promises, awaited."""

    async def main() -> tuple[list[int], list[int], int, list[int]]:
        recorded: list[Record] = []
        commands = AsyncCommandBus()

        async def record(command: Record) -> None:
            recorded.append(command)

        commands.register(Record, record)
        events = AsyncInMemoryEventStore(types=TYPES)
        await events.append("k", [Opened("k"), Stepped("k", 13), Stepped("k", 14)])
        manager = AsyncSagaManager(Fussy, store=InMemorySagaStore(), commands=commands)
        runner = manager.background(events=events, on_error=Park(), interval=0.01)
        none = manager.background()
        assert ([], [], 0) == (await none.status(), await none.parked(), await none.replay_parked())
        Fussy.refusing = True
        await runner.tick()
        parked = [p.position for p in await runner.parked()]
        lags = [s.lag for s in await runner.status()]
        Fussy.refusing = False
        replayed = await runner.replay_parked()
        return parked, lags, replayed, [r.n for r in recorded]

    assert ([2], [0], 1, [14, 13]) == asyncio.run(main())
