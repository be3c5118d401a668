"""Leases: which worker runs each subscription, and the fencing token that proves it.

A worker takes the lease on a subscription's name before it handles events, and renews it
well before it expires; other workers stand by, and take the lease over once it has expired
(its holder died or stalled) or was released. Expiry alone cannot keep a stalled worker from
writing when it wakes up, so every lease carries a fencing token: a number that grows by
one each time the lease is taken afresh and never goes down. The worker writes its token
with each checkpoint, and a checkpoint store that has seen a higher token refuses the write
(:class:`~busway.errors.LeaseLostError`): a worker that lost its lease cannot overwrite the
work of the one that took it over, however late its commit arrives.

Expiry is judged by the store's clock, read while the store holds its lock (its write
lock, for SQLite), so that two workers never see the same lease as free.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, final, runtime_checkable

import attrs

from .._closeable import Closeable
from .._sqlite import Database, Layout, SQLiteStore, check_table
from .._time import aware, later
from ..clock import Clock, SystemClock
from ..errors import InvalidArgumentError, StoreFormatError

__all__ = [
    "Decision",
    "InMemoryLeaseStore",
    "Lease",
    "LeaseStore",
    "Leases",
    "SQLiteLeaseStore",
    "check_clock",
]

_COLUMNS: Final = ("name", "owner", "token", "expires_at")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


@final
@attrs.frozen
class Lease:
    """The right of *owner* to run subscription *name* until *expires_at*, under *token*.

    ``token`` is the fencing token: 1 the first time the name is taken, one more each time
    it is taken afresh (after expiry or release), the same while its holder renews it.
    ``expires_at`` is an aware datetime in UTC, by the clock of the store that handed it out.
    """

    name: str
    owner: str
    token: int
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        """Tell whether the lease has run out at *now* (an aware datetime): others may take it."""
        return aware(now, "now") >= self.expires_at


@runtime_checkable
class LeaseStore(Protocol):
    """Hands out leases by name, each to one owner at a time, with fencing tokens.

    A name's token never goes down and is never reset, and its row is never deleted, so a
    checkpoint stored with a token can always be told from one of a later holder.
    ``busway.testing.LeaseStoreContract`` checks that a backend keeps these promises.
    """

    def acquire(self, name: str, owner: str, *, ttl: float) -> Lease | None:
        """Take or renew the lease on *name* for *owner*, for *ttl* seconds from now.

        A lease that was never taken, was released or has expired is taken afresh, with
        the next token (1 the first time). One that *owner* holds and has not expired is
        renewed with the same token. Return None if another owner holds it unexpired.
        """
        ...

    def renew(self, lease: Lease, *, ttl: float) -> Lease | None:
        """Extend *lease* to *ttl* seconds from now, with the same token.

        It may have expired, as long as nobody has taken the name since. Return None if
        someone has: the lease is lost, and its holder must stop writing.
        """
        ...

    def release(self, lease: Lease) -> bool:
        """Free *lease* at once, so that another worker need not wait for it to expire.

        The token stays, so the next taker gets the one after it. Return whether *lease*
        was still held (unexpired, and nobody had taken it since); if not, nothing changes.
        """
        ...

    def holder(self, name: str) -> Lease | None:
        """Return the last lease taken on *name*, expired or not; None if it never was."""
        ...

    def leases(self, prefix: str = "") -> list[Lease]:
        """Return the last lease taken on each name that starts with *prefix*, by name."""
        ...

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...


def _check_text(value: object, argument: str, meaning: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(argument, value, f"a non-empty str ({meaning})")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                argument, value, "valid text (it holds a lone surrogate)"
            ) from None
    return value


def _check_name(name: object) -> str:
    return _check_text(name, "name", "the subscription's name, such as 'orders'")


def _check_ttl(ttl: object) -> timedelta:
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl > 0:
        try:
            delta = timedelta(seconds=ttl)
        except OverflowError:  # an infinity, or beyond timedelta.max
            pass
        else:
            if delta > timedelta(0):
                return delta
    raise InvalidArgumentError(
        "ttl", ttl, "a finite number of seconds of at least a microsecond (an int or a float)"
    )


def _check_lease(lease: object) -> Lease:
    if not isinstance(lease, Lease):
        raise InvalidArgumentError("lease", lease, "a Lease, as acquire() or renew() returns")
    return lease


def check_clock(clock: object) -> Clock:
    if clock is None:
        return SystemClock()
    if not isinstance(clock, Clock):
        raise InvalidArgumentError("clock", clock, "a busway.clock.Clock, such as SystemClock()")
    return clock


Decision = Callable[[Lease | None, datetime], Lease | None]
"""Given a name's last lease (None if never taken) and the time, the lease to store instead."""


