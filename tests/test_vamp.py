"""VAMP-r scores against deeptime, float64 NumPy/SciPy and the exact eigenvalues of an AR(1) process."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from deeptime.decomposition import VAMP

from lss_jax import covariances, reversible_eigh, vamp_loss, vamp_score


def _random_pairs(seed, n=4000, m=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, m)) @ rng.normal(size=(m, m)) + rng.normal(size=m)
    y = 0.6 * x @ rng.normal(size=(m, m)) + rng.normal(size=(n, m)) + 2.0
    return x, y


def _srv_reference(x, y, r, epsilon=1e-6):
    """Independent float64 SciPy reference: generalized symmetric eigenproblem with a joint mean."""
    mean = 0.5 * (x.mean(0) + y.mean(0))
    x, y = x - mean, y - mean
    n = len(x)
    c0 = 0.5 * (x.T @ x + y.T @ y) / n + epsilon * np.eye(x.shape[1])
    c1 = 0.5 * (x.T @ y + y.T @ x) / n
    lam = scipy.linalg.eigh(c1, c0, eigvals_only=True)
    return 1 + np.sum(np.abs(lam) ** r), np.sort(lam)[::-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("r", [1, 2])
def test_nonreversible_matches_deeptime(seed, r):
    x, y = _random_pairs(seed)
    expected = VAMP(lagtime=1, epsilon=1e-10).fit((x, y)).fetch_model().score(r)
    with jax.enable_x64(True):
        got = vamp_score(jnp.asarray(x), jnp.asarray(y), r=r, reversible=False, epsilon=1e-10)
    np.testing.assert_allclose(float(got), expected, rtol=1e-8)
    got32 = vamp_score(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), r=r, reversible=False)
    np.testing.assert_allclose(float(got32), expected, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("r", [1, 2, 3])
def test_reversible_matches_scipy_generalized_eigh(seed, r):
    x, y = _random_pairs(seed)
    expected, lam = _srv_reference(x, y, r)
    with jax.enable_x64(True):
        got = vamp_score(jnp.asarray(x), jnp.asarray(y), r=r)
        values, vectors = reversible_eigh(covariances(jnp.asarray(x), jnp.asarray(y)))
    np.testing.assert_allclose(float(got), expected, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(values), lam, rtol=1e-10, atol=1e-12)
    # eigenvectors are C0-orthonormal
    cov = covariances(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    c0 = 0.5 * (np.asarray(cov.c00) + np.asarray(cov.c11))
    np.testing.assert_allclose(np.asarray(vectors).T @ c0 @ np.asarray(vectors), np.eye(4), atol=1e-4)


def _ar1(seed, n, a, mix):
    """Independent AR(1) coordinates x_{t+1} = a x_t + sqrt(1 - a^2) xi (stationary, reversible), mixed linearly."""
    rng = np.random.default_rng(seed)
    a = np.asarray(a)
    z = np.empty((n, len(a)))
    z[0] = rng.normal(size=len(a))
    noise = rng.normal(size=(n, len(a))) * np.sqrt(1 - a**2)
    for t in range(1, n):
        z[t] = a * z[t - 1] + noise[t]
    return z @ mix


def test_reversible_recovers_exact_ar1_eigenvalues():
    # The transfer operator of a linear Gaussian process restricted to linear functions has
    # eigenvalues a_i; an invertible mixing of the features must not change them.
    a = np.array([0.9, 0.6, 0.3])
    n = 200_000
    mix = np.random.default_rng(7).normal(size=(3, 3))
    z = _ar1(3, n, a, mix)
    x, y = jnp.asarray(z[:-1], jnp.float32), jnp.asarray(z[1:], jnp.float32)
    values, _ = reversible_eigh(covariances(x, y))
    # lag-1 autocorrelation estimator of an AR(1): standard error sqrt((1 - a^2) / n) (Bartlett);
    # 6 sigma for a fixed-seed test over 3 eigenvalues.
    tol = 6 * np.sqrt((1 - a**2) / n)
    assert np.all(np.abs(np.asarray(values) - a) < tol), (values, a, tol)
    score = float(vamp_score(x, y))
    assert abs(score - (1 + np.sum(a**2))) < np.sum(2 * a * tol)


def test_loss_is_negative_score_and_differentiable_under_jit():
    x, y = (jnp.asarray(v, jnp.float32) for v in _random_pairs(0, n=512))
    np.testing.assert_allclose(float(vamp_loss(x, y)), -float(vamp_score(x, y)))
    for reversible in (True, False):
        g = jax.jit(jax.grad(lambda a, b: vamp_loss(a, b, reversible=reversible)))(x, y)
        assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))


def test_degenerate_features_are_regularized_not_nan():
    # two identical columns: singular covariance; the epsilon regularization keeps score and gradient finite.
    x, y = (jnp.asarray(v, jnp.float32) for v in _random_pairs(1, n=512, m=2))
    x, y = jnp.concatenate([x, x[:, :1]], 1), jnp.concatenate([y, y[:, :1]], 1)
    for reversible in (True, False):
        s, g = jax.value_and_grad(lambda a: vamp_score(a, y, reversible=reversible))(x)
        assert bool(jnp.isfinite(s)) and bool(jnp.all(jnp.isfinite(g)))


def test_shape_mismatch_raises_clear_error():
    with pytest.raises(ValueError, match="n_pairs, m"):
        vamp_score(jnp.ones((10, 2)), jnp.ones((10, 3)))


@pytest.mark.parametrize("method,r", [("VAMP1", 1), ("VAMP2", 2)])
def test_nonreversible_matches_deeptime_deep_vamp_score(method, r):
    # deeptime's differentiable vamp_score (the VAMPnet loss) needs torch, which is not in the test
    # extra (it would pull a multi-GB build); this runs where torch is installed.
    torch = pytest.importorskip("torch")
    from deeptime.decomposition.deep import vamp_score as deeptime_vamp_score

    x, y = _random_pairs(4)
    expected = float(deeptime_vamp_score(torch.from_numpy(x), torch.from_numpy(y), method=method, epsilon=1e-10))
    with jax.enable_x64(True):
        got = vamp_score(jnp.asarray(x), jnp.asarray(y), r=r, reversible=False, epsilon=1e-10)
    np.testing.assert_allclose(float(got), expected, rtol=1e-8)
