"""The typing is part of the API: run mypy --strict on files of expectations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent / "typing"
ROOT = Path(__file__).parent.parent


def run_mypy(path: Path) -> tuple[str, int]:
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            str(path),
        ]
    )
    return stdout + stderr, status


def test_inferred_types() -> None:
    """Every assert_type in tests/typing/assert_types.py holds under mypy --strict."""
    output, status = run_mypy(HERE / "assert_types.py")
    assert ("", 0) == (output, status)


def test_misuse_is_rejected() -> None:
    """Each line marked ``# E: code`` in reject_misuse.py is an error, and nothing else is."""
    path = HERE / "reject_misuse.py"
    expected = {
        (number, match.group(1))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (match := re.search(r"# E: ([\w-]+)", line))
    }
    output, status = run_mypy(path)
    reported = {
        (int(m.group(1)), m.group(2))
        for m in re.finditer(r"^[^:\n]+:(\d+): error: .*\[([\w-]+)\]$", output, re.MULTILINE)
    }
    assert (expected, 1) == (reported, status)
