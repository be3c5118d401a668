"""The projection runner: feeds a projection the global order, after its checkpoint.

A runner reads events after the projection's checkpoint in batches, hands each to the
projection's ``@when`` handlers and moves the checkpoint past them, each batch in one
transaction of the checkpoint store. With an :class:`SQLiteProjection` and an
:class:`SQLiteCheckpointStore` in the read model's database, that transaction holds a
batch's writes and its checkpoint: a crash loses both or neither, so no event is applied
twice or skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import final

from ..errors import (
    InvalidArgumentError,
    ProjectionError,
    ProjectionTimeoutError,
    RegistrationError,
)
from ..eventstore import EventStore, RecordedEvent
from ._checkpoints import CheckpointStore, CheckpointTransaction, InMemoryCheckpointStore
from ._projection import Progress, Projection, ProjectionBase, SQLiteProjection, handle

__all__ = ["ProjectionRunner"]

_log = logging.getLogger("busway.projections")


def _handling(recorded: RecordedEvent) -> str:
    return (
        f"stopped at position {recorded.position}: handling {recorded.type} (version "
        f"{recorded.version} of stream {recorded.stream_id!r}, event id {recorded.event_id})"
    )


def _failed(name: str, recorded: RecordedEvent, exc: BaseException) -> ProjectionError:
    return ProjectionError(
        name,
        f"{_handling(recorded)} raised {type(exc).__name__}: {exc}. Nothing of this event was "
        "kept and the checkpoint is before it; fix the cause and run the projection again to "
        "resume here",
        position=recorded.position,
        recorded=recorded,
    )


def _broken(name: str, recorded: RecordedEvent, stored: int, exc: Exception) -> ProjectionError:
    problem = (
        exc.problem
        if isinstance(exc, ProjectionError)
        else f"has a checkpoint store whose savepoint failed ({type(exc).__name__}: {exc})"
    )
    return ProjectionError(
        name,
        f"{_handling(recorded)}, it {problem}. Nothing of this batch was kept: the checkpoint "
        f"stays at {stored}, and the next run starts again at position {stored + 1}",
        position=recorded.position,
        recorded=recorded,
    )


def _connection(
    projection: SQLiteProjection, checkpoint: CheckpointTransaction
) -> sqlite3.Connection:
    """Return the SQLite connection *projection* writes through in *checkpoint*'s transaction."""
    conn = checkpoint.connection
    if not isinstance(conn, sqlite3.Connection):
        raise RegistrationError(
            f"{type(projection).__qualname__} is an SQLiteProjection: give its runner "
            "checkpoints=SQLiteCheckpointStore(...) on the read model's database, so that "
            "its writes and its checkpoint commit together"
        )
    return conn


