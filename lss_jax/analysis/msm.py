"""Histogram free energies and Markov-state-model implied timescales (float64 NumPy, host side).

These estimators are applied identically to reference data (MD/BD) and to LSS trajectories, so any
difference between the two comes from the dynamics, not from the analysis.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

__all__ = [
    "histogram_free_energy",
    "free_energy_rmse",
    "count_matrix",
    "reversible_transition_matrix",
    "implied_timescales_from_matrix",
    "msm_implied_timescales",
]


def histogram_free_energy(samples, edges, *, kT: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Free energy ``F = -kT ln p`` of the histogram of ``samples`` on ``edges``.

    Args:
        samples: any shape, flattened (1-D data).
        edges: ``[n_bins + 1]`` bin edges.
        kT: thermal energy.

    Returns:
        ``(F [n_bins], p [n_bins])``: probabilities per bin (summing to the fraction of samples inside
        the edges) and free energies, ``inf`` in empty bins.

    Example:
        >>> f, p = histogram_free_energy([0.1, 0.2, 0.7, 1.5], edges=[0.0, 0.5, 1.0])
        >>> p.tolist(), f.round(3).tolist()   # 1.5 lies outside the edges
        ([0.5, 0.25], [0.693, 1.386])
    """
    samples = np.asarray(samples, dtype=np.float64).ravel()
    counts, _ = np.histogram(samples, edges)
    p = counts / max(samples.size, 1)
    with np.errstate(divide="ignore"):
        return -kT * np.log(p), p


def free_energy_rmse(f_model, f_reference, mask=None) -> float:
    """RMSE between two free-energy profiles after removing the best additive constant.

    Args:
        f_model, f_reference: ``[n_bins]`` profiles (same bins, same energy unit).
        mask: ``[n_bins]`` bins to compare (default: where both are finite).

    Returns:
        ``sqrt(mean((d - mean d)^2))`` with ``d = f_model - f_reference`` over the mask; the shift by
        ``mean d`` is the constant that minimizes the RMSE.

    Example:
        >>> free_energy_rmse([1.0, 2.0, np.inf], [0.0, 1.0, 3.0])   # constant shift, empty bin ignored
        0.0
        >>> free_energy_rmse([0.0, 1.0], [0.0, 0.0])
        0.5
    """
    f_model, f_reference = np.asarray(f_model, np.float64), np.asarray(f_reference, np.float64)
    finite = np.isfinite(f_model) & np.isfinite(f_reference)
    mask = finite if mask is None else (np.asarray(mask, bool) & finite)
    if not mask.any():
        raise ValueError("no bin is populated in both profiles; widen the bins or generate more data.")
    d = f_model[mask] - f_reference[mask]
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


def count_matrix(dtrajs: Sequence[np.ndarray] | np.ndarray, n_states: int, lag: int) -> np.ndarray:
    """Transition counts ``C[i, j]`` of ``i -> j`` at ``lag`` frames, summed over trajectories.

    Args:
        dtrajs: one integer trajectory ``[n_frames]``, a ``[n_traj, n_frames]`` array, or a list of them;
            pairs never straddle two trajectories.
        n_states: number of states.
        lag: lag in frames (>= 1).

    Example:
        >>> count_matrix([np.array([0, 0, 1, 1]), np.array([1, 0])], n_states=2, lag=1).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    if lag < 1:
        raise ValueError(f"lag must be >= 1 frame, got {lag}.")
    if isinstance(dtrajs, np.ndarray) and dtrajs.ndim == 1:
        dtrajs = [dtrajs]
    counts = np.zeros((n_states, n_states))
    for d in dtrajs:
        d = np.asarray(d)
        if d.shape[-1] <= lag:
            continue
        np.add.at(counts, (d[..., :-lag].ravel(), d[..., lag:].ravel()), 1.0)
    return counts


def reversible_transition_matrix(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reversible MSM from the symmetrized counts of the largest strongly connected set.

    Uses ``T = (C + C^T) / rowsum(C + C^T)``, the detailed-balance estimator appropriate for
    equilibrium data; its stationary distribution is ``rowsum / total``.

    Returns:
        ``(T [k, k], stationary [k], active_states [k])``.

    Example:
        >>> T, stationary, active = reversible_transition_matrix(np.array([[8.0, 2.0], [2.0, 8.0]]))
        >>> T.tolist(), stationary.tolist(), active.tolist()
        ([[0.8, 0.2], [0.2, 0.8]], [0.5, 0.5], [0, 1])
    """
    counts = np.asarray(counts, np.float64)
    sym = counts + counts.T
    _, labels = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(counts > 0), connection="strong")
    visited = sym.sum(axis=1) > 0
    if not visited.any():
        raise ValueError("the count matrix is empty; the trajectories are shorter than the lag.")
    sizes = np.bincount(labels[visited])
    active = np.flatnonzero(visited & (labels == np.argmax(sizes)))
    sym = sym[np.ix_(active, active)]
    rows = sym.sum(axis=1)
    return sym / rows[:, None], rows / rows.sum(), active


def implied_timescales_from_matrix(transition_matrix, stationary, lag_time: float, k: int) -> np.ndarray:
    """The ``k`` slowest implied timescales ``-lag_time / ln|lambda_i|`` of a reversible transition matrix.

    Example:
        >>> T = np.array([[0.8, 0.2], [0.2, 0.8]])   # second eigenvalue 0.6
        >>> implied_timescales_from_matrix(T, np.array([0.5, 0.5]), lag_time=1.0, k=1).round(4).tolist()
        [1.9576]
    """
    s = np.sqrt(stationary)
    sym = s[:, None] * transition_matrix / s[None, :]
    eig = np.sort(np.abs(np.linalg.eigvalsh(0.5 * (sym + sym.T))))[::-1]
    eig = np.clip(eig[1 : k + 1], 1e-300, 1 - 1e-15)
    out = np.full(k, np.nan)
    out[: eig.size] = -lag_time / np.log(eig)
    return out


def msm_implied_timescales(dtrajs, n_states: int, lag: int, *, k: int = 3, frame_time: float = 1.0) -> np.ndarray:
    """Implied timescales ``[k]`` (in units of ``frame_time``) of a reversible MSM at ``lag`` frames.

    Example:
        >>> dtraj = np.array(([0] * 25 + [1] * 25) * 2)
        >>> msm_implied_timescales(dtraj, n_states=2, lag=1, k=1).round(1).tolist()
        [16.0]
        >>> msm_implied_timescales(dtraj, n_states=2, lag=1, k=1, frame_time=0.5).round(1).tolist()
        [8.0]
    """
    t, pi, _ = reversible_transition_matrix(count_matrix(dtrajs, n_states, lag))
    return implied_timescales_from_matrix(t, pi, lag * frame_time, k)
