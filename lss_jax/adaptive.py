"""Adaptive sampling with an LSS: ask the model where to run MD next, run it, retrain, repeat.

An LSS is only as good as the coverage of its training MD (Sidky et al. 2020, Sec. 4). This module
turns a trained model into a sampling policy.

**Acquisition rule.** Candidates are frames of the MD gathered so far (real structures, so that MD can
start from them). Each candidate ``x`` (latent point ``psi = E(x)``) is scored by

    score(x) = z[ log pi_LSS(psi) - log rho_MD(psi) ] + z[ U(psi) ]      (second term with an ensemble)

* ``pi_LSS / rho_MD``: the LSS's stationary density (a kernel density of a long generated rollout)
  over the density of the training MD at the same point. Where it is large, the kinetic model says the
  system spends more time than the MD has sampled: under-sampled states, typically the edges of the
  explored region (MD trajectories left them quickly, or never came back), which is where new states
  are found. Using the ratio rather than ``1 / rho_MD`` alone ignores regions that are rare because
  they are high in free energy, not because they were missed.
* ``U``: the ensemble's epistemic uncertainty (:func:`lss_jax.ensemble.epistemic_uncertainty`) -
  where the learned transitions disagree, more data changes the model most.
* ``z[.]`` standardizes each term over the candidates so neither dominates by its units.

Seeds are then taken greedily by score with an exclusion radius in the unit latent box, so that ``K``
seeds are ``K`` different places, not ``K`` copies of the best frame.

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
import numpy as np

from lss_jax import _io

__all__ = ["SeedSelection", "combine_scores", "acquisition_scores", "select_seeds", "adaptive_sampling"]


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


def combine_scores(log_density_ratio, uncertainty=None) -> np.ndarray:
    """``z[log pi_LSS - log rho_MD] (+ z[U])``: the acquisition score of the module docstring.

    Example:
        >>> combine_scores(np.array([0.0, 1.0, 2.0])).round(3).tolist()
        [-1.225, 0.0, 1.225]
        >>> combine_scores(np.array([0.0, 1.0, 2.0]), np.array([0.3, 0.1, 0.2])).round(3).tolist()
        [-0.0, -1.225, 1.225]
    """
    score = _z(log_density_ratio)
    return score if uncertainty is None else score + _z(uncertainty)


def acquisition_scores(model, psi, *, key: jax.Array, n_traj: int = 256, n_steps: int = 400) -> tuple[np.ndarray, dict]:
    """Scores of candidate latent points ``psi [N, m]`` (rule in the module docstring) and their terms.

    ``pi_LSS`` comes from ``n_traj`` latent trajectories of ``n_steps`` lags started at random training
    frames (the first quarter dropped as relaxation from the start points).
    """
    from lss_jax.ensemble import data_density

    k_gen, k_unc = jax.random.split(key)
    lat = model.generate(k_gen, n_traj, n_steps, latent_only=True, progress=False)
    lss_points = lat[:, n_steps // 4 :].reshape(-1, lat.shape[-1])
    u = np.clip(model.to_unit(psi), 0, 1)
    pi_lss = data_density(np.clip(model.to_unit(lss_points), 0, 1), u)
    rho = model.data_density(psi)
    floor = 1e-12
    ratio = np.log(np.maximum(pi_lss, floor)) - np.log(np.maximum(rho, floor))
    terms = {"log_pi_lss_over_rho_md": ratio}
    unc = None
    if getattr(model, "propagator_ensemble", None) is not None:
        unc = model.uncertainty(psi, key=k_unc)
        terms["epistemic_uncertainty"] = unc
    return combine_scores(ratio, unc), terms


def select_seeds(model, trajs, n_seeds: int, *, key: jax.Array, max_candidates: int = 20_000,
                 exclusion: float = 0.05) -> SeedSelection:
    """Pick ``n_seeds`` frames of ``trajs`` to start new MD from (see the module docstring).

    Args:
        model: a fitted :class:`lss_jax.LSS`.
        trajs: candidate MD frames (``mdtraj.Trajectory`` or list; indices refer to their concatenation).
        n_seeds: ``K``.
        key: PRNG key (candidate subsampling, rollout, uncertainty).
        max_candidates: evenly spaced subsample of the frames to score.
        exclusion: minimum distance between seeds in the unit latent box (times ``sqrt(latent_dim)``).
    """
    import mdtraj as md

    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}.")
    psi_all = np.concatenate(model.encode(trajs))
    cand = np.unique(np.linspace(0, len(psi_all) - 1, min(max_candidates, len(psi_all))).astype(int))
    psi = psi_all[cand]
    score, terms = acquisition_scores(model, psi, key=key)
    u = np.clip(model.to_unit(psi), 0, 1)
    radius = exclusion * np.sqrt(u.shape[1])
    chosen: list[int] = []
    for i in np.argsort(-score):
        if all(np.linalg.norm(u[i] - u[j]) >= radius for j in chosen):
            chosen.append(int(i))
        if len(chosen) == n_seeds:
            break
    chosen_arr = np.array(chosen)
    return SeedSelection(cand[chosen_arr], psi[chosen_arr], score[chosen_arr],
                         {k: np.asarray(v)[chosen_arr] for k, v in terms.items()})


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
        sel = select_seeds(current, trajs, n_seeds, key=jax.random.fold_in(key, r))
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
            "round": r, "n_trajectories": len(trajs), "n_frames_total": int(sum(t.n_frames for t in trajs)),
            "new_md_frames": int(len(new_files) * md_frames), "md_files": new_files,
            "seed_indices": sel.indices.tolist(), "seed_scores": sel.scores.tolist(), "seed_psi": sel.psi.tolist(),
            "seconds": time.perf_counter() - start,
        }
        _io.write_json(marker, entry)
        logs.append(entry)
    return logs
