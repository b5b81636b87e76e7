"""Adaptive-sampling rounds with OpenMM (``lss-jax adapt``): select seeds with the acquisition rule
(:mod:`lss_jax.adaptive.acquisition`), run short MD from them, retrain on all data, repeat.

**Rounds** (:func:`adaptive_sampling`, ``lss-jax adapt``): ``round-RRR/`` holds the model trained on all
data so far, the seeds (``seeds.pdb``, ``seeds.json``), one MD trajectory per seed (``md-SS.xtc``) and
``round.json``, written last as the completion marker. Rerunning continues after the last complete
round, reusing a finished model and finished MD files of an interrupted round.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from lss_jax.adaptive.acquisition import select_seeds
from lss_jax.engine import io as _io

__all__ = ["adaptive_sampling"]


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
        system: :class:`lss_jax.systems.md.MDSystem`; ``None`` selects and writes the seeds of one round and stops.
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

    from lss_jax.model.facade import LSS

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
        sel = select_seeds(jax.random.fold_in(key, r), current, trajs, n_seeds, beta=beta)
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
        from lss_jax.systems.md import run_md

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
