"""A rare, linearly separable slow process with a known answer: the encoder's linear floor's test system.

A hidden two-state Markov chain whose rare state holds ``occupancy`` of the frames (2.4 % by default, entered a handful
of times in 10 000 frames), seen through a noisy linear feature and mixed with three fast AR(1) processes and
nonlinear functions of them into 10 features. Its slowest relaxation time is exact,
``-1 / ln(1 - p01 - p10)`` frames (77.6 at the defaults). A plain SRV trained from a random start can settle on the
fast processes; linear TICA, fitted on all pairs at once, keeps the slow one (docs/encoder.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rare_state_features", "rare_state_timescale"]


def rare_state_timescale(p10: float = 1 / 80, occupancy: float = 0.024) -> float:
    """The hidden chain's exact relaxation time in frames, ``-1 / ln(1 - p01 - p10)``.

    Example:
        >>> round(rare_state_timescale(), 1)
        77.6
    """
    p01 = occupancy * p10 / (1 - occupancy)
    return float(-1.0 / np.log(1.0 - p01 - p10))


def rare_state_features(seed: int, n: int = 10_000, p10: float = 1 / 80,
                        occupancy: float = 0.024) -> tuple[np.ndarray, np.ndarray]:
    """``(features [n, 10] float32, standardized; hidden states [n] in {0, 1})`` of one realisation.

    Args:
        seed: NumPy seed of the realisation.
        n: frames.
        p10: probability per frame of leaving the rare state.
        occupancy: the rare state's stationary share (sets the entry probability).

    Example:
        >>> x, s = rare_state_features(0)
        >>> x.shape, x.dtype, int(np.sum((s[1:] == 1) & (s[:-1] == 0)))   # entries into the rare state
        ((10000, 10), dtype('float32'), 4)
    """
    rng = np.random.default_rng(seed)
    p01 = occupancy * p10 / (1 - occupancy)
    u = rng.uniform(size=n)
    s = np.zeros(n, int)
    for t in range(1, n):
        s[t] = (u[t] < p01) if s[t - 1] == 0 else (u[t] >= p10)
    phi = np.array([0.9, 0.7, 0.5])
    fast = np.zeros((n, 3))
    for t in range(1, n):
        fast[t] = phi * fast[t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=3)
    raw = np.column_stack([s + 0.05 * rng.normal(size=n), fast, np.tanh(2 * fast[:, 0]), fast[:, 1] ** 2])
    x = raw @ rng.normal(size=(raw.shape[1], 10))
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32), s
