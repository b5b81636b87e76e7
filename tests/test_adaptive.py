"""Adaptive sampling on the four-well potential: acquisition, initial data, error metric, CLI smoke run."""

import json

import jax
import numpy as np
import pytest

from lss_jax.adaptive import combine_scores, pick_distinct
from lss_jax.adaptive import four_well as adaptive_four_well
from lss_jax.adaptive.four_well import AdaptiveConfig, initial_trajectory, select_seed_frames, steps_to_target
from lss_jax.analysis.distributions import penalized_free_energy_rmse
from lss_jax.cli import main
from lss_jax.propagator.ensemble import data_density
from lss_jax.systems.four_well import four_well_potential, well_boundaries, wells_visited


@pytest.fixture
def fast_compiles():
    """Tiny networks: XLA compile time dominates, so skip most optimizations (restored afterwards)."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


# ---------------------------------------------------------------- acquisition (lss_jax.adaptive, shared with `adapt`)
def test_least_counts_picks_the_thinnest_data_spread_apart():
    # Two clusters: a dense one and a sparse one, equal uncertainty and a flat pi_LSS. beta = 0 ranks by
    # -log rho alone, so every seed comes from the sparse region, and the exclusion radius keeps them apart.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0.0, 0.5, 2000), rng.uniform(0.5, 1.0, 40)])
    rho = data_density(x[:, None], x[:, None])
    score = combine_scores(np.zeros(len(x)), np.log(rho), beta=0.0)
    picked = pick_distinct(x[:, None], score, 4, exclusion=0.1)
    assert np.all(x[picked] >= 0.5)
    assert np.min(np.abs(x[picked][:, None] - x[picked][None]) + np.eye(4)) >= 0.1
    assert picked[0] == np.argmin(rho)  # nothing excludes the first pick


def test_beta_moves_the_target_from_uniform_to_equilibrium():
    # Data distributed exactly as pi_LSS (equilibrium MD): with beta = 1 the density term is flat, so only
    # the uncertainty peak ranks; with beta = 0 the low-density tails win.
    x = (np.arange(200) + 0.5) / 200
    log_pi = -((x - 0.5) / 0.15) ** 2 / 2
    uncertainty = 0.01 + np.exp(-((x - 0.3) / 0.01) ** 2)
    eq = combine_scores(log_pi, log_pi, uncertainty, beta=1.0)
    assert np.argmax(eq) == np.argmin(np.abs(x - 0.3))
    flat = combine_scores(log_pi, log_pi, beta=1.0)
    assert np.allclose(flat, 0.0)
    uniform = combine_scores(log_pi, log_pi, beta=0.0)
    assert set(np.argsort(-uniform)[:2].tolist()) == {0, 199}


def test_rule_validates_inputs():
    with pytest.raises(ValueError, match="beta"):
        combine_scores(np.zeros(3), np.zeros(3), beta=1.5)
    with pytest.raises(ValueError, match="both be"):
        combine_scores(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="apart"):
        pick_distinct(np.array([[0.1], [0.12], [0.9]]), np.ones(3), 3, exclusion=0.05)


def test_pipeline_uses_the_shared_rule(fast_compiles, monkeypatch):
    # The four-well experiment must score and pick with lss_jax.adaptive's functions (the rule of
    # `lss-jax adapt`), with its configured beta: spy on both and check the seeds are what they chose.
    import lss_jax.adaptive as shared

    calls = {}

    def spy_combine(log_pi, log_rho, unc=None, *, beta):
        calls["combine"] = dict(beta=beta, n=len(log_pi), has_u=unc is not None)
        calls["score"] = shared.combine_scores(log_pi, log_rho, unc, beta=beta)
        return calls["score"]

    def spy_pick(points, score, n, *, exclusion):
        calls["pick"] = shared.pick_distinct(points, score, n, exclusion=exclusion)
        calls["points"] = np.asarray(points)
        return calls["pick"]

    monkeypatch.setattr(adaptive_four_well, "combine_scores", spy_combine)
    monkeypatch.setattr(adaptive_four_well, "pick_distinct", spy_pick)
    cfg = AdaptiveConfig.quick(n_seeds=3, exclusion=0.1, beta=0.5)
    traj, _ = initial_trajectory(jax.random.key(0), cfg)
    picked, terms = select_seed_frames(jax.random.key(1), [traj], cfg)
    assert calls["combine"] == dict(beta=0.5, n=len(calls["points"]), has_u=True)
    np.testing.assert_array_equal(terms["score"], calls["score"][calls["pick"]])
    unit = (traj - traj.min()) / (traj.max() - traj.min())
    np.testing.assert_allclose(unit[picked], calls["points"][calls["pick"], 0], atol=1e-6)
    assert len(set(picked.tolist())) == 3 and np.all(np.diff(terms["score"]) <= 0)
    # the ablation draws without the rule
    calls.clear()
    picked_r, terms_r = select_seed_frames(jax.random.key(1), [traj], AdaptiveConfig.quick(n_seeds=3, seed_rule="random"))
    assert calls == {} and terms_r == {} and len(set(picked_r.tolist())) == 3


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
    from lss_jax.analysis.distributions import free_energy_rmse, histogram_free_energy

    return free_energy_rmse(histogram_free_energy(samples, edges)[0], f_exact, mask)


def test_steps_to_target_and_budgets():
    assert steps_to_target([1, 2, 3], [0.5, 0.4, 0.31], 0.3) is None
    cfg = AdaptiveConfig(n_rounds=3, n_seed_steps=1000, plain_max_steps=60_000)
    assert cfg.adaptive_budgets() == [2000, 10_000, 18_000, 26_000]
    assert cfg.plain_budgets() == [2000, 10_000, 18_000, 26_000, 39_000, 58_500, 60_000]


@pytest.mark.parametrize("bad", [dict(exclusion=0.2), dict(beta=2.0), dict(seed_rule="best"), dict(n_seed_steps=50), dict(lag_steps=15), dict(burn_in=1000),
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
    assert sum(len(data[k]) - 1 for k in data.files if k.startswith("adaptive/traj_")) * 10 == 4000
    assert (out / "lss-jax-adapt-four-well.toml").exists()
    assert "steps to <= 0.3 kT" in capsys.readouterr().out
