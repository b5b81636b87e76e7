"""Griffe extension for the docs build: read lss_jax's Napoleon-flavoured Google docstrings as griffe does.

Two conventions of the docstrings that griffe's Google parser does not know, rewritten in the text griffe
parses (the source files and the doctests are untouched):

* doctest sections are titled ``Example:`` (singular, as Napoleon accepts); griffe knows only
  ``Examples:`` and would render a singular ``Example:`` as an admonition of plain Markdown, in which
  ``>>>`` lines become block quotes and doctest output such as ``[(10,), (1990,)]`` is read as a link;
* cross-references are Sphinx roles (``:func:`fit_lss```, ``:class:`~lss_jax.model.LSSModel```), which
  Markdown shows verbatim; they become code spans (``fit_lss``, ``LSSModel``: a leading ``~`` keeps the last
  component, as in Sphinx).
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc|const):`([^`]+)`")


def _code_span(match: re.Match) -> str:
    target = match.group(1).strip()
    titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", target)
    if titled:
        return f"`{titled.group(1)}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


class NapoleonConventions(griffe.Extension):
    """Rename ``Example:`` section titles to ``Examples:`` and turn Sphinx roles into code spans."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE_TITLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _SPHINX_ROLE.sub(_code_span, text)
