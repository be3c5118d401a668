"""Wake-ups: a notification reaches waiting threads and tasks at once, and is never lost."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from pathlib import Path

import pytest

from busway._signal import Signal, signal_for

AT_ONCE = 1.0  # seconds: far below the waits' timeouts, far above any scheduling delay


def test_count_counts_notifications() -> None:
    """count starts at 0 and grows by one with each notify(), waiters or not."""
    signal = Signal()
    assert 0 == signal.count
    signal.notify()
    signal.notify()
    assert 2 == signal.count
    assert "<Signal count=2 waiters=0>" == repr(signal)


def test_a_thread_is_woken_from_another_thread() -> None:
    """A thread waiting on the count wakes as soon as another thread notifies."""
    signal = Signal()
    timer = threading.Timer(0.1, signal.notify)
    started = time.monotonic()
    timer.start()
    assert signal.wait(0, 30)
    assert time.monotonic() - started < AT_ONCE
    timer.join()


def test_a_task_is_woken_from_another_thread() -> None:
    """An asyncio task waiting on the count wakes as soon as another thread notifies."""
    signal = Signal()

    async def main() -> float:
        timer = threading.Timer(0.1, signal.notify)
        started = time.monotonic()
        timer.start()
        assert await signal.wait_async(0, 30)
        timer.join()
        return time.monotonic() - started

    assert asyncio.run(main()) < AT_ONCE


def test_a_task_is_woken_from_its_own_loop() -> None:
    """A task of the loop that notifies wakes too, and the loop goes on meanwhile."""
    signal = Signal()

    async def main() -> bool:
        asyncio.get_running_loop().call_later(0.05, signal.notify)
        return await signal.wait_async(0, 30)

    assert asyncio.run(main())


def test_one_notification_wakes_every_waiter() -> None:
    """Threads and tasks on two loops, all waiting, all wake for one notification."""
    signal = Signal()
    woken: list[bool] = []
    lock = threading.Lock()

    def thread_waits() -> None:
        result = signal.wait(0, 30)
        with lock:
            woken.append(result)

    def loop_waits() -> None:
        async def waiters() -> list[bool]:
            return list(await asyncio.gather(*(signal.wait_async(0, 30) for _ in range(3))))

        results = asyncio.run(waiters())
        with lock:
            woken.extend(results)

    threads = [
        threading.Thread(target=f) for f in (thread_waits, thread_waits, loop_waits, loop_waits)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every one of them is waiting by now
    started = time.monotonic()
    signal.notify()
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - started < AT_ONCE
    assert [True] * 8 == woken
    assert "waiters=0" in repr(signal)


@pytest.mark.parametrize("timeout", [0.05, 0.0, -1.0])
def test_a_timeout_returns_false(timeout: float) -> None:
    """With no notification, wait() and wait_async() return False once the timeout is up."""
    signal = Signal()
    started = time.monotonic()
    assert not signal.wait(0, timeout)
    assert not asyncio.run(signal.wait_async(0, timeout))
    elapsed = time.monotonic() - started
    assert 2 * max(0.0, timeout) <= elapsed < 2 * max(0.0, timeout) + AT_ONCE
    assert "waiters=0" in repr(signal)


def test_a_count_that_moved_on_returns_at_once() -> None:
    """A notification between noting the count and waiting is not slept through."""
    signal = Signal()
    seen = signal.count
    signal.notify()  # a commit while the reader was reading
    started = time.monotonic()
    assert signal.wait(seen, 30)
    assert asyncio.run(signal.wait_async(seen, 30))
    assert time.monotonic() - started < AT_ONCE


def test_no_wake_up_is_lost_in_a_race() -> None:
    """A notification racing a thread into its wait always ends that wait, round after round."""
    signal = Signal()
    noted = threading.Semaphore(0)
    rounds = 300
    slow: list[float] = []

    def notifier() -> None:
        for _ in range(rounds):
            noted.acquire()
            signal.notify()  # at once: the waiter is somewhere between noting and waiting

    thread = threading.Thread(target=notifier)
    thread.start()
    for _ in range(rounds):
        seen = signal.count
        noted.release()
        started = time.monotonic()
        assert signal.wait(seen, 10)
        slow.append(time.monotonic() - started)
    thread.join()
    assert max(slow) < AT_ONCE


def test_no_async_wake_up_is_lost_in_a_race() -> None:
    """The same race against a task: a notification from a thread always ends its wait."""
    signal = Signal()
    noted = threading.Semaphore(0)
    rounds = 200

    def notifier() -> None:
        for _ in range(rounds):
            noted.acquire()
            signal.notify()

    async def main() -> float:
        longest = 0.0
        for _ in range(rounds):
            seen = signal.count
            noted.release()
            started = time.monotonic()
            assert await signal.wait_async(seen, 10)
            longest = max(longest, time.monotonic() - started)
        return longest

    thread = threading.Thread(target=notifier)
    thread.start()
    try:
        assert asyncio.run(main()) < AT_ONCE
    finally:
        thread.join()


def test_a_cancelled_task_stops_waiting() -> None:
    """A waiting task that is cancelled leaves no waiter behind, and notify() still works."""
    signal = Signal()

    async def main() -> None:
        waiting = asyncio.create_task(signal.wait_async(0, 30))
        await asyncio.sleep(0.01)
        assert "waiters=1" in repr(signal)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert "waiters=0" in repr(signal)
        signal.notify()

    asyncio.run(main())


def test_a_waiter_on_a_closed_loop_is_skipped() -> None:
    """A task left waiting on a loop that was closed does not break notify() for the others."""
    signal = Signal()
    loop = asyncio.new_event_loop()
    task = loop.create_task(signal.wait_async(0, 30))
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()  # with the task still waiting on it
    timer = threading.Timer(0.05, signal.notify)
    timer.start()
    assert signal.wait(0, 30)  # the notification reached this waiter all the same
    timer.join()
    task.get_coro().close()  # what garbage collection would do with the abandoned task
    assert "waiters=0" in repr(signal)


def test_one_signal_per_file(tmp_path: Path) -> None:
    """signal_for() gives one signal per resolved path, a new one for None, kept weakly."""
    path = tmp_path / "events.db"
    signal = signal_for(path)
    assert signal is signal_for(tmp_path / "." / "events.db")
    os.symlink(path, tmp_path / "link.db")
    assert signal is signal_for(tmp_path / "link.db")
    assert signal is not signal_for(tmp_path / "other.db")
    assert signal_for(None) is not signal_for(None)
    signal.notify()
    del signal
    gc.collect()
    assert 0 == signal_for(path).count  # nobody held it, so it went
