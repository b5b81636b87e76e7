"""Kinetic self-consistency checks (lss_jax.analysis.consistency) against processes with known answers."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx

from lss_jax.analysis import consistency
from lss_jax.propagator import MixtureParams

A, S = 0.9, 0.04  # an AR(1) step in the unit box: u' = 0.5 + A (u - 0.5) + S xi (walls 12 sd away from the centre)


class AR1(nnx.Module):
    """A one-component 'MDN' whose next state is N(0.5 + A (u - 0.5), S^2): exact timescale -lag / ln A."""

    def __init__(self, scale: float = S):
        self.scale = scale

    def __call__(self, x):
        n = x.shape[0]
        return MixtureParams(jnp.zeros((n, 1)), (0.5 + A * (x - 0.5))[:, None, :], jnp.full((n, 1, 1), self.scale))


def _model(scale=S):
    start = np.full((100, 1), 0.5, np.float32)
    return SimpleNamespace(propagator=AR1(scale), start_points=start, lag_time=2.0, latent_dim=1,
                           config=SimpleNamespace(propagator=SimpleNamespace(boundary="reflect")))


def test_propagator_timescale_of_an_ar1_matches_the_exact_value_within_its_error():
    ts, se, unit = consistency.propagator_timescales(jax.random.key(0), _model(), n_traj=128, n_steps=1000)
    exact = -2.0 / np.log(A)
    assert unit.shape == (128, 1000, 1)
    assert abs(ts[0] - exact) < 4 * se[0] + 0.02 * exact, (ts, se, exact)


def test_reflection_fraction_is_the_exact_probability_to_leave_the_box():
    model = _model(scale=0.3)
    u = np.random.default_rng(0).uniform(0.2, 0.8, size=(500, 1)).astype(np.float32)
    mean = 0.5 + A * (u[:, 0] - 0.5)
    exact = np.mean(scipy.stats.norm.cdf(-mean / 0.3) + scipy.stats.norm.sf((1 - mean) / 0.3))
    assert consistency.reflection_fraction(model, u) == pytest.approx(exact, rel=1e-5)
    # and the same as the fraction of sampled steps that leave it (Monte Carlo, 4 standard errors)
    draws = mean[:, None] + 0.3 * np.random.default_rng(1).normal(size=(500, 400))
    sampled = np.mean((draws < 0) | (draws > 1))
    assert abs(sampled - exact) < 4 * np.sqrt(exact * (1 - exact) / draws.size)


def _two_state_latent(n, rng, p_switch=0.01):
    """A two-well latent trajectory: a hidden two-state Markov chain plus Gaussian noise, [n, 1]."""
    state = np.zeros(n, int)
    flips = rng.random(n) < p_switch
    state = np.cumsum(flips) % 2
    return (np.where(state == 1, 1.0, -1.0) + 0.3 * rng.normal(size=n))[:, None]


def test_chapman_kolmogorov_passes_for_the_same_process_and_fails_without_memory():
    rng = np.random.default_rng(0)
    md = [_two_state_latent(40_000, rng) for _ in range(2)]
    lag = 5
    same = np.stack([_two_state_latent(40_000, rng)[::lag][:7000] for _ in range(8)])  # frames one lag apart
    ok = consistency.latent_chapman_kolmogorov(md, same, lag, n_clusters=20, k_max=4)
    assert ok["passed"], ok["max_deviation_sigma"]
    # frames drawn independently from the equilibrium distribution: right populations, no kinetics
    shuffled = np.stack([rng.permutation(np.concatenate(md))[:7000] for _ in range(8)])
    bad = consistency.latent_chapman_kolmogorov(md, shuffled, lag, n_clusters=20, k_max=4)
    assert not bad["passed"] and bad["max_deviation_sigma"] > 10


def test_warnings_name_degenerate_timescales_disagreement_and_walls():
    summary = {"propagator_timescales": [10.0, 5.0], "propagator_timescales_se": [0.5, 0.2],
               "srv_heldout_timescales": [10.4, 5.1], "srv_heldout_timescales_se": [0.5, 0.2], "reflection_fraction": 0.01}
    assert consistency.consistency_warnings(summary, [10.0, 5.0, 2.0]) == []
    degenerate = consistency.consistency_warnings(summary, [10.0, 5.0, 4.8])
    assert len(degenerate) == 1 and "near-degenerate" in degenerate[0] and "latent_dim = 3" in degenerate[0]
    off = consistency.consistency_warnings({**summary, "propagator_timescales": [14.0, 5.0]})
    assert len(off) == 1 and "t1 = 14" in off[0]
    walls = consistency.consistency_warnings({**summary, "reflection_fraction": 0.2})
    assert len(walls) == 1 and "20.0 %" in walls[0]


def test_timescale_error_of_a_held_out_set_too_short_for_blocks_is_nan_not_a_crash():
    """Blocks are at least twice the lag long: 10 frames at lag 2 give 2 blocks (5 blocks of 2 frames used to raise,
    so training on small data crashed in its consistency check), 7 frames none (the error is nan), 60 frames 5."""
    rng = np.random.default_rng(0)
    x = np.zeros((60, 1))
    for t in range(1, 60):
        x[t] = A * x[t - 1] + rng.normal()
    consistency._timescales_with_error([x[:10]], 2, 1.0, 1, 5)
    _, se = consistency._timescales_with_error([x[:7]], 2, 1.0, 1, 5)
    assert np.isnan(se).all()
    ts, se = consistency._timescales_with_error([x, x[:45]], 2, 1.0, 1, 5)
    assert np.isfinite(ts).all() and np.isfinite(se).all() and se[0] > 0
