"""A web chat on busway: rooms and messages as event-sourced aggregates, one SQLite file.

Commands (open, join, post, edit, delete, leave) go through an ``AsyncCommandBus`` into
``Room`` and ``Message`` aggregates; a projection keeps rooms, members and messages in
tables of the same file, paged by cursor; a saga welcomes each member who joins, once.
:class:`examples.chat.service.Chat` wires it all up.
"""
