"""Exact Smoluchowski reference, the BD integrator, the MSM estimators, and the four-well pipeline."""

import json

import jax
import numpy as np
import pytest
import scipy.stats
from deeptime.markov import TransitionCountEstimator
from deeptime.markov.msm import MarkovStateModel, MaximumLikelihoodMSM

from lss_jax.analysis import (
    count_matrix,
    free_energy_rmse,
    histogram_free_energy,
    implied_timescales_from_matrix,
    reversible_transition_matrix,
    smoluchowski_reference,
)
from lss_jax.pipelines.four_well import FourWellConfig
from lss_jax.systems.four_well import brownian_dynamics, four_well_force, four_well_potential


# ---------------------------------------------------------------- exact reference
def test_reference_reproduces_ornstein_uhlenbeck_exactly():
    # V = k x^2 / 2: eigenvalues -n D k / kT, Gaussian transition density with known mean and variance.
    k, D, kT, t = 2.0, 0.5, 1.5, 0.3
    ref = smoluchowski_reference(lambda x: 0.5 * k * x**2, x_min=-6, x_max=6, n_bins=600, diffusion=D, kT=kT)
    exact = kT / (D * k * np.arange(1, 5))
    np.testing.assert_allclose(ref.timescales[:4], exact, rtol=2e-3)
    np.testing.assert_allclose(ref.stationary / ref.width, scipy.stats.norm.pdf(ref.centers, 0, np.sqrt(kT / k)), atol=2e-3)
    x0 = 0.8
    i = np.argmin(np.abs(ref.centers - x0))
    mean = ref.centers[i] * np.exp(-D * k * t / kT)
    var = kT / k * (1 - np.exp(-2 * D * k * t / kT))
    p = ref.transition_density(t)[i]
    assert np.sum(np.abs(p - scipy.stats.norm.pdf(ref.centers, mean, np.sqrt(var)))) * ref.width < 5e-3