@final
class ProjectionRunner:
    """Feeds a projection the events after its checkpoint, a batch at a time.

    Run it once (:meth:`run_once`), until it is caught up (:meth:`run_until_caught_up`), or
    until stopped, on a thread (:meth:`start`, :meth:`stop`, :meth:`running`) or as an
    asyncio task (:meth:`run_async`). :meth:`wait_for` waits until a position is in the read
    model. A handler that raises stops the projection before that event, with a
    :class:`~busway.errors.ProjectionError`; the next run starts with that event again.

    Checkpoints default to memory. An :class:`SQLiteProjection` needs an
    :class:`SQLiteCheckpointStore` in its database (or any checkpoint store whose
    transactions give an :class:`sqlite3.Connection`), whose connection its handlers get.
    """

    poll_interval: float

    def __init__(
        self,
        store: EventStore,
        projection: Projection | SQLiteProjection,
        *,
        checkpoints: CheckpointStore | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.1,
    ) -> None:
        name = getattr(projection, "name", None)
        if not isinstance(projection, ProjectionBase):
            raise RegistrationError(
                f"a runner runs a Projection or SQLiteProjection, not {projection!r}"
            )
        if not isinstance(name, str) or not name:
            raise RegistrationError(
                f"{type(projection).__qualname__} needs a name to key its checkpoint: set "
                "name = '...' in its class body"
            )
        if type(batch_size) is not int or batch_size < 1:
            raise InvalidArgumentError("batch_size", batch_size, "an int of 1 or more")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
            raise InvalidArgumentError("poll_interval", poll_interval, "a number of seconds")
        if poll_interval <= 0:
            raise InvalidArgumentError("poll_interval", poll_interval, "more than 0 seconds")
        if checkpoints is None:
            checkpoints = InMemoryCheckpointStore()
        self.store = store
        self.projection = projection
        self.checkpoints = checkpoints
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = float(poll_interval)
        self._work = threading.RLock()  # one batch at a time, whoever runs it
        self._changed = threading.Condition()
        self._state = threading.Lock()
        self._active = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        if isinstance(projection, SQLiteProjection):
            with checkpoints.transaction(name) as checkpoint:
                projection.setup(_connection(projection, checkpoint))
        self._position = checkpoints.load(name)

    def __repr__(self) -> str:
        return f"<ProjectionRunner {self.name!r} at position {self._position}>"

    @property
    def position(self) -> int:
        """The checkpoint: every event up to this position is in the read model."""
        return self._position

    @property
    def error(self) -> BaseException | None:
        """Why the background run stopped, if it failed; cleared when a run starts."""
        return self._error

    @property
    def is_running(self) -> bool:
        """Whether a thread or an asyncio task is following the store."""
        return self._active

    def lag(self) -> int:
        """Return how many positions the read model is behind the store's head (0: caught up).

        Positions are not always consecutive, so this is an upper bound on events to go.
        """
        return max(0, self.store.head_position() - self._position)

    # -- running -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Handle the next batch of events, if any; return how many were read."""
        with self._work:
            batch = list(
                self.store.read_all(from_position=self._position + 1, limit=self.batch_size)
            )
            if not batch:
                return 0
            self._apply(batch)
            return len(batch)

    def _apply(self, batch: list[RecordedEvent]) -> None:
        failure: ProjectionError | None = None
        with self.checkpoints.transaction(self.name) as checkpoint:
            last = stored = checkpoint.load()
            # If another runner (perhaps in another process) moved the checkpoint, follow
            # it, and read again from there rather than apply what it has applied.
            if stored == self._position:
                kept = True
                try:
                    for recorded in batch:
                        try:
                            error = self._handle(checkpoint, recorded)
                        except Exception as exc:
                            # The store's own error: its transaction can no longer be trusted
                            # (a handler ended it, say), so nothing is saved, and leaving the
                            # block with the error has the store undo what is left of it.
                            kept = False
                            raise _broken(self.name, recorded, stored, exc) from exc
                        if error is not None:
                            failure = _failed(self.name, recorded, error)
                            failure.__cause__ = error
                            break
                        last = recorded.position
                finally:
                    # Also when the process is told to stop: a store that cannot undo the
                    # read model's changes must not apply them again.
                    if kept and last != stored:
                        checkpoint.save(last)
        self._advance(last)
        if failure is not None:
            raise failure

    def _handle(
        self, checkpoint: CheckpointTransaction, recorded: RecordedEvent
    ) -> Exception | None:
        """Run the event's handlers in a savepoint; return the exception one of them raised.

        What the savepoint raises of its own passes through.
        """
        raised: BaseException | None = None
        try:
            with checkpoint.savepoint():
                try:
                    handle(self.projection, recorded, checkpoint.connection)
                except BaseException as exc:
                    raised = exc
                    raise
        except Exception as exc:
            if exc is not raised:
                raise
            return exc
        return None

    def _advance(self, position: int) -> None:
        with self._changed:
            self._position = position
            self._changed.notify_all()

    def run_until_caught_up(self, *, progress: Progress | None = None) -> int:
        """Handle batches until none is left; return how many events were read.

        *progress*, if given, is called with ``(position, head)`` before the first batch
        and after each one.
        """
        head = self.store.head_position() if progress is not None else 0
        if progress is not None:
            progress(self._position, max(head, self._position))
        total = 0
        while n := self.run_once():
            total += n
            if progress is not None:
                head = max(head, self._position)
                progress(self._position, head)
        return total

    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Reset the read model and the checkpoint, then replay every event into it.

        The projection's ``reset`` hook clears the read model; with SQLite, in the same
        transaction as the checkpoint's return to 0. Return how many events were read.
        """
        with self._work:
            with self.checkpoints.transaction(self.name) as checkpoint:
                if isinstance(self.projection, SQLiteProjection):
                    self.projection.reset(_connection(self.projection, checkpoint))
                else:
                    self.projection.reset()
                checkpoint.save(0)
            self._advance(0)
            return self.run_until_caught_up(progress=progress)

    # -- on a thread ---------------------------------------------------------------------

    def _begin(self) -> None:
        with self._state:
            if self._active:
                raise ProjectionError(self.name, "is already running; stop it first")
            self._active = True
            self._error = None

    def _end(self, error: BaseException | None) -> None:
        with self._changed:
            if error is not None:
                self._error = error
            self._active = False
            self._changed.notify_all()

    def start(self) -> None:
        """Follow the store on a background thread until :meth:`stop`.

        If a batch fails the thread ends; :attr:`error` says why and :meth:`wait_for`
        raises it. Fix the cause and call :meth:`start` again to resume.
        """
        self._begin()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop,
            args=(self._stop,),
            name=f"busway-projection-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def _loop(self, stop: threading.Event) -> None:
        error: BaseException | None = None
        try:
            while not stop.is_set():
                if self.run_once() == 0:
                    stop.wait(self.poll_interval)
        except Exception as exc:
            if isinstance(exc, ProjectionError):
                _log.error("%s", exc)
            else:
                _log.error("projection %r stopped: %r", self.name, exc)
            error = exc
        finally:
            self._end(error)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the background thread to stop after its batch, and wait for it to end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @contextlib.contextmanager
    def running(self) -> Iterator[ProjectionRunner]:
        """Run on a background thread for the duration of the block.

        If the thread failed and the block did not, the failure is raised on leaving it.
        """
        self.start()
        try:
            yield self
        finally:
            self.stop()
        if self._error is not None:
            raise self._error

    # -- under asyncio -------------------------------------------------------------------

    async def run_async(self, *, stop: asyncio.Event | None = None) -> None:
        """Follow the store until *stop* is set or the task is cancelled.

        Batches run on a worker thread, so the event loop never waits on the database. A
        failing batch ends the run with its error.
        """
        self._begin()
        error: BaseException | None = None
        try:
            while stop is None or not stop.is_set():
                if await asyncio.to_thread(self.run_once) == 0:
                    if stop is None:
                        await asyncio.sleep(self.poll_interval)
                    else:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), self.poll_interval)
        except Exception as exc:
            error = exc
            raise
        finally:
            self._end(error)

    # -- waiting for one's own writes ----------------------------------------------------

    def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Return once every event up to *position* is in the read model.

        Use it after a write, with the store's head position then, to read your own write.
        If the runner is not running, this call catches up itself. Raise
        :class:`~busway.errors.ProjectionTimeoutError` after *timeout* seconds, and the
        runner's error if it stopped on one.
        """
        deadline = time.monotonic() + timeout
        while self._position < position:
            remaining = self._remaining(position, timeout, deadline)
            if self._active:
                with self._changed:
                    if self._position < position and self._active:
                        self._changed.wait(remaining)
            elif self.run_once() == 0:
                time.sleep(min(self.poll_interval, remaining))

    async def wait_for_async(self, position: int, timeout: float = 10.0) -> None:
        """Return once every event up to *position* is in the read model (see wait_for)."""
        deadline = time.monotonic() + timeout
        while self._position < position:
            remaining = self._remaining(position, timeout, deadline)
            if self._active:
                await asyncio.sleep(min(0.005, remaining))
            elif await asyncio.to_thread(self.run_once) == 0:
                await asyncio.sleep(min(self.poll_interval, remaining))

    def _remaining(self, position: int, timeout: float, deadline: float) -> float:
        if self._error is not None:
            raise self._error
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProjectionTimeoutError(self.name, position, self._position, timeout)
        return remaining
