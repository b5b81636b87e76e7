"""Adaptive sampling with an LSS: ask the model where to run MD next, run it, retrain, repeat.

* :mod:`lss_jax.adaptive.acquisition`: the rule (scores of candidate frames and distinct seeds);
* :mod:`lss_jax.adaptive.rounds`: rounds of seeds -> OpenMM MD -> retraining (``lss-jax adapt``);
* :mod:`lss_jax.adaptive.four_well`: the same rule on the four-well potential against plain MD of equal
  cost, with an exact reference (``lss-jax adapt-four-well``).
"""

from lss_jax.adaptive.acquisition import (
    SeedSelection,
    acquisition_scores,
    combine_scores,
    pick_distinct,
    select_seeds,
    stationary_density,
)
from lss_jax.adaptive.rounds import adaptive_sampling

__all__ = [
    "SeedSelection",
    "acquisition_scores",
    "adaptive_sampling",
    "combine_scores",
    "pick_distinct",
    "select_seeds",
    "stationary_density",
]
