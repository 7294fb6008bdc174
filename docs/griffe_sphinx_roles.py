"""Griffe extension for the API reference: reStructuredText habits in the docstrings,
read as Markdown.

* Sphinx cross-reference roles (``:class:`Quadratic```, ``:func:`~flatminima.compare```)
  become code spans (a ``~`` keeps the last component only, as in Sphinx).
* Doctest blocks (lines from ``>>>`` to the next blank line) become ``pycon`` code
  blocks, instead of Markdown quotes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`(~?)([^`]+)`")


def _code_span(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _fence_doctests(text: str) -> str:
    out: list[str] = []
    indent = None  # the indentation of the open doctest block, if any
    for line in text.splitlines():
        stripped = line.lstrip()
        if indent is not None and (not stripped or len(line) - len(stripped) < len(indent)):
            out.append(f"{indent}```")
            indent = None
        if indent is None and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
        out.append(line)
    if indent is not None:
        out.append(f"{indent}```")
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrites each docstring when its object is loaded, before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _fence_doctests(ROLE.sub(_code_span, obj.docstring.value))
