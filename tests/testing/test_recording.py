"""Recorders on sync and async buses, and the three ways of asserting on them."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from busway import AsyncEventBus, CommandBus, EventBus, QueryBus
from busway.testing import BusRecorder, Like, Recorder


@dataclasses.dataclass(frozen=True)
class Moved:
    to: str
    speed: int = 1


@pytest.fixture
def recorded() -> Recorder:
    recorder = Recorder("published")
    bus = EventBus()
    bus.use(recorder)
    for event in (Moved("a"), Moved("b", 2), Moved("c")):
        bus.publish(event)
    return recorder


def test_in_order_with_gaps(recorded: Recorder) -> None:
    """By default the expected messages must appear in order, others may come between."""
    recorded.assert_recorded(Moved("a"), Moved("c"))
    with pytest.raises(AssertionError, match="each expected message was published, but not"):
        recorded.assert_recorded(Moved("c"), Moved("a"))


def test_any_order(recorded: Recorder) -> None:
    """any_order=True ignores the order, but each expected message needs its own match."""
    recorded.assert_recorded(Moved("c"), Like(Moved, speed=2), any_order=True)
    with pytest.raises(AssertionError, match=r"-> Like\(Moved, speed=2\)"):
        recorded.assert_recorded(Like(Moved, speed=2), Like(Moved, speed=2), any_order=True)


def test_exact(recorded: Recorder) -> None:
    """exact=True allows nothing else; with any_order, a permutation passes."""
    recorded.assert_recorded(Moved("a"), Like(Moved), Moved("c"), exact=True)
    recorded.assert_recorded(Moved("c"), Moved("b", 2), Moved("a"), exact=True, any_order=True)
    with pytest.raises(AssertionError, match=r"\+ 3  extra    Moved\(to='c', speed=1\)"):
        recorded.assert_recorded(Moved("a"), Moved("b", 2), exact=True)
    with pytest.raises(AssertionError, match="also published, but not expected"):
        recorded.assert_recorded(Moved("a"), Moved("b", 2), exact=True, any_order=True)


def test_closest_candidate(recorded: Recorder) -> None:
    """A missing message is compared field by field with the closest recorded one."""
    with pytest.raises(AssertionError) as failure:
        recorded.assert_recorded(Moved("b", 3))
    report = str(failure.value)
    assert "closest to Moved(to='b', speed=3) is #2:" in report
    assert "    speed: expected 3, got 2" in report
    with pytest.raises(AssertionError, match="nothing like 'b' was published"):
        recorded.assert_recorded("b")


def test_nothing_recorded(recorded: Recorder) -> None:
    """assert_nothing_recorded lists what was recorded; clear() forgets it."""
    with pytest.raises(AssertionError, match=r"but 3 were:\n  1\. Moved"):
        recorded.assert_nothing_recorded()
    assert [Moved("c")] == recorded.of_type(Moved)[2:]
    recorded.clear()
    recorded.assert_nothing_recorded()
    with pytest.raises(TypeError, match="assert_nothing_recorded"):
        recorded.assert_recorded()


def test_bus_recorder_on_every_kind_of_bus() -> None:
    """A BusRecorder sorts what it records by bus kind, async buses included."""
    recorder = BusRecorder()
    commands, queries, events, async_events = CommandBus(), QueryBus(), EventBus(), AsyncEventBus()
    recorder.attach(commands, queries, events, async_events)
    commands.register(str, lambda c: None)
    queries.register(int, lambda q: q + 1)
    commands.execute("go")
    assert 2 == queries.execute(1)
    events.publish(Moved("x"))
    asyncio.run(async_events.publish(Moved("y")))
    recorder.assert_executed("go", exact=True)
    recorder.assert_queried(1)
    recorder.assert_published(Moved("x"), Moved("y"), exact=True)
    assert "<BusRecorder 1 executed, 1 queried, 2 published>" == repr(recorder)
    recorder.clear()
    recorder.assert_nothing_executed()
    recorder.assert_nothing_published()
    with pytest.raises(TypeError, match="busway buses"):
        recorder.attach(object())
