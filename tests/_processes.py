"""Worker processes for the tests that SIGKILL them: start, wait until ready, kill, stop.

A worker is ``python -m <module> <args>`` run from the checkout; it prints "ready" on
stdout once it runs, ends with status 0 on SIGTERM, and writes its log to stderr, which
is kept in a file per worker for a failing test's report. Its owner id is
``worker-<pid>``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import attrs

from busway.subscriptions import Lease

ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def poll(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Return the first true result of *check*, asked until *timeout* seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.01)


def pid_of(lease: Lease) -> int:
    """Return the pid in a worker's owner id, ``worker-<pid>``."""
    return int(lease.owner.removeprefix("worker-"))


@attrs.define
class Workers:
    """The worker processes: those alive, those killed, and what each wrote to stderr."""

    directory: Path
    command: list[str]
    """The module to run and its arguments."""
    live: dict[int, subprocess.Popen[bytes]] = attrs.Factory(dict)
    killed: dict[int, float] = attrs.Factory(dict)  # pid: when (time.time()) it was killed
    logs: dict[int, Path] = attrs.Factory(dict)
    _starting: set[int] = attrs.Factory(set)
    _every: list[subprocess.Popen[bytes]] = attrs.Factory(list)
    _files: list[IO[bytes]] = attrs.Factory(list)

    def start(self) -> int:
        """Start one more worker; return its pid."""
        log = self.directory / f"worker-{len(self.logs) + 1}.log"
        err = log.open("wb")
        self._files.append(err)
        process = subprocess.Popen(
            [sys.executable, "-m", *self.command],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        self._every.append(process)
        assert process.pid not in self.logs, "a pid came back: owner ids would repeat"
        self.live[process.pid] = process
        self.logs[process.pid] = log
        self._starting.add(process.pid)
        return process.pid

    def wait_ready(self) -> None:
        """Wait until every live worker runs both subscriptions (and listens for SIGTERM)."""
        for pid in sorted(self._starting & set(self.live)):
            stdout = self.live[pid].stdout
            assert stdout is not None
            assert b"ready\n" == stdout.readline(), f"worker {pid} ended before it was ready"
        self._starting.clear()

    def kill(self, pid: int) -> None:
        """SIGKILL worker *pid* and reap it."""
        process = self.live.pop(pid)
        self.killed[pid] = time.time()
        os.kill(pid, signal.SIGKILL)
        process.wait(10)

    def check_alive(self) -> None:
        """Fail if a worker ended that was not killed (its subscription failed)."""
        for pid, process in self.live.items():
            assert process.poll() is None, f"worker {pid} ended by itself ({process.returncode})"

    def stop(self) -> None:
        """Ask every live worker to stop, and check that each stopped cleanly."""
        self.wait_ready()
        for process in self.live.values():
            process.send_signal(signal.SIGTERM)
        codes = {pid: process.wait(15) for pid, process in self.live.items()}
        assert dict.fromkeys(codes, 0) == codes

    def clean_up(self) -> None:
        """Kill what is left, and close the pipes and log files."""
        for process in self._every:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
        for err in self._files:
            err.close()

    def report(self) -> str:
        """Return every worker's stderr, for a failure's diagnostics."""
        return "\n".join(
            f"--- worker {pid} ({'killed' if pid in self.killed else 'alive'}) ---\n"
            + log.read_text(errors="replace")
            for pid, log in self.logs.items()
        )
