"""Unit-box scaling and the reflecting boundary."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from lss_jax import MixtureParams, apply_boundary, minmax_fit, minmax_inverse, minmax_transform, rollout


def test_minmax_round_trip_and_range():
    x = np.random.default_rng(0).normal(size=(1000, 3)) * [1, 10, 0.1]
    scaler = minmax_fit(x)
    u = minmax_transform(scaler, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(u).min(0), 0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(u).max(0), 1, atol=1e-6)
    np.testing.assert_allclose(np.asarray(minmax_inverse(scaler, u)), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad,match", [(np.ones((10, 2)), "constant"), (np.array([[0.0], [np.nan]]), "NaN")])
def test_minmax_rejects_bad_data(bad, match):
    with pytest.raises(ValueError, match=match):
        minmax_fit(bad)


def test_reflect_values():
    u = jnp.array([0.3, -0.1, 1.2, 2.3, -1.7, 0.0, 1.0])
    np.testing.assert_allclose(np.asarray(apply_boundary(u, "reflect")), [0.3, 0.1, 0.8, 0.3, 0.3, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(apply_boundary(u, "clip")), [0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="boundary"):
        apply_boundary(u, "wrap")


def _random_walk(params, x):
    return MixtureParams(jnp.zeros((*x.shape[:-1], 1)), x[..., None, :], jnp.full((*x.shape[:-1], 1, 1), params))


def test_reflecting_walls_keep_the_uniform_density_clipping_does_not():
    # A Gaussian random walk in a reflecting box has the uniform stationary density exactly, with no
    # mass piled at the walls. Clipping the same walk puts a point mass at 0 and 1.
    n_traj, n_steps = 512, 400
    x0 = jax.random.uniform(jax.random.key(0), (n_traj, 1))
    reflected = np.asarray(rollout(jax.random.key(1), _random_walk, jnp.float32(0.2), x0, n_steps=n_steps))
    samples = reflected[:, -1, 0]  # one (independent) sample per trajectory
    assert scipy.stats.kstest(samples, "uniform").statistic < 1.63 / np.sqrt(n_traj)
    assert np.mean((reflected == 0) | (reflected == 1)) == 0
    clipped = np.asarray(rollout(jax.random.key(1), _random_walk, jnp.float32(0.2), x0, n_steps=n_steps, boundary="clip"))
    assert np.mean((clipped == 0) | (clipped == 1)) > 0.1