class Leases:
    """The rules of every lease store, over the one step each store provides.

    A store runs :meth:`_change` as one atomic step: it reads the name's last lease and
    the time, asks the decision what to store, and stores it. The rules live here once,
    so that every backend hands out the same leases.
    """

    _clock: Clock

    def _change(self, name: str, decide: Decision) -> Lease | None:
        """Store what *decide* makes of *name*'s last lease, atomically; return it."""
        raise NotImplementedError

    def _now(self) -> datetime:
        """Return the store's time, to judge expiry by: read it where :meth:`_change` decides."""
        return aware(self._clock.now(), "the time the store's clock told")

    def _last(self, name: str) -> Lease | None:
        """Return *name*'s last lease, as :meth:`holder` does."""
        raise NotImplementedError

    def _every(self) -> Iterable[Lease]:
        """Return every name's last lease, in any order."""
        raise NotImplementedError

    def acquire(self, name: str, owner: str, *, ttl: float) -> Lease | None:
        """Take or renew the lease on *name* for *owner*, for *ttl* seconds from now.

        A lease that was never taken, was released or has expired is taken afresh, with
        the next token (1 the first time). One that *owner* holds and has not expired is
        renewed with the same token. Return None if another owner holds it unexpired.
        """
        name = _check_name(name)
        owner = _check_text(owner, "owner", "the worker's id, such as 'host:pid'")
        delta = _check_ttl(ttl)

        def decide(last: Lease | None, now: datetime) -> Lease | None:
            expires_at = later(now, delta, "ttl", ttl)
            if last is None:
                return Lease(name, owner, 1, expires_at)
            if last.expired(now):
                return Lease(name, owner, last.token + 1, expires_at)
            if last.owner == owner:
                return attrs.evolve(last, expires_at=expires_at)
            return None

        return self._change(name, decide)

    def renew(self, lease: Lease, *, ttl: float) -> Lease | None:
        """Extend *lease* to *ttl* seconds from now, with the same token.

        It may have expired, as long as nobody has taken the name since. Return None if
        someone has: the lease is lost, and its holder must stop writing.
        """
        lease = _check_lease(lease)
        delta = _check_ttl(ttl)

        def decide(last: Lease | None, now: datetime) -> Lease | None:
            if not _same_taking(last, lease):
                return None
            return attrs.evolve(lease, expires_at=later(now, delta, "ttl", ttl))

        return self._change(lease.name, decide)

    def release(self, lease: Lease) -> bool:
        """Free *lease* at once, so that another worker need not wait for it to expire.

        The token stays, so the next taker gets the one after it. Return whether *lease*
        was still held (unexpired, and nobody had taken it since); if not, nothing changes.
        """
        lease = _check_lease(lease)

        def decide(last: Lease | None, now: datetime) -> Lease | None:
            if last is None or not _same_taking(last, lease) or last.expired(now):
                return None
            return attrs.evolve(last, expires_at=now)

        return self._change(lease.name, decide) is not None

    def holder(self, name: str) -> Lease | None:
        """Return the last lease taken on *name*, expired or not; None if it never was."""
        return self._last(_check_name(name))

    def leases(self, prefix: str = "") -> list[Lease]:
        """Return the last lease taken on each name that starts with *prefix*, by name."""
        if not isinstance(prefix, str):
            raise InvalidArgumentError("prefix", prefix, "a str (empty for every name)")
        chosen = [lease for lease in self._every() if lease.name.startswith(prefix)]
        return sorted(chosen, key=lambda lease: lease.name)


def _same_taking(last: Lease | None, lease: Lease) -> bool:
    """Tell whether *last* is still the taking *lease* came from: nobody took it since."""
    return last is not None and (last.owner, last.token) == (lease.owner, lease.token)


@final
class InMemoryLeaseStore(Leases, Closeable):
    """A :class:`LeaseStore` in memory: for workers that are threads of one process.

    Expiry is judged by *clock* (the system's by default; a
    :class:`~busway.clock.FakeClock` in tests, to let leases expire without waiting).
    """

    _holds = "leases"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = check_clock(clock)
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<InMemoryLeaseStore {len(self._leases)} leases{state}>"

    def _change(self, name: str, decide: Decision) -> Lease | None:
        with self._lock:
            self._check_open()
            lease = decide(self._leases.get(name), self._now())
            if lease is not None:
                self._leases[name] = lease
            return lease

    def _last(self, name: str) -> Lease | None:
        with self._lock:
            self._check_open()
            return self._leases.get(name)

    def _every(self) -> Iterable[Lease]:
        with self._lock:
            self._check_open()
            return list(self._leases.values())

    def _release(self) -> None:
        self._leases = {}  # nothing can read them any more


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


