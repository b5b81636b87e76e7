"""MD data handling: featurization with mdtraj (:mod:`~lss_jax.data.featurize`) and lagged pairs and
trajectory splits (:mod:`~lss_jax.data.pairs`)."""

from lss_jax.data.featurize import FeatureSpec, feature_names, featurize, load_trajectories
from lss_jax.data.pairs import lagged_pairs, split_trajectories

__all__ = ["FeatureSpec", "featurize", "feature_names", "lagged_pairs", "load_trajectories", "split_trajectories"]
