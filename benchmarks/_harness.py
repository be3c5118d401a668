"""What every benchmark suite shares: options, a round-robin timer, tables, JSON, versions.

A suite is a function of :class:`Options` returning a :class:`Table`. ``run.py`` runs each
suite in its own process, prints its table and saves it as JSON; the suites never time
anything themselves except through :class:`Timer` (per-call costs) or :func:`timed` (whole
operations such as an SQLite transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import importlib.metadata
import itertools
import json
import math
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

#: Distributions whose versions every result records (those not installed show as null).
LIBRARIES = (
    "busway",
    "blinker",
    "pyee",
    "pypubsub",
    "python-cqrs",
    "lato",
    "diator",
    "mediatr",
    "eventsourcing",
)


@dataclasses.dataclass(frozen=True)
class Options:
    """How big and how thorough a run is, and whether peers take part."""

    quick: bool = False
    scale: float = 1.0
    peers: bool = True

    def size(self, full: int, quick: int) -> int:
        """Return the full or quick size, times the scale, never below 1."""
        return max(1, round((quick if self.quick else full) * self.scale))

    @property
    def repeats(self) -> int:
        return 3 if self.quick else 15


# -- timing -----------------------------------------------------------------------------------


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the collector out of timed code, as timeit does: it would bill one case for the
    garbage of another."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(fn: Callable[[], object]) -> float:
    """Return the seconds one call of *fn* takes, with the collector paused."""
    with gc_paused():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def _loop(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], n: int) -> int:
    # One loop per call shape, so a one-argument call pays for no argument unpacking.
    repeat = itertools.repeat(None, n)
    if kwargs:
        start = time.perf_counter_ns()
        for _ in repeat:
            call(*args, **kwargs)
    elif len(args) == 1:
        (a,) = args
        start = time.perf_counter_ns()
        for _ in repeat:
            call(a)
    else:
        a, b = args
        start = time.perf_counter_ns()
        for _ in repeat:
            call(a, b)
    return time.perf_counter_ns() - start


async def _async_loop(call: Callable[..., Awaitable[Any]], args: tuple[Any, ...], n: int) -> int:
    repeat = itertools.repeat(None, n)
    if len(args) == 1:
        (a,) = args
        start = time.perf_counter_ns()
        for _ in repeat:
            await call(a)
    else:
        start = time.perf_counter_ns()
        for _ in repeat:
            await call(*args)
    return time.perf_counter_ns() - start


def _empty_loop(n: int) -> int:
    start = time.perf_counter_ns()
    for _ in itertools.repeat(None, n):
        pass
    return time.perf_counter_ns() - start


@dataclasses.dataclass
class _Case:
    call: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    kind: Literal["sync", "async", "external"]
    n: int


class Timer:
    """Cases timed round-robin, so that a slow spell of the machine hits them all alike.

    Each round times every case once, in a tight loop of *n* calls with the collector
    paused, and takes the cost of an empty loop off; the result is the median over rounds,
    in nanoseconds per call. Round 0 only warms up (chains get built, caches filled).
    """

    def __init__(self, n: int, repeats: int) -> None:
        self.n = n
        self.repeats = repeats
        self._cases: dict[str, _Case] = {}

    def case(
        self, name: str, call: Callable[..., Any], *args: Any, n: int | None = None, **kw: Any
    ) -> None:
        """Time ``call(*args, **kw)``; *n* overrides the loop size for slow cases."""
        self._cases[name] = _Case(call, args, kw, "sync", n or self.n)

    def async_case(
        self, name: str, call: Callable[..., Awaitable[Any]], *args: Any, n: int | None = None
    ) -> None:
        """Time ``await call(*args)`` inside one running event loop."""
        self._cases[name] = _Case(call, args, {}, "async", n or self.n)

    def external_case(self, name: str, timed_loop: Callable[[int], int]) -> None:
        """Time a case that runs elsewhere (another runtime): ``timed_loop(count)`` runs
        *count* calls there and returns the nanoseconds they took, its own loop's cost taken
        off. It is called in turn with the other cases, once a round."""
        self._cases[name] = _Case(timed_loop, (), {}, "external", self.n)

    def run(self) -> dict[str, float]:
        """Return the median ns per call of each case."""
        runs: dict[str, list[float]] = {name: [] for name in self._cases}
        loop = asyncio.new_event_loop()
        try:
            for round_ in range(self.repeats + 1):
                for name, case in self._cases.items():
                    count = max(1, case.n // 10) if round_ == 0 else case.n
                    with gc_paused():
                        if case.kind == "external":
                            took, empty = case.call(count), 0
                        elif case.kind == "async":
                            took = loop.run_until_complete(_async_loop(case.call, case.args, count))
                            empty = _empty_loop(count)
                        else:
                            took = _loop(case.call, case.args, case.kwargs, count)
                            empty = _empty_loop(count)
                    if round_:
                        runs[name].append(max(0, took - empty) / count)
        finally:
            loop.close()
        return {name: statistics.median(times) for name, times in runs.items()}


#: Latency samples left out: the first appends and batches prepare their statements.
WARM_UP = 5


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank *p*-th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- results ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One measured case; *ratio* is value / the value of the row named *against*."""

    case: str
    value: float
    unit: str
    against: str = ""
    ratio: float | None = None
    library: str = ""
    group: str = ""


