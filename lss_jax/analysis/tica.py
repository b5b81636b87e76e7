"""TICA fitted on reference (MD) features and applied unchanged to other data (deeptime, float64 NumPy).

The slow linear coordinates in which the distribution and metastable-state metrics compare MD with generated
trajectories: :func:`fit_tica` on the MD only, :func:`project` for every data set.

References:
    Perez-Hernandez, G. et al. "Identification of slow molecular order parameters for Markov model
    construction", J. Chem. Phys. 139, 015102 (2013) (TICA).
    Noe, F. & Clementi, C. "Kinetic distance and kinetic maps from molecular dynamics simulation",
    J. Chem. Theory Comput. 11, 5002 (2015) (kinetic map).
"""

from __future__ import annotations

import numpy as np
from deeptime.decomposition import TICA

from lss_jax.analysis._common import as_series_list, check_int

__all__ = ["fit_tica", "project"]


def fit_tica(features, lag: int, *, dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Fit TICA (deeptime, kinetic-map scaling) on reference features; returns the linear projection.

    Args:
        features: ``[n_frames, n_features]`` or a list of such arrays (one per trajectory).
        lag: TICA lag in frames.
        dim: number of TICs kept (<= ``n_features``).

    Returns:
        ``(mean [n_features], coefficients [n_features, dim])``: project any data with
        ``(x - mean) @ coefficients`` (:func:`project`); TIC 0 is the slowest.

    References:
        Perez-Hernandez et al., J. Chem. Phys. 139, 015102 (2013); Noe & Clementi, JCTC 11, 5002 (2015)
        (kinetic map).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mean, coefficients = fit_tica(rng.normal(size=(1000, 3)), lag=1)
        >>> mean.shape, coefficients.shape
        ((3,), (3, 2))
    """
    lag = check_int(lag, "lag")
    dim = check_int(dim, "dim")
    features = as_series_list(features, "features", ndim=2)
    if features[0].shape[1] < dim:
        raise ValueError(f"TICA with dim={dim} needs at least {dim} features, got {features[0].shape[1]}.")
    usable = [f for f in features if f.shape[0] > lag]
    if not usable:
        raise ValueError(f"every trajectory is shorter than the TICA lag ({lag} frames); lower the lag.")
    model = TICA(lagtime=lag, dim=dim).fit(usable).fetch_model()
    coefficients = np.asarray(model.instantaneous_coefficients, np.float64)[:, :dim]
    return np.asarray(model.mean_0, np.float64), coefficients


def project(data: list[np.ndarray], projection) -> list[np.ndarray]:
    """``(x - mean) @ coefficients`` of every array in ``data``, with ``projection = (mean, coefficients)``.

    Example:
        >>> [x.tolist() for x in project([np.ones((1, 2))], (np.zeros(2), np.array([[1.0], [2.0]])))]
        [[[3.0]]]
    """
    mean, coefficients = projection
    return [(x - mean) @ coefficients for x in data]
