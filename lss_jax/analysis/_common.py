"""Argument checks and bootstrap units shared by the analysis modules (float64 NumPy, host side).

Every check raises :class:`ValueError` saying what was wrong and what was expected, so the public functions of
:mod:`lss_jax.analysis` validate their inputs at the boundary in one consistent way.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MAX_BOOTSTRAP_UNITS",
    "check_int",
    "check_positive",
    "as_series_list",
    "as_dtraj_list",
    "as_traj_list",
    "frames_ratio",
    "check_transition_matrix",
    "check_states",
    "bootstrap_units",
]

#: At most this many bootstrap units: more trajectories are grouped round-robin (:func:`bootstrap_units`).
MAX_BOOTSTRAP_UNITS = 100


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``.

    Example:
        >>> check_int(np.int64(3), "n_blocks")
        3
        >>> check_int(0, "lag")
        Traceback (most recent call last):
        ...
        ValueError: lag must be an integer >= 1, got 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_positive(value, name: str) -> float:
    """``value`` as a positive finite ``float``.

    Example:
        >>> check_positive("2.5", "frame_time")
        2.5
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return value


def as_series_list(data, name: str, *, ndim: int | None = None) -> list[np.ndarray]:
    """One array or a list of arrays (trajectories), each float64 with time on axis 0.

    A plain list of numbers is one series; with ``ndim=2`` a 1-D series becomes one column.

    Example:
        >>> [x.shape for x in as_series_list([np.zeros(4), np.zeros(3)], "x", ndim=2)]
        [(4, 1), (3, 1)]
        >>> [x.shape for x in as_series_list([1.0, 2.0, 3.0], "x")]
        [(3,)]
    """
    if isinstance(data, np.ndarray) or np.isscalar(data):
        items = [data]
    elif isinstance(data, (list, tuple)) and len(data) and all(np.ndim(x) == 0 for x in data):
        items = [np.asarray(data)]  # a plain list of numbers is one series
    elif isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise ValueError(f"{name} is an empty list; pass at least one trajectory.")
        items = list(data)
    else:
        items = [data]
    out = []
    for k, x in enumerate(items):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and ndim == 2:
            x = x[:, None]
        if x.ndim == 0 or (ndim is not None and x.ndim != ndim):
            raise ValueError(f"{name}[{k}] must have {ndim or 'at least 1'} dimensions (time first), got shape {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}[{k}] contains nan or inf; remove or fix those frames first.")
        out.append(x)
    widths = {x.shape[1:] for x in out}
    if len(widths) != 1:
        raise ValueError(f"the trajectories of {name} have different feature shapes {sorted(widths)}.")
    return out


def as_dtraj_list(dtrajs, name: str = "dtrajs") -> list[np.ndarray]:
    """Integer state trajectories: one ``[n_frames]`` array, a ``[n_traj, n_frames]`` array or a list of them.

    Example:
        >>> [d.tolist() for d in as_dtraj_list(np.array([[0, 1], [1, 1]]))]
        [[0, 1], [1, 1]]
    """
    if isinstance(dtrajs, np.ndarray) and dtrajs.ndim == 1:
        dtrajs = [dtrajs]
    elif isinstance(dtrajs, np.ndarray) and dtrajs.ndim == 2:
        dtrajs = list(dtrajs)
    if not isinstance(dtrajs, (list, tuple)) or len(dtrajs) == 0:
        raise ValueError(f"{name} must be an integer array [n_frames] or a non-empty list of them.")
    out = []
    for k, d in enumerate(dtrajs):
        d = np.asarray(d)
        if d.ndim != 1 or not np.issubdtype(d.dtype, np.integer):
            raise ValueError(f"{name}[{k}] must be a 1-D integer array of state indices, got {d.dtype} {d.shape}.")
        if d.size and d.min() < 0:
            raise ValueError(f"{name}[{k}] contains negative state indices.")
        out.append(d.astype(np.int64))
    return out