@dataclasses.dataclass
class Table:
    """A suite's result: rows in print order, notes (skipped peers, caveats), parameters."""

    suite: str
    title: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    ratio_means: str = "value / the value of the row named after it"
    stat: str = "median"

    def add(
        self,
        case: str,
        value: float,
        unit: str,
        *,
        against: str = "",
        library: str = "",
        group: str = "",
        base: float | None = None,
    ) -> Row:
        """Add a row; its ratio is against the row named *against* in the same group, or
        against *base* when given."""
        reference = base
        if reference is None and against:
            reference = self.value(against, group)
        ratio = value / reference if reference else None
        row = Row(case, value, unit, against, ratio, library, group)
        self.rows.append(row)
        return row

    def value(self, case: str, group: str = "") -> float | None:
        """Return the value of the row named *case* (in *group*), if there is one."""
        for row in self.rows:
            if row.case == case and row.group == group:
                return row.value
        return None

    def render(self) -> str:
        """Return the table as aligned text, with its title, notes and ratio legend."""
        lines = [self.title]
        groups: list[str] = []
        for row in self.rows:
            if row.group not in groups:
                groups.append(row.group)
        width = max([len(r.case) for r in self.rows] + [4]) + 2
        for group in groups:
            lines.append("")
            if group:
                lines.append(f"[{group}]")
            lines.append(f"{'case':<{width}}{self.stat:>12}  {'unit':<9} ratio")
            for row in self.rows:
                if row.group != group:
                    continue
                shown = f"{row.ratio:.2f}x {row.against}" if row.ratio is not None else ""
                lines.append(f"{row.case:<{width}}{_number(row.value):>12}  {row.unit:<9} {shown}")
        lines.append("")
        lines.append(f"ratio = {self.ratio_means}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "title": self.title,
            "environment": environment(),
            "params": self.params,
            "ratio_means": self.ratio_means,
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "notes": self.notes,
        }

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.suite}.json"
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path


def _number(value: float) -> str:
    if value >= 10_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


# -- the machine ------------------------------------------------------------------------------


def version_of(distribution: str) -> str | None:
    """Return the installed version of *distribution*, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """Return the processor's model name, as the OS reports it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Return what a reader needs to reproduce a figure: interpreter, OS, CPU, versions."""
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "executable": sys.executable,
        "libraries": {name: version_of(name) for name in LIBRARIES},
    }


def describe_environment() -> str:
    """Return :func:`environment` as a few lines of text."""
    env = environment()
    installed = ", ".join(f"{n} {v}" for n, v in env["libraries"].items() if v)
    missing = ", ".join(n for n, v in env["libraries"].items() if not v)
    return "\n".join(
        [
            f"{env['python']} on {env['os']}",
            f"CPU: {env['cpu']} ({env['cores']} logical cores); SQLite {env['sqlite']}",
            f"installed: {installed}",
            *([f"not installed: {missing}"] if missing else []),
        ]
    )


class PeerUnavailable(Exception):
    """A peer that cannot run on this machine (a tool is missing, an install failed)."""


class Peers:
    """Set up peer libraries one at a time, turning any failure into a note, never a crash."""

    def __init__(self, options: Options, table: Table) -> None:
        self.enabled = options.peers
        self.table = table
        self._skipped = False

    def build(self, name: str, setup: Callable[[], Any]) -> Any | None:
        """Return ``setup()``, or None with a note when *name* is missing or fails."""
        if not self.enabled:
            if not self._skipped:
                self.table.notes.append("peers skipped (--no-peers)")
                self._skipped = True
            return None
        try:
            return setup()
        except ImportError as exc:
            self.table.notes.append(f"{name} skipped: not installed ({exc})")
        except PeerUnavailable as exc:
            self.table.notes.append(f"{name} skipped: {exc}")
        except Exception as exc:
            self.table.notes.append(f"{name} skipped: it failed to set up ({exc!r})")
        return None
