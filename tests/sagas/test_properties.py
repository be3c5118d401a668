"""Properties of saga managers under random interleavings and random clock jumps."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from busway.clock import FakeClock
from busway.sagas import InMemorySagaStore, SagaManager

from .model import Closed, Opened, Stepped, Tracker, recorder
from .test_deadlines import Plan, Planner

KEYS = [f"k{i}" for i in range(6)]


@st.composite
def interleavings(draw: st.DrawFn) -> list[object]:
    """Per key: open, steps, maybe close, maybe steps after; all keys shuffled together."""
    lanes: list[list[object]] = []
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=6, unique=True)):
        steps = draw(st.integers(0, 6))
        lane: list[object] = [Opened(key), *(Stepped(key, n) for n in range(steps))]
        if draw(st.booleans()):
            lane += [Closed(key), *(Stepped(key, n) for n in range(steps, steps + 2))]
        if draw(st.booleans()):
            lane.insert(0, Stepped(key, -1))  # before the saga exists: ignored
        lanes.append(lane)
    merged: list[object] = []
    while lanes:
        lane = lanes[draw(st.integers(0, len(lanes) - 1))]
        merged.append(lane.pop(0))
        lanes = [lane for lane in lanes if lane]
    return merged


@given(interleavings())
def test_each_saga_sees_its_own_events_in_order_and_nothing_after_its_end(
    events: list[object],
) -> None:
    """Whatever the interleaving, each key's steps are recorded in order, up to its close."""
    commands, recorded = recorder()
    manager = SagaManager(Tracker, store=InMemorySagaStore(), commands=commands)
    for event in events:
        manager.handle(event)
    expected: dict[str, list[int]] = {}
    open_keys: set[str] = set()
    for event in events:
        if isinstance(event, Opened):
            open_keys.add(event.key)
            expected.setdefault(event.key, [])
        elif isinstance(event, Closed):
            open_keys.discard(event.key)
        elif isinstance(event, Stepped) and event.key in open_keys:
            expected[event.key].append(event.n)
    actual: dict[str, list[int]] = {key: [] for key in expected}
    for record in recorded:
        actual[record.key].append(record.n)
    assert expected == actual
    live = {key: [t.seen for t in manager.find(Tracker, "key", key)] for key in expected}
    assert {k: ([expected[k]] if k in open_keys else []) for k in expected} == live


@given(
    st.lists(st.integers(0, 3_600), min_size=1, max_size=8),
    st.lists(st.integers(-3_600, 7_200), max_size=12),
)
def test_deadlines_fire_exactly_once_however_the_clock_jumps(
    delays: list[int], offsets: list[int]
) -> None:
    """Every deadline fires once, never before it is due, with the clock jumping both ways."""
    clock = FakeClock()
    start = clock.now()
    commands, recorded = recorder()
    manager = SagaManager(Planner, store=InMemorySagaStore(), commands=commands, clock=clock)
    manager.handle(Plan("p", tuple(float(d) for d in delays)))
    fired_at: dict[int, timedelta] = {}
    for offset in [*offsets, 3_600]:
        clock.set(start + timedelta(seconds=offset))
        before = len(recorded)
        fired = manager.fire_due()
        assert fired == len(recorded) - before
        for record in recorded[before:]:
            assert record.n not in fired_at
            fired_at[record.n] = clock.now() - start
    assert set(range(len(delays))) == set(fired_at)
    for n, delay in enumerate(delays):
        assert timedelta(seconds=delay) <= fired_at[n]
