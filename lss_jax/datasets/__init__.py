"""The built-in data: trajectories shipped with the package, their loaders and re-simulation.

Implemented per system in :mod:`lss_jax.systems`; this module is their index.

Example:
    >>> load_alanine_dipeptide("train", stride=500).n_frames
    50
"""

from lss_jax.systems import cache_dir
from lss_jax.systems.alanine_dipeptide import (
    alanine_dipeptide_files,
    load_alanine_dipeptide,
    simulate_alanine_dipeptide,
)
from lss_jax.systems.rare_state import rare_state_features, rare_state_timescale
from lss_jax.systems.trp_cage import load_trp_cage, simulate_trp_cage, trp_cage_files
from lss_jax.systems.villin import load_villin, simulate_villin

__all__ = ["alanine_dipeptide_files", "cache_dir", "load_alanine_dipeptide", "load_trp_cage", "load_villin",
           "rare_state_features", "rare_state_timescale", "simulate_alanine_dipeptide", "simulate_trp_cage",
           "simulate_villin", "trp_cage_files"]
