"""Adaptive sampling with an LSS: ask the model where to run MD next, run it, retrain, repeat.

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
    a speed-up: on the four-well potential a single long run beats every seeding rule we tried (the
    reasons are in :mod:`lss_jax.pipelines.adaptive`), and on alanine dipeptide it matches plain MD of
    equal cost in coverage and LSS free-energy error (``benchmarks/adaptive_ala2.py``, README).
  - ``beta = 1``: ``q = pi_LSS``: seeds where the kinetic model says the system spends more time than
    the MD has sampled. This ignores regions that are rare because they are high in free energy, and
    suits a population-weighted error; equilibrium-like data is what plain MD already produces.
* ``U``: the ensemble's epistemic uncertainty (:func:`lss_jax.ensemble.epistemic_uncertainty`): where the
  learned transitions disagree, more data changes the model most.
* ``z[.]`` standardizes each term over the candidates, so neither dominates by its units.

Seeds are then taken greedily by score with an exclusion radius in the unit latent box
(:func:`pick_distinct`), so that ``K`` seeds are ``K`` different places, not ``K`` copies of the best
frame. The same functions (:func:`combine_scores`, :func:`pick_distinct`) drive ``lss-jax adapt`` and
the four-well experiment (:mod:`lss_jax.pipelines.adaptive`).

**Rounds** (:func:`adaptive_sampling`, ``lss-jax adapt``): ``round-RRR/`` holds the model trained on all
data so far, the seeds (``seeds.pdb``, ``seeds.json``), one MD trajectory per seed (``md-SS.xtc``) and
``round.json``, written last as the completion marker. Rerunning continues after the last complete
round, reusing a finished model and finished MD files of an interrupted round.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lss_jax import _io

__all__ = [
    "SeedSelection",
    "combine_scores",
    "pick_distinct",
    "stationary_density",
    "acquisition_scores",
    "select_seeds",
    "adaptive_sampling",
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


def stationary_density(mixture_fn, params, points, *, key: jax.Array, n_cells: int = 1000, n_traj: int = 256,
                       n_steps: int = 400, boundary: str = "reflect", start=None) -> np.ndarray:
    """Stationary density of a propagator at unit-box ``points [N, m]`` (per unit volume of the box).

    1-D: exact up to the grid (:func:`lss_jax.analysis.msm.propagator_transition_matrix`, ``n_cells``).
    Otherwise: kernel density of ``n_traj`` rollouts of ``n_steps`` lags from ``start`` (``[n_traj, m]``
    unit-box points, default uniform), the first quarter dropped.

    Example:
        >>> from lss_jax.propagator import MixtureParams
        >>> fn = lambda p, x: MixtureParams(jnp.zeros((len(x), 1)), jnp.full((len(x), 1, 1), 0.5),
        ...                                 jnp.full((len(x), 1, 1), 0.1))   # i.i.d. N(0.5, 0.1) steps
        >>> d = stationary_density(fn, None, np.array([[0.5], [0.7]]), key=jax.random.key(0))
        >>> d.round(2).tolist()   # the normal density, 3.99 and 0.54
        [3.99, 0.54]
    """
    from lss_jax.analysis.msm import propagator_transition_matrix, stationary_distribution
    from lss_jax.ensemble import data_density
    from lss_jax.propagator import rollout

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


def acquisition_scores(model, psi, *, key: jax.Array, beta: float = 0.0, n_traj: int = 256,
                       n_steps: int = 400) -> tuple[np.ndarray, dict]:
    """Scores of candidate latent points ``psi [N, m]`` (rule in the module docstring) and their terms.

    ``pi_LSS`` is :func:`stationary_density` of the model's propagator (rollouts of ``n_traj`` x
    ``n_steps`` lags from random training frames when ``m > 1``).
    """
    from flax import nnx

    from lss_jax.propagator import mdn_apply_fn

    model._check_fitted()
    k_gen, k_unc, k_start = jax.random.split(key, 3)
    u = np.clip(model.to_unit(psi), 0, 1)
    frames = np.asarray(model.start_points)  # training frames in the unit box
    start = frames[np.asarray(jax.random.randint(k_start, (n_traj,), 0, len(frames)))]
    graphdef, params = nnx.split(model.propagator)
    pi_lss = stationary_density(mdn_apply_fn(graphdef), params, u, key=k_gen, n_traj=n_traj, n_steps=n_steps,
                                boundary=model.config.boundary, start=start)
    rho = model.data_density(psi)
    floor = 1e-12
    log_pi, log_rho = np.log(np.maximum(pi_lss, floor)), np.log(np.maximum(rho, floor))
    terms = {"log_pi_lss": log_pi, "log_rho_md": log_rho}
    unc = None
    if getattr(model, "propagator_ensemble", None) is not None:
        unc = model.uncertainty(psi, key=k_unc)
        terms["epistemic_uncertainty"] = unc
    return combine_scores(log_pi, log_rho, unc, beta=beta), terms


def select_seeds(model, trajs, n_seeds: int, *, key: jax.Array, beta: float = 0.0, max_candidates: int = 20_000,
                 exclusion: float = 0.05) -> SeedSelection:
    """Pick ``n_seeds`` frames of ``trajs`` to start new MD from (see the module docstring).

    Args:
        model: a fitted :class:`lss_jax.LSS`.
        trajs: candidate MD frames (``mdtraj.Trajectory`` or list; indices refer to their concatenation).
        n_seeds: ``K``.
        key: PRNG key (rollout, uncertainty).
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
    score, terms = acquisition_scores(model, psi, key=key, beta=beta)
    chosen = pick_distinct(np.clip(model.to_unit(psi), 0, 1), score, n_seeds, exclusion=exclusion)
    return SeedSelection(cand[chosen], psi[chosen], score[chosen], {k: np.asarray(v)[chosen] for k, v in terms.items()})


