"""Wake-ups for readers that follow a store, so that a caught-up reader sleeps instead of polling.

A store notifies its :class:`Signal` after each commit that stored events; a reader notes
:attr:`Signal.count` *before* it reads, and when it finds nothing new it waits for the count
to move on from what it noted. An append that commits after the read began moves the count
after the reader noted it, so the wait ends at once: no wake-up is lost between reading and
waiting. Threads block on an event of their own; asyncio tasks await a future that the
notifying thread resolves through its loop's ``call_soon_threadsafe``, so no thread waits
on a task's behalf.

A signal reaches this process only; readers in other processes poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, final, runtime_checkable

__all__ = ["Notifying", "Signal", "signal_for"]


def _settle(woken: asyncio.Future[bool], value: bool) -> None:
    if not woken.done():  # a cancelled or timed-out wait is over already
        woken.set_result(value)


@final
class Signal:
    """Counts commits of new events; threads and tasks wait for the next one."""

    __slots__ = ("__weakref__", "_count", "_lock", "_waiters")

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self._waiters: set[Callable[[], None]] = set()

    def __repr__(self) -> str:
        return f"<Signal count={self._count} waiters={len(self._waiters)}>"

    @property
    def count(self) -> int:
        """How many times the signal was notified: note it before reading, wait on it after."""
        return self._count

    def notify(self) -> None:
        """Count one more commit and wake every waiter, threads and tasks on any loop."""
        self._count += 1
        if self._waiters:  # with nobody waiting, a notification costs the addition alone
            self._wake()

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for wake in waiters:
            wake()

    def wait(self, seen: int, timeout: float) -> bool:
        """Block until the count is no longer *seen* or *timeout* seconds pass.

        Return True if it moved on (or a notification came), False on the timeout.
        """
        woken = threading.Event()
        wake = woken.set
        with self._lock:
            self._waiters.add(wake)
        try:
            # Looked at only now that a notification would reach us: one that came before
            # moved the count, and one that comes after sets the event.
            if self._count != seen:
                return True
            return woken.wait(max(0.0, timeout)) or self._count != seen
        finally:
            with self._lock:
                self._waiters.discard(wake)

    async def wait_async(self, seen: int, timeout: float) -> bool:
        """Wait as :meth:`wait` does, without blocking the event loop or holding a thread."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[bool] = loop.create_future()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody there waits any more
                loop.call_soon_threadsafe(_settle, woken, True)

        with self._lock:
            self._waiters.add(wake)
        try:
            if self._count != seen:
                return True
            timer = loop.call_later(max(0.0, timeout), _settle, woken, False)
            try:
                return await woken or self._count != seen
            finally:
                timer.cancel()
        finally:
            with self._lock:
                self._waiters.discard(wake)


_signals: weakref.WeakValueDictionary[Path, Signal] = weakref.WeakValueDictionary()
_signals_lock = threading.Lock()


def signal_for(path: Path | None) -> Signal:
    """Return this process's signal for the database file at *path*; None: a new signal.

    Every store on one file shares its signal, so a reader of one store object wakes for
    appends through another. A signal lives as long as some store holds it.
    """
    if path is None:
        return Signal()
    key = Path(path).resolve()
    with _signals_lock:
        signal = _signals.get(key)
        if signal is None:
            signal = _signals[key] = Signal()
        return signal


@runtime_checkable
class Notifying(Protocol):
    """A store that says when it stored events, so that its readers need not poll."""

    @property
    def appended(self) -> Signal:
        """The signal notified after each commit that stored events, in this process."""
        ...
