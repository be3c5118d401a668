"""Three worker processes sharing a projection and a saga on PostgreSQL:
``python -m examples.workers``."""
