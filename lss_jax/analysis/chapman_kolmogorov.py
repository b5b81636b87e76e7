"""The Chapman-Kolmogorov test of a Markov model on a set partition: ``P(tau)^k`` against ``P(k tau)``
(float64 NumPy, host side), with bootstrap errors over trajectories.

A Markovian model started in a set at equilibrium predicts, by powers of its lag-tau transition matrix, the
probabilities that an MSM estimated directly at ``k tau`` measures. :func:`chapman_kolmogorov` tests an MSM
estimated from the data, or any precomputed matrix (e.g. a propagator's,
:func:`lss_jax.analysis.consistency.latent_chapman_kolmogorov`); :func:`lss_jax.analysis.plots.plot_chapman_kolmogorov`
draws the result.

References:
    Prinz, J.-H. et al. "Markov models of molecular kinetics: generation and validation", J. Chem. Phys.
    134, 174105 (2011), Sec. IV.C.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from lss_jax.analysis._common import (
    as_dtraj_list,
    bootstrap_units,
    check_int,
    check_states,
    check_transition_matrix,
)
from lss_jax.analysis.msm import count_matrix, estimate_transition_matrix, stationary_distribution

__all__ = ["chapman_kolmogorov"]


def _set_labels(sets, n_states: int) -> tuple[np.ndarray, int]:
    """Set label of every state (-1: in no set) from a label array ``[n_states]`` or a list of index arrays."""
    if isinstance(sets, np.ndarray) and sets.ndim == 1 and np.issubdtype(sets.dtype, np.integer):
        labels = sets.astype(np.int64)
        if labels.size != n_states or (labels.size and labels.min() < -1):
            raise ValueError(f"set labels must be one integer >= -1 per state ({n_states} states), got {labels.tolist()}.")
    else:
        labels = np.full(n_states, -1, np.int64)
        for k, members in enumerate(list(sets)):
            members = check_states(members, n_states, f"sets[{k}]")
            if np.any(labels[members] >= 0):
                raise ValueError("the sets overlap; pass disjoint sets of states.")
            labels[members] = k
    n_sets = int(labels.max()) + 1 if labels.size else 0
    if n_sets < 1 or any(not np.any(labels == k) for k in range(n_sets)):
        raise ValueError("every set must contain at least one state (labels 0..n_sets-1, -1 for none).")
    return labels, n_sets


def _set_propagation(T: np.ndarray, pi: np.ndarray, labels: np.ndarray, n_sets: int, powers: Sequence[int]) -> np.ndarray:
    """``[len(powers), n_sets, n_sets]``: probability to be in J after ``k`` steps from pi restricted to I."""
    M = np.zeros((labels.size, n_sets))
    ok = labels >= 0
    M[np.flatnonzero(ok), labels[ok]] = 1.0
    start = M * pi[:, None]  # [n, n_sets]
    mass = start.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        start = np.where(mass > 0, start / mass, np.nan).T  # [n_sets, n]
    out = []
    current, done = start, 0
    for k in powers:
        for _ in range(k - done):
            current = current @ T
        done = k
        out.append(current @ M)
    return np.stack(out)


def _ck_estimate(count_stack, lag_multiples, labels_full, n_sets, reversible, fixed_T):
    """Predicted and estimated ``[K, n_sets, n_sets]`` from count matrices at lags k tau (stack [K, n, n])."""
    K = len(lag_multiples)
    nan = np.full((n_sets, n_sets), np.nan)
    if fixed_T is not None:
        predicted = _set_propagation(fixed_T, stationary_distribution(fixed_T), labels_full, n_sets, lag_multiples)
    else:
        try:
            T, pi, active = estimate_transition_matrix(count_stack[0], reversible=reversible)
            predicted = _set_propagation(T, pi, labels_full[active], n_sets, lag_multiples)
        except (ValueError, np.linalg.LinAlgError):
            predicted = np.stack([nan] * K)
    estimated = []
    for i in range(K):
        try:
            T, pi, active = estimate_transition_matrix(count_stack[i], reversible=reversible)
            estimated.append(_set_propagation(T, pi, labels_full[active], n_sets, [1])[0])
        except (ValueError, np.linalg.LinAlgError):
            estimated.append(nan)
    return predicted, np.stack(estimated)


def chapman_kolmogorov(
    dtrajs,
    lag: int,
    sets,
    *,
    n_states: int | None = None,
    k_max: int = 5,
    transition_matrix=None,
    reversible: bool = True,
    n_bootstrap: int = 100,
    n_blocks: int = 20,
    n_sigma: float = 4.0,
    seed: int = 0,
) -> dict:
    """Chapman-Kolmogorov test of a Markov model at lag tau on a set partition: ``P(tau)^k`` vs ``P(k tau)``.

    For every set ``I`` the model is started from its stationary distribution restricted to ``I``;
    ``predicted[k-1, I, J]`` is the probability to be in ``J`` after ``k`` steps of the lag-tau MSM,
    ``estimated[k-1, I, J]`` the same for one step of an MSM estimated directly at lag ``k tau``
    (each on its own largest connected set). A Markovian model agrees within errors for every ``k``.

    Errors are bootstrap standard deviations over trajectories (blocks of at least ``10 k_max lag`` frames
    for fewer than ``n_blocks`` trajectories, see :func:`lss_jax.analysis.metastable.metastable_kinetics`);
    ``difference_err`` bootstraps ``predicted - estimated`` itself (the two are correlated, being estimated from the same data), and the test passes when
    ``|predicted - estimated| <= n_sigma * difference_err`` for all ``k >= 2`` (``k >= 1`` with a precomputed
    ``transition_matrix``) and all set pairs. ``n_sigma`` is a per-entry threshold: with ``K`` lags and ``n``
    sets there are about ``K (n - 1) n`` comparisons, and a bootstrap over ``U`` units gives roughly
    t-distributed ratios with ``U - 1`` degrees of freedom, so raise ``n_sigma`` (or the number of units) to
    keep the family-wise false-alarm rate low; ``max_deviation_sigma`` is returned for that reason.

    Args:
        dtrajs: integer microstate trajectory ``[n_frames]`` or a list of them.
        lag: tau in frames.
        sets: set label of every microstate ``[n_states]`` (-1: in no set), or a list of disjoint index arrays.
        n_states: number of microstates (default: ``max(dtrajs) + 1``, or the size of ``transition_matrix``).
        k_max: largest multiple ``K`` of the lag.
        transition_matrix: ``[n_states, n_states]`` precomputed lag-tau matrix to test instead of the MSM
            estimated from ``dtrajs`` (its ``predicted_err`` is then 0).
        reversible: detailed-balance estimator (True) or row-normalized counts.
        n_bootstrap: bootstrap replicates (>= 2).
        n_blocks: minimum number of bootstrap units.
        n_sigma: tolerance of ``passed`` in bootstrap standard deviations.
        seed: bootstrap seed.

    Returns:
        dict with ``lags [K]`` (frames, ``k tau``), ``predicted``, ``estimated``, ``predicted_err``,
        ``estimated_err``, ``difference_err`` (all ``[K, n_sets, n_sets]``), ``max_deviation_sigma`` (largest
        ``|predicted - estimated| / difference_err`` over the tested ``k``) and ``passed`` (bool).

    References:
        Prinz et al., J. Chem. Phys. 134, 174105 (2011), Sec. IV.C.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> T = np.array([[0.9, 0.1], [0.2, 0.8]])
        >>> dtraj = [0]
        >>> for _ in range(20000):
        ...     dtraj.append(int(rng.random() < T[dtraj[-1], 1]))
        >>> result = chapman_kolmogorov(np.array(dtraj), lag=1, sets=np.array([0, 1]), k_max=3)
        >>> result["predicted"].shape, result["passed"]
        ((3, 2, 2), True)
    """
    lag = check_int(lag, "lag")
    k_max = check_int(k_max, "k_max")
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=2)
    n_blocks = check_int(n_blocks, "n_blocks")
    seed = check_int(seed, "seed", minimum=0)
    dtrajs = as_dtraj_list(dtrajs)
    fixed_T = None if transition_matrix is None else check_transition_matrix(transition_matrix)
    seen = max(int(d.max()) + 1 for d in dtrajs if d.size) if any(d.size for d in dtrajs) else 0
    if n_states is None:
        n_states = fixed_T.shape[0] if fixed_T is not None else seen
    n_states = check_int(n_states, "n_states")
    if seen > n_states or (fixed_T is not None and fixed_T.shape[0] != n_states):
        raise ValueError(f"dtrajs use {seen} states but n_states={n_states} (transition_matrix: "
                         f"{None if fixed_T is None else fixed_T.shape[0]}); they must agree.")
    labels, n_sets = _set_labels(sets, n_states)
    multiples = list(range(1, k_max + 1))
    units = bootstrap_units(dtrajs, n_blocks, min_length=10 * k_max * lag)
    unit_counts = np.stack([[count_matrix(u, n_states, k * lag) for k in multiples] for u in units])  # [U, K, n, n]
    if unit_counts[:, -1].sum() == 0:
        raise ValueError(f"no trajectory is longer than k_max * lag = {k_max * lag} frames; lower k_max or lag.")
    predicted, estimated = _ck_estimate(unit_counts.sum(0), multiples, labels, n_sets, reversible, fixed_T)
    rng = np.random.default_rng(seed)
    reps_p, reps_e = [], []
    for _ in range(n_bootstrap):
        w = np.bincount(rng.integers(0, len(units), len(units)), minlength=len(units)).astype(float)
        p, e = _ck_estimate(np.tensordot(w, unit_counts, 1), multiples, labels, n_sets, reversible, fixed_T)
        reps_p.append(p)
        reps_e.append(e)
    reps_p, reps_e = np.stack(reps_p), np.stack(reps_e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan entries (sets never visited) stay nan
        # a fixed matrix has no sampling error (the bootstrap would only add float round-off)
        predicted_err = np.zeros_like(predicted) if fixed_T is not None else np.nanstd(reps_p, axis=0, ddof=1)
        estimated_err = np.nanstd(reps_e, axis=0, ddof=1)
        difference_err = np.nanstd(reps_p - reps_e, axis=0, ddof=1)
        first = 0 if fixed_T is not None else 1  # k = 1 agrees by construction when both come from the data
        deviation = np.abs(predicted - estimated)[first:]
        z = np.where(deviation == 0, 0.0, deviation / np.maximum(difference_err[first:], 1e-300))
        max_sigma = float(np.nanmax(z)) if z.size and np.isfinite(z).any() else 0.0
    return {
        "lags": np.array([k * lag for k in multiples]),
        "predicted": predicted,
        "estimated": estimated,
        "predicted_err": predicted_err,
        "estimated_err": estimated_err,
        "difference_err": difference_err,
        "max_deviation_sigma": max_sigma,
        "passed": bool(max_sigma <= n_sigma),
    }
