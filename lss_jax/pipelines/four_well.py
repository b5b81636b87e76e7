"""The paper's four-well validation (Sidky, Chen & Ferguson 2020, Sec. 3.1, Fig. 2), end to end.

1. Brownian dynamics (BD) in the four-well potential with a jitted ``lax.scan`` integrator.
2. An exact reference: the Smoluchowski generator on a fine grid, exponentiated with ``expm``,
   cross-checked against an independent ensemble of BD walkers.
3. An MDN propagator (C = 96 kernels, the paper's 2 x 100 ReLU, Adam, early stopping; the paper's C = 8 is
   one setting away) on the min-max-scaled trajectory at lag tau = 100 BD steps.
4. LSS generation: ``n_trajectories`` trajectories, each as long as the training data in units of tau,
   in one batched ``lax.scan``.
5. Validation: free energy, implied timescales, transition density; figures and ``metrics.json``. The
   learned chain is also analysed without sampling noise, from its transition matrix on 1000 cells
   (``free_energy_rmse_kT_lss_exact``, timescales ``lss_exact``).

Units: positions in the potential's units, energies in kT, time in the BD time unit (``D = 1``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax.analysis.distributions import free_energy_rmse, histogram_free_energy, rebin
from lss_jax.analysis.msm import (
    implied_timescales_from_matrix,
    msm_implied_timescales,
    propagator_transition_matrix,
    stationary_distribution,
)
from lss_jax.config import PropagatorConfig
from lss_jax.engine import io as _io
from lss_jax.generation.simulate import collect_rollout, iter_rollout, rollout_with_progress
from lss_jax.propagator import fit_mdn, gaussian_mixture_log_prob, mdn_apply_fn
from lss_jax.propagator.scaling import minmax_fit, minmax_inverse, minmax_transform
from lss_jax.systems.four_well import FourWellDynamics, brownian_dynamics

__all__ = ["FourWellConfig", "run_four_well"]


@dataclasses.dataclass(frozen=True)
class FourWellConfig(FourWellDynamics):
    """Settings of the four-well validation (defaults: the paper's protocol).

    ``dt = 1e-3`` with ``D = kT = 1`` and the Leimkuhler-Matthews integrator keeps the bias of the
    stationary density at 0.006 kT (measured against the exact density; Euler-Maruyama at the same
    ``dt``: 0.056 kT), and a 5e6-step run lasts 5000 time units, about 10^4 slowest relaxation times
    (t1 = 0.47).
    """

    n_bd_steps: int = 5_000_000
    # independent BD ensemble for the cross-check of the exact reference
    n_check_walkers: int = 256
    n_check_steps: int = 1_000_000
    # MDN and its training: 96 kernels (the paper: 8). The x^8 walls cut the stationary density off faster
    # than any Gaussian tail, and a mixture needs many narrow kernels to follow them: over seeds 0-2 the free
    # energy error against the exact density is 0.18 kT with C = 8, 0.04-0.12 kT with 48, 0.04-0.06 kT with 96
    n_components: int = 96
    hidden: tuple[int, ...] = (100, 100)
    learning_rate: float = 1e-3  # Adam, cosine-decayed to 1% over max_epochs
    batch_size: int = 1024
    max_epochs: int = 60
    patience: int = 30  # the cosine decay keeps improving late; stop only on a long plateau
    val_fraction: float = 0.1
    # generation
    n_trajectories: int = 1024
    n_lss_steps: int | None = None  # default: training length in units of tau
    boundary: str = "reflect"
    precision: str = "float32"  # matmul precision of the generation rollout (see lss_jax.propagator.with_precision)
    seed: int = 0

    @classmethod
    def quick(cls, **overrides) -> "FourWellConfig":
        """Small settings for a smoke run (<= 2 minutes on 2 CPU cores)."""
        base = dict(n_bd_steps=1_000_000, n_check_walkers=64, n_check_steps=200_000, max_epochs=20, patience=20)
        base.update(overrides)
        return cls(**base)

    def __post_init__(self):
        super().__post_init__()
        positive = ("n_bd_steps", "n_check_walkers", "n_check_steps", "n_components", "batch_size", "max_epochs",
                    "patience", "n_trajectories")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.n_bd_steps % self.lag_steps or self.n_check_steps % self.save_every:
            raise ValueError("n_bd_steps must be a multiple of lag_steps and n_check_steps of save_every.")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}.")

    @property
    def lss_steps(self) -> int:
        return self.n_lss_steps if self.n_lss_steps is not None else self.n_bd_steps // self.lag_steps


class _Timer:
    def __init__(self):
        self.seconds = {}

    def __call__(self, name):
        timer = self

        class _Phase:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = round(time.perf_counter() - self.start, 3)

        return _Phase()


def learned_transition_density(model, scaler, x, y, boundary: str = "reflect") -> np.ndarray:
    """Density ``p(y | x)`` per unit of ``y`` implied by a trained 1-D MDN, ``[len(x), len(y)]``.

    With reflecting walls the sampled density on the unit box is the mixture plus its mirror images
    across 0 and 1, which are included here.
    """
    span = float(scaler.high[0] - scaler.low[0])
    ux = minmax_transform(scaler, jnp.asarray(x, jnp.float32)[:, None])
    uy = minmax_transform(scaler, jnp.asarray(y, jnp.float32)[:, None])
    mixture = model(ux)
    images = [uy, -uy, 2.0 - uy] if boundary == "reflect" else [uy]

    def density(mix):
        return sum(jnp.exp(gaussian_mixture_log_prob(img, *[a[None] for a in mix])) for img in images)

    dens = jax.vmap(density)(mixture)
    inside = ((uy[:, 0] >= 0) & (uy[:, 0] <= 1)) if boundary != "none" else jnp.ones(len(y), bool)
    return np.asarray(dens * inside[None, :], np.float64) / span


def run_four_well(
    config: FourWellConfig = FourWellConfig(),
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the four-well validation and return the metrics; write outputs to ``out_dir`` if given.

    Writes ``metrics.json``, ``bd_trajectory.npy`` (``[n_frames]``, one frame every
    ``save_every * dt``), ``lss_trajectories.npy`` (``[n_trajectories, n_frames]``, frames tau
    apart), ``profiles.npz`` and the PNG figures.
    """
    cfg = config
    timer = _Timer()
    key = jax.random.key(cfg.seed)
    k_bd, k_check, k_train, k_start, k_roll = jax.random.split(key, 5)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

    with timer("reference"):
        ref, edges, f_exact, populated, t_exact_msm, p_exact = _exact_profiles(cfg)

    log(f"four-well: BD {cfg.n_bd_steps:,} steps (dt={cfg.dt}, D={cfg.diffusion}, kT={cfg.kT})")
    with timer("bd"):
        x0 = ref.centers[np.argmax(ref.stationary)]
        bd = np.asarray(
            _chunked_bd(k_bd, np.array([x0]), cfg.n_bd_steps, cfg, progress=progress, desc="BD trajectory")
        )[0]
    with timer("bd_crosscheck"):
        starts = np.random.default_rng(cfg.seed).choice(ref.centers, size=cfg.n_check_walkers, p=ref.stationary)
        check = np.asarray(_chunked_bd(k_check, starts, cfg.n_check_steps, cfg, progress=progress, desc="BD ensemble"))

    with timer("training"):
        scaler = minmax_fit(bd)
        u = np.asarray(minmax_transform(scaler, jnp.asarray(bd, jnp.float32)[:, None]))
        lag = cfg.lag_frames
        propagator = PropagatorConfig(n_components=cfg.n_components, hidden=cfg.hidden, learning_rate=cfg.learning_rate,
                                      batch_size=cfg.batch_size, epochs=cfg.max_epochs, patience=cfg.patience,
                                      boundary=cfg.boundary)
        model, history = fit_mdn(k_train, u, lag, config=propagator, val_fraction=cfg.val_fraction, progress=progress)
        u_train = u[: len(u) - int(round(cfg.val_fraction * len(u)))]

    log(f"four-well: generating {cfg.n_trajectories} x {cfg.lss_steps:,} LSS steps")
    with timer("generation"):
        graphdef, params = nnx.split(model)
        start_idx = jax.random.randint(k_start, (cfg.n_trajectories,), 0, len(u_train))
        u0 = jnp.asarray(u_train)[start_idx]
        traj_u = rollout_with_progress(
            k_roll, mdn_apply_fn(graphdef), params, u0, n_steps=cfg.lss_steps, boundary=cfg.boundary, progress=progress,
            precision=cfg.precision,
        )
        lss = np.asarray(minmax_inverse(scaler, traj_u))[..., 0]

    with timer("analysis"):
        f_bd, _ = histogram_free_energy(bd, edges, kT=cfg.kT)
        f_check, _ = histogram_free_energy(check, edges, kT=cfg.kT)
        f_lss, _ = histogram_free_energy(lss, edges, kT=cfg.kT)
        to_states = lambda x: np.clip(np.digitize(x, edges[1:-1]), 0, cfg.n_bins - 1)  # noqa: E731
        frame_time = cfg.dt * cfg.save_every
        timescales = {
            "exact": ref.timescales[:3].tolist(),
            "exact_msm": t_exact_msm.tolist(),
            "bd": msm_implied_timescales(to_states(bd), cfg.n_bins, lag, frame_time=frame_time).tolist(),
            "bd_crosscheck": msm_implied_timescales(to_states(check), cfg.n_bins, lag, frame_time=frame_time).tolist(),
            "lss": msm_implied_timescales(to_states(lss), cfg.n_bins, 1, frame_time=cfg.lag_time).tolist(),
        }
        # transition density on the exact grid, over start points in the populated region
        grid_populated = ref.stationary >= 1e-3 * ref.stationary.max()
        inside = (ref.centers >= float(scaler.low[0])) & (ref.centers <= float(scaler.high[0]))
        rows = np.flatnonzero(grid_populated & inside)
        p_learned = learned_transition_density(model, scaler, ref.centers[rows], ref.centers, cfg.boundary)
        l1 = np.sum(np.abs(p_learned - p_exact[rows]), axis=1) * ref.width
        # the learned chain without sampling noise: its transition matrix on 1000 cells of the unit box
        T = propagator_transition_matrix(mdn_apply_fn(graphdef), params, 1000, boundary=cfg.boundary)
        p_cells = rebin(np.linspace(float(scaler.low[0]), float(scaler.high[0]), 1001), stationary_distribution(T), edges)
        with np.errstate(divide="ignore"):
            f_lss_exact = -cfg.kT * np.log(p_cells)
        eig = np.sort(np.abs(np.linalg.eigvals(T)))[::-1][1:4]
        timescales["lss_exact"] = (-cfg.lag_time / np.log(eig)).tolist()

    metrics = {
        "free_energy_rmse_kT": free_energy_rmse(f_lss, f_exact, populated),
        "free_energy_rmse_kT_lss_exact": free_energy_rmse(f_lss_exact, f_exact, populated),
        "free_energy_rmse_kT_bd": free_energy_rmse(f_bd, f_exact, populated),
        "free_energy_rmse_kT_bd_crosscheck": free_energy_rmse(f_check, f_exact, populated),
        "implied_timescales": timescales,
        "t1_relative_error": abs(timescales["lss"][0] - timescales["exact"][0]) / timescales["exact"][0],
        "transition_density_l1": float(np.mean(l1)),
        "n_steps_training": cfg.n_bd_steps,
        "n_lagged_pairs_training": int(len(u_train) - lag),
        "n_trajectories_generated": cfg.n_trajectories,
        "n_lss_steps_per_trajectory": cfg.lss_steps,
        "training": _training_summary(history),
        "wall_seconds": timer.seconds,
        "settings": _settings(cfg, frame_time, populated, scaler),
        "versions": {"jax": jax.__version__, "backend": jax.default_backend()},
    }
    if out_dir is not None:
        with timer("writing"):
            _io.save_npy(out_dir / "bd_trajectory.npy", bd.astype(np.float32))
            _io.save_npy(out_dir / "lss_trajectories.npy", lss.astype(np.float32))
            _io.save_npz(
                out_dir / "profiles.npz", edges=edges, f_exact=f_exact, f_bd=f_bd, f_bd_crosscheck=f_check,
                f_lss=f_lss, populated=populated, grid=ref.centers, p_exact=p_exact[rows], p_learned=p_learned,
                transition_rows=ref.centers[rows],
            )
            from lss_jax.analysis import plots

            plots.four_well_figures(
                out_dir, edges=edges, f_exact=f_exact, f_bd=f_bd, f_lss=f_lss, populated=populated, bd=bd, lss=lss,
                frame_time=frame_time, lag_time=cfg.lag_time, grid=ref.centers, rows=rows, p_exact=p_exact[rows],
                p_learned=p_learned, timescales=timescales, kT=cfg.kT,
            )
        metrics["wall_seconds"] = timer.seconds
        _io.write_json(out_dir / "metrics.json", metrics)
    return metrics


def _exact_profiles(cfg: FourWellConfig):
    """The exact reference on the analysis bins: ``(reference, edges, F_exact, populated bins, timescales of the
    lumped exact MSM, exact transition density at the lag)``."""
    ref = cfg.exact_reference()
    edges = np.linspace(*cfg.x_range, cfg.n_bins + 1)
    pi_bins = ref.stationary.reshape(cfg.n_bins, -1).sum(axis=1)
    f_exact = -cfg.kT * np.log(pi_bins)
    populated = pi_bins >= 1e-3 * pi_bins.max()
    t_exact_msm = implied_timescales_from_matrix(
        ref.lumped_transition_matrix(cfg.lag_time, edges), pi_bins, cfg.lag_time, 3
    )
    return ref, edges, f_exact, populated, t_exact_msm, ref.transition_density(cfg.lag_time)


def _training_summary(history) -> dict:
    """The ``training`` block of the metrics: the MDN's epochs and losses."""
    return {
        "epochs": history.epochs_run,
        "best_epoch": history.best_epoch,
        "stopped_early": history.stopped_early,
        "best_val_nll": float(min(history.val_loss)),
        "val_nll": history.val_loss,
        "train_nll": history.train_loss,
    }


def _settings(cfg: FourWellConfig, frame_time: float, populated, scaler) -> dict:
    """The ``settings`` block of the metrics: units, frame times, bins and the whole configuration."""
    return {
        "D": cfg.diffusion,
        "dt": cfg.dt,
        "kT": cfg.kT,
        "lag_steps": cfg.lag_steps,
        "lag_time": cfg.lag_time,
        "time_unit": "BD time unit (D = 1, kT = 1, x in potential units)",
        "saved_frame_time": {
            "bd_trajectory": frame_time,
            "bd_crosscheck": frame_time,
            "lss_trajectories": cfg.lag_time,
        },
        "n_bins": cfg.n_bins,
        "x_range": list(cfg.x_range),
        "reference_grid_bins": cfg.n_grid,
        "free_energy_bins_compared": int(populated.sum()),
        "msm_bins": cfg.n_bins,
        "boundary": cfg.boundary,
        "scaler": {"low": float(scaler.low[0]), "high": float(scaler.high[0])},
        "config": dataclasses.asdict(cfg),
    }


def _chunked_bd(key, x0, n_steps, cfg, *, progress, desc, n_chunks=20):
    """BD in chunks on the shared streaming loop (:func:`lss_jax.generation.simulate.iter_rollout`), so a progress bar
    can follow it; bitwise one :func:`~lss_jax.systems.four_well.brownian_dynamics` call."""
    per_chunk = max(1, -(-(n_steps // cfg.save_every) // n_chunks)) * cfg.save_every

    def simulate(x, steps, first_step):
        return brownian_dynamics(key, x, n_steps=steps, dt=cfg.dt, diffusion=cfg.diffusion, kT=cfg.kT,
                                 save_every=cfg.save_every, method=cfg.integrator, start_step=first_step)

    x0 = jnp.asarray(x0, jnp.float32)
    chunks = iter_rollout(simulate, x0, n_steps=n_steps, save_every=cfg.save_every, chunk_steps=per_chunk)
    return collect_rollout(chunks, total=n_steps * len(x0), progress=progress, desc=desc, per_frame=cfg.save_every)
