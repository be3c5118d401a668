"""Show the reStructuredText roles of busway's docstrings as code in the API reference.

Docstrings name other objects as ``:class:`Name``` (read as code by editors and by help());
Markdown has no such roles, so the reference would show them as typed. This griffe
extension, which mkdocs.yml loads for mkdocstrings, turns each into a code span: the name,
or its last part for ``~a.b.Name``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:attr|class|data|exc|func|meth|mod|obj):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    short, name = match.groups()
    return f"`{name.rpartition('.')[2] if short else name}`"


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
