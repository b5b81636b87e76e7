"""Validation analysis: free energies, implied timescales, exact references."""

from lss_jax.analysis.msm import (
    count_matrix,
    free_energy_rmse,
    histogram_free_energy,
    implied_timescales_from_matrix,
    msm_implied_timescales,
    propagator_transition_matrix,
    rebin,
    reversible_transition_matrix,
    stationary_distribution,
)
from lss_jax.analysis.smoluchowski import SmoluchowskiReference, smoluchowski_reference

__all__ = [
    "SmoluchowskiReference",
    "count_matrix",
    "free_energy_rmse",
    "histogram_free_energy",
    "implied_timescales_from_matrix",
    "msm_implied_timescales",
    "propagator_transition_matrix",
    "rebin",
    "reversible_transition_matrix",
    "smoluchowski_reference",
    "stationary_distribution",
]
