"""``python -m examples.chat`` serves the chat on 127.0.0.1 and stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


def test_the_command_serves_the_page_and_graphql_from_a_file_here(tmp_path: Path) -> None:
    """It prints its URL, serves there, keeps chat.sqlite3 in the working directory."""
    with subprocess.Popen(
        [sys.executable, "-m", "examples.chat", "--port", "0"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("chat on http://127.0.0.1:"), first
            url = first.split()[2]
            with httpx.Client(base_url=url, timeout=10) as http:
                assert 'data-testid="messages"' in http.get("/").text
                query = 'mutation { openRoom(roomId: "r", name: "R", user: "u") { name } }'
                opened = http.post("/graphql", json={"query": query})
                assert {"data": {"openRoom": {"name": "R"}}} == opened.json()
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=10)
    assert 0 == process.returncode, stderr
    assert (tmp_path / "chat.sqlite3").exists()