def as_traj_list(trajs, name: str) -> list:
    """One :class:`mdtraj.Trajectory` or a non-empty list of them, each with at least one frame.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> len(as_traj_list(load_alanine_dipeptide("train", stride=5000), "md_traj"))
        1
    """
    import mdtraj as md

    items = list(trajs) if isinstance(trajs, (list, tuple)) else [trajs]
    if not items:
        raise ValueError(f"{name} is an empty list; pass at least one mdtraj.Trajectory.")
    for k, t in enumerate(items):
        if not isinstance(t, md.Trajectory):
            raise ValueError(
                f"{name}[{k}] must be an mdtraj.Trajectory, got {type(t).__name__}; load it with mdtraj.load(...)."
            )
        if t.n_frames < 1:
            raise ValueError(f"{name}[{k}] has no frames.")
    return items


def frames_ratio(numerator: float, denominator: float, name: str) -> int:
    """``numerator / denominator`` as a positive integer (lag times that must be whole numbers of frames).

    Example:
        >>> frames_ratio(8.0, 4.0, "msm_lag_time / md_frame_time")
        2
    """
    r = numerator / denominator
    k = int(round(r))
    if k < 1 or abs(r - k) > 1e-6 * max(1.0, r):
        raise ValueError(f"{name} = {numerator} / {denominator} must be a positive whole number of frames, got {r}.")
    return k


def check_transition_matrix(T) -> np.ndarray:
    """``T`` as a float64 square, finite, non-negative, row-stochastic matrix.

    Example:
        >>> check_transition_matrix([[0.5, 0.5], [0.0, 1.0]]).dtype
        dtype('float64')
    """
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape[0] == 0:
        raise ValueError(f"transition_matrix must be square [n, n], got shape {T.shape}.")
    if not np.all(np.isfinite(T)) or T.min() < -1e-12 or not np.allclose(T.sum(axis=1), 1.0, atol=1e-8):
        raise ValueError("transition_matrix must be finite, non-negative and row-stochastic (rows summing to 1).")
    return T


def check_states(states, n: int, name: str) -> np.ndarray:
    """Sorted unique state indices in ``[0, n)`` (at least one).

    Example:
        >>> check_states([2, 0, 2], 3, "target").tolist()
        [0, 2]
    """
    states = np.unique(np.atleast_1d(np.asarray(states)))
    if states.size == 0 or not np.issubdtype(states.dtype, np.integer) or states.min() < 0 or states.max() >= n:
        raise ValueError(f"{name} must be a non-empty set of state indices in [0, {n}), got {states.tolist()}.")
    return states


def bootstrap_units(dtrajs: list[np.ndarray], n_blocks: int, min_length: int) -> list[list[np.ndarray]]:
    """Trajectories as bootstrap units.

    Fewer than ``n_blocks`` trajectories are cut into contiguous blocks (none shorter than ``min_length``
    frames, so few lagged pairs are lost at the cuts), and more than :data:`MAX_BOOTSTRAP_UNITS` are grouped
    round-robin (a group keeps its trajectories separate).

    Example:
        >>> units = bootstrap_units([np.arange(100)], n_blocks=4, min_length=10)
        >>> [len(u[0]) for u in units]
        [25, 25, 25, 25]
    """
    if len(dtrajs) >= n_blocks:
        units = [[d] for d in dtrajs]
    else:
        per = math.ceil(n_blocks / len(dtrajs))
        units = [[b] for d in dtrajs for b in np.array_split(d, max(1, min(per, d.size // max(min_length, 1))))]
    if len(units) > MAX_BOOTSTRAP_UNITS:
        groups = [[] for _ in range(MAX_BOOTSTRAP_UNITS)]
        for k, u in enumerate(units):
            groups[k % MAX_BOOTSTRAP_UNITS].extend(u)
        units = groups
    return units
