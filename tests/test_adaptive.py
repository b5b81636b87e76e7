"""Adaptive sampling on the four-well potential: acquisition, initial data, error metric, CLI smoke run."""

import doctest
import json

import jax
import numpy as np
import pytest

from lss_jax.cli import main
from lss_jax.data.four_well import four_well_potential
from lss_jax.ensemble import data_density
from lss_jax.pipelines import adaptive
from lss_jax.pipelines.adaptive import (
    AdaptiveConfig,
    acquire,
    initial_trajectory,
    penalized_free_energy_rmse,
    steps_to_target,
    well_boundaries,
    wells_visited,
)


@pytest.fixture
def fast_compiles():
    """Tiny networks: XLA compile time dominates, so skip most optimizations (restored afterwards)."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


def test_docstring_examples(fast_compiles):
    result = doctest.testmod(adaptive, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0


# ---------------------------------------------------------------- acquisition
def test_acquire_prefers_low_density_and_high_uncertainty():
    # 100 frames on a grid; density falls off to the right, uncertainty peaks sharply at frame 30.
    # score = log U - log rho is known in closed form, so the winners per 10-cell grid are known.
    x = (np.arange(100) + 0.5) / 100
    density = np.exp(-6 * x)
    uncertainty = 0.01 + np.exp(-((x - 0.305) / 0.003) ** 2)
    score = np.log(uncertainty) + 6 * x
    expected_cells = np.argsort([-score[10 * c : 10 * c + 10].max() for c in range(10)])[:3]
    expected = [10 * c + int(np.argmax(score[10 * c : 10 * c + 10])) for c in expected_cells]
    picked = acquire(x, uncertainty, density, n_seeds=3, n_bins=10)
    assert picked.tolist() == expected
    assert picked[0] == 30  # the uncertainty peak wins ...
    assert {99, 89} <= set(picked.tolist())  # ... then the two lowest-density cells, at their right edges


def test_acquire_one_seed_per_cell_and_not_the_dense_region():
    # Two clusters: a dense one and a sparse one; equal uncertainty. All seeds come from the sparse
    # region (lowest kernel density), one per cell, even though the best frames are near each other.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0.0, 0.5, 2000), rng.uniform(0.5, 1.0, 40)])
    rho = data_density(x[:, None], x[:, None])
    picked = acquire(x, np.full(len(x), 0.1), rho, n_seeds=4, n_bins=10)
    assert np.all(x[picked] >= 0.5)
    cells = np.floor(x[picked] * 10).astype(int)
    assert len(set(cells.tolist())) == 4


def test_acquire_validates_inputs():
    x = np.array([0.1, 0.15, 0.9])
    with pytest.raises(ValueError, match="cells hold frames"):
        acquire(x, np.ones(3), np.ones(3), n_seeds=3, n_bins=4)
    with pytest.raises(ValueError, match="same|both"):
        acquire(x, np.ones(2), np.ones(3), n_seeds=1)


# ---------------------------------------------------------------- initial data
def test_barriers_separate_the_four_wells():
    b = well_boundaries()
    np.testing.assert_allclose(b, [-0.502, 0.0, 0.502], atol=1e-3)
    x = np.linspace(-1.4, 1.4, 2801)
    v = four_well_potential(x, np)
    minima = x[1:-1][(v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])]
    assert wells_visited(minima) == [0, 1, 2, 3]  # one minimum per basin


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_initial_trajectory_covers_only_the_two_left_wells(seed):
    cfg = AdaptiveConfig(seed=seed)
    k_init = jax.random.split(jax.random.key(seed), 4)[0]  # as run_adaptive_four_well
    traj, info = initial_trajectory(k_init, cfg)
    assert traj.shape == (cfg.n_initial_steps // cfg.save_every + 1,)
    # independent of wells_visited: both left basins entered, nothing right of the central barrier top
    assert traj.max() < 0.0
    assert np.any(traj < -0.502) and np.any((traj > -0.502) & (traj < 0.0))
    assert info["wells_visited"] == [0, 1]
    assert 0 < info["fraction_of_candidates_qualifying"] < 0.5  # the condition is not the typical outcome


# ---------------------------------------------------------------- metric
def test_missing_wells_are_penalized():
    edges = np.linspace(-1.4, 1.4, 81)
    centers = 0.5 * (edges[1:] + edges[:-1])
    p = np.exp(-four_well_potential(centers, np))
    p /= p.sum()
    f_exact = -np.log(p)
    mask = p >= 1e-3 * p.max()
    rng = np.random.default_rng(0)
    exact = rng.choice(centers, size=200_000, p=p)
    assert penalized_free_energy_rmse(exact, edges, f_exact, mask) < 0.1
    left = exact[exact < 0]
    assert free_energy_rmse_ignoring_empty(left, edges, f_exact, mask) < 0.1  # skipping empty bins hides the gap
    assert penalized_free_energy_rmse(left, edges, f_exact, mask) > 2.0


def free_energy_rmse_ignoring_empty(samples, edges, f_exact, mask):
    from lss_jax.analysis.msm import free_energy_rmse, histogram_free_energy

    return free_energy_rmse(histogram_free_energy(samples, edges)[0], f_exact, mask)


def test_steps_to_target_and_budgets():
    assert steps_to_target([1, 2, 3], [0.5, 0.4, 0.31], 0.3) is None
    cfg = AdaptiveConfig(n_rounds=3, plain_max_steps=60_000)
    assert cfg.adaptive_budgets() == [2000, 10_000, 18_000, 26_000]
    assert cfg.plain_budgets() == [2000, 10_000, 18_000, 26_000, 39_000, 58_500, 60_000]


@pytest.mark.parametrize("bad", [dict(n_seeds=30), dict(n_seed_steps=50), dict(lag_steps=15), dict(burn_in=1000),
                                 dict(val_fraction=0.6), dict(n_rounds=-1), dict(plain_growth=1.0)])
def test_config_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        AdaptiveConfig(**bad)


# ---------------------------------------------------------------- end to end
def test_cli_quick_round(tmp_path, fast_compiles, capsys):
    out = tmp_path / "adapt"
    assert main(["adapt-four-well", "--out", str(out), "--quick", "--rounds", "1", "--seed", "3", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["initial"]["wells_visited"] == [0, 1]
    assert m["adaptive"]["md_steps"] == [2000, 4000] and m["plain"]["md_steps"] == [2000, 4000]
    assert len(m["adaptive"]["rounds"]) == 1 and len(m["adaptive"]["rounds"][0]["seeds"]) == 4
    assert all(np.isfinite(m[arm]["rmse"]).all() for arm in ("adaptive", "plain"))
    # the first evaluation sees two wells only: the penalized RMSE says so
    assert m["adaptive"]["rmse"][0] > 1.0
    assert (out / "adaptive_four_well.png").stat().st_size > 10_000
    data = np.load(out / "trajectories.npz")
    assert len(data["plain"]) == 4000 // 10 + 1
    assert sum(len(data[k]) - 1 for k in data.files if k.startswith("traj_")) * 10 == 4000
    assert (out / "lss-jax-adapt-four-well.toml").exists()
    assert "steps to <= 0.3 kT" in capsys.readouterr().out
