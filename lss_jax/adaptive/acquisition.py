"""The acquisition rule of adaptive sampling: where an LSS asks for MD next.

An LSS is only as good as the coverage of its training MD (Sidky et al. 2020, Sec. 4). This module
turns a trained model into a sampling policy.

**Acquisition rule.** Candidates are frames of the MD gathered so far (real structures, so that MD can
start from them). Each candidate ``x`` (latent point ``psi = E(x)``) is scored by

    score(x) = z[ beta * log pi_LSS(psi) - log rho_MD(psi) ] + z[ U(psi) ]      (second term with an ensemble)

* ``rho_MD``: the kernel density of the MD gathered so far, in the unit latent box.
* ``pi_LSS``: the LSS's stationary density. For a 1-D latent space it is exact (the left eigenvector of
  the propagator's transition matrix on a fine grid, :func:`lss_jax.analysis.msm.propagator_transition_matrix`);
  otherwise a kernel density of a generated rollout.
* ``beta`` sets which data distribution the rule steers towards, ``q ∝ pi_LSS**beta``: the first term
  is ``log q - log rho_MD``, large where the MD has fewer frames than ``q`` asks for.

  - ``beta = 0`` (**least counts**, the default): ``q`` is uniform over the explored latent space. Seeds
    go where the data are thinnest: the edges of the explored region (the only places from which MD
    can reach unseen states, since min-max scaling confines an LSS to its data) and barrier regions
    (rare in equilibrium MD, yet they set the relative populations). The free-energy error of a bin
    falls like ``1 / sqrt(n_bin)``, so for an error counted equally over the landscape (the RMSE of a
    free-energy profile) even coverage is the allocation that statistics favour. Measured, it is *not*
    a speed-up: on the four-well potential a single long run beats every seeding rule we tried (``docs/adaptive_sampling.md``), and on alanine dipeptide it matches plain MD of
    equal cost (``benchmarks/studies/adaptive_ala2.py``; the results are in ``docs/adaptive_sampling.md``).
  - ``beta = 1``: ``q = pi_LSS``: seeds where the kinetic model says the system spends more time than
    the MD has sampled. This ignores regions that are rare because they are high in free energy, and
    suits a population-weighted error; equilibrium-like data is what plain MD already produces.
* ``U``: the ensemble's epistemic uncertainty (:func:`lss_jax.propagator.ensemble.epistemic_uncertainty`): where the
  learned transitions disagree, more data changes the model most.
* ``z[.]`` standardizes each term over the candidates, so neither dominates by its units.

Seeds are then taken greedily by score with an exclusion radius in the unit latent box
(:func:`pick_distinct`), so that ``K`` seeds are ``K`` different places, not ``K`` copies of the best
frame. The same functions (:func:`combine_scores`, :func:`pick_distinct`) drive ``lss-jax adapt`` and
the four-well experiment (:mod:`lss_jax.adaptive.four_well`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "SeedSelection",
    "combine_scores",
    "pick_distinct",
    "stationary_density",
    "acquisition_scores",
    "select_seeds",
]


class SeedSelection(NamedTuple):
    """Chosen seeds: indices into the candidate frames, their latent points and scores."""

    indices: np.ndarray  # [K] indices into the concatenated candidate frames
    psi: np.ndarray  # [K, latent_dim]
    scores: np.ndarray  # [K]
    terms: dict  # per-seed values of each score term


def _z(v):
    v = np.asarray(v, np.float64)
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


def combine_scores(log_pi_lss, log_rho_md, uncertainty=None, *, beta: float = 0.0) -> np.ndarray:
    """``z[beta log pi_LSS - log rho_MD] (+ z[U])``: the acquisition score of the module docstring.

    Args:
        log_pi_lss: ``[N]`` log stationary density of the LSS at the candidates.
        log_rho_md: ``[N]`` log density of the MD data at the candidates.
        uncertainty: optional ``[N]`` epistemic uncertainty.
        beta: exponent of the target density ``q ∝ pi_LSS**beta`` (0: uniform coverage; 1: equilibrium).

    Example:
        >>> log_pi, log_rho = np.array([0.0, 0.0, -2.0]), np.array([0.0, -1.0, -2.0])
        >>> combine_scores(log_pi, log_rho).round(3).tolist()            # least counts: thinnest data first
        [-1.225, 0.0, 1.225]
        >>> combine_scores(log_pi, log_rho, beta=1.0).round(3).tolist()  # data short of pi_LSS
        [-0.707, 1.414, -0.707]
        >>> combine_scores(log_pi, log_rho, np.array([0.3, 0.1, 0.2])).round(3).tolist()
        [-0.0, -1.225, 1.225]
    """
    log_pi_lss, log_rho_md = np.asarray(log_pi_lss, np.float64), np.asarray(log_rho_md, np.float64)
    if log_pi_lss.shape != log_rho_md.shape or log_pi_lss.ndim != 1:
        raise ValueError(f"log_pi_lss and log_rho_md must both be [N], got {log_pi_lss.shape} and {log_rho_md.shape}.")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1] (0: uniform coverage, 1: equilibrium), got {beta}.")
    score = _z(beta * log_pi_lss - log_rho_md)
    if uncertainty is None:
        return score
    uncertainty = np.asarray(uncertainty, np.float64)
    if uncertainty.shape != score.shape:
        raise ValueError(f"uncertainty must be [N] like the densities, got {uncertainty.shape} for N = {len(score)}.")
    return score + _z(uncertainty)


def pick_distinct(points, scores, n_seeds: int, *, exclusion: float = 0.05) -> np.ndarray:
    """Indices of up to ``n_seeds`` best-scoring ``points [N, m]`` (unit box) at least ``exclusion * sqrt(m)`` apart.

    Greedy: the best remaining candidate is taken unless it lies within the radius of one already taken.

    Raises:
        ValueError: if fewer than ``n_seeds`` candidates are that far apart (lower ``exclusion``).

    Example:
        >>> x = np.array([[0.10], [0.12], [0.50], [0.90]])
        >>> pick_distinct(x, np.array([3.0, 2.9, 1.0, 2.0]), 3, exclusion=0.05).tolist()
        [0, 3, 2]
    """
    u = np.asarray(points, np.float64)
    u = u[:, None] if u.ndim == 1 else u
    scores = np.asarray(scores, np.float64)
    if scores.shape != (len(u),):
        raise ValueError(f"scores must be [N] with N = {len(u)} points, got {scores.shape}.")
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}.")
    radius = exclusion * np.sqrt(u.shape[1])
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(np.linalg.norm(u[i] - u[j]) >= radius for j in chosen):
            chosen.append(int(i))
            if len(chosen) == n_seeds:
                return np.array(chosen)
    raise ValueError(f"only {len(chosen)} of the candidates are {radius:.3g} apart in the unit box, fewer than "
                     f"n_seeds = {n_seeds}; lower the exclusion radius or ask for fewer seeds.")


def stationary_density(key: jax.Array, mixture_fn, params, points, *, n_cells: int = 1000, n_traj: int = 256,
                       n_steps: int = 400, boundary: str = "reflect", start=None) -> np.ndarray:
    """Stationary density of a propagator at unit-box ``points [N, m]`` (per unit volume of the box).

    1-D: exact up to the grid (:func:`lss_jax.analysis.msm.propagator_transition_matrix`, ``n_cells``).
    Otherwise: kernel density of ``n_traj`` rollouts of ``n_steps`` lags from ``start`` (``[n_traj, m]``
    unit-box points, default uniform), the first quarter dropped.

    Example:
        >>> from lss_jax.propagator import MixtureParams
        >>> fn = lambda p, x: MixtureParams(jnp.zeros((len(x), 1)), jnp.full((len(x), 1, 1), 0.5),
        ...                                 jnp.full((len(x), 1, 1), 0.1))   # i.i.d. N(0.5, 0.1) steps
        >>> d = stationary_density(jax.random.key(0), fn, None, np.array([[0.5], [0.7]]))
        >>> d.round(2).tolist()   # the normal density, 3.99 and 0.54
        [3.99, 0.54]
    """
    from lss_jax.analysis.msm import propagator_transition_matrix, stationary_distribution
    from lss_jax.propagator import rollout
    from lss_jax.propagator.ensemble import data_density

    points = np.asarray(points, np.float64)
    points = points[:, None] if points.ndim == 1 else points
    if points.shape[1] == 1:
        pi = stationary_distribution(propagator_transition_matrix(mixture_fn, params, n_cells, boundary=boundary))
        return np.interp(points[:, 0], (np.arange(n_cells) + 0.5) / n_cells, pi * n_cells)
    k_start, k_roll = jax.random.split(key)
    if start is None:
        start = jax.random.uniform(k_start, (n_traj, points.shape[1]))
    traj = rollout(k_roll, mixture_fn, params, jnp.asarray(start, jnp.float32), n_steps=n_steps, boundary=boundary)
    samples = np.asarray(traj)[:, n_steps // 4:].reshape(-1, points.shape[1])
    return data_density(samples, points)


def acquisition_scores(key: jax.Array, model, psi, *, beta: float = 0.0, n_traj: int = 256,
                       n_steps: int = 400) -> tuple[np.ndarray, dict]:
    """Scores of candidate latent points ``psi [N, m]`` (rule in the module docstring) and their terms.

    ``pi_LSS`` is :func:`stationary_density` of the model's propagator (rollouts of ``n_traj`` x
    ``n_steps`` lags from random training frames when ``m > 1``).
    """
    from flax import nnx

    from lss_jax.model import as_model
    from lss_jax.propagator import mdn_apply_fn

    model = as_model(model)
    k_gen, k_unc, k_start = jax.random.split(key, 3)
    u = np.clip(model.to_unit(psi), 0, 1)
    frames = np.asarray(model.start_points)  # training frames in the unit box
    start = frames[np.asarray(jax.random.randint(k_start, (n_traj,), 0, len(frames)))]
    graphdef, params = nnx.split(model.propagator)
    pi_lss = stationary_density(k_gen, mdn_apply_fn(graphdef), params, u, n_traj=n_traj, n_steps=n_steps,
                                boundary=model.config.propagator.boundary, start=start)
    rho = model.data_density(psi)
    floor = 1e-12
    log_pi, log_rho = np.log(np.maximum(pi_lss, floor)), np.log(np.maximum(rho, floor))
    terms = {"log_pi_lss": log_pi, "log_rho_md": log_rho}
    unc = None
    if model.propagator_ensemble is not None:
        unc = model.uncertainty(k_unc, psi)
        terms["epistemic_uncertainty"] = unc
    return combine_scores(log_pi, log_rho, unc, beta=beta), terms


def select_seeds(key: jax.Array, model, trajs, n_seeds: int, *, beta: float = 0.0, max_candidates: int = 20_000,
                 exclusion: float = 0.05) -> SeedSelection:
    """Pick ``n_seeds`` frames of ``trajs`` to start new MD from (see the module docstring).

    Args:
        key: PRNG key (rollout, uncertainty).
        model: a fitted :class:`lss_jax.LSSModel` (or :class:`lss_jax.LSS`).
        trajs: candidate MD frames (``mdtraj.Trajectory`` or list; indices refer to their concatenation).
        n_seeds: ``K``.
        beta: exponent of the target density (0: least counts, 1: equilibrium; module docstring).
        max_candidates: evenly spaced subsample of the frames to score (the extremes of every latent
            coordinate are always candidates).
        exclusion: minimum distance between seeds in the unit latent box (times ``sqrt(latent_dim)``).
    """
    import mdtraj as md

    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}.")
    psi_all = np.concatenate(model.encode(trajs))
    cand = np.unique(np.concatenate([
        np.linspace(0, len(psi_all) - 1, min(max_candidates, len(psi_all))).astype(int),
        np.argmin(psi_all, axis=0), np.argmax(psi_all, axis=0),
    ]))
    psi = psi_all[cand]
    score, terms = acquisition_scores(key, model, psi, beta=beta)
    chosen = pick_distinct(np.clip(model.to_unit(psi), 0, 1), score, n_seeds, exclusion=exclusion)
    return SeedSelection(cand[chosen], psi[chosen], score[chosen], {k: np.asarray(v)[chosen] for k, v in terms.items()})


