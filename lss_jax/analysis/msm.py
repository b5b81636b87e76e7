"""Markov state models: transition counts, reversible estimators, implied timescales, stationary
distributions, mean first-passage times and PCCA+ (float64 NumPy/SciPy + deeptime, host side).

These estimators are applied identically to reference data (MD/BD) and to LSS trajectories, so any
difference between the two comes from the dynamics, not from the analysis. The exact transition matrix of a
1-D learned propagator (:func:`propagator_transition_matrix`) gives its stationary density without sampling.

Conventions:

* Disconnected states: an MSM is estimated on the **largest strongly connected set** of its count matrix
  (:func:`reversible_transition_matrix`, :func:`estimate_transition_matrix`), which is returned beside it.
* **MFPT** from set A to set B: the expected first hitting time of B of the MSM started in A with the
  stationary distribution restricted to A (deeptime's ``MarkovStateModel.mfpt`` convention), from the
  linear system ``m_i = tau + sum_j T_ij m_j`` (``i`` not in B), ``m_B = 0``.

References:
    Prinz, J.-H. et al. "Markov models of molecular kinetics: generation and validation", J. Chem. Phys.
    134, 174105 (2011) (reversible MSMs).
    Kemeny, J. G. & Snell, J. L. Finite Markov Chains (1960) (first-passage times).
    Roeblitz, S. & Weber, M. "Fuzzy spectral clustering by PCCA+", Adv. Data Anal. Classif. 7, 147 (2013).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.special
from deeptime.markov import pcca

from lss_jax.analysis._common import check_int, check_positive, check_states, check_transition_matrix

__all__ = [
    "count_matrix",
    "reversible_transition_matrix",
    "estimate_transition_matrix",
    "implied_timescales_from_matrix",
    "msm_implied_timescales",
    "propagator_transition_matrix",
    "stationary_distribution",
    "mfpt_to_set",
    "mfpt_between_sets",
    "coarse_transition_matrix",
    "pcca_memberships",
]


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


def estimate_transition_matrix(counts: np.ndarray, *, reversible: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MSM on the largest strongly connected set of ``counts``: reversible or row-normalized counts.

    ``reversible=True`` is :func:`reversible_transition_matrix`; ``False`` normalizes the rows of the counts on
    the same connected set, with the stationary distribution of the result.

    Returns:
        ``(T [k, k], stationary [k], active_states [k])``.

    Example:
        >>> T, stationary, active = estimate_transition_matrix(np.array([[8.0, 2.0], [4.0, 6.0]]), reversible=False)
        >>> T.tolist(), stationary.round(4).tolist(), active.tolist()
        ([[0.8, 0.2], [0.4, 0.6]], [0.6667, 0.3333], [0, 1])
    """
    T, pi, active = reversible_transition_matrix(counts)
    if not reversible:
        c = counts[np.ix_(active, active)]
        T = c / c.sum(axis=1, keepdims=True)
        pi = stationary_distribution(T)
    return T, pi, active


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


# --------------------------------------------------------------------------------------------------
# first-passage times, coarse graining, PCCA+
# --------------------------------------------------------------------------------------------------


def mfpt_to_set(transition_matrix, target, *, lag_time: float = 1.0) -> np.ndarray:
    """Mean first-passage time of every state to the set ``target`` (float64 linear solve).

    Solves ``m_i = lag_time + sum_j T_ij m_j`` for ``i`` outside ``target`` with ``m_target = 0``,
    i.e. ``(I - T)_NN m_N = lag_time``. States that cannot reach the target get ``inf``.

    Args:
        transition_matrix: ``[n, n]`` row-stochastic matrix at lag ``lag_time``.
        target: state indices of the target set.
        lag_time: time of one step.

    Returns:
        ``[n]`` first-passage times (0 on the target).

    References:
        Kemeny & Snell, Finite Markov Chains (1960), Thm. 4.4.4.

    Example:
        >>> T = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]])
        >>> mfpt_to_set(T, [2]).tolist()
        [8.0, 6.0, 0.0]
    """
    T = check_transition_matrix(transition_matrix)
    lag_time = check_positive(lag_time, "lag_time")
    n = T.shape[0]
    target = check_states(target, n, "target")
    rest = np.setdiff1d(np.arange(n), target)
    out = np.zeros(n)
    if rest.size == 0:
        return out
    a = np.eye(rest.size) - T[np.ix_(rest, rest)]
    # states that cannot reach the target make (I - T)_NN singular: give them inf, solve for the others
    reach = _reaches(T, target)
    ok = reach[rest]
    out[rest[~ok]] = np.inf
    if ok.any():
        out[rest[ok]] = np.linalg.solve(a[np.ix_(ok, ok)], np.full(int(ok.sum()), lag_time))
    return out


