"""Run the ``>>>`` examples in the docstrings of every public module (each public name has one)."""

import doctest
import importlib

import jax
import pytest

MODULES = [
    "lss_jax.vamp",
    "lss_jax.propagator",
    "lss_jax.scaling",
    "lss_jax.decoder",
    "lss_jax.decoder.coordinates",
    "lss_jax.decoder.flow",
    "lss_jax.decoder.wgan",
    "lss_jax.decoder.support",
    "lss_jax.decoder.knn",
    "lss_jax._devices",
    "lss_jax.train",
    "lss_jax.encoder",
    "lss_jax.lss",
    "lss_jax._io",
    "lss_jax.config",
    "lss_jax.model_io",
    "lss_jax.simulate",
    "lss_jax.checkpoint",
    "lss_jax.ensemble",
    "lss_jax.adaptive.acquisition",
    "lss_jax.adaptive.four_well",
    "lss_jax.data.featurize",
    "lss_jax.data.pairs",
    "lss_jax.data.stream",
    "lss_jax.systems.four_well",
    "lss_jax.analysis.msm",
    "lss_jax.analysis.smoluchowski",
    "lss_jax.analysis.structure",
    "lss_jax.analysis.molecular",
    "lss_jax.analysis.consistency",
    "lss_jax.analysis.kinetics",
    "lss_jax.md",
    "lss_jax.datasets",
    "lss_jax.systems.alanine_dipeptide",
    "lss_jax.systems.trp_cage",
]


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
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
