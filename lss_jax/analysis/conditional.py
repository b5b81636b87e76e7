"""Conditional fidelity of a decoder: at held-out MD latent points, the decoded distribution of structural
observables against the MD frames nearest in latent space, beside the same statistic between two sets of MD
neighbours (the noise floor).

A decoder can match the marginal distributions of an observable (what decode(encode(MD)) and the full LSS are
compared on) and still be too broad at every latent point, or biased as a function of it: on the Trp-cage Cα Gō
model the generative decoders scattered Q by 0.146 around a latent point where MD's nearest frames scatter 0.114,
and decoded Q was 0.03–0.04 low at given ψ, which only showed after whole rollouts. This module measures it
directly, before any rollout:

* points: ``n_points`` MD frames drawn (seeded) from the MD given (held out from training in ``lss-jax report``);
* the decoded conditional: ``n_draws`` frames decoded at each point's latent coordinates, with addressed noise
  (draw ``b`` of point ``j`` is frame ``j`` of trajectory ``b``, :meth:`lss_jax.LSS.decode_unit`);
* the empirical conditional: the ``2 k`` MD frames nearest to the point in the propagator's unit box, from the
  same MD, without the point's own frame and its time neighbours (same trajectory, within ``window`` frames,
  whose structures are close through the dynamics rather than through the latent coordinates); split alternately
  by rank into two sets ``A`` and ``B`` of ``k`` frames that reach equally far in latent space;
* per point and observable component: the Wasserstein-1 distance, the difference of means and the standard
  deviations, decoded against ``A``, and ``B`` against ``A`` (the floor: what sampling ``k`` frames of a latent
  neighbourhood gives by itself).

The reference frames are the MD given rather than the training frames: the decoder never saw them, and the floor
and the empirical conditional then come from one set.

The statistics are float64 NumPy functions of arrays (:func:`wasserstein_1d`, :func:`latent_neighbours`,
:func:`frame_observables`, :func:`conditional_statistics`); :func:`conditional_fidelity` takes a model and MD.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from lss_jax.analysis._common import check_int

__all__ = ["wasserstein_1d", "latent_neighbours", "observable_pairs", "frame_observables", "conditional_statistics",
           "conditional_fidelity"]


def wasserstein_1d(x, y) -> np.ndarray:
    """Wasserstein-1 distance between the empirical distributions of ``x [..., n]`` and ``y [..., m]`` along the last
    axis (equal weights), batched over the leading axes: ``∫ |F_x(t) − F_y(t)| dt``, as
    :func:`scipy.stats.wasserstein_distance` computes for one pair of samples.

    Args:
        x: ``[..., n]`` samples.
        y: ``[..., m]`` samples, the same leading shape.

    Returns:
        ``[...]`` float64 distances.

    Example:
        >>> float(wasserstein_1d([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]))
        5.0
        >>> wasserstein_1d(np.zeros((2, 3)), np.ones((2, 4))).tolist()
        [1.0, 1.0]
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape[:-1] != y.shape[:-1] or x.ndim == 0 or x.shape[-1] == 0 or y.shape[-1] == 0:
        raise ValueError(f"x and y must be samples [..., n] and [..., m] with the same leading shape and n, m >= 1, "
                         f"got shapes {x.shape} and {y.shape}.")
    z = np.concatenate([x, y], axis=-1)
    order = np.argsort(z, axis=-1, kind="stable")
    zs = np.take_along_axis(z, order, axis=-1)
    weights = np.concatenate([np.full(x.shape, 1.0 / x.shape[-1]), np.full(y.shape, -1.0 / y.shape[-1])], axis=-1)
    # F_x − F_y between consecutive sorted values; tied values add intervals of zero length
    cdf_gap = np.cumsum(np.take_along_axis(weights, order, axis=-1), axis=-1)[..., :-1]
    return np.sum(np.abs(cdf_gap) * np.diff(zs, axis=-1), axis=-1)


