"""The workers example runs: three processes share the shop, one is killed and replaced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_workers_example_survives_a_killed_worker(postgres_dsn: str, pg_schema: str) -> None:
    """A standby takes a SIGKILLed worker's partition over; the read model equals a rebuild."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.workers",
            "--dsn",
            postgres_dsn,
            "--schema",
            pg_schema,
            "--orders",
            "45",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("killed worker-") for line in lines)
    assert any(" took orders[0/4] over " in line for line in lines)
    assert "workers stopped, exit codes [0, 0, 0]" in lines
    assert lines[-1].endswith("the read model equals a rebuild")
