"""Exact transition matrix and stationary density of a 1-D propagator (lss_jax.analysis.msm, .distributions.rebin).

References: the AR(1) process (closed-form stationary law and spectrum) and Monte Carlo steps of
:func:`lss_jax.propagator.propagate_step`, which folds samples with its own code
(:func:`lss_jax.propagator.scaling.apply_boundary`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from lss_jax.analysis.distributions import rebin
from lss_jax.analysis.msm import propagator_transition_matrix, stationary_distribution
from lss_jax.propagator import MixtureParams, propagate_step


def ar1(a, s):
    """One Gaussian component with mean a x + (1 - a) / 2 and scale s: an AR(1) process around 0.5."""

    def fn(params, x):
        n = x.shape[0]
        return MixtureParams(jnp.zeros((n, 1)), (a * x + (1 - a) * 0.5)[:, None, :], jnp.full((n, 1, 1), s))

    return fn


def two_component(params, x):
    # a wall-hugging mixture: much of its mass lands beyond 0 and beyond 1, so the folding matters
    n = x.shape[0]
    means = jnp.concatenate([0.3 * x - 0.02, 0.6 + 0.5 * x], axis=-1)[..., None]
    return MixtureParams(jnp.tile(jnp.array([0.3, -0.2]), (n, 1)), means, jnp.full((n, 2, 1), 0.08))


def test_ar1_stationary_law_and_spectrum():
    # x' = a x + (1 - a)/2 + s eps: stationary N(0.5, s^2 / (1 - a^2)), eigenvalues a^k. With sd 0.069
    # the walls at 0 and 1 are 7 sd away, so the box changes nothing at this precision.
    a, s, n = 0.9, 0.03, 1000
    T = propagator_transition_matrix(ar1(a, s), None, n)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    pi = stationary_distribution(T)
    edges = np.linspace(0, 1, n + 1)
    exact = np.diff(norm.cdf(edges, 0.5, s / np.sqrt(1 - a**2)))
    # cell-centre discretization of the kernel: error O(h^2) relative to the density, h = 1e-3
    assert np.max(np.abs(pi - exact)) < 1e-3 * exact.max()
    eig = np.sort(np.abs(np.linalg.eigvals(T)))[::-1]
    np.testing.assert_allclose(eig[1:4], [a, a**2, a**3], rtol=2e-3)


@pytest.mark.parametrize("boundary", ["reflect", "clip"])
def test_rows_match_monte_carlo_steps(boundary):
    n_cells, n_samples = 20, 200_000
    T = propagator_transition_matrix(two_component, None, n_cells, boundary=boundary)
    for start in (0, 7, 19):  # cells near the left wall, inside, near the right wall
        x0 = jnp.full((n_samples, 1), (start + 0.5) / n_cells)
        keys = jax.random.split(jax.random.key(start), n_samples)
        y = np.asarray(propagate_step(keys, two_component, None, x0, boundary=boundary))[:, 0]
        freq = np.histogram(np.clip(y, 0, 1 - 1e-12), np.linspace(0, 1, n_cells + 1))[0] / n_samples
        se = np.sqrt(T[start] * (1 - T[start]) / n_samples)
        assert np.all(np.abs(freq - T[start]) <= 5 * se + 1e-6), (start, np.abs(freq - T[start]) / (se + 1e-12))


def test_stationary_matches_a_long_rollout():
    from lss_jax.propagator import rollout

    n_cells = 50
    pi = stationary_distribution(propagator_transition_matrix(two_component, None, 2000))
    pi_coarse = rebin(np.linspace(0, 1, 2001), pi, np.linspace(0, 1, n_cells + 1))
    traj = np.asarray(rollout(jax.random.key(0), two_component, None, jnp.full((4096, 1), 0.5), n_steps=300))[:, 50:, 0]
    freq = np.histogram(traj, np.linspace(0, 1, n_cells + 1))[0] / traj.size
    # 4096 independent chains of 250 correlated steps; the chain mixes within a few steps (|eigenvalue 2| < 0.6),
    # so 4096 * 250 / 5 effective samples bound the binomial error
    se = np.sqrt(pi_coarse * (1 - pi_coarse) / (4096 * 250 / 5))
    assert np.all(np.abs(freq - pi_coarse) <= 5 * se + 1e-6)
    assert np.isclose(pi_coarse.sum(), 1.0)


def test_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="boundary"):
        propagator_transition_matrix(ar1(0.5, 0.1), None, 10, boundary="none")
    with pytest.raises(ValueError, match="1-D"):
        propagator_transition_matrix(lambda p, x: MixtureParams(jnp.zeros((len(x), 1)), jnp.zeros((len(x), 1, 2)),
                                                                jnp.ones((len(x), 1, 2))), None, 10)


def test_rebin_conserves_mass():
    rng = np.random.default_rng(0)
    p = rng.random(100)
    p /= p.sum()
    out = rebin(np.linspace(-1, 1, 101), p, np.linspace(-2, 2, 7))
    assert np.isclose(out.sum(), 1.0)
    assert np.isclose(rebin(np.linspace(-1, 1, 101), p, [-1.0, 0.0])[0], p[:50].sum())