def latent_neighbours(u, points, n_neighbours: int, *, segments=None, window: int = 0) -> np.ndarray:
    """The ``n_neighbours`` frames nearest (Euclidean) to each of the frames ``points`` among the frames ``u``,
    nearest first, never the point itself nor a frame of the same trajectory within ``window`` frames of it.

    Args:
        u: ``[N, m]`` latent coordinates of the reference frames (e.g. the unit box of :meth:`lss_jax.LSS.to_unit`),
            trajectories one after another.
        points: ``[P]`` indices of the query frames into ``u``.
        n_neighbours: neighbours per point.
        segments: ``[N]`` trajectory index of every frame (default: one trajectory).
        window: frames ``i`` of the point's trajectory with ``|i − point| <= window`` are left out (0: only the point).

    Returns:
        ``[P, n_neighbours]`` int indices into ``u``.

    Example:
        >>> u = np.array([0.0, 1.5, 2.0, 3.0, 4.0, 5.2, 6.6, 7.0, 8.0, 9.0])[:, None]
        >>> latent_neighbours(u, [4], 3, window=1).tolist()
        [[2, 1, 6]]
        >>> latent_neighbours(u, [4], 3, segments=[0] * 5 + [1] * 5, window=1).tolist()  # frame 5 is another run's
        [[5, 2, 1]]
    """
    from scipy.spatial import cKDTree

    u = np.asarray(u, np.float64)
    points = np.asarray(points, np.int64)
    n_neighbours = check_int(n_neighbours, "n_neighbours")
    window = check_int(window, "window", minimum=0)
    segments = np.zeros(len(u), np.int64) if segments is None else np.asarray(segments)
    if u.ndim != 2 or segments.shape != (len(u),) or points.ndim != 1 or np.any((points < 0) | (points >= len(u))):
        raise ValueError(f"u must be [N, m] with segments [N] and points indices into it, got shapes {u.shape}, "
                         f"{segments.shape} and points {points.tolist()[:5]}...")
    n_query = min(len(u), n_neighbours + 2 * window + 1)  # at most 2 window + 1 of them are left out
    _, idx = cKDTree(u).query(u[points], k=n_query)
    idx = np.asarray(idx).reshape(len(points), n_query)
    keep = ~((segments[idx] == segments[points][:, None]) & (np.abs(idx - points[:, None]) <= window))
    if np.any(keep.sum(1) < n_neighbours):
        raise ValueError(f"fewer than {n_neighbours} frames outside the excluded window of {window} frames: give more MD "
                         f"frames ({len(u)} given) or ask for fewer neighbours.")
    return np.stack([row[k][:n_neighbours] for row, k in zip(idx, keep)])


def observable_pairs(n_atoms: int, *, max_pairs: int = 200, seed: int = 0) -> np.ndarray:
    """The atom pairs whose distances :func:`frame_observables` compares: all pairs ``i < j``, or ``max_pairs`` of
    them drawn without replacement (seeded) when there are more, in order.

    Example:
        >>> observable_pairs(4).tolist()
        [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
        >>> observable_pairs(100, max_pairs=200).shape
        (200, 2)
    """
    n_atoms, max_pairs = check_int(n_atoms, "n_atoms", minimum=2), check_int(max_pairs, "max_pairs")
    pairs = np.stack(np.triu_indices(n_atoms, k=1), axis=1)
    if len(pairs) > max_pairs:
        pairs = pairs[np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))]
    return pairs


