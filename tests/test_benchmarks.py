"""The benchmark command still runs: every suite, tiny sizes, in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import _postgres

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
SUITES = (
    "dispatch",
    "publish",
    "middleware",
    "async",
    "types",
    "memory",
    "eventstore",
    "postgres",
    "subscriptions",
    "web",
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    results = tmp_path_factory.mktemp("results")
    done = run("--quick", "--scale", "0.02", "--no-peers", "--no-plots", "--results", str(results))
    return done, results


def test_quick_run_exits_cleanly(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """A quick run of every suite exits 0 and writes nothing to stderr."""
    done, _ = smoke
    assert (0, "") == (done.returncode, done.stderr)


def test_quick_run_prints_tables(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Each suite prints a table: a header row, busway's rows, and the ratio legend."""
    out = smoke[0].stdout
    for suite in SUITES:
        assert f"== {suite} ==" in out
    assert len(SUITES) == out.count("ratio = ")
    assert re.search(r"^case +median +unit +ratio$", out, re.MULTILINE)
    assert re.search(r"^busway CommandBus\.execute +[\d.,]+ +ns/op", out, re.MULTILINE)
    assert re.search(r"^busway ProjectionRunner +[\d.,]+ +events/s", out, re.MULTILINE)
    assert re.search(r"^append\(\) returned to handled, p99 +[\d.,]+ +ms", out, re.MULTILINE)
    assert re.search(r"^follow\(after=0, until=disconnect\) +[\d.,]+ +µs/event", out, re.MULTILINE)


def test_quick_run_measures_postgres_or_says_why_not(
    smoke: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """The PostgreSQL suite measures busway beside raw psycopg, or says why it was skipped."""
    out = smoke[0].stdout
    if _postgres.unreachable() is None:
        assert re.search(r"^raw psycopg +[\d.,]+ +events/s", out, re.MULTILINE)
        assert re.search(r"^busway PostgresEventStore +[\d.,]+ +events/s", out, re.MULTILINE)
        assert re.search(r"^append\(\) called to handled, p99 +[\d.,]+ +ms", out, re.MULTILINE)
    else:
        assert "note: PostgreSQL skipped: " in out


def test_quick_run_saves_json(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Each suite saves its rows and the machine they ran on as JSON."""
    for suite in SUITES:
        data = json.loads((smoke[1] / f"{suite}.json").read_text(encoding="utf-8"))
        assert suite == data["suite"]
        assert data["rows"]
        assert "python" in data["environment"]


def test_unknown_suite_is_refused() -> None:
    """--only with a name that is no suite fails with the list of suites."""
    done = run("--only", "nope")
    assert 2 == done.returncode
    assert "choose from dispatch" in done.stderr
