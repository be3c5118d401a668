"""Wake-ups from the server: one ``LISTEN`` connection per server and channel, per process.

An append notifies its table's channel in its own transaction, so the notification is
delivered when, and only if, it commits. A listener holds one connection of its own (not
one of a pool's: it is held for as long as anybody listens) on a daemon thread, and
notifies the channel's :class:`~busway._signal.Signal` for each notification; readers
then query the store again, so a notification is only ever a hint. When the connection is
cut, the listener connects again, backing off, and notifies once it listens again (in case
it missed something); meanwhile readers fall back to polling.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Final, final

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .._signal import Signal
from ._db import connect_args

__all__ = ["Listener", "listener_for"]

_TICK: Final = 0.5  # seconds a listener waits for notifications before it checks it should stop
_FIRST_PAUSE: Final = 0.05  # seconds before connecting again; doubled each try, up to:
_LONGEST_PAUSE: Final = 5.0
APPLICATION_NAME: Final = "busway listener"


@final
class Listener:
    """Turns one channel's notifications into a process's signal, while some store wants it."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], channel: str) -> None:
        self.signal = Signal()
        self.channel = channel
        self._conninfo = conninfo
        self._kwargs = {
            **{k: v for k, v in kwargs.items() if k != "autocommit"},
            "application_name": APPLICATION_NAME,
        }
        self._users = 0
        self._lock = threading.Lock()
        self._stopping: threading.Event | None = None

    def start(self) -> None:
        """Listen (if nobody did yet) until as many :meth:`stop` calls as starts came."""
        with self._lock:
            self._users += 1
            if self._stopping is None:
                self._stopping = threading.Event()
                threading.Thread(
                    target=self._listen, args=(self._stopping,), name="busway-listen", daemon=True
                ).start()

    def stop(self) -> None:
        """Let the last user's stop end the listening thread (within a fraction of a second)."""
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._stopping is not None:
                self._stopping.set()
                self._stopping = None

    def _listen(self, stopping: threading.Event) -> None:
        pause = _FIRST_PAUSE
        while not stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._kwargs) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self.signal.notify()  # whatever committed while nobody listened
                    pause = _FIRST_PAUSE
                    while not stopping.is_set():
                        for _ in conn.notifies(timeout=_TICK):
                            self.signal.notify()
            except psycopg.Error:
                self.signal.notify()  # readers look again now, then poll while this is down
                stopping.wait(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)


_listeners: weakref.WeakValueDictionary[tuple[str, str], Listener] = weakref.WeakValueDictionary()
_listeners_lock = threading.Lock()


def listener_for(pool: ConnectionPool[Any] | AsyncConnectionPool[Any], channel: str) -> Listener:
    """Return this process's listener for *channel* on the server of *pool*.

    Every store of one table on one server shares it, and so shares its signal: a reader
    of one store wakes for appends through another, in this process or any other.
    """
    conninfo, kwargs = connect_args(pool)
    key = (conninfo, channel)
    with _listeners_lock:
        listener = _listeners.get(key)
        if listener is None:
            listener = _listeners[key] = Listener(conninfo, kwargs, channel)
        return listener