def frame_observables(xyz, pairs, *, q_fn: Callable | None = None) -> dict[str, np.ndarray]:
    """The observables of every frame that the conditional is compared on, each ``[n_frames, n_components]``.

    Args:
        xyz: ``[n_frames, n_atoms, 3]`` coordinates (nm).
        pairs: ``[n_pairs, 2]`` atom pairs (:func:`observable_pairs`).
        q_fn: ``Q`` of frames, ``[n_frames, n_atoms, 3] -> [n_frames]`` (a system with native contacts, e.g.
            :func:`lss_jax.systems.trp_cage.fraction_native_contacts`), or ``None``.

    Returns:
        dict: ``radius_of_gyration_nm`` ``[n, 1]`` (mass-unweighted, as
        :func:`lss_jax.analysis.structure.radius_of_gyration`), ``pair_distances_nm`` ``[n, n_pairs]`` and, with
        ``q_fn``, ``q`` ``[n, 1]``.

    Example:
        >>> xyz = np.array([[[0.0, 0, 0], [0.3, 0, 0], [0.3, 0.4, 0]]])
        >>> obs = frame_observables(xyz, observable_pairs(3))
        >>> obs["pair_distances_nm"].round(6).tolist(), obs["radius_of_gyration_nm"].shape
        ([[0.3, 0.5, 0.4]], (1, 1))
    """
    xyz = np.asarray(xyz, np.float64)
    pairs = np.asarray(pairs, np.int64)
    centred = xyz - xyz.mean(axis=1, keepdims=True)
    out = {"radius_of_gyration_nm": np.sqrt(np.mean(np.sum(centred**2, axis=-1), axis=1))[:, None],
           "pair_distances_nm": np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1)}
    if q_fn is not None:
        out["q"] = np.asarray(q_fn(xyz), np.float64).reshape(len(xyz), 1)
    return out


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def conditional_statistics(decoded, md_a, md_b) -> dict:
    """Decoded samples against MD samples at the same latent points, beside MD against MD.

    Per point and component: W1 (:func:`wasserstein_1d`), the difference of means and the standard deviations
    (``ddof = 1``) of ``decoded`` against ``md_a`` and, for the floor, of ``md_b`` against ``md_a``.

    Args:
        decoded: ``[n_points, n_draws, n_components]`` decoded samples.
        md_a: ``[n_points, k, n_components]`` MD samples, the empirical conditional.
        md_b: ``[n_points, k, n_components]`` other MD samples of the same conditionals (the floor).

    Returns:
        dict: ``w1`` (mean over points and components) and ``w1_floor``, ``w1_ratio`` (their ratio); ``bias`` (mean
        of decoded minus MD means: the systematic shift) and ``bias_floor``; ``abs_bias`` (mean of its absolute value:
        the local shift), ``abs_bias_floor`` and ``abs_bias_ratio``; ``sd_decoded`` and ``sd_md`` (root mean square
        over points and components of the standard deviations), ``sd_ratio`` (``sd_decoded / sd_md``; > 1: too broad)
        and ``sd_ratio_floor`` (``B``'s over ``A``'s); ``slope`` (least-squares slope, across points, of the decoded
        means on ``md_a``'s, averaged over components), ``slope_floor`` (``md_b``'s) and ``slope_ratio`` (their
        ratio: > 1, the decoder exaggerates how the observable moves with the latent point; ``md_a``'s sampling error
        lowers both slopes alike); ``n_components``. A ratio whose denominator is 0 is NaN.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(2, 500, 64, 1))
        >>> out = conditional_statistics(2 * rng.normal(size=(500, 64, 1)), a, b)
        >>> round(out["sd_ratio"], 1), round(out["sd_ratio_floor"], 1), out["w1_ratio"] > 2
        (2.0, 1.0, True)
    """
    decoded, md_a, md_b = (np.asarray(v, np.float64) for v in (decoded, md_a, md_b))
    if (decoded.ndim != 3 or md_a.shape != md_b.shape or md_a.ndim != 3 or decoded.shape[::2] != md_a.shape[::2]
            or min(decoded.shape[1], md_a.shape[1]) < 2):
        raise ValueError(f"expected decoded [n_points, n_draws, c] and md_a, md_b [n_points, k, c] (same shape) with "
                         f"n_draws, k >= 2, got {decoded.shape}, {md_a.shape} and {md_b.shape}.")
    swap = lambda v: np.moveaxis(v, 1, -1)  # noqa: E731  [n_points, c, samples]
    w1, w1_floor = wasserstein_1d(swap(decoded), swap(md_a)), wasserstein_1d(swap(md_b), swap(md_a))
    mean_dec, mean_a, mean_b = decoded.mean(1), md_a.mean(1), md_b.mean(1)  # [n_points, c]
    shift, shift_floor = mean_dec - mean_a, mean_b - mean_a
    rms_sd = lambda v: float(np.sqrt(np.mean(v.var(axis=1, ddof=1))))  # noqa: E731
    sd_dec, sd_a, sd_b = rms_sd(decoded), rms_sd(md_a), rms_sd(md_b)
    out = {"w1": float(w1.mean()), "w1_floor": float(w1_floor.mean()),
           "bias": float(shift.mean()), "bias_floor": float(shift_floor.mean()),
           "abs_bias": float(np.abs(shift).mean()), "abs_bias_floor": float(np.abs(shift_floor).mean()),
           "sd_decoded": sd_dec, "sd_md": sd_a, "sd_ratio": _ratio(sd_dec, sd_a), "sd_ratio_floor": _ratio(sd_b, sd_a),
           "n_components": int(md_a.shape[2])}
    # how fast the conditional mean moves with the point: least-squares slope of the decoded means (and of B's) on A's,
    # per component, averaged. A's sampling error attenuates both slopes alike, so their ratio is the decoder's gain
    a_c = mean_a - mean_a.mean(0)
    spread = np.sum(a_c ** 2, 0)
    moves = spread > 0  # components whose mean changes across the points at all
    slope = lambda m: float(np.mean(np.sum(a_c * (m - m.mean(0)), 0)[moves] / spread[moves])) if moves.any() else np.nan  # noqa: E731
    out["slope"], out["slope_floor"] = slope(mean_dec), slope(mean_b)
    out["slope_ratio"] = _ratio(out["slope"], out["slope_floor"])
    out["w1_ratio"] = _ratio(out["w1"], out["w1_floor"])
    out["abs_bias_ratio"] = _ratio(out["abs_bias"], out["abs_bias_floor"])
    return out


