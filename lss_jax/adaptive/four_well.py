"""Adaptive sampling on the four-well potential: an MDN ensemble decides where to run new MD.

Beyond the paper (Sidky, Chen & Ferguson 2020): the LSS is trained on short Brownian-dynamics (BD)
runs that an acquisition rule starts where the data are thin and the learned kinetics uncertain, and
is compared with plain continuation of one BD trajectory at the same number of BD steps.

Protocol (dynamics, lag and reference as in :mod:`lss_jax.pipelines.four_well`):

1. **Initial data**: one BD trajectory of ``n_initial_steps`` started at the left-most minimum
   (x = -0.739). It must have visited the two left wells and no other; the basins are separated by the
   barrier tops x = -0.502, 0, 0.502 (local maxima of the potential), so "no other well" means no frame
   at x > 0. The barriers are low (1.0 and 1.6 kT), so even a 2000-step run (2 time units, about 4 t1)
   stays in the left half in only about 6% of runs: we draw ``n_initial_candidates`` runs with one key and keep the
   first that satisfies the condition (checked in code, :func:`initial_trajectory`). The initial data
   are therefore a run *conditioned* on not having crossed the central barrier; both arms start from it.
2. **Adaptive round** (``n_rounds`` times): min-max scale all frames gathered so far; pick ``n_seeds``
   frames with :func:`select_seed_frames`; run ``n_seeds`` BD trajectories of ``n_seed_steps`` from them
   with new keys; append them as separate trajectories.
3. **Baseline**: plain continuation of the initial trajectory, evaluated at the same numbers of BD
   steps as the adaptive rounds and further out on a geometric grid up to ``plain_max_steps``.
4. **Evaluation** (same for every arm, same key at the same step count): a single MDN
   (:func:`lss_jax.propagator.fit_mdn`) trained for a fixed number of gradient steps (not epochs, so
   small data sets are not under-trained; no early stopping, the epoch with the best validation NLL
   is kept). Validation data: the tail of every trajectory long enough to hold a lagged pair in it,
   and every fifth short run whole (:func:`lss_jax.data.pairs.split_trajectories` with ``lag``), so the
   short runs are not cut into pieces without a pair. Its **exact stationary density** (left
   eigenvector of its transition matrix on ``n_cells`` cells of the unit box, :func:`lss_bin_probabilities`)
   is scored against the exact Smoluchowski reference with the penalized RMSE below. A finite rollout
   gives the same number up to its sampling noise (``rmse_sampled``, 256 trajectories of 1000 lags, is
   kept as a cross-check; in the benchmark the two differ by 0.004 kT in the median and 0.03 kT at
   most), so differences between arms are differences in their data and in training, not in generation
   noise.

MD budget = all BD steps, the initial trajectory included. "Steps to target" is the first
evaluated budget at which the RMSE is <= ``target_rmse``.

**Acquisition rule**: the rule of ``lss-jax adapt`` (:mod:`lss_jax.adaptive`, where it is explained),

    score(x) = z[ beta * log pi_LSS(x) - log rho(x) ] + z[ U(x) ],

with ``rho`` the kernel density of the gathered frames, ``pi_LSS`` the mean exact stationary density
of the ensemble members, ``U`` the ensemble's epistemic uncertainty (an MDN ensemble of ``n_members``
block-bootstrapped members, :func:`lss_jax.propagator.ensemble.fit_mdn_ensemble`), and seeds at least
``exclusion`` apart in the unit box (:func:`lss_jax.adaptive.pick_distinct`). The default ``beta = 0``
(least counts) targets even coverage of the explored range, which is what an error counted equally
over the bins of a free-energy profile rewards; ``beta = 1`` and uniformly random seeds
(``seed_rule="random"``) are the ablations of ``benchmarks/studies/adaptive_four_well.py``.

**Free-energy error with missing regions** (:func:`penalized_free_energy_rmse`). The RMSE is taken
over every bin of the full range (-1.4, 1.4) whose exact probability is >= 1e-3 of its maximum (66
of 80 bins, as in the four-well pipeline). An LSS bin with less probability than
``floor_fraction`` (1e-3) times the LSS's largest bin probability -- in particular a bin it never
visits -- is given that floor probability. A bin the LSS misses therefore counts as if it had the
smallest density that still counts as populated: an unvisited well (exact F within 0.3 kT of the
minimum) costs about ln(1000) = 6.9 kT, a missed bin at the edge of the populated range little. A
profile that misses two wells has an RMSE of several kT. We also report ``rmse_core``, the same over
the bins with exact probability >= 1e-2 of the maximum (64 bins), which leaves out the outermost
bin on each side, next to the reflecting wall that min-max scaling puts at the data's extremes.

Results (``benchmarks/studies/adaptive_four_well.py``, JSON in ``benchmarks/results``) are in
``docs/adaptive_sampling.md``.

Units: positions in the potential's units, energies in kT, time in the BD time unit (``D = 1``).

References:
    H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020), Sec. 3.1.
    N. Houlsby et al., arXiv:1112.5745 (2011) (mutual information as acquisition score).
    G. R. Bowman, D. L. Ensign, V. S. Pande, J. Chem. Theory Comput. 6, 787 (2010) (adaptive
    seeding of short MD runs from poorly sampled states).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax.adaptive.acquisition import combine_scores, pick_distinct, stationary_density
from lss_jax.analysis.distributions import (
    _floored_free_energy,
    _penalized_rmse,
    penalized_free_energy_rmse,
    rebin,
)
from lss_jax.analysis.msm import propagator_transition_matrix, stationary_distribution
from lss_jax.config import PropagatorConfig
from lss_jax.data.pairs import split_trajectories
from lss_jax.engine import io as _io
from lss_jax.engine.progress import progress_bar
from lss_jax.generation.simulate import rollout_with_progress
from lss_jax.propagator import fit_mdn, mdn_apply_fn
from lss_jax.propagator.ensemble import data_density, epistemic_uncertainty, fit_mdn_ensemble, member
from lss_jax.propagator.scaling import MinMaxScaler, minmax_fit, minmax_inverse, minmax_transform
from lss_jax.systems.four_well import (
    FourWellDynamics,
    brownian_dynamics,
    four_well_potential,
    well_boundaries,
    wells_visited,
)

__all__ = [
    "AdaptiveConfig",
    "select_seed_frames",
    "initial_trajectory",
    "lss_bin_probabilities",
    "evaluate_lss",
    "steps_to_target",
    "run_adaptive_four_well",
]


@dataclasses.dataclass(frozen=True)
class AdaptiveConfig(FourWellDynamics):
    """Settings of the adaptive-sampling experiment (see the module docstring).

    BD settings (``dt``, ``diffusion``, ``kT``, ``integrator``, ``save_every``, ``lag_steps``) are those
    of :class:`lss_jax.pipelines.four_well.FourWellConfig`. Defaults: one repeat in about 3 minutes on
    2 CPU cores (up to 6 when the cores are shared).

    Example:
        >>> cfg = AdaptiveConfig(n_rounds=2)
        >>> cfg.adaptive_budgets()
        [2000, 6000, 10000]
        >>> AdaptiveConfig.quick().n_rounds
        1
    """

    # initial trajectory: only the two left wells
    n_initial_steps: int = 2000
    n_initial_candidates: int = 256
    # adaptive rounds
    n_rounds: int = 12
    n_seeds: int = 8
    n_seed_steps: int = 500
    seed_rule: str = "score"  # "score": lss_jax.adaptive rule; "random": uniform over gathered frames (ablation)
    beta: float = 0.0  # target density pi_LSS**beta of the rule (0: least counts, 1: equilibrium)
    use_uncertainty: bool = True  # add z[U] of the ensemble to the score
    exclusion: float = 0.05  # minimum seed distance in the unit box
    max_candidates: int = 400  # frames scored per round (evenly strided subsample, extremes always kept)
    n_uncertainty_samples: int = 64
    # ensemble used by the acquisition
    n_members: int = 4
    ensemble_hidden: tuple[int, ...] = (32, 32)
    ensemble_components: int = 8
    ensemble_train_steps: int = 1000
    # evaluation MDN (both arms)
    n_components: int = 8
    hidden: tuple[int, ...] = (64, 64)
    learning_rate: float = 2e-3
    batch_size: int = 512
    train_steps: int = 4000
    max_epochs: int = 1000
    val_fraction: float = 0.2
    # LSS stationary density: exact on a grid of the unit box; the sampled estimate is kept as a cross-check
    n_cells: int = 1000
    n_trajectories: int = 256
    n_lss_steps: int = 1000
    burn_in: int = 25
    boundary: str = "reflect"
    # analysis
    populated_fraction: float = 1e-3
    core_fraction: float = 1e-2
    floor_fraction: float = 1e-3
    target_rmse: float = 0.3
    # baseline: evaluated at the adaptive budgets, then geometrically up to plain_max_steps
    plain_max_steps: int = 400_000
    plain_growth: float = 1.5
    seed: int = 0

    @classmethod
    def quick(cls, **overrides) -> "AdaptiveConfig":
        """Tiny settings for a smoke run (one round, about 20 s on 2 CPU cores); not meant to reach the target."""
        base = dict(n_rounds=1, n_seeds=4, n_seed_steps=500, n_cells=200, n_uncertainty_samples=32,
                    n_members=2, ensemble_hidden=(8,), ensemble_components=2, ensemble_train_steps=50,
                    hidden=(16,), n_components=4, train_steps=100, n_trajectories=32, n_lss_steps=100, burn_in=5,
                    plain_max_steps=4000)
        base.update(overrides)
        return cls(**base)

    def __post_init__(self):
        super().__post_init__()
        positive = ("n_initial_steps", "n_initial_candidates", "n_seeds", "n_seed_steps",
                    "n_cells", "max_candidates", "n_uncertainty_samples", "n_members",
                    "ensemble_components", "ensemble_train_steps", "n_components", "batch_size", "train_steps",
                    "max_epochs", "n_trajectories", "n_lss_steps", "plain_max_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.n_rounds < 0:
            raise ValueError(f"n_rounds must be >= 0, got {self.n_rounds}.")
        for name in ("n_initial_steps", "n_seed_steps"):
            if getattr(self, name) % self.save_every:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of save_every ({self.save_every}).")
        if self.n_seed_steps // self.save_every <= self.lag_frames:
            raise ValueError(f"n_seed_steps ({self.n_seed_steps}) must exceed one lag ({self.lag_steps} steps), or "
                             "the seeded trajectories give no lagged pair.")
        if self.seed_rule not in ("score", "random"):
            raise ValueError(f"seed_rule must be 'score' or 'random', got {self.seed_rule!r}.")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}.")
        if not 0.0 <= self.exclusion < 1.0 / self.n_seeds:
            raise ValueError(f"exclusion must be in [0, 1 / n_seeds) so that n_seeds distinct seeds fit the unit box, "
                             f"got {self.exclusion}.")
        if not 0 <= self.burn_in < self.n_lss_steps:
            raise ValueError(f"burn_in must be in [0, n_lss_steps), got {self.burn_in}.")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}.")
        if self.plain_growth <= 1:
            raise ValueError(f"plain_growth must be > 1, got {self.plain_growth}.")

    @property
    def steps_per_round(self) -> int:
        return self.n_seeds * self.n_seed_steps

    def adaptive_budgets(self) -> list[int]:
        """BD steps after round 0 (initial data only), 1, ..., ``n_rounds``."""
        return [self.n_initial_steps + r * self.steps_per_round for r in range(self.n_rounds + 1)]

    def plain_budgets(self) -> list[int]:
        """BD steps at which the plain continuation is evaluated: the adaptive budgets, then a geometric grid."""
        budgets = self.adaptive_budgets()
        b = budgets[-1]
        while b < self.plain_max_steps:
            b = min(self.plain_max_steps, int(round(b * self.plain_growth / self.save_every)) * self.save_every)
            budgets.append(b)
        return sorted(set(budgets))


def initial_trajectory(key: jax.Array, config: AdaptiveConfig) -> tuple[np.ndarray, dict]:
    """The initial BD trajectory ``[n_initial_steps // save_every + 1]`` (start frame included) and a summary.

    ``n_initial_candidates`` walkers start at the left-most minimum and run ``n_initial_steps`` with one
    key; the first that visited wells 0 and 1 and no other is kept.

    Raises:
        RuntimeError: if no candidate qualifies (run shorter or draw more candidates).

    Example:
        >>> traj, info = initial_trajectory(jax.random.key(0), AdaptiveConfig())
        >>> info["wells_visited"], traj.shape
        ([0, 1], (201,))
    """
    cfg = config
    boundaries = well_boundaries(cfg.x_range)
    grid = np.linspace(cfg.x_range[0], boundaries[0], 20_001)
    x_start = float(grid[np.argmin(four_well_potential(grid, np))])
    frames = np.asarray(brownian_dynamics(
        key, jnp.full((cfg.n_initial_candidates,), x_start), n_steps=cfg.n_initial_steps, dt=cfg.dt,
        diffusion=cfg.diffusion, kT=cfg.kT, save_every=cfg.save_every, method=cfg.integrator,
    ), np.float64)
    frames = np.concatenate([np.full((len(frames), 1), x_start), frames], axis=1)
    visited = [wells_visited(f, boundaries) for f in frames]
    ok = [i for i, v in enumerate(visited) if v == [0, 1]]
    if not ok:
        raise RuntimeError(f"none of {cfg.n_initial_candidates} runs of {cfg.n_initial_steps} steps visited exactly "
                           "the two left wells; shorten n_initial_steps or raise n_initial_candidates.")
    traj = frames[ok[0]]
    if wells_visited(traj, boundaries) != [0, 1]:  # the contract of the experiment, checked explicitly
        raise RuntimeError("initial trajectory does not cover exactly wells 0 and 1.")
    basin = np.digitize(traj, boundaries)
    info = {
        "n_steps": cfg.n_initial_steps,
        "n_frames": int(len(traj)),
        "x_start": x_start,
        "candidate_index": int(ok[0]),
        "fraction_of_candidates_qualifying": len(ok) / len(frames),
        "wells_visited": wells_visited(traj, boundaries),
        "fraction_of_frames_per_well": [float(np.mean(basin == w)) for w in range(len(boundaries) + 1)],
        "x_min": float(traj.min()),
        "x_max": float(traj.max()),
        "well_boundaries": boundaries.tolist(),
    }
    return traj, info


# --------------------------------------------------------------------------------------------- evaluation
class _Reference(NamedTuple):
    edges: np.ndarray
    centers: np.ndarray
    f_exact: np.ndarray
    populated: np.ndarray
    core: np.ndarray


def _reference(cfg: AdaptiveConfig) -> _Reference:
    ref = cfg.exact_reference()
    edges = np.linspace(*cfg.x_range, cfg.n_bins + 1)
    pi = ref.stationary.reshape(cfg.n_bins, -1).sum(axis=1)
    return _Reference(edges, 0.5 * (edges[1:] + edges[:-1]), -cfg.kT * np.log(pi),
                      pi >= cfg.populated_fraction * pi.max(), pi >= cfg.core_fraction * pi.max())


def _scale(trajs: Sequence[np.ndarray]) -> tuple[MinMaxScaler, list[np.ndarray]]:
    scaler = minmax_fit(np.concatenate(trajs))
    return scaler, [np.asarray(minmax_transform(scaler, jnp.asarray(t, jnp.float32)[:, None])) for t in trajs]


def _epochs_for(trajs, lag: int, val_fraction: float, batch_size: int, n_steps: int, max_epochs: int):
    """(batch size, epochs) giving about ``n_steps`` gradient steps on the training pairs of ``trajs``."""
    n_pairs = sum(max(0, len(t) - lag) for t in split_trajectories(trajs, val_fraction, lag=lag)[0])
    batch = max(1, min(batch_size, n_pairs))
    return batch, int(np.clip(round(n_steps / max(1, n_pairs // batch)), 1, max_epochs))


def lss_bin_probabilities(mixture_fn, params, scaler: MinMaxScaler, edges, *, n_cells: int = 1000,
                          boundary: str = "reflect") -> np.ndarray:
    """Exact stationary probabilities of a 1-D LSS on the bins ``edges`` (in x), free of sampling noise.

    The stationary distribution of the propagator's transition matrix on ``n_cells`` cells of the unit
    box (:func:`lss_jax.analysis.msm.propagator_transition_matrix`), mapped to x through ``scaler`` and
    moved onto ``edges`` (:func:`lss_jax.analysis.distributions.rebin`); bins outside the data range get 0.
    """
    pi = stationary_distribution(propagator_transition_matrix(mixture_fn, params, n_cells, boundary=boundary))
    cells = np.linspace(float(scaler.low[0]), float(scaler.high[0]), n_cells + 1)
    return rebin(cells, pi, edges)


def evaluate_lss(key: jax.Array, trajs: Sequence[np.ndarray], config: AdaptiveConfig,
                 reference: _Reference | None = None) -> dict:
    """Train one MDN on BD trajectories ``trajs`` (list of ``[n_frames]``) and score its free energy.

    The evaluation of both arms (module docstring, step 4). ``rmse`` and ``rmse_core`` use the LSS's
    exact stationary density (:func:`lss_bin_probabilities`); ``rmse_sampled`` the histogram of
    ``n_trajectories`` generated trajectories, as a cross-check. ``reference`` caches the exact profile
    between calls.

    Returns:
        ``{"rmse", "rmse_core", "rmse_sampled", "data_range", "wells_visited_md", "f_lss", ...}`` (RMSEs in kT).

    Example:
        >>> cfg = AdaptiveConfig.quick(train_steps=20, n_lss_steps=20)
        >>> traj, _ = initial_trajectory(jax.random.key(0), cfg)
        >>> ev = evaluate_lss(jax.random.key(1), [traj], cfg)
        >>> ev["wells_visited_md"], ev["rmse"] > 1.0, ev["rmse_sampled"] > 1.0   # two wells only: penalized
        ([0, 1], True, True)
    """
    cfg, ref = config, _reference(config) if reference is None else reference
    k_fit, k_start, k_roll = jax.random.split(key, 3)
    scaler, unit = _scale(trajs)
    batch, epochs = _epochs_for(unit, cfg.lag_frames, cfg.val_fraction, cfg.batch_size, cfg.train_steps, cfg.max_epochs)
    propagator = PropagatorConfig(n_components=cfg.n_components, hidden=cfg.hidden, learning_rate=cfg.learning_rate,
                                  batch_size=batch, epochs=epochs, patience=epochs, boundary=cfg.boundary)
    model, history = fit_mdn(k_fit, unit, cfg.lag_frames, config=propagator, val_fraction=cfg.val_fraction,
                             progress=False)
    graphdef, params = nnx.split(model)
    mixture_fn = mdn_apply_fn(graphdef)
    p = lss_bin_probabilities(mixture_fn, params, scaler, ref.edges, n_cells=cfg.n_cells, boundary=cfg.boundary)
    frames = np.concatenate(unit)
    u0 = jnp.asarray(frames)[jax.random.randint(k_start, (cfg.n_trajectories,), 0, len(frames))]
    traj_u = rollout_with_progress(k_roll, mixture_fn, params, u0, n_steps=cfg.n_lss_steps,
                                   boundary=cfg.boundary, progress=False)
    lss = np.asarray(minmax_inverse(scaler, traj_u))[:, cfg.burn_in:, 0]
    kw = dict(floor_fraction=cfg.floor_fraction, kT=cfg.kT)
    return {
        "rmse": _penalized_rmse(p, ref.f_exact, ref.populated, **kw),
        "rmse_core": _penalized_rmse(p, ref.f_exact, ref.core, **kw),
        "rmse_sampled": penalized_free_energy_rmse(lss, ref.edges, ref.f_exact, ref.populated, **kw),
        "data_range": [float(scaler.low[0]), float(scaler.high[0])],
        "wells_visited_md": wells_visited(np.concatenate(trajs)),
        "n_frames": int(sum(len(t) for t in trajs)),
        "n_trajectories_md": len(trajs),
        "epochs": history.epochs_run,
        "best_epoch": history.best_epoch,
        "f_lss": _floored_free_energy(p, **kw).tolist(),
    }


def steps_to_target(md_steps: Sequence[int], rmse: Sequence[float], target: float, *,
                    sustained: bool = False) -> int | None:
    """First MD budget whose RMSE is ``<= target`` (``None`` if never).

    With ``sustained``, the first budget from which every later evaluated budget is ``<= target`` too
    (a stricter reading for noisy curves; ``None`` if the last one is above).

    Example:
        >>> steps_to_target([10, 20, 40, 80], [0.9, 0.25, 0.35, 0.2], 0.3)
        20
        >>> steps_to_target([10, 20, 40, 80], [0.9, 0.25, 0.35, 0.2], 0.3, sustained=True)
        80
        >>> steps_to_target([10], [0.9], 0.3) is None
        True
    """
    if len(md_steps) != len(rmse):
        raise ValueError(f"md_steps and rmse must have the same length, got {len(md_steps)} and {len(rmse)}.")
    below = np.asarray(rmse, np.float64) <= target
    if sustained:
        above = np.flatnonzero(~below)
        first = 0 if len(above) == 0 else above[-1] + 1
        return int(md_steps[first]) if first < len(md_steps) else None
    return int(md_steps[int(np.argmax(below))]) if below.any() else None


# --------------------------------------------------------------------------------------------- the experiment
def select_seed_frames(key: jax.Array, trajs: Sequence[np.ndarray], config: AdaptiveConfig) -> tuple[np.ndarray, dict]:
    """Indices (into the concatenated frames of ``trajs``) of ``n_seeds`` seed frames, and the terms of their scores.

    ``seed_rule="score"``: an MDN ensemble is trained on ``trajs`` and the candidates are scored and
    picked by the same functions as ``lss-jax adapt`` (:func:`lss_jax.adaptive.combine_scores` with
    ``beta``, :func:`lss_jax.adaptive.pick_distinct`); ``pi_LSS`` is the mean of the members' exact
    stationary densities. ``seed_rule="random"``: uniform draws from the frames (ablation).
    """
    cfg = config
    k_ens, k_unc, k_pick = jax.random.split(key, 3)
    _, unit = _scale(trajs)
    frames_u = np.concatenate(unit)
    if cfg.seed_rule == "random":
        picked = np.sort(np.asarray(jax.random.choice(k_pick, len(frames_u), (cfg.n_seeds,), replace=False)))
        return picked, {}
    batch, epochs = _epochs_for(unit, cfg.lag_frames, cfg.val_fraction, cfg.batch_size, cfg.ensemble_train_steps,
                                cfg.max_epochs)
    members = PropagatorConfig(n_components=cfg.ensemble_components, hidden=cfg.ensemble_hidden,
                               learning_rate=cfg.learning_rate, batch_size=batch, epochs=epochs, patience=epochs)
    ensemble, _ = fit_mdn_ensemble(k_ens, unit, cfg.lag_frames, config=members, n_members=cfg.n_members,
                                   val_fraction=cfg.val_fraction, progress=False)
    cand = np.unique(np.concatenate([
        np.linspace(0, len(frames_u) - 1, min(cfg.max_candidates, len(frames_u))).astype(np.int64),
        [np.argmin(frames_u[:, 0]), np.argmax(frames_u[:, 0])],
    ]))
    pi = np.mean([
        stationary_density(k_pick, mdn_apply_fn(g), prm, frames_u[cand], n_cells=min(cfg.n_cells, 400),
                           boundary=cfg.boundary)  # a ranking needs less resolution than the evaluation
        for g, prm in (nnx.split(member(ensemble, k)) for k in range(cfg.n_members))
    ], axis=0)
    rho = data_density(frames_u, frames_u[cand])
    unc = (epistemic_uncertainty(k_unc, ensemble, frames_u[cand], n_samples=cfg.n_uncertainty_samples)
           if cfg.use_uncertainty else None)
    log_pi, log_rho = np.log(np.maximum(pi, 1e-12)), np.log(np.maximum(rho, 1e-12))
    score = combine_scores(log_pi, log_rho, unc, beta=cfg.beta)
    chosen = pick_distinct(frames_u[cand], score, cfg.n_seeds, exclusion=cfg.exclusion)
    terms = {"score": score[chosen], "log_pi_lss": log_pi[chosen], "log_rho_md": log_rho[chosen]}
    if unc is not None:
        terms["epistemic_uncertainty"] = unc[chosen]
        terms["uncertainty_median"] = float(np.median(unc))
    return cand[chosen], terms


def _adaptive_round(key, trajs, cfg: AdaptiveConfig) -> tuple[list[np.ndarray], dict]:
    """One round: pick seeds (:func:`select_seed_frames`), BD from them. Returns the new trajectories and a log."""
    k_pick, k_md = jax.random.split(key)
    picked, terms = select_seed_frames(k_pick, trajs, cfg)
    seeds = np.concatenate(trajs)[picked]
    new = np.asarray(brownian_dynamics(k_md, jnp.asarray(seeds, jnp.float32), n_steps=cfg.n_seed_steps, dt=cfg.dt,
                                       diffusion=cfg.diffusion, kT=cfg.kT, save_every=cfg.save_every,
                                       method=cfg.integrator), np.float64)
    new = [np.concatenate([[s], t]) for s, t in zip(seeds, new)]
    data = np.concatenate(trajs)
    log = {"seeds": seeds.tolist(), "data_range_before": [float(data.min()), float(data.max())],
           **{k: np.asarray(v).tolist() for k, v in terms.items()}}
    return new, log


def run_adaptive_four_well(
    config: AdaptiveConfig = AdaptiveConfig(),
    out_dir: str | Path | None = None,
    *,
    extra_arms: dict[str, dict] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run adaptive sampling and plain continuation on the four-well potential; return the metrics.

    Args:
        config: the experiment; its seed rule drives the ``"adaptive"`` arm.
        out_dir: with it, writes ``metrics.json``, ``trajectories.npz`` (each adaptive arm's BD
            trajectories ``ARM/traj_000``, ... in order of collection, and the plain arm's one trajectory
            ``plain``) and ``adaptive_four_well.png`` (:func:`lss_jax.analysis.plots.adaptive_four_well_figure`), each atomically.
        extra_arms: more adaptive arms, ``{name: AdaptiveConfig overrides}`` (e.g.
            ``{"random_seeds": {"seed_rule": "random"}, "beta_1": {"beta": 1.0}}``). Every arm uses the same
            initial run, the same BD key per round and the same evaluation key per budget, so arms differ
            only in their seeds.

    Returns:
        ``{"initial", "adaptive", "plain", <extra arms>, "steps_to_target", "steps_ratio_plain_over_adaptive",
        ...}``; each arm has per-evaluation ``md_steps``, ``rmse``, ``rmse_core``, ``rmse_sampled`` and
        ``evaluations`` (profiles and details), the adaptive arms also ``rounds`` (seeds and their scores).
    """
    cfg = config
    start = time.perf_counter()
    key = jax.random.key(cfg.seed)
    k_init, k_adapt, k_plain, k_eval = jax.random.split(key, 4)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    ref = _reference(cfg)
    traj0, init_info = initial_trajectory(k_init, cfg)
    log(f"adaptive four-well (seed {cfg.seed}): initial run of {cfg.n_initial_steps} steps visited wells "
        f"{init_info['wells_visited']} (x in [{init_info['x_min']:.2f}, {init_info['x_max']:.2f}])")
    evaluate = lambda trajs, steps: evaluate_lss(jax.random.fold_in(k_eval, steps), trajs, cfg, ref)  # noqa: E731
    arm_configs = {"adaptive": cfg, **{name: dataclasses.replace(cfg, **over) for name, over in (extra_arms or {}).items()}}

    adaptive_budgets, plain_budgets = cfg.adaptive_budgets(), cfg.plain_budgets()
    n_work = 1 + 2 * cfg.n_rounds * len(arm_configs) + len(plain_budgets) - 1
    seconds = {"seed_selection": 0.0, "evaluation": 0.0, "bd": 0.0}
    arms, collected = {}, {}
    with progress_bar(total=n_work, desc="adaptive four-well", unit="fit", disable=not progress) as bar:
        t = time.perf_counter()
        first = evaluate([traj0], cfg.n_initial_steps)
        seconds["evaluation"] += time.perf_counter() - t
        bar.update(1)
        for name, arm_cfg in arm_configs.items():
            arm = {"md_steps": [cfg.n_initial_steps], "evaluations": [first], "rounds": [],
                   "seed_rule": {"seed_rule": arm_cfg.seed_rule, "beta": arm_cfg.beta,
                                 "use_uncertainty": arm_cfg.use_uncertainty}}
            trajs = [traj0]
            for r in range(1, cfg.n_rounds + 1):
                t = time.perf_counter()
                new, round_log = _adaptive_round(jax.random.fold_in(k_adapt, r), trajs, arm_cfg)
                seconds["seed_selection"] += time.perf_counter() - t
                bar.update(1)
                trajs = trajs + new
                steps = adaptive_budgets[r]
                t = time.perf_counter()
                ev = evaluate(trajs, steps)
                seconds["evaluation"] += time.perf_counter() - t
                bar.update(1)
                arm["md_steps"].append(steps)
                arm["evaluations"].append(ev)
                arm["rounds"].append(round_log)
                log(f"  {name} round {r}: {steps:>7,} steps  RMSE {ev['rmse']:.3f} kT (core {ev['rmse_core']:.3f})  "
                    f"range [{ev['data_range'][0]:.2f}, {ev['data_range'][1]:.2f}]  wells {ev['wells_visited_md']}")
            arms[name], collected[name] = arm, trajs

        arms["plain"], x = _plain_continuation(k_plain, traj0, first, plain_budgets, cfg, evaluate, seconds, bar, log)

    for arm in arms.values():
        for k in ("rmse", "rmse_core", "rmse_sampled"):
            arm[k] = [e[k] for e in arm["evaluations"]]

    def reach(column, **kw):
        return {name: steps_to_target(arm["md_steps"], arm[column], cfg.target_rmse, **kw) for name, arm in arms.items()}

    reached, reached_core, reached_sustained = reach("rmse"), reach("rmse_core"), reach("rmse", sustained=True)
    ratio = lambda d: d["plain"] / d["adaptive"] if d["plain"] and d["adaptive"] else None  # noqa: E731
    metrics = {
        "target_rmse_kT": cfg.target_rmse,
        "steps_to_target": reached,
        "steps_ratio_plain_over_adaptive": ratio(reached),
        "steps_to_target_sustained": reached_sustained,
        "steps_to_target_core": reached_core,
        "steps_ratio_plain_over_adaptive_core": ratio(reached_core),
        "initial": init_info,
        **arms,
        "arms": list(arms),
        "reference": {"bin_centers": ref.centers.tolist(), "f_exact": ref.f_exact.tolist(),
                      "populated": ref.populated.tolist(), "core": ref.core.tolist(),
                      "n_bins_compared": int(ref.populated.sum()), "n_bins_core": int(ref.core.sum())},
        "wall_seconds": {**{k: round(v, 2) for k, v in seconds.items()}, "total": round(time.perf_counter() - start, 2)},
        "settings": {"config": dataclasses.asdict(cfg), "extra_arms": extra_arms or {},
                     "time_unit": "BD time unit (D = 1, kT = 1)", "lag_time": cfg.lag_steps * cfg.dt},
        "versions": {"jax": jax.__version__, "backend": jax.default_backend()},
    }
    if out_dir is not None:
        _io.save_npz(out_dir / "trajectories.npz", plain=x.astype(np.float32),
                     **{f"{name}/traj_{i:03d}": t.astype(np.float32)
                        for name, trajs in collected.items() for i, t in enumerate(trajs)})
        from lss_jax.analysis.plots import adaptive_four_well_figure

        adaptive_four_well_figure(out_dir / "adaptive_four_well.png", [metrics])
        metrics["wall_seconds"]["total"] = round(time.perf_counter() - start, 2)
        _io.write_json(out_dir / "metrics.json", metrics)
    return metrics


def _plain_continuation(key, traj0, first, budgets, cfg: AdaptiveConfig, evaluate, seconds, bar, log):
    """The plain arm: the initial run continued (one BD trajectory, the same key throughout) and evaluated at
    every budget after the first. Returns the arm and its trajectory; adds to ``seconds`` and advances ``bar``."""
    plain = {"md_steps": [cfg.n_initial_steps], "evaluations": [first]}
    x = traj0
    for steps in budgets[1:]:
        t = time.perf_counter()
        done = len(x) - 1
        more = np.asarray(brownian_dynamics(
            key, jnp.asarray(x[-1:], jnp.float32), n_steps=steps - done * cfg.save_every, dt=cfg.dt,
            diffusion=cfg.diffusion, kT=cfg.kT, save_every=cfg.save_every, method=cfg.integrator,
            start_step=done * cfg.save_every - cfg.n_initial_steps,
        ), np.float64)[0]
        x = np.concatenate([x, more])
        seconds["bd"] += time.perf_counter() - t
        t = time.perf_counter()
        ev = evaluate([x], steps)
        seconds["evaluation"] += time.perf_counter() - t
        bar.update(1)
        plain["md_steps"].append(steps)
        plain["evaluations"].append(ev)
        log(f"  plain continuation: {steps:>7,} steps  RMSE {ev['rmse']:.3f} kT (core {ev['rmse_core']:.3f})  "
            f"range [{ev['data_range'][0]:.2f}, {ev['data_range'][1]:.2f}]  wells {ev['wells_visited_md']}")
    return plain, x


# --------------------------------------------------------------------------------------------- figure
