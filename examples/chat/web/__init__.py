"""The chat on the web: GraphQL (Strawberry on Starlette), a push WebSocket and one page.

``create_app(path)`` makes the ASGI app; ``python -m examples.chat`` serves it.
"""

from examples.chat.web.app import create_app, listen, server

__all__ = ["create_app", "listen", "server"]