def conditional_fidelity(key: jax.Array, model, md_trajs, *, latent=None, n_points: int = 200, n_draws: int = 32,
                         k: int = 32, window: int = 1, max_pairs: int = 200, q_fn: Callable | None = None,
                         seed: int = 0) -> dict:
    """The decoder's conditional distributions at held-out MD latent points against MD's (module docstring).

    Args:
        key: PRNG key of the decoder noise (draw ``b`` at point ``j``: trajectory ``b``, frame ``j``).
        model: a fitted :class:`lss_jax.LSS`.
        md_trajs: MD (``mdtraj.Trajectory`` or list, the training topology), held out from training.
        latent: the MD's latent coordinates, one ``[n_frames, m]`` array per trajectory (default: encoded here).
        n_points: latent points (MD frames drawn without replacement; all frames if there are fewer).
        n_draws: decoded frames per point. The floor compares ``k`` frames with ``k``, so ``w1`` and the floor
            are on the same footing when ``n_draws == k`` (the default).
        k: MD neighbours per set; each point uses its ``2 k`` nearest frames.
        window: frames of the point's own trajectory within ``window`` frames of it are not neighbours.
        max_pairs: at most this many atom pairs (:func:`observable_pairs`).
        q_fn: ``Q`` of frames of the decoded atoms (:func:`frame_observables`), or ``None`` (no ``q``).
        seed: seed of the points and the pairs.

    Returns:
        dict: ``n_points``, ``n_draws``, ``n_neighbours`` (``k``), ``window_frames``, ``n_pairs``,
        ``neighbour_radius`` (median over points of the unit-box distance to the ``2 k``-th neighbour: how far the
        empirical conditional reaches), and for each observable of :func:`frame_observables`
        (``radius_of_gyration_nm``, ``pair_distances_nm``, ``q``) a :func:`conditional_statistics` dict.

    Example:
        Not run as a doctest (it needs a fitted model; ``tests/test_conditional_fidelity.py`` runs it):

        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> out = conditional_fidelity(jax.random.key(0), model, load_alanine_dipeptide("independent"))  # doctest: +SKIP
        >>> out["radius_of_gyration_nm"]["w1_ratio"], out["pair_distances_nm"]["sd_ratio"]  # doctest: +SKIP
    """
    import mdtraj as md

    md_trajs = [md_trajs] if isinstance(md_trajs, md.Trajectory) else list(md_trajs)
    n_points, n_draws, k = (check_int(v, name) for v, name in ((n_points, "n_points"), (n_draws, "n_draws"), (k, "k")))
    if n_draws < 2 or k < 2:
        raise ValueError(f"n_draws and k must be at least 2 (a standard deviation per point), got {n_draws} and {k}.")
    latent = model.encode(md_trajs) if latent is None else [np.asarray(p) for p in latent]
    u = np.concatenate([model.to_unit(p) for p in latent]).astype(np.float64)
    segments = np.repeat(np.arange(len(latent)), [len(p) for p in latent])
    xyz = np.concatenate([np.asarray(t.xyz)[:, model.atom_indices] for t in md_trajs])
    rng = np.random.default_rng(seed)
    points = np.sort(rng.choice(len(u), min(n_points, len(u)), replace=False))
    near = latent_neighbours(u, points, 2 * k, segments=segments, window=window)
    pairs = observable_pairs(xyz.shape[1], max_pairs=max_pairs, seed=seed)
    # draw b at point j is frame j of trajectory b: its noise is addressed, whatever else is decoded
    tiled = np.broadcast_to(u[points].astype(np.float32), (n_draws, len(points), u.shape[1]))
    decoded = np.asarray(model.decode_unit(key, tiled, progress=False)).swapaxes(0, 1)  # [P, n_draws, n_atoms, 3]
    obs_dec = frame_observables(decoded.reshape(-1, *decoded.shape[2:]), pairs, q_fn=q_fn)
    obs_md = frame_observables(xyz[near.ravel()], pairs, q_fn=q_fn)
    out: dict = {"n_points": len(points), "n_draws": n_draws, "n_neighbours": k, "window_frames": window,
                 "n_pairs": len(pairs),
                 "neighbour_radius": float(np.median(np.linalg.norm(u[near[:, -1]] - u[points], axis=1)))}
    for name, values in obs_dec.items():
        md_values = obs_md[name].reshape(len(points), 2 * k, -1)
        out[name] = conditional_statistics(values.reshape(len(points), n_draws, -1), md_values[:, 0::2],
                                           md_values[:, 1::2])
    return out