def test_reference_detailed_balance_and_convergence():
    v = lambda x: four_well_potential(x, np)  # noqa: E731
    ref = smoluchowski_reference(v, x_min=-1.4, x_max=1.4, n_bins=280)
    flux = ref.stationary[:, None] * ref.generator
    np.testing.assert_allclose(flux, flux.T, atol=1e-12)
    np.testing.assert_allclose(ref.generator.sum(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(ref.stationary @ ref.transition_matrix(0.1), ref.stationary, atol=1e-12)
    # second-order convergence of t1 in the grid spacing
    t = [smoluchowski_reference(v, x_min=-1.4, x_max=1.4, n_bins=n).timescales[0] for n in (140, 280, 560)]
    ratio = (t[1] - t[0]) / (t[2] - t[1])
    assert 3.0 < ratio < 5.0  # 4 for h^2


# ---------------------------------------------------------------- BD integrator
@pytest.mark.parametrize("method", ["leimkuhler_matthews", "euler_maruyama"])
def test_bd_harmonic_stationary_variance(method):
    # OU with k = 4 at k D dt = 0.1: Leimkuhler-Matthews samples the exact variance kT/k for any dt; Euler-Maruyama
    # has variance kT/(k (1 - k D dt / 2)), i.e. +5.3 %. 20 000 walkers x 10 frames 2 time units apart (correlation
    # e^-8) make the standard error 0.3 %, so the test tells the two integrators apart (checked below: the other
    # integrator's variance is more than 4 SE away, so swapping them fails).
    k, dt, n_walkers = 4.0, 0.025, 20_000
    x0 = np.random.default_rng(0).normal(0, 0.5, n_walkers)
    traj = np.asarray(
        brownian_dynamics(jax.random.key(1), x0, lambda x: -k * x, n_steps=1200, dt=dt, save_every=80, method=method)
    )
    samples = traj[:, -10:].ravel()
    variance = {"leimkuhler_matthews": 1 / k, "euler_maruyama": 1 / (k * (1 - k * dt / 2))}
    expected = variance[method]
    other = variance["euler_maruyama" if method == "leimkuhler_matthews" else "leimkuhler_matthews"]
    # standard error of a variance estimate from n independent Gaussian samples: var * sqrt(2 / n)
    se = expected * np.sqrt(2 / samples.size)
    assert abs(samples.var() - expected) < 4 * se
    assert abs(samples.var() - other) > 4 * se  # negative control: the other integrator's law is rejected


def test_bd_chunks_are_bitwise_identical(key):
    x0 = np.array([0.1, -0.4, 0.7])
    full = brownian_dynamics(key, x0, n_steps=600, dt=1e-3, save_every=20)
    a = brownian_dynamics(key, x0, n_steps=200, dt=1e-3, save_every=20)
    b = brownian_dynamics(key, a[:, -1], n_steps=400, dt=1e-3, save_every=20, start_step=200)
    np.testing.assert_array_equal(np.asarray(full), np.concatenate([a, b], axis=1))


def test_bd_four_well_matches_exact_stationary_density():
    # Walkers start in equilibrium; per-bin standard errors come from the spread over independent walkers.
    v = lambda x: four_well_potential(x, np)  # noqa: E731
    ref = smoluchowski_reference(v, x_min=-1.4, x_max=1.4, n_bins=560)
    edges = np.linspace(-1.4, 1.4, 41)
    p_exact = ref.stationary.reshape(40, -1).sum(1)
    n_walkers = 256
    x0 = np.random.default_rng(0).choice(ref.centers, size=n_walkers, p=ref.stationary)
    traj = np.asarray(brownian_dynamics(jax.random.key(2), x0, four_well_force, n_steps=20_000, dt=1e-3, save_every=10))
    per_walker = np.stack([np.histogram(t, edges)[0] / t.size for t in traj])
    mean, se = per_walker.mean(0), per_walker.std(0, ddof=1) / np.sqrt(n_walkers)
    populated = p_exact > 1e-2 * p_exact.max()
    z = (mean - p_exact)[populated] / se[populated]
    assert np.max(np.abs(z)) < 4.5, z


# ---------------------------------------------------------------- MSM estimators vs deeptime
def test_counts_and_timescales_match_deeptime():
    t_true = np.array([[0.90, 0.08, 0.02], [0.05, 0.90, 0.05], [0.02, 0.10, 0.88]])
    dtrajs = [MarkovStateModel(t_true).simulate(5000, seed=s) for s in (1, 2)]
    counts = count_matrix(dtrajs, 3, lag=2)
    dt_counts = TransitionCountEstimator(lagtime=2, count_mode="sliding").fit(dtrajs).fetch_model().count_matrix
    np.testing.assert_array_equal(counts, dt_counts)
    t, pi, active = reversible_transition_matrix(counts)
    np.testing.assert_array_equal(active, [0, 1, 2])
    msm = MarkovStateModel(t, stationary_distribution=pi, lagtime=2)
    np.testing.assert_allclose(implied_timescales_from_matrix(t, pi, 2.0, 2), msm.timescales(2), rtol=1e-10)
    np.testing.assert_allclose(pi @ t, pi, atol=1e-12)
    np.testing.assert_allclose(pi[:, None] * t, (pi[:, None] * t).T, atol=1e-12)


def test_free_energy_rmse_removes_constant_and_masks():
    f = np.array([1.0, 2.0, np.inf, 4.0])
    assert free_energy_rmse(f + 3.0, f) == 0.0
    assert free_energy_rmse(np.array([0.0, 1.0, 5.0, 0.0]), np.array([0.0, 0.0, 5.0, 0.0]), [1, 1, 0, 0]) == 0.5
    with pytest.raises(ValueError, match="populated"):
        free_energy_rmse(np.full(3, np.inf), np.zeros(3))
    f_hist, p = histogram_free_energy(np.array([0.1, 0.2, 0.6]), np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(p, [2 / 3, 1 / 3])
    np.testing.assert_allclose(f_hist, -np.log([2 / 3, 1 / 3]))


def test_lumped_exact_msm_approaches_generator_timescales():
    # At a lag long against intra-bin relaxation, the exact lumped MSM reproduces t1 (a consistency check
    # of the estimator the pipeline applies to BD and LSS data).
    v = lambda x: four_well_potential(x, np)  # noqa: E731
    ref = smoluchowski_reference(v, x_min=-1.4, x_max=1.4, n_bins=560)
    edges = np.linspace(-1.4, 1.4, 81)
    pi = ref.stationary.reshape(80, -1).sum(1)
    ts = implied_timescales_from_matrix(ref.lumped_transition_matrix(0.1, edges), pi, 0.1, 3)
    np.testing.assert_allclose(ts, ref.timescales[:3], rtol=0.02)


# ---------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`lss-jax four-well --quick` through the command line (run_four_well(FourWellConfig.quick()) behind it, so the
    command is covered at no extra cost); the metrics are what it wrote to metrics.json."""
    from lss_jax.cli import main

    out = tmp_path_factory.mktemp("four_well")
    assert main(["four-well", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_pipeline_writes_documented_outputs(quick_run):
    out, metrics = quick_run
    on_disk = json.loads((out / "metrics.json").read_text())
    for key in ("free_energy_rmse_kT", "implied_timescales", "transition_density_l1", "n_steps_training",
                "n_trajectories_generated", "wall_seconds", "settings"):
        assert key in on_disk
    for key in ("D", "dt", "kT", "lag_steps", "saved_frame_time"):
        assert key in on_disk["settings"]
    assert set(on_disk["implied_timescales"]) >= {"exact", "bd", "lss"}
    assert all(len(v) == 3 for v in on_disk["implied_timescales"].values())
    cfg = FourWellConfig.quick()
    bd = np.load(out / "bd_trajectory.npy")
    lss = np.load(out / "lss_trajectories.npy")
    assert bd.shape == (cfg.n_bd_steps // cfg.save_every,)
    assert lss.shape == (cfg.n_trajectories, cfg.n_bd_steps // cfg.lag_steps) and cfg.n_trajectories >= 1000
    for name in ("stationary_density.png", "trajectories.png", "transition_density.png", "implied_timescales.png"):
        assert (out / name).stat().st_size > 10_000
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries
    resolved = (out / "lss-jax-four-well.toml").read_text()  # the command's options, to rerun it with --config
    assert "quick = true" in resolved and "seed = 0" in resolved


def test_pipeline_metrics_recompute_from_saved_data_with_independent_estimators(quick_run):
    """metrics.json against the saved trajectories, recomputed without the pipeline's functions: the free energy from
    np.histogram, the implied timescales from deeptime's reversible maximum-likelihood MSM."""
    out, metrics = quick_run
    cfg = FourWellConfig.quick()
    prof = np.load(out / "profiles.npz")
    lss = np.load(out / "lss_trajectories.npy")
    counts, _ = np.histogram(lss.ravel(), prof["edges"])
    with np.errstate(divide="ignore"):
        f_lss = -np.log(counts / lss.size)
    mask = prof["populated"] & np.isfinite(f_lss) & np.isfinite(prof["f_exact"])
    d = f_lss[mask] - prof["f_exact"][mask]
    assert np.sqrt(np.mean((d - d.mean()) ** 2)) == pytest.approx(metrics["free_energy_rmse_kT"], rel=1e-6)
    states = np.clip(np.digitize(lss, prof["edges"][1:-1]), 0, cfg.n_bins - 1)
    counts_model = TransitionCountEstimator(lagtime=1, count_mode="sliding").fit(list(states)).fetch_model()
    msm = MaximumLikelihoodMSM(reversible=True, maxiter=100_000, maxerr=1e-12).fit(counts_model).fetch_model()
    np.testing.assert_allclose(msm.timescales(3) * cfg.lag_time, metrics["implied_timescales"]["lss"], rtol=1e-4)


def test_quick_validation_is_physically_sound(quick_run):
    # The quick run trains on 1e6 BD steps (~2000 t1), so its BD free energy alone carries ~0.15 kT of
    # sampling noise; the LSS must stay close to that and to the exact kinetics. The full protocol's
    # targets (0.2 kT, 15 %) are measured by `lss-jax four-well` and reported in docs/four_well.md.
    _, m = quick_run
    ts = m["implied_timescales"]
    assert abs(ts["bd"][0] / ts["exact"][0] - 1) < 0.10
    assert m["t1_relative_error"] < 0.25
    assert m["free_energy_rmse_kT"] < 0.5
    assert m["transition_density_l1"] < 0.3


def test_exact_analysis_of_the_learned_chain_agrees_with_its_samples(quick_run):
    # The transition-matrix analysis is the n -> infinity limit of the generated trajectories: the
    # sampled estimates must agree with it up to their sampling noise (the generated histogram of the
    # quick run holds ~1e6 correlated frames; its t1 comes from a 1-lag MSM on 80 bins).
    _, m = quick_run
    ts = m["implied_timescales"]
    assert abs(m["free_energy_rmse_kT_lss_exact"] - m["free_energy_rmse_kT"]) < 0.1
    assert abs(ts["lss_exact"][0] / ts["lss"][0] - 1) < 0.1
    assert abs(ts["lss_exact"][0] / ts["exact"][0] - 1) < 0.25