def _frame(trajs, index):
    for t in trajs:
        if index < t.n_frames:
            return t[index]
        index -= t.n_frames
    raise IndexError(index)


def adaptive_sampling(
    trajs,
    config,
    out_dir,
    *,
    system=None,
    n_rounds: int = 3,
    n_seeds: int = 10,
    beta: float = 0.0,
    md_frames: int = 100,
    frame_interval_ps: float | None = None,
    model=None,
    seed: int = 0,
    progress: bool = True,
    log=print,
) -> list[dict]:
    """Run ``n_rounds`` of train -> select seeds -> MD from the seeds -> append (resumable).

    Args:
        trajs: initial MD (``mdtraj.Trajectory`` objects, full atoms).
        config: :class:`lss_jax.LSSConfig` for every retraining.
        out_dir: directory of the rounds (layout in the module docstring).
        system: :class:`lss_jax.md.MDSystem`; ``None`` selects and writes the seeds of one round and stops.
        n_rounds, n_seeds: rounds and seeds per round.
        beta: exponent of the acquisition's target density (0: least counts, 1: equilibrium).
        md_frames: frames per new trajectory.
        frame_interval_ps: time between new frames (default: the initial trajectories' timestep, so the
            lag in frames keeps its meaning).
        model: a trained model to use in the first round instead of training one.
        seed: base seed (PRNG and MD integrator seeds).

    Returns:
        One log dict per round: data size and MD cost so far, seeds and their scores, wall time.
    """
    import mdtraj as md

    from lss_jax.lss import LSS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    frame_interval_ps = float(frame_interval_ps or trajs[0].timestep)
    top = out_dir / "topology.pdb"  # to read the new trajectories back
    if not top.is_file():
        with _io.atomic_path(top) as tmp:
            trajs[0][0].save_pdb(str(tmp))
    logs: list[dict] = []
    key = jax.random.key(seed)
    for r in range(n_rounds):
        rdir = out_dir / f"round-{r:03d}"
        marker = rdir / "round.json"
        if marker.is_file():  # finished earlier: reload its new trajectories and go on
            done = json.loads(marker.read_text())
            trajs += [md.load(str(rdir / f), top=str(top)) for f in done["md_files"]]
            logs.append(done)
            continue
        start = time.perf_counter()
        rdir.mkdir(parents=True, exist_ok=True)
        if r == 0 and model is not None:
            current = model
        elif (rdir / "model" / "lss.json").is_file():
            current = LSS.load(rdir / "model")
        else:
            log(f"round {r}: training on {sum(t.n_frames for t in trajs):,} frames in {len(trajs)} trajectories")
            current = LSS(config=config).fit(trajs, progress=progress)
            current.save(rdir / "model")
        sel = select_seeds(current, trajs, n_seeds, key=jax.random.fold_in(key, r), beta=beta)
        seeds = md.join([_frame(trajs, int(i)) for i in sel.indices])
        with _io.atomic_path(rdir / "seeds.pdb") as tmp:
            seeds.save_pdb(str(tmp))
        _io.write_json(rdir / "seeds.json", {k: np.asarray(v).tolist() for k, v in
                                             {"indices": sel.indices, "psi": sel.psi, "scores": sel.scores,
                                              **sel.terms}.items()})
        if system is None:
            log(f"round {r}: wrote {len(sel.indices)} seeds to {rdir / 'seeds.pdb'}; no MD system given, stopping.")
            logs.append({"round": r, "seeds_only": True, "seeds_pdb": str(rdir / "seeds.pdb")})
            break
        from lss_jax.md import run_md

        new_files = []
        for i in range(len(sel.indices)):
            f = rdir / f"md-{i:02d}.xtc"
            if not f.is_file():
                traj = run_md(system, md_frames, start_xyz=seeds.xyz[i], frame_interval_ps=frame_interval_ps,
                              seed=1 + seed * 100_003 + r * 1009 + i, progress=progress, desc=f"round {r} MD {i}")
                with _io.atomic_path(f) as tmp:
                    traj.save(str(tmp))
            new_files.append(f.name)
        trajs += [md.load(str(rdir / f), top=str(top)) for f in new_files]
        entry = {
            "round": r, "beta": beta, "n_trajectories": len(trajs), "n_frames_total": int(sum(t.n_frames for t in trajs)),
            "new_md_frames": int(len(new_files) * md_frames), "md_files": new_files,
            "seed_indices": sel.indices.tolist(), "seed_scores": sel.scores.tolist(), "seed_psi": sel.psi.tolist(),
            "seconds": time.perf_counter() - start,
        }
        _io.write_json(marker, entry)
        logs.append(entry)
    return logs
