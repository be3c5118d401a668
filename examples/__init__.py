"""Runnable examples of busway: ``python -m examples.orders``, ``python -m examples.booking``."""
