"""Memory beyond the latent coordinates: how much of a structure's slow coordinate that ψ does not fix persists over
one lag, in MD and in decoded trajectories, and the decoder noise memory that gives MD's.

A decoder that draws every frame's noise independently decorrelates whatever ψ leaves undetermined within one
frame. In MD it does not: on the Trp-cage Cα Gō model the residual of the slowest structural coordinate (TIC1 of the
Cα distances) about its mean given ψ keeps a lag autocorrelation of 0.15, a decoder's 0.00, and the decoded
trajectories' t1 came out shorter than retrieval's on the same latent paths (docs/decoder.md). Decoder noise that is
an AR(1) process along each trajectory (:func:`lss_jax.decoder.memory_noise`, correlation ``rho`` of consecutive
frames) keeps every frame's law and gives the residual memory back; :func:`calibrate_noise_memory` finds the
``rho`` whose residual memory is the training MD's, so it is set by MD, not tuned on the result.

* :func:`slow_coordinate` — TIC1 of the atom-pair distances, fitted on the training frames at the lag;
* :func:`conditional_mean` — the mean of a per-frame value over the training frames nearest in latent space (not the
  frame itself nor its own trajectory's frames within a window);
* :func:`residual_memory` — the lag-one autocorrelation of ``x - E[x | psi]`` along paths;
* :func:`calibrate_noise_memory` — ``rho`` from decodes of the training latent paths at a few ``rho``.

Float64 NumPy throughout; the decoder enters as a function (the model layer passes it, this module imports none).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from lss_jax.analysis._common import check_int
from lss_jax.analysis.conditional import latent_neighbours, observable_pairs
from lss_jax.analysis.tica import fit_tica

__all__ = ["slow_coordinate", "conditional_mean", "residual_memory", "strided_paths", "calibrate_noise_memory"]


def _distances(xyz, pairs) -> np.ndarray:
    xyz = np.asarray(xyz, np.float64)
    return np.linalg.norm(xyz[..., pairs[:, 0], :] - xyz[..., pairs[:, 1], :], axis=-1)


def slow_coordinate(xyz: list[np.ndarray], lag: int, *, max_pairs: int = 200) -> Callable[[np.ndarray], np.ndarray]:
    """TIC1 of the atom-pair distances (:func:`lss_jax.analysis.conditional.observable_pairs`), fitted with deeptime's
    TICA on the frames ``xyz`` (a list of ``[T, n_atoms, 3]`` trajectories, nm) at ``lag`` frames.

    Returns:
        a function of frames ``[..., n_atoms, 3] -> [...]``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.cumsum(rng.normal(size=(500, 3, 3)), 0) * 0.01
        >>> slow_coordinate([x], 5)(x).shape
        (500,)
    """
    pairs = observable_pairs(np.asarray(xyz[0]).shape[1], max_pairs=max_pairs)
    mean, vectors = fit_tica([_distances(x, pairs) for x in xyz], lag, dim=1)
    return lambda frames: (_distances(frames, pairs) - mean) @ vectors[:, 0]


def conditional_mean(values, u, points, *, n_neighbours: int = 50, segments=None, window: int = 0) -> np.ndarray:
    """``E[value | psi]`` at the frames ``points``: the mean of ``values`` over the ``n_neighbours`` frames nearest
    in ``u`` (:func:`lss_jax.analysis.conditional.latent_neighbours`: never the point itself nor its trajectory's
    frames within ``window``, which are close through the dynamics rather than through ψ).

    Example:
        >>> u = np.arange(10.0)[:, None]
        >>> conditional_mean(np.arange(10.0), u, [4], n_neighbours=2).tolist()
        [4.0]
    """
    idx = latent_neighbours(u, points, n_neighbours, segments=segments, window=window)
    return np.asarray(values, np.float64)[idx].mean(axis=1)


def residual_memory(series: list[np.ndarray], means: list[np.ndarray]) -> float:
    """Lag-one autocorrelation of the residuals ``x - E[x | psi]`` along paths (pairs of consecutive entries of
    every path, pooled; Pearson's).

    Example:
        >>> x = np.sin(np.arange(200) / 5.0)
        >>> round(residual_memory([x], [np.zeros(200)]), 3), round(residual_memory([x], [x]), 3)
        (0.98, nan)
    """
    r = [np.asarray(x, np.float64) - np.asarray(m, np.float64) for x, m in zip(series, means)]
    a, b = np.concatenate([x[:-1] for x in r]), np.concatenate([x[1:] for x in r])
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def strided_paths(lengths, lag: int, max_frames: int, starts=None) -> list[np.ndarray]:
    """Paths of frames one ``lag`` apart through trajectories of ``lengths`` frames (global frame indices,
    trajectories one after another), from frame ``starts[i]`` of trajectory ``i`` on (default 0): phases ``p, p +
    lag, ...``, as many evenly spaced phases as keep the total within ``max_frames`` (at least one).

    Example:
        >>> [p.tolist() for p in strided_paths([7, 5], 3, 6)]
        [[0, 3, 6], [7, 10]]
        >>> [p.tolist() for p in strided_paths([7, 5], 3, 3, starts=[4, 0])]
        [[4], [7, 10]]
        >>> len(strided_paths([100], 10, 50))
        5
    """
    lag, max_frames = check_int(lag, "lag"), check_int(max_frames, "max_frames")
    starts = [0] * len(lengths) if starts is None else [int(s) for s in starts]
    per_phase = sum(-(-(n - s) // lag) for n, s in zip(lengths, starts))
    n_phases = int(np.clip(max_frames // max(per_phase, 1), 1, lag))
    offsets = np.cumsum([0, *lengths[:-1]])
    phases = np.unique(np.linspace(0, lag - 1, n_phases).round().astype(int))
    return [o + np.arange(s + p, n, lag) for o, n, s in zip(offsets, lengths, starts) for p in phases if s + p < n]


def calibrate_noise_memory(decode: Callable, xyz: list[np.ndarray], u: list[np.ndarray], lag: int, *,
                           rhos=(0.0, 0.5), n_neighbours: int = 50, max_frames: int = 12_000,
                           max_rho: float = 0.95, starts=None) -> tuple[float, dict]:
    """The decoder noise memory ``rho`` whose decoded trajectories keep the training MD's memory beyond ψ.

    Along the training run's latent paths (frames one ``lag`` apart, :func:`strided_paths`; from ``starts`` on: the
    frames the encoder did not train on, where its ψ is what it is on new MD), the residual of the slow coordinate
    (:func:`slow_coordinate`) about its mean given ψ (:func:`conditional_mean`, over all the training frames outside
    a window of one lag) has a lag-one autocorrelation (:func:`residual_memory`): MD's is the target. (On Trp-cage,
    seed 0: 0.104 on the held-out frames, 0.109 on all, whatever the window, 0.092 along an independent run on the
    same TIC1; the estimate moves more with the coordinate's definition than between seen and unseen frames.)
    The same paths are decoded at each of ``rhos`` (the same residual means, so only the structures differ), and
    ``rho`` is interpolated linearly in the measured memory (extrapolated from the last two beyond them), clipped
    to ``[0, max_rho]``.

    Args:
        decode: ``(rho, u [N, m], rows_b [N], rows_t [N]) -> xyz [N, n_atoms, 3]``: frames decoded with noise memory
            ``rho``, row ``i`` being frame ``rows_t[i]`` of path ``rows_b[i]``.
        xyz: training trajectories ``[T, n_atoms, 3]`` (the decoded atoms, nm).
        u: their latent coordinates ``[T, m]`` (the unit box the decoder is conditioned on).
        lag: the model's lag in frames.
        rhos: the memories decoded (at least two).
        n_neighbours: frames in each conditional mean.
        max_frames: path frames decoded per ``rho``.
        max_rho: the largest ``rho`` returned.
        starts: ``[n_trajectories]`` the first frame of each trajectory the paths use (default: 0).

    Returns:
        ``(rho, info)``: ``info`` has the MD target, the measured memory at every ``rho`` and the frames used.
    """
    lag = check_int(lag, "lag")
    if len(rhos) < 2:
        raise ValueError(f"calibrate_noise_memory needs at least two rhos to interpolate between, got {rhos!r}.")
    lengths = [len(x) for x in xyz]
    paths = strided_paths(lengths, lag, max_frames, starts)
    frames = np.concatenate(paths)
    u_all = np.concatenate([np.asarray(x, np.float64) for x in u])
    segments = np.repeat(np.arange(len(lengths)), lengths)
    slow = slow_coordinate(xyz, lag)
    values = np.concatenate([slow(x) for x in xyz])
    means = conditional_mean(values, u_all, frames, n_neighbours=n_neighbours, segments=segments, window=lag)
    split = np.cumsum([len(p) for p in paths])[:-1]
    mean_paths = np.split(means, split)
    target = residual_memory([values[p] for p in paths], mean_paths)
    rows_b = np.repeat(np.arange(len(paths)), [len(p) for p in paths]).astype(np.int32)
    rows_t = np.concatenate([np.arange(len(p)) for p in paths]).astype(np.int32)
    measured = {}
    for rho in rhos:
        decoded = slow(np.asarray(decode(float(rho), u_all[frames].astype(np.float32), rows_b, rows_t)))
        measured[float(rho)] = residual_memory(np.split(decoded, split), mean_paths)
    points = sorted((m, r) for r, m in measured.items())
    memory, rho_grid = np.array([m for m, _ in points]), np.array([r for _, r in points])
    if target <= memory[0]:
        rho = rho_grid[0]
    elif target >= memory[-1]:  # beyond the measured memories: the line through the last two
        slope = (rho_grid[-1] - rho_grid[-2]) / max(memory[-1] - memory[-2], 1e-9)
        rho = rho_grid[-1] + slope * (target - memory[-1])
    else:
        rho = np.interp(target, memory, rho_grid)
    rho = float(np.clip(rho, 0.0, max_rho))
    return rho, {"md_residual_memory": target, "decoded_residual_memory": {f"{r:g}": m for r, m in measured.items()},
                 "frames": int(len(frames)), "paths": len(paths), "rho": rho}
