"""Runnable examples of busline: ``python -m examples.orders``, ``python -m examples.booking``."""
