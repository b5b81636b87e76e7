"""Time-lagged pairs from one or many trajectories, never across trajectory boundaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["lagged_pairs", "split_trajectories"]


def _as_list(trajs) -> list[np.ndarray]:
    if isinstance(trajs, np.ndarray):
        return [trajs]
    return [np.asarray(t) for t in trajs]


def lagged_pairs(trajs: np.ndarray | Sequence[np.ndarray], lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(x_t, x_{t+lag})`` over all trajectories.

    Args:
        trajs: one ``[n_frames, ...]`` array or a list of them (different lengths allowed).
        lag: lag in frames, ``>= 1``.

    Returns:
        ``(x_0 [n_pairs, ...], x_lag [n_pairs, ...])``; a trajectory shorter than ``lag + 1``
        contributes nothing.

    Raises:
        ValueError: if no trajectory is longer than the lag.

    Example:
        >>> x0, x_lag = lagged_pairs([np.arange(5), np.arange(10, 13)], lag=2)
        >>> x0.tolist(), x_lag.tolist()
        ([0, 1, 2, 10], [2, 3, 4, 12])
    """
    trajs = _as_list(trajs)
    if lag < 1:
        raise ValueError(f"lag must be >= 1 frame, got {lag}.")
    x0 = [t[:-lag] for t in trajs if len(t) > lag]
    xt = [t[lag:] for t in trajs if len(t) > lag]
    if not x0:
        longest = max((len(t) for t in trajs), default=0)
        raise ValueError(
            f"lag ({lag} frames) is not shorter than any trajectory (longest: {longest} frames); "
            "use a shorter lag or longer trajectories."
        )
    return np.concatenate(x0), np.concatenate(xt)


def split_trajectories(trajs, val_fraction: float, *, lag: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split every trajectory into a leading training part and a trailing validation part.

    Contiguous splits keep validation pairs out of the training data's time window, which a random
    split of strongly correlated lagged pairs would not.

    With ``lag``, a trajectory whose validation tail would be too short to hold one lagged pair
    (``round(val_fraction * len) <= lag``: the short runs of adaptive sampling) is not cut, which would
    waste its tail: such trajectories are kept whole and every ``round(1 / val_fraction)``-th of them
    (in list order, the last of each group) goes to validation, the rest to training. Long trajectories
    are split as without ``lag``.

    Example:
        >>> train, val = split_trajectories([np.arange(10), np.arange(5)], val_fraction=0.2)
        >>> [t.tolist() for t in train], [v.tolist() for v in val]
        ([[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3]], [[8, 9], [4]])
        >>> train, val = split_trajectories([np.arange(20)] + [np.arange(4)] * 5, 0.2, lag=2)
        >>> [len(t) for t in train], [len(v) for v in val]   # the 5th short run is held out whole
        ([16, 4, 4, 4, 4], [4, 4])
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    train, val = [], []
    every = max(2, round(1 / val_fraction))
    n_short = 0
    for t in _as_list(trajs):
        n_val = round(val_fraction * len(t))
        if lag is not None and n_val <= lag:
            n_short += 1
            (val if n_short % every == 0 else train).append(t)
            continue
        train.append(t[: len(t) - n_val])
        val.append(t[len(t) - n_val :])
    return train, val
