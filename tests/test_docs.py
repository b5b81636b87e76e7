"""Run the ``>>>`` examples in the docstrings of every public module (each public name has one)."""

import doctest
import importlib
import pkgutil

import jax
import pytest

import lss_jax

# Every module of the package is collected (a new module cannot be missed); the ones below run no example (none, or
# all marked +SKIP), each for the reason given, and the test fails if one of them gains examples, so the list stays true.
WITHOUT_EXAMPLES = {
    "lss_jax._progress": "a tqdm switch (LSS_JAX_NO_PROGRESS); no computation to show",
    "lss_jax.adaptive": "re-exports only",
    "lss_jax.adaptive.rounds": "OpenMM rounds that take minutes; tests/test_adaptive_md.py runs them",
    "lss_jax.analysis": "re-exports only",
    "lss_jax.analysis.plots": "matplotlib figures; tests/test_molecular.py draws them",
    "lss_jax.cli": "the command line; tests/test_cli_help.py and tests/test_bad_input.py call it",
    "lss_jax.cli.commands": "the command line; tests/test_cli_help.py and tests/test_bad_input.py call it",
    "lss_jax.cli.config": "the command line; tests/test_bad_input.py covers --config",
    "lss_jax.cli.parser": "the command line; tests/test_cli_help.py reads every option",
    "lss_jax.data": "re-exports only",
    "lss_jax.export": "needs a trained model; tests/test_model.py exports and runs one",
    "lss_jax.model": "its examples train a model (a minute or more, +SKIP); tests/test_model.py fits models",
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
