"""Run every Python block in README.md and docs/*.md as a test (blocks of a file share state)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser


# Hypothesis keeps its folder under the directory it is first used in; a doc's scratch
# directory is removed after it, so pin the folder to the checkout's, as for the tests.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(__file__).parent / ".hypothesis"))


def _enter_scratch_dir(namespace: dict[str, Any]) -> None:
    # Examples write files such as events.db; keep them out of the checkout.
    scratch = tempfile.TemporaryDirectory(prefix="busway-docs-")
    namespace["_scratch"] = (scratch, os.getcwd())
    os.chdir(scratch.name)


def _leave_scratch_dir(namespace: dict[str, Any]) -> None:
    scratch, previous = namespace["_scratch"]
    os.chdir(previous)
    scratch.cleanup()


# The plugin users get through its entry point, loaded here so coverage sees busway's
# import (pyproject.toml turns the entry point off with -p no:busway).
pytest_plugins = ["busway.testing.plugin"]

pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["*.md"],
    excludes=["CHANGELOG.md"],
    setup=_enter_scratch_dir,
    teardown=_leave_scratch_dir,
).pytest()