@final
class SQLiteLeaseStore(Leases, SQLiteStore):
    """A :class:`LeaseStore` in a table of an SQLite database, shared by processes.

    Each acquire, renew and release is one ``BEGIN IMMEDIATE`` transaction, which reads
    the lease and the clock under the database's write lock, so workers in any number of
    processes on one machine never both take a lease. Put it in the database whose
    checkpoints it guards, or in a file of its own. Given a path it opens (and on
    :meth:`close` closes) its own connection; given a connection, it uses it and leaves it
    open. Expiries are stored as whole microseconds since 1970 (UTC); rows are never deleted,
    so that each name's token only grows.
    """

    _holds = "leases"
    table: str

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        *,
        table: str = "subscription_leases",
        clock: Clock | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.table = t = check_table(table)
        self._clock = check_clock(clock)
        layout = Layout(
            kind="a lease store",
            tables=(t,),
            create=(
                f"CREATE TABLE IF NOT EXISTS {t} (name TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                "token INTEGER NOT NULL, expires_at INTEGER NOT NULL)",
            ),
            columns=_COLUMNS,
        )
        super().__init__(Database(path_or_connection, layout, timeout=timeout))
        self._sql_one = f"SELECT {', '.join(_COLUMNS)} FROM {t} WHERE name = ?"
        self._sql_all = f"SELECT {', '.join(_COLUMNS)} FROM {t}"
        self._sql_put = (
            f"INSERT INTO {t} ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "token = excluded.token, expires_at = excluded.expires_at"
        )

    def _change(self, name: str, decide: Decision) -> Lease | None:
        with self._lock:
            self._check_open()
            with self._db.transaction() as conn:
                # The clock is read under the write lock: a taker that waited for it sees
                # the time after the last holder's commit, never an earlier one.
                lease = decide(self._read(conn.execute(self._sql_one, (name,))), self._now())
                if lease is not None:
                    conn.execute(
                        self._sql_put,
                        (lease.name, lease.owner, lease.token, _micros(lease.expires_at)),
                    )
                return lease

    def _last(self, name: str) -> Lease | None:
        with self._lock:
            self._check_open()
            return self._read(self._conn.execute(self._sql_one, (name,)))

    def _every(self) -> Iterable[Lease]:
        with self._lock:
            self._check_open()
            return [self._lease(row) for row in self._conn.execute(self._sql_all)]

    def _read(self, rows: sqlite3.Cursor) -> Lease | None:
        row = rows.fetchone()
        return None if row is None else self._lease(row)

    def _lease(self, row: tuple[object, ...]) -> Lease:
        """Return the lease *row* holds, if a busway store could have written it.

        A value of another type or range was put there by other hands; reading a lease from
        it could hand one name to two workers, or give a token lower than one handed out.
        """
        name, owner, token, expires_at = row
        t = self.table
        if not isinstance(name, str):
            raise self._damaged(
                f"{name!r} ({type(name).__name__}) as the name of a lease, where busway writes "
                f"text. Delete that row (DELETE FROM {t} WHERE typeof(name) != 'text')"
            )
        if not isinstance(owner, str) or not owner:
            raise self._damaged(
                f"{owner!r} ({type(owner).__name__}) as the owner of lease {name!r}, where "
                f"busway writes non-empty text. Set it and free the lease "
                f"(UPDATE {t} SET owner = 'unknown', expires_at = 0 WHERE name = {name!r})"
            )
        if type(token) is not int or token < 1:
            raise self._damaged(
                f"{token!r} ({type(token).__name__}) as the fencing token of lease {name!r}, "
                "where busway writes an int of 1 or more. Set it to at least the token last "
                f"stored with {name!r}'s checkpoint (UPDATE {t} SET token = ... WHERE name = "
                f"{name!r}), or that checkpoint refuses the next holder's writes"
            )
        if type(expires_at) is int:
            try:
                return Lease(name, owner, token, _EPOCH + expires_at * _MICROSECOND)
            except OverflowError:
                pass
        raise self._damaged(
            f"{expires_at!r} ({type(expires_at).__name__}) as the expiry of lease {name!r}, "
            "where busway writes an int of microseconds since 1970 (UTC). Set it to 0, which "
            f"frees the lease (UPDATE {t} SET expires_at = 0 WHERE name = {name!r})"
        )

    def _damaged(self, problem: str) -> StoreFormatError:
        db = self._db
        return StoreFormatError(
            db.location, f"table {self.table!r} holds {problem}", kind=db.layout.kind
        )
