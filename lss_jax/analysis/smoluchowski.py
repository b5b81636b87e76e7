"""Exact reference dynamics of a Brownian particle in a 1-D potential.

The overdamped Langevin (Brownian) dynamics ``dx = -(D/kT) V'(x) dt + sqrt(2 D) dW`` has the
Smoluchowski (Fokker-Planck) generator ``L p = d/dx [D e^{-V/kT} d/dx (e^{V/kT} p)]``. We discretize
it on a uniform grid with the detailed-balance-preserving rate matrix of Bicout & Szabo (1998)
(also the square-root approximation, SqRA):

    k_{i -> i+/-1} = (D / h^2) exp(-(V_{i+/-1} - V_i) / (2 kT)),

whose stationary distribution is exactly ``pi_i ∝ exp(-V_i / kT)`` and which converges to the
continuous generator as ``h^2``. Everything here is float64 NumPy/SciPy: it is the reference the
JAX code is tested against, so it shares no code with it.

References:
    D. J. Bicout and A. Szabo, J. Chem. Phys. 109, 2325 (1998).
    H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020), Sec. 3.1.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import scipy.linalg

__all__ = ["SmoluchowskiReference", "smoluchowski_reference"]


class SmoluchowskiReference(NamedTuple):
    """Discretized exact dynamics on a grid.

    Attributes:
        centers: ``[n_bins]`` grid-cell centres.
        width: cell width ``h``.
        stationary: ``[n_bins]`` stationary probabilities per cell (sums to 1).
        generator: ``[n_bins, n_bins]`` rate matrix ``K`` (rows sum to 0), ``p_t = p_0 expm(K t)``.
        eigenvalues: ``[n_bins]`` eigenvalues of ``K`` in decreasing order (first is 0).
        timescales: ``[n_bins - 1]`` implied timescales ``-1 / eigenvalue`` of the non-stationary modes.

    Example:
        >>> ref = smoluchowski_reference(lambda x: 0.5 * x**2, x_min=-5, x_max=5, n_bins=100)
        >>> ref.centers.shape, round(float(ref.stationary.sum()), 6)
        ((100,), 1.0)
        >>> bool(np.allclose(ref.transition_matrix(1.0).sum(axis=1), 1.0))
        True
        >>> ref.lumped_transition_matrix(1.0, np.array([-5.0, 0.0, 5.0])).shape   # two coarse cells
        (2, 2)
    """

    centers: np.ndarray
    width: float
    stationary: np.ndarray
    generator: np.ndarray
    eigenvalues: np.ndarray
    timescales: np.ndarray

    def transition_matrix(self, lag_time: float) -> np.ndarray:
        """``[n_bins, n_bins]`` probabilities ``P[i, j]`` of being in cell j after ``lag_time`` from cell i."""
        return scipy.linalg.expm(self.generator * lag_time)

    def transition_density(self, lag_time: float) -> np.ndarray:
        """``[n_bins, n_bins]`` density ``p_lag(y_j | x_i)`` (per unit length of y)."""
        return self.transition_matrix(lag_time) / self.width

    def lumped_transition_matrix(self, lag_time: float, edges: np.ndarray) -> np.ndarray:
        """Exact transition matrix between the coarse cells given by ``edges`` at ``lag_time``.

        This is what a Markov state model estimated on those cells converges to with infinite data
        started in equilibrium: ``T_AB = sum_{i in A, j in B} pi_i P_ij / sum_{i in A} pi_i``.
        Coarse cells that hold no grid point are dropped.
        """
        labels = np.digitize(self.centers, edges[1:-1])
        present = np.unique(labels)
        onehot = (labels[:, None] == present[None, :]).astype(float)
        flux = (self.stationary[:, None] * self.transition_matrix(lag_time)).T @ onehot
        counts = onehot.T @ flux
        return counts / counts.sum(axis=1, keepdims=True)


def smoluchowski_reference(
    potential_fn: Callable[[np.ndarray], np.ndarray],
    *,
    x_min: float,
    x_max: float,
    n_bins: int = 400,
    diffusion: float = 1.0,
    kT: float = 1.0,
) -> SmoluchowskiReference:
    """Discretize the Smoluchowski generator of ``potential_fn`` on ``[x_min, x_max]``.

    Args:
        potential_fn: vectorized NumPy function ``V(x)``, ``[n] -> [n]``.
        x_min, x_max: domain; reflecting walls at both ends (choose them where ``V`` is many kT high).
        n_bins: number of grid cells (``>= 200`` recommended; error decays as ``n_bins^-2``).
        diffusion: diffusion constant ``D``.
        kT: thermal energy.

    Returns:
        A :class:`SmoluchowskiReference`.

    Example:
        >>> ref = smoluchowski_reference(lambda x: 0.5 * x**2, x_min=-6, x_max=6, n_bins=400)
        >>> round(float(ref.timescales[0]), 3)   # OU process: t_k = kT / (D k)
        1.0
    """
    if n_bins < 3:
        raise ValueError(f"n_bins must be >= 3, got {n_bins}; use a few hundred for an accurate reference.")
    if not x_max > x_min:
        raise ValueError(f"need x_max > x_min, got [{x_min}, {x_max}].")
    if diffusion <= 0 or kT <= 0:
        raise ValueError(f"diffusion and kT must be positive, got D={diffusion}, kT={kT}.")
    edges = np.linspace(x_min, x_max, n_bins + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    h = float(edges[1] - edges[0])
    beta_v = np.asarray(potential_fn(centers), dtype=np.float64) / kT
    rate = diffusion / h**2
    up = rate * np.exp(-(beta_v[1:] - beta_v[:-1]) / 2)  # i -> i+1
    down = rate * np.exp(-(beta_v[:-1] - beta_v[1:]) / 2)  # i+1 -> i
    generator = np.diag(up, 1) + np.diag(down, -1)
    generator -= np.diag(generator.sum(axis=1))
    log_pi = -beta_v - np.max(-beta_v)
    stationary = np.exp(log_pi) / np.exp(log_pi).sum()
    # Symmetrize with sqrt(pi) (detailed balance) for a stable real eigen-decomposition.
    s = np.sqrt(stationary)
    symmetric = (s[:, None] * generator) / s[None, :]
    symmetric = 0.5 * (symmetric + symmetric.T)
    eigenvalues = np.sort(np.linalg.eigvalsh(symmetric))[::-1]
    timescales = -1.0 / eigenvalues[1:]
    return SmoluchowskiReference(centers, h, stationary, generator, eigenvalues, timescales)
