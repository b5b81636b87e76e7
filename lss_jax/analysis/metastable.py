"""Metastable-state kinetics: k-means on reference (MD) coordinates, a reversible MSM and PCCA+ sets, applied
unchanged to other data (float64 NumPy/SciPy + deeptime, host side).

:func:`metastable_msm` fits the state definition once on the MD (optionally in its TICA coordinates,
:mod:`lss_jax.analysis.tica`); :func:`metastable_kinetics` estimates, from any data assigned to those states,
the populations, stationary distribution, coarse transition matrix, equilibrium flux and mean first-passage
times of the metastable sets, with bootstrap errors.

Conventions:

* **Flux** is the *gross* equilibrium flux ``F_IJ = pi_I P_IJ(tau) / tau`` between metastable sets (per unit
  time, diagonal 0); the *net* flux ``max(F_IJ - F_JI, 0)`` is returned beside it (zero for the reversible
  estimator, nonzero only with ``reversible=False``).
* **MFPT** between sets as :func:`lss_jax.analysis.msm.mfpt_between_sets`, on the microstate MSM.
* Disconnected MSM states: every MSM is estimated on the **largest strongly connected set** of its count
  matrix (:func:`lss_jax.analysis.msm.reversible_transition_matrix`); results report ``n_active`` and
  ``active_fraction`` and a warning names the dropped clusters.

References:
    Prinz, J.-H. et al. "Markov models of molecular kinetics: generation and validation", J. Chem. Phys.
    134, 174105 (2011).
    Roeblitz, S. & Weber, M. "Fuzzy spectral clustering by PCCA+", Adv. Data Anal. Classif. 7, 147 (2013).
    Arthur, D. & Vassilvitskii, S. "k-means++: the advantages of careful seeding", SODA (2007).
    Efron, B. & Tibshirani, R. J. An Introduction to the Bootstrap (1993).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import scipy.spatial
from deeptime.clustering import KMeans

from lss_jax.analysis._common import as_series_list, bootstrap_units, check_int, check_positive
from lss_jax.analysis.msm import (
    coarse_transition_matrix,
    count_matrix,
    estimate_transition_matrix,
    implied_timescales_from_matrix,
    mfpt_to_set,
    pcca_memberships,
    reversible_transition_matrix,
)
from lss_jax.analysis.tica import fit_tica, project

__all__ = ["MetastableModel", "metastable_msm", "assign_microstates", "assign_metastable", "metastable_kinetics"]


class MetastableModel(NamedTuple):
    """Clustering, MSM and PCCA+ fitted on reference data; applied unchanged to other data.

    Example:
        >>> x = np.repeat([0.0, 5.0] * 20, 50)[:, None] + np.random.default_rng(0).normal(0, 0.1, (2000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=4)
        >>> model.n_clusters, model.n_metastable, model.memberships.shape
        (4, 2, (4, 2))

    Attributes:
        projection_mean: ``[n_features]`` TICA mean, or ``None`` (data clustered as given).
        projection: ``[n_features, tica_dim]`` TICA coefficients, or ``None``.
        centers: ``[n_clusters, d]`` k-means centres (in projected coordinates).
        lag: MSM lag in reference frames.
        active_set: ``[n_active]`` clusters in the largest strongly connected set of the reference counts.
        transition_matrix: ``[n_active, n_active]`` reversible MSM.
        stationary_distribution: ``[n_active]``.
        memberships: ``[n_active, n_metastable]`` PCCA+ memberships.
        cluster_sets: ``[n_clusters]`` crisp metastable set of every cluster; clusters outside the active set
            take the set of the nearest active centre.
        timescales: ``[n_metastable - 1]`` slowest implied timescales of the MSM, in frames; sets are only
            metastable at this lag if these exceed ``lag`` (:func:`metastable_msm` warns otherwise).
    """

    projection_mean: np.ndarray | None
    projection: np.ndarray | None
    centers: np.ndarray
    lag: int
    active_set: np.ndarray
    transition_matrix: np.ndarray
    stationary_distribution: np.ndarray
    memberships: np.ndarray
    cluster_sets: np.ndarray
    timescales: np.ndarray

    @property
    def n_metastable(self) -> int:
        return int(self.memberships.shape[1])

    @property
    def n_clusters(self) -> int:
        return int(self.centers.shape[0])


def _model_inputs(model: MetastableModel, data, name: str) -> list[np.ndarray]:
    if not isinstance(model, MetastableModel):
        raise ValueError(f"model must be a MetastableModel from metastable_msm, got {type(model).__name__}.")
    data = as_series_list(data, name, ndim=2)
    if model.projection is not None:
        if data[0].shape[1] != model.projection.shape[0]:
            raise ValueError(f"{name} has {data[0].shape[1]} features; the model was fitted on {model.projection.shape[0]}.")
        data = project(data, (model.projection_mean, model.projection))
    elif data[0].shape[1] != model.centers.shape[1]:
        raise ValueError(f"{name} has {data[0].shape[1]} columns; the model's clusters live in {model.centers.shape[1]}.")
    return data


def assign_microstates(model: MetastableModel, data) -> list[np.ndarray]:
    """Nearest k-means centre of every frame (after the model's TICA projection, if any).

    Args:
        model: from :func:`metastable_msm`.
        data: ``[n_frames, n_features]`` or a list of them.

    Returns:
        list of ``[n_frames]`` int64 cluster indices, one per trajectory.

    Example:
        >>> x = np.repeat([0.0, 5.0] * 20, 50)[:, None] + np.random.default_rng(0).normal(0, 0.1, (2000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=4)
        >>> [d.shape for d in assign_microstates(model, [x[:10], x[10:]])]
        [(10,), (1990,)]
    """
    tree = scipy.spatial.cKDTree(model.centers)
    return [tree.query(x)[1].astype(np.int64) for x in _model_inputs(model, data, "data")]


def assign_metastable(model: MetastableModel, data) -> list[np.ndarray]:
    """Crisp metastable set of every frame: the set of its cluster (:attr:`MetastableModel.cluster_sets`).

    Returns:
        list of ``[n_frames]`` int64 set labels in ``[0, n_metastable)``, one per trajectory.

    Example:
        >>> x = np.repeat([0.0, 5.0] * 20, 50)[:, None] + np.random.default_rng(0).normal(0, 0.1, (2000, 1))
        >>> labels = assign_metastable(metastable_msm(x, lag=1, n_clusters=4), np.array([[0.0], [5.0], [0.1]]))[0]
        >>> bool(labels[0] == labels[2] != labels[1])
        True
    """
    return [model.cluster_sets[d] for d in assign_microstates(model, data)]


def metastable_msm(
    md_features_or_tics,
    lag: int,
    *,
    n_clusters: int = 100,
    n_metastable: int = 2,
    seed: int = 0,
    tica_lag: int | None = None,
    tica_dim: int = 2,
    max_iter: int = 500,
) -> MetastableModel:
    """k-means + reversible MSM + PCCA+ on reference (MD) data: the state definition shared by all data sets.

    Steps: optional TICA (``tica_lag`` given: fitted here and stored, so other data is projected the same
    way); k-means (deeptime, k-means++ with ``fixed_seed=seed``, single-threaded so it is reproducible) on
    all frames; counts at ``lag``; the reversible MSM on the largest strongly connected set
    (:func:`lss_jax.analysis.msm.reversible_transition_matrix`; dropped clusters are reported in a warning and
    mapped to the set of the nearest active centre); PCCA+ (:func:`lss_jax.analysis.msm.pcca_memberships`).

    Args:
        md_features_or_tics: ``[n_frames, d]`` or a list of them (one per trajectory): TICs to cluster, or
            features if ``tica_lag`` is given.
        lag: MSM lag in frames.
        n_clusters: k-means clusters.
        n_metastable: PCCA+ sets (>= 2).
        seed: k-means seed.
        tica_lag: TICA lag in frames, or ``None`` to cluster the input as is.
        tica_dim: TICs kept when ``tica_lag`` is given.
        max_iter: k-means iterations.

    Returns:
        :class:`MetastableModel`.

    References:
        Prinz et al., J. Chem. Phys. 134, 174105 (2011); Roeblitz & Weber (2013); Arthur & Vassilvitskii,
        "k-means++" (2007).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.repeat(rng.integers(0, 2, 40), 50)[:, None] * 5.0 + rng.normal(0, 0.3, (2000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=6, n_metastable=2)
        >>> sorted(set(model.cluster_sets[np.argsort(model.centers[:, 0])].tolist()))
        [0, 1]
    """
    lag = check_int(lag, "lag")
    n_clusters = check_int(n_clusters, "n_clusters")
    n_metastable = check_int(n_metastable, "n_metastable", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    data = as_series_list(md_features_or_tics, "md_features_or_tics", ndim=2)
    mean = coefficients = None
    if tica_lag is not None:
        mean, coefficients = fit_tica(data, tica_lag, dim=tica_dim)
        data = project(data, (mean, coefficients))
    pooled = np.concatenate(data)
    if pooled.shape[0] < n_clusters:
        raise ValueError(f"{pooled.shape[0]} frames cannot form {n_clusters} clusters; use fewer clusters.")
    kmeans = KMeans(n_clusters, max_iter=max_iter, init_strategy="kmeans++", fixed_seed=seed, n_jobs=1)
    centers = np.asarray(kmeans.fit(pooled).fetch_model().cluster_centers, np.float64)
    tree = scipy.spatial.cKDTree(centers)
    dtrajs = [tree.query(x)[1].astype(np.int64) for x in data]
    counts = count_matrix(dtrajs, n_clusters, lag)
    if counts.sum() == 0:
        raise ValueError(f"every trajectory is at most {lag} frames long; lower the lag.")
    T, pi, active = reversible_transition_matrix(counts)
    if active.size < n_clusters:
        warnings.warn(
            f"metastable_msm: the MSM uses the largest connected set, {active.size} of {n_clusters} clusters; "
            f"clusters {np.setdiff1d(np.arange(n_clusters), active).tolist()} take the set of the nearest active centre.",
            stacklevel=2,
        )
    if n_metastable > active.size:
        raise ValueError(f"n_metastable={n_metastable} exceeds the {active.size} connected clusters; use fewer sets.")
    timescales = implied_timescales_from_matrix(T, pi, float(lag), n_metastable - 1)
    if not np.all(timescales > lag):
        warnings.warn(
            f"metastable_msm: implied timescales {np.round(timescales, 2).tolist()} frames do not all exceed the lag "
            f"({lag} frames): at this lag the MSM resolves fewer than {n_metastable} metastable sets; PCCA+ may split "
            "off sparsely sampled clusters. Use a shorter lag or fewer sets.",
            stacklevel=2,
        )
    memberships, assignments = pcca_memberships(T, n_metastable, stationary=pi)
    empty = np.setdiff1d(np.arange(n_metastable), assignments)
    if empty.size:
        warnings.warn(
            f"metastable_msm: PCCA+ set(s) {empty.tolist()} own no cluster outright (their memberships never win); "
            f"the data resolve fewer than n_metastable={n_metastable} metastable sets, so use fewer.",
            stacklevel=2,
        )
    cluster_sets = np.empty(n_clusters, np.int64)
    cluster_sets[active] = assignments
    inactive = np.setdiff1d(np.arange(n_clusters), active)
    if inactive.size:
        nearest = scipy.spatial.cKDTree(centers[active]).query(centers[inactive])[1]
        cluster_sets[inactive] = assignments[nearest]
    return MetastableModel(mean, coefficients, centers, lag, active, T, pi, memberships, cluster_sets, timescales)


def _metastable_estimate(counts, set_frames, cluster_sets, n_sets, lag_time, reversible) -> dict[str, np.ndarray]:
    nan_m = np.full((n_sets, n_sets), np.nan)
    out = {"populations": set_frames / max(set_frames.sum(), 1.0)}
    try:
        T, pi, active = estimate_transition_matrix(counts, reversible=reversible)
    except (ValueError, np.linalg.LinAlgError):
        out.update(stationary_distribution=np.full(n_sets, np.nan), transition_matrix=nan_m, gross_flux=nan_m,
                   net_flux=nan_m, mfpt=nan_m, n_active=0, active_fraction=0.0)
        return out
    labels = cluster_sets[active]
    P, pi_sets = coarse_transition_matrix(T, pi, labels, n_sets)
    gross = pi_sets[:, None] * P / lag_time
    np.fill_diagonal(gross, 0.0)
    mfpt = np.full((n_sets, n_sets), np.nan)
    for j in range(n_sets):
        target = np.flatnonzero(labels == j)
        if target.size == 0:
            continue
        m = mfpt_to_set(T, target, lag_time=lag_time)
        for i in range(n_sets):
            origin = labels == i
            if origin.any():
                mfpt[i, j] = np.sum(pi[origin] * m[origin]) / np.sum(pi[origin])
    out.update(
        stationary_distribution=pi_sets,
        transition_matrix=P,
        gross_flux=gross,
        net_flux=np.maximum(gross - gross.T, 0.0),
        mfpt=mfpt,
        n_active=int(active.size),
        active_fraction=float(counts[np.ix_(active, active)].sum() / max(counts.sum(), 1.0)),
    )
    return out


def metastable_kinetics(
    model: MetastableModel,
    data,
    *,
    lag: int,
    frame_time: float = 1.0,
    reversible: bool = True,
    n_bootstrap: int = 100,
    n_blocks: int = 20,
    seed: int = 0,
) -> dict:
    """Populations, stationary distribution, coarse transition matrix, flux and MFPTs of the model's metastable sets.

    ``data`` (MD or generated trajectories) is assigned to the model's clusters and sets
    (:func:`assign_microstates`); a microstate MSM is estimated from *this* data at ``lag``
    (reversible or not; largest connected set); set quantities follow from it: ``stationary_distribution``
    (MSM weight of each set), ``transition_matrix`` (:func:`lss_jax.analysis.msm.coarse_transition_matrix`),
    ``gross_flux`` ``pi_I P_IJ / lag_time`` and ``net_flux``, and ``mfpt`` (row I, column J: from I to J,
    :func:`lss_jax.analysis.msm.mfpt_between_sets` on the microstate MSM). ``populations`` are plain frame
    fractions per set.

    Errors are bootstrap standard deviations: trajectories are resampled with replacement; with fewer than
    ``n_blocks`` trajectories each is cut into contiguous blocks first (a single long MD trajectory becomes
    ``n_blocks`` blocks, none shorter than ``10 * lag`` frames), and more than 100 units are grouped
    round-robin into 100. Blocks should be much longer than the slowest relaxation time for honest errors.

    Args:
        model: from :func:`metastable_msm`.
        data: ``[n_frames, d]`` or a list of them, in the model's input space.
        lag: MSM lag in frames of ``data``.
        frame_time: time between frames of ``data`` (sets the unit of ``mfpt`` and flux).
        reversible: detailed-balance estimator (True) or row-normalized counts on the connected set.
        n_bootstrap: bootstrap replicates (0: no errors).
        n_blocks: minimum number of bootstrap units.
        seed: bootstrap seed.

    Returns:
        dict of float64 arrays ``populations [m]``, ``stationary_distribution [m]``, ``transition_matrix [m, m]``,
        ``gross_flux [m, m]``, ``net_flux [m, m]``, ``mfpt [m, m]``, each with a ``<key>_err`` twin (nan
        where undefined), and ``n_active``, ``active_fraction`` (fraction of transition counts inside the
        MSM's connected set), ``lag``, ``lag_time``, ``n_units``.

    References:
        Prinz et al., J. Chem. Phys. 134, 174105 (2011); Efron & Tibshirani, An Introduction to the Bootstrap (1993).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.repeat(rng.integers(0, 2, 200), 50)[:, None] * 5.0 + rng.normal(0, 0.3, (10_000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=6)
        >>> kin = metastable_kinetics(model, x, lag=1, frame_time=2.0, n_bootstrap=20)
        >>> kin["populations"].shape, kin["mfpt"].shape, bool(np.all(kin["populations_err"] > 0))
        ((2,), (2, 2), True)
    """
    lag = check_int(lag, "lag")
    frame_time = check_positive(frame_time, "frame_time")
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    n_blocks = check_int(n_blocks, "n_blocks")
    seed = check_int(seed, "seed", minimum=0)
    dtrajs = assign_microstates(model, data)
    n, m = model.n_clusters, model.n_metastable
    units = bootstrap_units(dtrajs, n_blocks, min_length=10 * lag)
    unit_counts = np.stack([count_matrix(u, n, lag) for u in units])
    unit_sets = np.stack([np.bincount(model.cluster_sets[np.concatenate(u)], minlength=m) for u in units]).astype(float)
    lag_time = lag * frame_time
    estimate = _metastable_estimate(unit_counts.sum(0), unit_sets.sum(0), model.cluster_sets, m, lag_time, reversible)
    if estimate["n_active"] and estimate["n_active"] < len(np.unique(np.concatenate(dtrajs))):
        warnings.warn(
            f"metastable_kinetics: the MSM of this data uses its largest connected set ({estimate['n_active']} "
            f"clusters, {estimate['active_fraction']:.4f} of the transition counts).",
            stacklevel=2,
        )
    keys = ("populations", "stationary_distribution", "transition_matrix", "gross_flux", "net_flux", "mfpt")
    rng = np.random.default_rng(seed)
    samples: dict[str, list] = {k: [] for k in keys}
    for _ in range(n_bootstrap):
        w = np.bincount(rng.integers(0, len(units), len(units)), minlength=len(units)).astype(float)
        rep = _metastable_estimate(np.tensordot(w, unit_counts, 1), w @ unit_sets, model.cluster_sets, m, lag_time,
                                   reversible)
        for k in keys:
            samples[k].append(rep[k])
    out = dict(estimate)
    for k in keys:
        if n_bootstrap >= 2:
            s = np.stack(samples[k])
            ok = np.isfinite(s)
            n_ok = ok.sum(0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(ok, s, 0.0).sum(0) / np.maximum(n_ok, 1)
                var = np.where(ok, (s - mean) ** 2, 0.0).sum(0) / np.maximum(n_ok - 1, 1)
            out[f"{k}_err"] = np.where(n_ok >= 2, np.sqrt(var), np.nan)
        else:
            out[f"{k}_err"] = np.full_like(np.asarray(estimate[k], float), np.nan)
    out.update(lag=lag, lag_time=lag_time, n_units=len(units))
    return out
