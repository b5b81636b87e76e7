"""Run the ``>>>`` examples in the docstrings of every public module (each public name has one), and check that
the README and the pages under docs/ link only to files that exist."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import jax
import pytest

import lss_jax

# Every module of the package is collected (a new module cannot be missed); the ones below run no example (none, or
# all marked +SKIP), each for the reason given, and the test fails if one of them gains examples, so the list stays true.
WITHOUT_EXAMPLES = {
    "lss_jax.engine": "the package: a docstring",
    "lss_jax.engine.progress": "a tqdm switch (LSS_JAX_NO_PROGRESS); no computation to show",
    "lss_jax.adaptive": "re-exports only",
    "lss_jax.adaptive.rounds": "OpenMM rounds that take minutes; tests/test_adaptive_md.py runs them",
    "lss_jax.analysis": "re-exports only",
    "lss_jax.cli": "the command line; tests/test_cli_help.py and tests/test_bad_input.py call it",
    "lss_jax.cli.commands": "the command line; tests/test_cli_help.py and tests/test_bad_input.py call it",
    "lss_jax.cli.config": "the command line; tests/test_bad_input.py covers --config",
    "lss_jax.cli.parser": "the command line; tests/test_cli_help.py reads every option",
    "lss_jax.data": "re-exports only",
    "lss_jax.generation": "the package: a docstring",
    "lss_jax.generation.export": "needs a trained model; tests/test_model.py exports and runs one",
    "lss_jax.pipelines": "re-exports only",
    "lss_jax.pipelines.four_well": "a minutes-long validation; tests/test_four_well.py runs its quick form",
}
MODULES = sorted(m.name for m in pkgutil.walk_packages(lss_jax.__path__, "lss_jax.") if not m.name.endswith("__main__"))


@pytest.fixture(autouse=True)
def _fast_compiles():
    """The examples are tiny, so XLA compile time dominates: skip most optimizations, restore afterwards."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    if name in WITHOUT_EXAMPLES:
        assert result.attempted == 0, f"{name} has examples now: remove it from WITHOUT_EXAMPLES"
        return
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


def test_property_tests_are_derandomized():
    """The hypothesis profile that conftest.py loads fixes the examples (the same on every run and machine)."""
    from hypothesis import settings

    assert settings.default.derandomize and settings.default.database is None


ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^ *```.*?^ *```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target) and ![alt](target "title")


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links and images in ``text`` that point to files: not URLs, not same-page
    anchors, not inside code (fenced blocks, inline spans); the ``#anchor`` of a target is dropped."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", text))
    targets = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def missing_link_targets(page: Path) -> list[str]:
    """The relative link targets of a Markdown file that do not exist, resolved from the file's folder."""
    return [t for t in relative_links(page.read_text(encoding="utf-8")) if not (page.parent / t).resolve().exists()]


def test_the_link_check_sees_broken_links(tmp_path):
    """The checker itself: it must find links, and flag the one that is broken, so a broken one cannot pass."""
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "f.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("see [here](page.md#x), ![F](figures/f.png), [gone](decoder.md), [web](https://x.org)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert relative_links(page.read_text()) == ["page.md", "figures/f.png", "decoder.md"]
    assert missing_link_targets(page) == ["decoder.md"]


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    missing = missing_link_targets(page)
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_readme_links_reach_the_docs_pages():
    """The README is the front door: it must link to the docs pages (a rename that drops them fails here)."""
    links = set(relative_links((ROOT / "README.md").read_text(encoding="utf-8")))
    for page in ("four_well", "alanine_dipeptide", "trp_cage", "decoder", "errors", "cli"):
        assert f"docs/{page}.md" in links


def test_mkdocs_nav_pages_exist():
    """Every page listed in mkdocs.yml's nav exists."""
    nav_pages = re.findall(r"^\s*-\s*[^:#]+:\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"),
                           re.MULTILINE)
    assert len(nav_pages) > 20
    missing = [p for p in nav_pages if not (ROOT / "docs" / p).is_file()]
    assert not missing, f"mkdocs.yml lists pages that do not exist: {missing}"


def test_docs_index_mirrors_the_readme():
    """docs/index.md is the README with its links made relative to docs/ and the CI markers dropped."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").replace("](docs/", "](")
    expected = "\n".join(line for line in readme.split("\n") if not re.fullmatch(r"<!-- [a-z-]+ -->", line))
    assert (ROOT / "docs" / "index.md").read_text(encoding="utf-8") == expected, (
        "docs/index.md differs from README.md: copy the README, rewrite '](docs/' as '](' and drop the "
        "<!-- ...-command --> marker lines")