def _reaches(T: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Which states reach ``target`` with positive probability (graph search on the reversed edges)."""
    reach = np.zeros(T.shape[0], bool)
    reach[target] = True
    frontier = target
    adjacency_in = T > 0
    while frontier.size:
        new = np.flatnonzero(adjacency_in[:, frontier].any(axis=1) & ~reach)
        reach[new] = True
        frontier = new
    return reach


def mfpt_between_sets(transition_matrix, origin, target, *, stationary=None, lag_time: float = 1.0) -> float:
    """Mean first-passage time from set ``origin`` to set ``target``, started in ``origin`` at equilibrium.

    ``MFPT(A -> B) = sum_{i in A} pi_i m_i / sum_{i in A} pi_i`` with ``m`` from :func:`mfpt_to_set` (the
    convention of deeptime's ``MarkovStateModel.mfpt``). States in both sets contribute 0.

    Args:
        transition_matrix: ``[n, n]`` row-stochastic matrix at lag ``lag_time``.
        origin: state indices of A.
        target: state indices of B.
        stationary: ``[n]`` stationary distribution (default: computed from the matrix).
        lag_time: time of one step.

    Returns:
        the MFPT in units of ``lag_time``.

    References:
        Kemeny & Snell (1960); Prinz et al., J. Chem. Phys. 134, 174105 (2011).

    Example:
        >>> T = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]])
        >>> round(mfpt_between_sets(T, [0, 1], [2]), 4)   # pi = (1/4, 1/2, 1/4): (8/4 + 6/2) / (3/4)
        6.6667
    """
    T = check_transition_matrix(transition_matrix)
    n = T.shape[0]
    origin = check_states(origin, n, "origin")
    pi = stationary_distribution(T) if stationary is None else np.asarray(stationary, np.float64)
    if pi.shape != (n,):
        raise ValueError(f"stationary must have shape [{n}], got {pi.shape}.")
    m = mfpt_to_set(T, target, lag_time=lag_time)
    w = pi[origin]
    if not w.sum() > 0:
        raise ValueError("the origin set has zero stationary probability.")
    return float(np.sum(w * m[origin]) / w.sum())


def coarse_transition_matrix(transition_matrix, stationary, set_of_state, n_sets: int) -> tuple[np.ndarray, np.ndarray]:
    """Equilibrium transition probabilities between sets of a crisp partition.

    ``P_IJ = sum_{i in I} pi_i sum_{j in J} T_ij / pi_I``: the probability to be in ``J`` one lag after
    being in ``I`` at equilibrium (the PCCA+ coarse graining with crisp memberships; non-negative, rows sum
    to 1). Rows of empty sets are ``nan``.

    Args:
        transition_matrix: ``[n, n]``.
        stationary: ``[n]``.
        set_of_state: ``[n]`` integer set label of every state in ``[0, n_sets)``.
        n_sets: number of sets.

    Returns:
        ``(P [n_sets, n_sets], pi_sets [n_sets])``.

    Example:
        >>> T = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]])
        >>> P, pi = coarse_transition_matrix(T, np.full(3, 1 / 3), [0, 0, 1], 2)
        >>> P.round(3).tolist(), pi.round(3).tolist()
        ([[0.95, 0.05], [0.1, 0.9]], [0.667, 0.333])
    """
    T = np.asarray(transition_matrix, np.float64)
    pi = np.asarray(stationary, np.float64)
    labels = np.asarray(set_of_state, np.int64)
    M = np.zeros((labels.size, n_sets))
    M[np.arange(labels.size), labels] = 1.0
    pi_sets = M.T @ pi
    flow = M.T @ (pi[:, None] * T) @ M
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(pi_sets[:, None] > 0, flow / pi_sets[:, None], np.nan)
    return P, pi_sets


def pcca_memberships(transition_matrix, n_metastable: int, *, stationary=None) -> tuple[np.ndarray, np.ndarray]:
    """PCCA+ fuzzy memberships and crisp assignments (deeptime), sets ordered by decreasing stationary weight.

    Args:
        transition_matrix: ``[n, n]`` reversible, connected transition matrix.
        n_metastable: number of metastable sets (``2 <= n_metastable <= n``).
        stationary: ``[n]`` stationary distribution (default: computed).

    Returns:
        ``(memberships [n, n_metastable], assignments [n])`` with ``assignments = argmax memberships``.

    References:
        Roeblitz & Weber, Adv. Data Anal. Classif. 7, 147 (2013).

    Example:
        >>> T = np.array([[0.9, 0.1, 0, 0], [0.1, 0.89, 0.01, 0], [0, 0.01, 0.89, 0.1], [0, 0, 0.1, 0.9]])
        >>> pcca_memberships(T, 2)[1].tolist()
        [0, 0, 1, 1]
    """
    T = check_transition_matrix(transition_matrix)
    n_metastable = check_int(n_metastable, "n_metastable", minimum=2)
    if n_metastable > T.shape[0]:
        raise ValueError(f"n_metastable={n_metastable} exceeds the {T.shape[0]} states of the MSM; use fewer sets.")
    pi = stationary_distribution(T) if stationary is None else np.asarray(stationary, np.float64)
    memberships = np.asarray(pcca(T, n_metastable, stationary_distribution=pi).memberships, np.float64)
    weight = pi @ memberships
    # decreasing weight, ties broken by the first state in the set, so the labels are reproducible
    first = np.argmax(memberships, axis=0)
    order = np.lexsort((first, -np.round(weight, 12)))
    memberships = memberships[:, order]
    return memberships, np.argmax(memberships, axis=1)
