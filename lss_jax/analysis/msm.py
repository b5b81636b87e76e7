"""Histogram free energies, Markov-state-model implied timescales, and the exact stationary density of a
1-D propagator (float64 NumPy, host side).

These estimators are applied identically to reference data (MD/BD) and to LSS trajectories, so any
difference between the two comes from the dynamics, not from the analysis.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.special

__all__ = [
    "histogram_free_energy",
    "free_energy_rmse",
    "count_matrix",
    "reversible_transition_matrix",
    "implied_timescales_from_matrix",
    "msm_implied_timescales",
    "propagator_transition_matrix",
    "stationary_distribution",
    "rebin",
    "penalized_free_energy_rmse",
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


def propagator_transition_matrix(mixture_fn, params, n_cells: int = 1000, *, boundary: str = "reflect") -> np.ndarray:
    """Transition matrix ``[n_cells, n_cells]`` of a 1-D mixture propagator on a regular grid of the unit box.

    Row ``i`` is the probability that one step of :func:`lss_jax.propagator.rollout` started at the cell
    centre ``u_i = (i + 1/2) / n_cells`` lands in cell ``j``, computed exactly from the Gaussian CDFs
    (no sampling): with ``boundary="reflect"`` the mass of a component on ``[a, b]`` collects all its
    images under the triangle-wave fold, ``[a + 2k, b + 2k]`` and ``[2k - b, 2k - a]``; with ``"clip"``
    the mass beyond a wall goes to the end cell. The stationary distribution and eigenvalues of this
    matrix are those of the learned Markov chain up to the grid's resolution, free of the sampling noise
    of a finite rollout: :func:`stationary_distribution` gives the LSS free energy exactly.

    Args:
        mixture_fn: ``mixture_fn(params, x [N, 1]) -> MixtureParams`` (e.g. :func:`lss_jax.propagator.mdn_apply_fn`).
        params: its parameters.
        n_cells: grid cells on ``[0, 1]``.
        boundary: ``"reflect"`` or ``"clip"`` (``"none"`` leaks mass and has no stationary distribution).

    Example:
        >>> import jax.numpy as jnp
        >>> from lss_jax.propagator import MixtureParams
        >>> fn = lambda p, x: MixtureParams(jnp.zeros((len(x), 1)), jnp.full((len(x), 1, 1), 0.5),
        ...                                 jnp.full((len(x), 1, 1), 0.1))
        >>> T = propagator_transition_matrix(fn, None, 4)
        >>> T.shape, np.allclose(T.sum(1), 1.0), T[0].round(4).tolist()
        ((4, 4), True, [0.0062, 0.4938, 0.4938, 0.0062])
    """
    import jax.numpy as jnp

    if boundary not in ("reflect", "clip"):
        raise ValueError(f"boundary must be 'reflect' or 'clip' for a transition matrix, got {boundary!r}.")
    if n_cells < 2:
        raise ValueError(f"n_cells must be >= 2, got {n_cells}.")
    centers = (np.arange(n_cells) + 0.5) / n_cells
    mixture = mixture_fn(params, jnp.asarray(centers[:, None], jnp.float32))
    if mixture.means.shape[-1] != 1:
        raise ValueError(f"propagator_transition_matrix needs a 1-D latent space, got dimension {mixture.means.shape[-1]}.")
    w = scipy.special.softmax(np.asarray(mixture.logits, np.float64), axis=-1)[:, :, None]  # [N, C, 1]
    mu = np.asarray(mixture.means, np.float64)[..., 0][:, :, None]  # [N, C, 1]
    sd = np.asarray(mixture.scales, np.float64)[..., 0][:, :, None]
    edges = np.linspace(0.0, 1.0, n_cells + 1)

    def cdf(y):  # mixture CDF at y [n_cells + 1] for every start cell, [N, n_cells + 1]
        return np.sum(w * scipy.special.ndtr((y - mu) / sd), axis=1)

    if boundary == "reflect":
        # the fold maps [j, j + 1] onto [0, 1]: shifted by j for even j, mirrored for odd j; only the unit
        # intervals within 9 sd of a mean carry mass above 1e-19
        lo = int(np.floor(float(np.min(mu - 9.0 * sd))))
        hi = int(np.floor(float(np.max(mu + 9.0 * sd))))
        T = sum(np.diff(cdf(edges + j), axis=1) if j % 2 == 0 else -np.diff(cdf(j + 1 - edges), axis=1)
                for j in range(lo, hi + 1))
    else:
        c = cdf(edges)
        c[:, 0], c[:, -1] = 0.0, 1.0  # the tails beyond the walls pile onto the end cells
        T = np.diff(c, axis=1)
    T = np.maximum(T, 0.0)  # rounding in far tails
    return T / T.sum(axis=1, keepdims=True)


def stationary_distribution(transition_matrix) -> np.ndarray:
    """Stationary distribution ``pi`` (``pi T = pi``, ``sum pi = 1``) of a row-stochastic matrix.

    Example:
        >>> stationary_distribution(np.array([[0.9, 0.1], [0.2, 0.8]])).round(4).tolist()
        [0.6667, 0.3333]
    """
    T = np.asarray(transition_matrix, np.float64)
    n = len(T)
    # pi (T - I) = 0 with one equation replaced by sum(pi) = 1: one LU solve, much faster than eig
    a = (T - np.eye(n)).T
    a[-1] = 1.0
    b = np.zeros(n)
    b[-1] = 1.0
    pi = np.clip(np.linalg.solve(a, b), 0.0, None)
    return pi / pi.sum()


def rebin(edges_from, p_from, edges_to) -> np.ndarray:
    """Move probabilities ``p_from`` of cells ``edges_from`` onto bins ``edges_to`` (uniform within a cell).

    Mass outside ``edges_to`` is dropped, so the result sums to the mass inside.

    Example:
        >>> rebin([0.0, 1.0, 2.0], [0.5, 0.5], [0.5, 1.0, 1.5]).tolist()
        [0.25, 0.25]
    """
    cdf = np.concatenate([[0.0], np.cumsum(np.asarray(p_from, np.float64))])
    return np.diff(np.interp(np.asarray(edges_to, np.float64), np.asarray(edges_from, np.float64), cdf))


def penalized_free_energy_rmse(samples, edges, f_exact, mask, *, floor_fraction: float = 1e-3, kT: float = 1.0) -> float:
    """Free-energy RMSE (kT) of ``samples`` against ``f_exact`` over ``mask``, with missing bins penalized.

    Bin probabilities below ``floor_fraction`` times the largest one (empty bins included) are raised to
    that floor before ``F = -kT ln p``; then :func:`lss_jax.analysis.msm.free_energy_rmse` (best additive
    shift) over ``mask``. A region the samples never reach thus costs about ``kT ln(1 / floor_fraction)``
    per bin instead of being skipped.

    Args:
        samples: positions, any shape.
        edges: ``[n_bins + 1]`` bin edges.
        f_exact: ``[n_bins]`` reference free energy.
        mask: ``[n_bins]`` bins to compare.

    Example:
        >>> edges = np.linspace(0, 4, 5)
        >>> f_exact = np.zeros(4)   # flat
        >>> penalized_free_energy_rmse(np.array([0.5, 1.5, 2.5, 3.5]), edges, f_exact, np.ones(4, bool))
        0.0
        >>> round(penalized_free_energy_rmse(np.array([0.5, 1.5]), edges, f_exact, np.ones(4, bool)), 3)
        3.454
    """
    _, p = histogram_free_energy(samples, edges, kT=kT)
    if p.max() <= 0:
        raise ValueError("no sample falls inside the edges.")
    return _penalized_rmse(p, f_exact, mask, floor_fraction, kT)


def _floored_free_energy(p, floor_fraction, kT):
    return -kT * np.log(np.maximum(p, floor_fraction * p.max()))


def _penalized_rmse(p, f_exact, mask, floor_fraction, kT):
    return free_energy_rmse(_floored_free_energy(p, floor_fraction, kT), f_exact, mask)
