"""Serve the chat: ``python -m examples.chat [PATH] [--port N]``, on 127.0.0.1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from examples.chat.web import create_app, listen, server


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the chat in the SQLite file given (chat.sqlite3 here by default) until ^C."""
    parser = argparse.ArgumentParser(prog="python -m examples.chat", description=__doc__)
    parser.add_argument("path", nargs="?", default="chat.sqlite3", help="the SQLite file")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    sock = listen(args.port)
    host, port = sock.getsockname()
    print(f"chat on http://{host}:{port}/ (data in {args.path}); stop with Ctrl-C", flush=True)
    try:
        server(create_app(args.path), log_level="info").run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises it again once it has shut down cleanly
        print("chat stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
