"""Runnable examples of busway that stay in the repository: ``python -m examples.booking``."""
