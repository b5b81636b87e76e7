"""Validation analysis: free energies, implied timescales, exact references.

The modules, one job each: :mod:`~lss_jax.analysis.distributions` (Jensen-Shannon distances, histogram free
energies, block averages), :mod:`~lss_jax.analysis.msm` (Markov state models, first-passage times, PCCA+),
:mod:`~lss_jax.analysis.metastable` (metastable-state kinetics), :mod:`~lss_jax.analysis.torsions`,
:mod:`~lss_jax.analysis.tica`, :mod:`~lss_jax.analysis.lagchoice` (the lag chosen from the data),
:mod:`~lss_jax.analysis.autocorrelation`,
:mod:`~lss_jax.analysis.chapman_kolmogorov`, :mod:`~lss_jax.analysis.compare` (all kinetic metrics, LSS vs
MD), :mod:`~lss_jax.analysis.structure` (structural quality), :mod:`~lss_jax.analysis.conditional` (the
decoder's conditional distributions against MD's nearest frames in latent space), :mod:`~lss_jax.analysis.consistency` (the model
against itself), :mod:`~lss_jax.analysis.smoluchowski` (exact 1-D reference), :mod:`~lss_jax.analysis.molecular`
(the validation report) and :mod:`~lss_jax.analysis.plots` (every figure; no analysis module imports it).
"""

from lss_jax.analysis.distributions import free_energy_rmse, histogram_free_energy, rebin
from lss_jax.analysis.msm import (
    count_matrix,
    implied_timescales_from_matrix,
    msm_implied_timescales,
    propagator_transition_matrix,
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
