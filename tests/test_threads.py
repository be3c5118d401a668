"""Registration while other threads dispatch: copy-on-write tables, no lock on dispatch."""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from busway import Command, CommandBus, Event, EventBus, Registry


class Tick(Event):
    __slots__ = ("n", "thread")

    def __init__(self, thread: int, n: int) -> None:
        self.thread = thread
        self.n = n


class Work(Command[int]):
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads far more often than usual, to provoke interleavings."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def counting_into(counter: collections.Counter[tuple[int, int]]) -> Callable[[Tick], None]:
    def handler(event: Tick) -> None:
        counter.update([(event.thread, event.n)])

    return handler


@pytest.mark.usefixtures("busy_switching")
def test_stable_handlers_miss_nothing_while_others_come_and_go() -> None:
    """Handlers that stay subscribed get every event exactly once while others churn."""
    dispatchers, per_thread, stable_count = 3, 3_000, 4
    events = EventBus()
    received: list[collections.Counter[tuple[int, int]]] = []
    for _ in range(stable_count):
        counter: collections.Counter[tuple[int, int]] = collections.Counter()
        received.append(counter)
        events.subscribe(Tick, counting_into(counter))
    stop = threading.Event()
    churned = 0

    def churn() -> None:
        nonlocal churned
        while not stop.is_set():
            subscription = events.subscribe(Tick, lambda e: None)
            catch_all = events.subscribe(Event, lambda e: None)
            if churned < 20:  # a bounded number, so every rebuild stays cheap
                extra = Registry()
                extra.event(Event)(lambda e: None)
                events.include(extra)
            subscription.unsubscribe()
            catch_all.unsubscribe()
            churned += 1

    def dispatch(thread: int) -> None:
        for n in range(per_thread):
            events.publish(Tick(thread, n))

    churner = threading.Thread(target=churn)
    workers = [threading.Thread(target=dispatch, args=(t,)) for t in range(dispatchers)]
    churner.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    churner.join()

    expected = collections.Counter((t, n) for t in range(dispatchers) for n in range(per_thread))
    assert all(expected == counter for counter in received)
    assert churned > 0


@pytest.mark.usefixtures("busy_switching")
def test_commands_stay_reachable_while_types_are_registered() -> None:
    """A registered command is always found while other threads register new types."""
    handlers = Registry()
    handlers.command(Work)(lambda c: c.n)
    commands = CommandBus(handlers)
    stop = threading.Event()
    results: list[list[int]] = [[], []]

    def register_more() -> None:
        for i in range(2_000):  # bounded: each registration copies the tables
            if stop.is_set():
                return
            handlers.command(type(f"Extra{i}", (Command,), {}))(lambda c: None)

    def dispatch(slot: int) -> None:
        results[slot] = [commands.execute(Work(n)) for n in range(5_000)]

    registrar = threading.Thread(target=register_more)
    workers = [threading.Thread(target=dispatch, args=(slot,)) for slot in range(2)]
    registrar.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    registrar.join()
    assert [list(range(5_000))] * 2 == results
