"""Griffe extension for the docs build: read the project's ``Example:`` docstring sections as examples.

lss_jax's docstrings are Google style and title their doctest sections ``Example:`` (singular, as
Napoleon accepts). Griffe's Google parser knows only ``Examples:``; it would render a singular ``Example:``
as an admonition of plain Markdown, in which ``>>>`` lines become block quotes and doctest output such as
``[(10,), (1990,)]`` is read as a Markdown link. This extension rewrites the section title (and nothing
else) in the docstring griffe parses; the source and the doctests are untouched.
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section titles to ``Examples:`` before griffe parses the docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_TITLE.sub(r"\1Examples:", obj.docstring.value)
