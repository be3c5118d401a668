"""The ``busway`` command: look inside event stores and the subscriptions that follow them.

It needs the ``cli`` extra (``pip install "busway[cli]"``); ``import busway`` never imports
it, nor what it uses.
"""

from ._main import main

__all__ = ["main"]
